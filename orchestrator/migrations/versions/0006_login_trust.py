"""Login throttling per account and source address: the addresses an account logged
in from are trusted for it for a while (``login_throttle.trusted_until``).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-12

The per-email counters (keys ``email:...``) locked an account from every address;
they are replaced by per account-and-address ones and dropped here.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("login_throttle") as batch:
        batch.add_column(sa.Column("trusted_until", sa.DateTime(timezone=True), nullable=True))
    op.execute("DELETE FROM login_throttle WHERE key LIKE 'email:%'")


def downgrade() -> None:
    # The per-address and per-account counters mean nothing to the old rule.
    op.execute("DELETE FROM login_throttle WHERE key NOT LIKE 'client:%'")
    with op.batch_alter_table("login_throttle") as batch:
        batch.drop_column("trusted_until")
