"""A room's topology policy (``room.small_uplink``): a room whose uplink is small has
its sessions run on the SFU, where it uploads one stream whatever the number of sites.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07

Every existing room keeps today's behaviour: false.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A plain ADD COLUMN, not batch mode: for a default that is an expression (``false``)
    # batch mode copies the table, which SQLite refuses while rooms are referenced by
    # other rows; SQLite's own ADD COLUMN takes the constant it compiles to.
    op.add_column(
        "room", sa.Column("small_uplink", sa.Boolean(), nullable=False, server_default=sa.false())
    )


def downgrade() -> None:
    # A plain DROP COLUMN (SQLite 3.35 and later has it): batch mode would copy the
    # table, which SQLite refuses while rooms are referenced by other rows.
    op.drop_column("room", "small_uplink")
