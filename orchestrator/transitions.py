"""A session's move to a new state, written so that two writers cannot both win.

The states and their rules are ``orchestrator.lifecycle`` (pure); this is the one place
a transition is written: bookings (a cancelled occurrence) and sessions (the scheduler,
calls) both record them through it.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import col, select

from orchestrator.db import DbSession
from orchestrator.models import Session, SessionTransitionRecord, utcnow


def record_transition(
    db: DbSession, session: Session, state: str, at: datetime, *, now: datetime | None = None
) -> bool:
    """Move ``session`` to ``state`` and append its transition record, unless another
    transaction changed the session since it was read (then nothing is written and
    the answer is False). ``state`` may repeat the current one (a second warning)."""
    changed_at = now if now is not None else utcnow()
    moved = db.connection().execute(
        sa.update(Session)
        .where(col(Session.id) == session.id, col(Session.revision) == session.revision)
        .values(state=state, revision=session.revision + 1, updated_at=changed_at)
    )
    if moved.rowcount != 1:
        return False
    last = db.exec(
        select(sa.func.max(SessionTransitionRecord.seq)).where(
            SessionTransitionRecord.session_id == session.id
        )
    ).one()
    db.add(SessionTransitionRecord(session_id=session.id, seq=(last or 0) + 1, state=state, at=at))
    # The row is written; keep the loaded object in step without a second UPDATE.
    set_committed_value(session, "state", state)
    set_committed_value(session, "revision", session.revision + 1)
    set_committed_value(session, "updated_at", changed_at)
    db.flush()
    return True
