"""When a booking still takes guests: while one of its occurrences is ahead or under
way. A guest's link opens a session from 15 minutes before it until its end
(``guests.link_window``), so a link made for a booking whose sessions are all over
(ended, cancelled, failed, or past their end) could never open anything.

The rule is ``invitations_open``; the booking page asks it to offer the form, and
every command that makes a link (a new guest, a new link for a guest) calls
``check_invitations_open`` first, so a form posted from an old page is refused
with ``invitations-closed``.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlmodel import col, select

from orchestrator.db import DbSession
from orchestrator.errors import DomainError
from orchestrator.lifecycle import TERMINAL_STATES
from orchestrator.models import Session

CLOSED = "invitations-closed"


def invitations_open(occurrences: Iterable[tuple[str, datetime]], now: datetime) -> bool:
    """True while an occurrence, given as (state, end), is neither over by its state
    nor past its end."""
    return any(state not in TERMINAL_STATES and end > now for state, end in occurrences)


def check_invitations_open(db: DbSession, booking_id: str, now: datetime) -> None:
    """Refuse with ``invitations-closed`` when the booking has no occurrence ahead or
    under way."""
    rows = db.exec(
        select(Session.state, Session.end_utc).where(
            col(Session.booking_id) == booking_id, col(Session.end_utc) > now
        )
    ).all()
    if not invitations_open(rows, now):
        raise DomainError(
            CLOSED, "the booking has no session ahead or under way: a guest could never join"
        )
