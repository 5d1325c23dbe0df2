"""Initial schema: centres, rooms, bookings, sessions, transitions, participation, API tokens.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _instant(name: str, *, nullable: bool = False) -> sa.Column[object]:
    # orchestrator.models.UTCDateTime stores this type; migrations keep plain types.
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "api_token",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("token_hash", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        _instant("created_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_token")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_api_token_token_hash")),
    )
    op.create_table(
        "booking",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("title", sa.String(), nullable=False),
        _instant("start_utc"),
        _instant("end_utc"),
        sa.Column("start_local", sa.DateTime(), nullable=False),
        sa.Column("end_local", sa.DateTime(), nullable=False),
        sa.Column("timezone", sa.String(), nullable=False),
        sa.Column("lead_seconds", sa.Integer(), nullable=False),
        sa.Column("connect_mode", sa.String(), nullable=False),
        _instant("created_at"),
        _instant("updated_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_booking")),
    )
    op.create_table(
        "centre",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("timezone", sa.String(), nullable=False),
        _instant("created_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_centre")),
        sa.UniqueConstraint("name", name=op.f("uq_centre_name")),
    )
    op.create_table(
        "meeting_session",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("booking_id", sa.String(), nullable=False),
        _instant("start_utc"),
        _instant("end_utc"),
        sa.Column("lead_seconds", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        _instant("created_at"),
        _instant("updated_at"),
        sa.ForeignKeyConstraint(
            ["booking_id"], ["booking.id"], name=op.f("fk_meeting_session_booking_id_booking")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_meeting_session")),
    )
    op.create_index(
        op.f("ix_meeting_session_booking_id"), "meeting_session", ["booking_id"], unique=False
    )
    op.create_index(
        op.f("ix_meeting_session_start_utc"), "meeting_session", ["start_utc"], unique=False
    )
    op.create_table(
        "room",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("centre_id", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("key_hash", sa.String(), nullable=False),
        sa.Column("key_generation", sa.Integer(), nullable=False),
        _instant("created_at"),
        sa.ForeignKeyConstraint(
            ["centre_id"], ["centre.id"], name=op.f("fk_room_centre_id_centre")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_room")),
        sa.UniqueConstraint("centre_id", "name", name=op.f("uq_room_centre_id_name")),
    )
    op.create_index(op.f("ix_room_centre_id"), "room", ["centre_id"], unique=False)
    op.create_table(
        "booking_room",
        sa.Column("booking_id", sa.String(), nullable=False),
        sa.Column("room_id", sa.String(), nullable=False),
        sa.ForeignKeyConstraint(
            ["booking_id"], ["booking.id"], name=op.f("fk_booking_room_booking_id_booking")
        ),
        sa.ForeignKeyConstraint(
            ["room_id"], ["room.id"], name=op.f("fk_booking_room_room_id_room")
        ),
        sa.PrimaryKeyConstraint("booking_id", "room_id", name=op.f("pk_booking_room")),
    )
    op.create_index(op.f("ix_booking_room_room_id"), "booking_room", ["room_id"], unique=False)
    op.create_table(
        "participation",
        sa.Column("session_id", sa.String(), nullable=False),
        sa.Column("room_id", sa.String(), nullable=False),
        _instant("joined_at", nullable=True),
        _instant("first_frame_at", nullable=True),
        _instant("live_at", nullable=True),
        _instant("left_at", nullable=True),
        sa.Column("media_summary", sa.Text(), nullable=True),
        sa.Column("rejoins", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["room_id"], ["room.id"], name=op.f("fk_participation_room_id_room")
        ),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["meeting_session.id"],
            name=op.f("fk_participation_session_id_meeting_session"),
        ),
        sa.PrimaryKeyConstraint("session_id", "room_id", name=op.f("pk_participation")),
    )
    op.create_index(op.f("ix_participation_room_id"), "participation", ["room_id"], unique=False)
    op.create_table(
        "session_transition",
        sa.Column("session_id", sa.String(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(), nullable=False),
        _instant("at"),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["meeting_session.id"],
            name=op.f("fk_session_transition_session_id_meeting_session"),
        ),
        sa.PrimaryKeyConstraint("session_id", "seq", name=op.f("pk_session_transition")),
    )


def downgrade() -> None:
    op.drop_table("session_transition")
    op.drop_index(op.f("ix_participation_room_id"), table_name="participation")
    op.drop_table("participation")
    op.drop_index(op.f("ix_booking_room_room_id"), table_name="booking_room")
    op.drop_table("booking_room")
    op.drop_index(op.f("ix_room_centre_id"), table_name="room")
    op.drop_table("room")
    op.drop_index(op.f("ix_meeting_session_start_utc"), table_name="meeting_session")
    op.drop_index(op.f("ix_meeting_session_booking_id"), table_name="meeting_session")
    op.drop_table("meeting_session")
    op.drop_table("centre")
    op.drop_table("booking")
    op.drop_table("api_token")
