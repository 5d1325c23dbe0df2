"""Series and occurrences, room slots with the no-overlap rule, feeds, calendar tokens.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28

On PostgreSQL the rule "a room is never held twice at once" is the database's
own: an exclusion constraint over (room, [start, end)) with btree_gist, so two
connections booking the same slot cannot both win. SQLite has no such constraint;
there the booking transaction is serialised (BEGIN IMMEDIATE) and checks first.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NO_OVERLAP = "ex_room_slot_no_overlap"


def _instant(name: str, *, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "calendar_token",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("token_hash", sa.String(), nullable=False),
        sa.Column("room_id", sa.String(), nullable=True),
        sa.Column("centre_id", sa.String(), nullable=True),
        _instant("created_at"),
        sa.ForeignKeyConstraint(
            ["centre_id"], ["centre.id"], name=op.f("fk_calendar_token_centre_id_centre")
        ),
        sa.ForeignKeyConstraint(
            ["room_id"], ["room.id"], name=op.f("fk_calendar_token_room_id_room")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_calendar_token")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_calendar_token_token_hash")),
    )
    op.create_table(
        "feed",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("room_id", sa.String(), nullable=True),
        sa.Column("interval_seconds", sa.Integer(), nullable=False),
        sa.Column("etag", sa.String(), nullable=True),
        sa.Column("last_modified", sa.String(), nullable=True),
        _instant("last_polled_at", nullable=True),
        sa.Column("last_status", sa.Text(), nullable=True),
        _instant("created_at"),
        sa.ForeignKeyConstraint(["room_id"], ["room.id"], name=op.f("fk_feed_room_id_room")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feed")),
    )
    op.create_table(
        "room_slot",
        sa.Column("room_id", sa.String(), nullable=False),
        sa.Column("session_id", sa.String(), nullable=False),
        _instant("start_utc"),
        _instant("end_utc"),
        sa.ForeignKeyConstraint(["room_id"], ["room.id"], name=op.f("fk_room_slot_room_id_room")),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["meeting_session.id"],
            name=op.f("fk_room_slot_session_id_meeting_session"),
        ),
        sa.PrimaryKeyConstraint("room_id", "session_id", name=op.f("pk_room_slot")),
    )
    op.create_index(op.f("ix_room_slot_session_id"), "room_slot", ["session_id"], unique=False)
    op.create_index(
        "ix_room_slot_room_id_start_utc_end_utc_session_id",
        "room_slot",
        ["room_id", "start_utc", "end_utc", "session_id"],
        unique=False,
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")
        op.execute(
            f"ALTER TABLE room_slot ADD CONSTRAINT {NO_OVERLAP} EXCLUDE USING gist "
            "(room_id WITH =, tstzrange(start_utc, end_utc, '[)') WITH &&)"
        )

    with op.batch_alter_table("booking") as batch:
        batch.add_column(sa.Column("uid", sa.String(), nullable=False, server_default=""))
        batch.add_column(sa.Column("source", sa.String(), nullable=False, server_default="local"))
        batch.add_column(sa.Column("sequence", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("rrule", sa.Text(), nullable=True))
        batch.add_column(sa.Column("rdates", sa.Text(), nullable=False, server_default="[]"))
        batch.add_column(sa.Column("exdates", sa.Text(), nullable=False, server_default="[]"))
        batch.add_column(
            sa.Column("status", sa.String(), nullable=False, server_default="confirmed")
        )
        batch.add_column(
            sa.Column("transparent", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(
            sa.Column("all_day", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(sa.Column("organiser", sa.String(), nullable=True))
        batch.add_column(sa.Column("import_hash", sa.String(), nullable=True))
    # Bookings made before series existed get a UID of their own.
    op.execute("UPDATE booking SET uid = id || '@telecentre' WHERE uid = ''")
    with op.batch_alter_table("booking") as batch:
        batch.create_unique_constraint(op.f("uq_booking_source_uid"), ["source", "uid"])
        for name in (
            "uid",
            "source",
            "sequence",
            "rdates",
            "exdates",
            "status",
            "transparent",
            "all_day",
        ):
            batch.alter_column(name, server_default=None)

    with op.batch_alter_table("meeting_session") as batch:
        batch.add_column(_instant("recurrence_id", nullable=True))
        batch.add_column(sa.Column("title", sa.String(), nullable=True))
        batch.create_unique_constraint(
            op.f("uq_meeting_session_booking_id_recurrence_id"), ["booking_id", "recurrence_id"]
        )
    op.execute("UPDATE meeting_session SET recurrence_id = start_utc WHERE recurrence_id IS NULL")

    with op.batch_alter_table("participation") as batch:
        batch.add_column(_instant("released_at", nullable=True))

    with op.batch_alter_table("room") as batch:
        batch.add_column(sa.Column("aliases", sa.Text(), nullable=False, server_default="[]"))
        batch.add_column(
            sa.Column("buffer_seconds", sa.Integer(), nullable=False, server_default="0")
        )
        batch.add_column(sa.Column("max_duration_seconds", sa.Integer(), nullable=True))
        batch.add_column(
            sa.Column("max_advance_days", sa.Integer(), nullable=False, server_default="180")
        )
    with op.batch_alter_table("room") as batch:
        for name in ("aliases", "buffer_seconds", "max_advance_days"):
            batch.alter_column(name, server_default=None)


def downgrade() -> None:
    with op.batch_alter_table("room") as batch:
        for name in ("max_advance_days", "max_duration_seconds", "buffer_seconds", "aliases"):
            batch.drop_column(name)
    with op.batch_alter_table("participation") as batch:
        batch.drop_column("released_at")
    with op.batch_alter_table("meeting_session") as batch:
        batch.drop_constraint(op.f("uq_meeting_session_booking_id_recurrence_id"), type_="unique")
        batch.drop_column("title")
        batch.drop_column("recurrence_id")
    with op.batch_alter_table("booking") as batch:
        batch.drop_constraint(op.f("uq_booking_source_uid"), type_="unique")
        for name in (
            "import_hash",
            "organiser",
            "all_day",
            "transparent",
            "status",
            "exdates",
            "rdates",
            "rrule",
            "sequence",
            "source",
            "uid",
        ):
            batch.drop_column(name)
    op.drop_index("ix_room_slot_room_id_start_utc_end_utc_session_id", table_name="room_slot")
    op.drop_index(op.f("ix_room_slot_session_id"), table_name="room_slot")
    op.drop_table("room_slot")
    op.drop_table("feed")
    op.drop_table("calendar_token")
