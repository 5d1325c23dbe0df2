"""Who cancelled a session (``meeting_session.cancelled_by``): its organiser, a person
here, or the calendar it came from (``orchestrator.bookings``).

Revision ID: 0008
Revises: 0007
Create Date: 2027-01-12

Sessions cancelled before this revision are given what their booking's source
says (a booking made here: ``organiser``; one from a calendar: ``calendar``), the
rule ``booking list`` applied until then. A session skipped for a conflict (no
room in it) keeps None: its reason is read from that.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("meeting_session") as batch:
        batch.add_column(sa.Column("cancelled_by", sa.String(), nullable=True))
    op.execute(
        "UPDATE meeting_session SET cancelled_by = CASE"
        " WHEN (SELECT source FROM booking WHERE booking.id = meeting_session.booking_id)"
        " = 'local' THEN 'organiser' ELSE 'calendar' END"
        " WHERE state = 'cancelled' AND EXISTS (SELECT 1 FROM participation"
        " WHERE participation.session_id = meeting_session.id)"
    )


def downgrade() -> None:
    # A plain DROP COLUMN (SQLite 3.35 and later has it): batch mode would copy the
    # table, which SQLite refuses while sessions are referenced by other rows.
    op.drop_column("meeting_session", "cancelled_by")
