"""CalDAV links and the resources they hold.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _instant(name: str, *, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "caldav_link",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("room_id", sa.String(), nullable=False),
        sa.Column("calendar_url", sa.Text(), nullable=False),
        sa.Column("username", sa.String(), nullable=True),
        sa.Column("password", sa.String(), nullable=True),
        sa.Column("sync_token", sa.Text(), nullable=True),
        _instant("last_synced_at", nullable=True),
        sa.Column("last_status", sa.Text(), nullable=True),
        _instant("created_at"),
        sa.ForeignKeyConstraint(["room_id"], ["room.id"], name=op.f("fk_caldav_link_room_id_room")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_caldav_link")),
    )
    op.create_index(op.f("ix_caldav_link_room_id"), "caldav_link", ["room_id"], unique=False)
    op.create_table(
        "caldav_item",
        sa.Column("link_id", sa.String(), nullable=False),
        sa.Column("href", sa.String(), nullable=False),
        sa.Column("uid", sa.String(), nullable=False),
        sa.Column("etag", sa.String(), nullable=True),
        sa.Column("booking_id", sa.String(), nullable=True),
        sa.Column("synced_sequence", sa.Integer(), nullable=False),
        _instant("synced_at", nullable=True),
        sa.ForeignKeyConstraint(
            ["booking_id"], ["booking.id"], name=op.f("fk_caldav_item_booking_id_booking")
        ),
        sa.ForeignKeyConstraint(
            ["link_id"], ["caldav_link.id"], name=op.f("fk_caldav_item_link_id_caldav_link")
        ),
        sa.PrimaryKeyConstraint("link_id", "href", name=op.f("pk_caldav_item")),
    )


def downgrade() -> None:
    op.drop_table("caldav_item")
    op.drop_index(op.f("ix_caldav_link_room_id"), table_name="caldav_link")
    op.drop_table("caldav_link")
