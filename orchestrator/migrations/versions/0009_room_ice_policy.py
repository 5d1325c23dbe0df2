"""A room's ICE policy (``room.ice_policy``): ``all``, or ``relay`` for a room whose
network forbids direct UDP, whose agent then uses only TURN relay candidates.

Revision ID: 0009
Revises: 0008
Create Date: 2027-01-20

Every existing room keeps today's behaviour: ``all``.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("room") as batch:
        batch.add_column(sa.Column("ice_policy", sa.String(), nullable=False, server_default="all"))


def downgrade() -> None:
    # A plain DROP COLUMN (SQLite 3.35 and later has it): batch mode would copy the
    # table, which SQLite refuses while rooms are referenced by other rows.
    op.drop_column("room", "ice_policy")
