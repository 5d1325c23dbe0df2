"""When a booking still takes guests: while it has a *call* ahead or under way. A guest
joins a call from a browser (``guests.link_window``: from 15 minutes before a session
until its end), so a link is refused where it could only ever open an empty page:

- a **reserve-only** booking sets up no call at all (``guests-need-call``);
- every occurrence is **over** (ended, cancelled, failed, or past its end);
- the occurrences still ahead are all **reminders** (``calls.is_reminder``: a
  transparent booking's session that has not begun never connects a room).

The last two are ``invitations-closed``, with the reason (``over``, ``reminders``) so
a page can say which. A transparent booking's session that has begun keeps its call,
and so its guests.

The rule is ``closed_reason``; the booking page asks it to offer the form, and
``guests.add_guest`` (every command that makes a link: the booking form, the
booking page's new guest and new link, the API) calls ``check_invitations_open``
first, so a form posted from an old page is refused too.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Final, Literal

from sqlmodel import col, select

from orchestrator.booking.policy import joins_call
from orchestrator.db import DbSession
from orchestrator.errors import DomainError
from orchestrator.lifecycle import TERMINAL_STATES
from orchestrator.models import Booking, Session
from orchestrator.sessions.calls import is_reminder

CLOSED: Final = "invitations-closed"
NEEDS_CALL: Final = "guests-need-call"
Reason = Literal["reserve-only", "over", "reminders"]


class InvitationsClosed(DomainError):
    """No guest may be invited: ``reason`` says why (``over``: every occurrence is
    over; ``reminders``: those ahead are reminders, with no call)."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(NEEDS_CALL if reason == "reserve-only" else CLOSED, message)
        self.reason: Reason = reason


MESSAGES: Final[dict[Reason, str]] = {
    "reserve-only": "a reserve-only booking sets up no call, so it has no guests",
    "over": "the booking has no session ahead or under way: a guest could never join",
    "reminders": "the booking's sessions ahead are reminders (free time in a calendar), "
    "which never connect: a guest would join no call",
}


def closed_reason(
    occurrences: Iterable[tuple[str, datetime]],
    now: datetime,
    *,
    transparent: bool,
    connect_mode: str,
) -> Reason | None:
    """Why the booking takes no guest now (None: it does), from its occurrences given
    as (state, end), whether it is transparent and its connect mode."""
    if not joins_call(connect_mode):
        return "reserve-only"
    ahead = [state for state, end in occurrences if state not in TERMINAL_STATES and end > now]
    if any(not is_reminder(transparent, state) for state in ahead):
        return None
    return "reminders" if ahead else "over"


def invitations_open(
    occurrences: Iterable[tuple[str, datetime]],
    now: datetime,
    *,
    transparent: bool,
    connect_mode: str,
) -> bool:
    """True while the booking has a call ahead or under way (``closed_reason``)."""
    found = closed_reason(occurrences, now, transparent=transparent, connect_mode=connect_mode)
    return found is None


def check_invitations_open(db: DbSession, booking_id: str, now: datetime) -> None:
    """Refuse with ``InvitationsClosed`` (``invitations-closed``, or
    ``guests-need-call`` for a reserve-only booking) when the booking has no call ahead
    or under way; ``not-found`` when there is no such booking."""
    booking = db.get(Booking, booking_id)
    if booking is None:
        raise DomainError("not-found", f"no booking {booking_id}")
    rows = db.exec(
        select(Session.state, Session.end_utc).where(
            col(Session.booking_id) == booking_id, col(Session.end_utc) > now
        )
    ).all()
    reason = closed_reason(
        rows, now, transparent=booking.transparent, connect_mode=booking.connect_mode
    )
    if reason is not None:
        raise InvitationsClosed(reason, MESSAGES[reason])
