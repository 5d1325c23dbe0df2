"""Readiness checks: each room's latest, and each room's latest per session with the
alerts its centre's staff were sent.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05

A session's readiness rows go with the session (ON DELETE CASCADE): a rebooked
occurrence is deleted and written anew by the booking store.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _instant(name: str, *, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "room_readiness",
        sa.Column("room_id", sa.String(), nullable=False),
        sa.Column("session_id", sa.String(), nullable=True),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("checks", sa.Text(), nullable=False),
        _instant("checked_at"),
        _instant("received_at"),
        sa.ForeignKeyConstraint(
            ["room_id"], ["room.id"], name=op.f("fk_room_readiness_room_id_room")
        ),
        sa.PrimaryKeyConstraint("room_id", name=op.f("pk_room_readiness")),
    )
    op.create_table(
        "session_readiness",
        sa.Column("session_id", sa.String(), nullable=False),
        sa.Column("room_id", sa.String(), nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("checks", sa.Text(), nullable=False),
        _instant("checked_at"),
        _instant("received_at"),
        sa.Column("alerts", sa.Integer(), nullable=False),
        sa.Column("alerting", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["meeting_session.id"],
            name=op.f("fk_session_readiness_session_id_meeting_session"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["room_id"], ["room.id"], name=op.f("fk_session_readiness_room_id_room")
        ),
        sa.PrimaryKeyConstraint("session_id", "room_id", name=op.f("pk_session_readiness")),
    )
    op.create_index(
        op.f("ix_session_readiness_room_id"), "session_readiness", ["room_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_session_readiness_room_id"), table_name="session_readiness")
    op.drop_table("session_readiness")
    op.drop_table("room_readiness")
