"""One call per room: why a session failed (``meeting_session.failure``), and on SQLite
the triggers that refuse two overlapping slots of one room.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07

PostgreSQL has refused overlapping slots since 0002 (``ex_room_slot_no_overlap``);
SQLite relied on the booking store's check inside ``BEGIN IMMEDIATE``, so a write
that bypassed the store could hold one room twice. The triggers raise with the
constraint's name, so ``orchestrator.booking.store.is_slot_overlap`` reads both refusals alike.
An update that only shrinks a slot (a no-show release, an early end) is not checked:
it cannot make an overlap. A later migration that rebuilds ``room_slot`` in batch
mode drops these triggers and must create them again.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NO_OVERLAP = "ex_room_slot_no_overlap"
_OTHER_SLOT = (
    "SELECT 1 FROM room_slot AS held WHERE held.room_id = NEW.room_id"
    " AND held.start_utc < NEW.end_utc AND NEW.start_utc < held.end_utc"
)
TRIGGERS = {
    "tr_room_slot_no_overlap_insert": (
        "BEFORE INSERT ON room_slot FOR EACH ROW"
        f" WHEN EXISTS ({_OTHER_SLOT} AND held.session_id <> NEW.session_id)"
    ),
    "tr_room_slot_no_overlap_update": (
        "BEFORE UPDATE OF room_id, start_utc, end_utc ON room_slot FOR EACH ROW"
        " WHEN (NEW.room_id <> OLD.room_id OR NEW.start_utc < OLD.start_utc"
        " OR NEW.end_utc > OLD.end_utc)"
        f" AND EXISTS ({_OTHER_SLOT}"
        " AND NOT (held.room_id = OLD.room_id AND held.session_id = OLD.session_id))"
    ),
}


def upgrade() -> None:
    with op.batch_alter_table("meeting_session") as batch:
        batch.add_column(sa.Column("failure", sa.String(), nullable=True))
    if op.get_bind().dialect.name == "sqlite":
        for name, when in TRIGGERS.items():
            op.execute(
                f"CREATE TRIGGER {name} {when}"
                f" BEGIN SELECT RAISE(ABORT, '{NO_OVERLAP}: the room is held then'); END"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for name in TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    # A plain DROP COLUMN (SQLite 3.35 and later has it): batch mode would copy the
    # table, which SQLite refuses while sessions are referenced by other rows.
    op.drop_column("meeting_session", "failure")
