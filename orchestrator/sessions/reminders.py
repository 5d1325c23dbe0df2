"""Which sessions people should read as *reminders*, not meetings.

A reminder is a transparent booking's session that has not begun
(``calls.is_reminder``: free time in someone's calendar); it never becomes a call
and goes from ``scheduled`` to ``ended`` at its end. The pages that list sessions
(the dashboard, a booking's page, a session's page) show it as a reminder with no
call: no sites to follow, no joins or media to expect. Once ended it stays one on
those pages, as long as it never began as a call: a transparent booking's session
that had begun before its booking turned transparent keeps its call (and its
history of one).

``was_reminder`` is the rule over plain values; ``reminder_ids`` reads it for a set
of sessions.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Final

import sqlalchemy as sa
from sqlmodel import col

from orchestrator import lifecycle
from orchestrator.db import DbSession
from orchestrator.models import Booking, Session, SessionTransitionRecord
from orchestrator.sessions.calls import is_reminder

CALL_STATES: Final = (lifecycle.PREPARING, lifecycle.LIVE, lifecycle.ENDING)
"""A session that reached one of these was a call."""


def was_reminder(transparent: bool, state: str, began: bool) -> bool:
    """A reminder now (``calls.is_reminder``), or one that ended without ever having
    begun as a call (``began``: it reached preparing, live or ending)."""
    if is_reminder(transparent, state):
        return True
    return transparent and state == lifecycle.ENDED and not began


def reminder_ids(db: DbSession, session_ids: Collection[str]) -> frozenset[str]:
    """The sessions among ``session_ids`` that are (or ended as) reminders."""
    if not session_ids:
        return frozenset()
    began = (
        sa.exists()
        .where(
            col(SessionTransitionRecord.session_id) == col(Session.id),
            col(SessionTransitionRecord.state).in_(CALL_STATES),
        )
        .correlate(Session)
    )
    rows = db.connection().execute(
        sa.select(col(Session.id), col(Session.state), began)
        .join(Booking, col(Booking.id) == col(Session.booking_id))
        .where(col(Session.id).in_(sorted(session_ids)), col(Booking.transparent).is_(True))
    )
    return frozenset(
        session_id for session_id, state, begun in rows if was_reminder(True, state, bool(begun))
    )
