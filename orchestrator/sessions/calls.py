"""Which sessions become calls: no room ever holds two overlapping calls.

A *call* is a room connecting for a session: the session is in the room's schedule
(with a ticket, so the agent joins by itself at ``start - lead``) and the scheduler
takes it through ``preparing`` and ``live``. The rules:

- **A room holds a session as a call only while it holds the session's room slot
  over the whole session** (``room_slot``: ``[start, end + buffer)``). Two slots of
  one room never overlap, whichever connection or process writes them: PostgreSQL's
  exclusion constraint ``ex_room_slot_no_overlap`` and, on SQLite, the triggers of
  migration 0007 refuse the second. So two calls in one room cannot overlap, by
  whatever path their bookings came (the form, the API, the CLI, an import, a feed,
  CalDAV, a race, a row written past every check of ours). Room schedules, the
  scheduler and the room panel all read this one predicate (``takes_call``).
- **A transparent occurrence never becomes a call.** TRANSP:TRANSPARENT is free
  time in someone's calendar (RFC 5545 3.8.2.7): it holds no slot, and its session
  is a *reminder*. It stays ``scheduled`` and goes to ``ended`` at its end
  (``lifecycle``, ``call=False``): no preparing, no live, no ticket, no schedule
  entry, no place on the room's panel (which says the room is free, as it is). A
  transparent booking's session that has already begun keeps its call.
- **A session not begun whose rooms are not all held for it fails** before it can
  reach any room's schedule (all or nothing, as booking is), with the stable reason
  ``room-not-held`` in ``meeting_session.failure``: the scheduler's step writes it
  (and frees whatever the session held), logs it with the session holding the
  room, and the API shows it. Every booking path writes the slots with the session,
  so only a session written past the booking store (or a slot lost to a race the
  database refused) ever gets here.

Calendar re-imports follow from these rules: a booking turned transparent lets go of
the slots of its sessions not begun (``booking.store``), so they lose their calls
and become reminders; a booking turned opaque is tested for conflicts again and its
sessions get their slots, and so their calls, where the room is free (a conflict
skips the occurrence, as any import does).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import sqlalchemy as sa
from sqlmodel import col, select

from orchestrator import lifecycle
from orchestrator.db import DbSession
from orchestrator.models import Approval, Booking, BookingRoom, Participation, RoomSlot, Session
from orchestrator.transitions import record_transition

log = logging.getLogger(__name__)

ROOM_NOT_HELD: Final = "room-not-held"
"""A session failed because one of its rooms did not hold its slot."""
UNSCHEDULABLE: Final = "unschedulable"
"""A session failed because its row cannot be scheduled (end before start...)."""
APPROVED: Final = "approved"


def is_reminder(transparent: bool, state: str) -> bool:
    """A transparent booking's session that has not begun: it never becomes a call."""
    return transparent and state == lifecycle.SCHEDULED


def held_for(session_id: Any, room_id: Any) -> sa.ColumnElement[bool]:
    """SQL: the room holds the session's slot over the whole session (``Session`` is in
    the query)."""
    return sa.exists().where(
        col(RoomSlot.room_id) == room_id,
        col(RoomSlot.session_id) == session_id,
        col(RoomSlot.start_utc) <= col(Session.start_utc),
        col(RoomSlot.end_utc) >= col(Session.end_utc),
    )


def takes_call(room_id: Any) -> sa.ColumnElement[bool]:
    """SQL: the room takes the session as a call (``Session`` and ``Booking`` are in the
    query): it holds its slot, and the session is no reminder."""
    reminder = sa.and_(
        col(Booking.transparent).is_(True), col(Session.state) == lifecycle.SCHEDULED
    )
    return sa.and_(held_for(col(Session.id), room_id), sa.not_(reminder))


@dataclass(frozen=True, slots=True)
class Refusal:
    """A session refused its call: the rooms not held for it, and the sessions that
    hold them over its time (none when the slot was simply never written)."""

    session_id: str
    room_ids: tuple[str, ...]
    holders: tuple[str, ...]

    def describe(self) -> str:
        held = f" (held by session {', '.join(self.holders)})" if self.holders else ""
        return f"room {', '.join(self.room_ids)} is not held for it{held}"


def _taking_part_unheld(db: DbSession, now: datetime, until: datetime) -> dict[str, list[str]]:
    """Session id -> its rooms taking part but not holding its slot, for the opaque
    sessions not begun that end after ``now`` and start before ``until``."""
    rows = db.connection().execute(
        sa.select(col(Session.id), col(BookingRoom.room_id))
        .join(Booking, col(Booking.id) == col(Session.booking_id))
        .join(BookingRoom, col(BookingRoom.booking_id) == col(Session.booking_id))
        .outerjoin(
            Approval,
            sa.and_(
                col(Approval.booking_id) == col(Session.booking_id),
                col(Approval.room_id) == col(BookingRoom.room_id),
            ),
        )
        .outerjoin(
            Participation,
            sa.and_(
                col(Participation.session_id) == col(Session.id),
                col(Participation.room_id) == col(BookingRoom.room_id),
            ),
        )
        .where(
            col(Session.state) == lifecycle.SCHEDULED,
            col(Booking.transparent).is_(False),
            col(Session.end_utc) > now,
            col(Session.start_utc) < until,
            sa.or_(col(Approval.state).is_(None), col(Approval.state) == APPROVED),
            col(Participation.released_at).is_(None),
            sa.not_(held_for(col(Session.id), col(BookingRoom.room_id))),
        )
        .order_by(col(Session.start_utc), col(Session.id), col(BookingRoom.room_id))
    )
    found: dict[str, list[str]] = defaultdict(list)
    for session_id, room_id in rows:
        found[session_id].append(room_id)
    return found


def _holders(db: DbSession, session: Session, room_ids: Sequence[str]) -> tuple[str, ...]:
    rows = db.connection().execute(
        sa.select(col(RoomSlot.session_id))
        .where(
            col(RoomSlot.room_id).in_(list(room_ids)),
            col(RoomSlot.session_id) != session.id,
            col(RoomSlot.start_utc) < session.end_utc,
            col(RoomSlot.end_utc) > session.start_utc,
        )
        .order_by(col(RoomSlot.start_utc), col(RoomSlot.session_id))
    )
    return tuple(dict.fromkeys(session_id for (session_id,) in rows))


def fail_session(db: DbSession, session: Session, reason: str, at: datetime) -> bool:
    """Move the session to ``failed`` with ``reason`` and free its rooms; False if
    another transaction changed it since it was read."""
    if not record_transition(db, session, lifecycle.FAILED, at, now=at):
        return False
    db.connection().execute(
        sa.update(Session).where(col(Session.id) == session.id).values(failure=reason)
    )
    db.connection().execute(sa.delete(RoomSlot).where(col(RoomSlot.session_id) == session.id))
    return True


def refuse_unheld(db: DbSession, now: datetime, until: datetime) -> list[tuple[Session, Refusal]]:
    """Fail every opaque session not begun, ending after ``now`` and starting before
    ``until``, whose rooms are not all held for it (see the module doc); returns the
    sessions failed now, as they are now, with what refused them."""
    unheld = _taking_part_unheld(db, now, until)
    if not unheld:
        return []
    sessions = db.exec(select(Session).where(col(Session.id).in_(list(unheld)))).all()
    refused: list[tuple[Session, Refusal]] = []
    for session in sorted(sessions, key=lambda s: (s.start_utc, s.id)):
        rooms = tuple(unheld[session.id])
        refusal = Refusal(session.id, rooms, _holders(db, session, rooms))
        if fail_session(db, session, ROOM_NOT_HELD, now):
            log.warning(
                "session %s refused (%s): %s", session.id, ROOM_NOT_HELD, refusal.describe()
            )
            refused.append((session, refusal))
    return refused
