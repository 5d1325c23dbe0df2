"""What people do to a session under way (or about to be): extend it, end it now,
cancel it or its whole series.

Rules:

- **Extend** (Cisco TMS and Zoom Rooms behave alike): granted only when every room
  that holds the session is free for the extra time, by the booking's own conflict
  rule (``orchestrator.booking.conflicts``: half-open intervals, each room's buffer after
  every occurrence). The room slots grow first, so on PostgreSQL the exclusion
  constraint ``ex_room_slot_no_overlap`` refuses an extension that raced a booking
  past our check; either way the refusal is ``BookingConflict`` (code
  ``conflict``) naming the room, and no title (the other booking may be another
  centre's). Only while the session has not ended. A room released for a no-show
  is no longer in the session and is not extended. The session's revision goes up,
  so the scheduler pushes the rooms' new schedules (and re-mints their tickets)
  and the agents stay until the new end. The rooms' longest-duration policy is not
  applied: it limits what one books, not a meeting that runs over.
- **End now**: the session's end moves to now and its rooms are freed from now
  (their buffers after it); the scheduler takes it to ``ended`` on its next step.
  A session that has not begun is cancelled instead, not ended.
- **Cancel** one occurrence or the series: ``orchestrator.booking.commands.cancel_series``,
  which never touches what has ended. Cancelling the only occurrence of a
  one-off booking cancels the booking.

An extension or an early end changes the occurrence, so the booking's SEQUENCE
goes up (a local booking's; an imported one keeps its source's) and calendars
read the session back as an override (``booking.series.series_spec``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

import sqlalchemy as sa
from sqlmodel import col

from orchestrator import lifecycle
from orchestrator.booking import commands
from orchestrator.booking.busy import busy_rows
from orchestrator.booking.conflicts import Busy, Conflict, SlotRequest, find_conflicts, held
from orchestrator.booking.policy import BookingSettings
from orchestrator.booking.series import LOCAL, booking_or_fail
from orchestrator.booking.store import BookingConflict, is_slot_overlap
from orchestrator.booking.values import Occurrence
from orchestrator.db import DbSession
from orchestrator.errors import DomainError
from orchestrator.models import Booking, Participation, Room, RoomSlot, Session
from orchestrator.sessions.calls import is_reminder

MAX_EXTENSION_MINUTES: Final = 240
EXTENSION_CHOICES: Final = (15, 30)
"""The extensions the pages and the room panel offer."""


@dataclass(frozen=True, slots=True)
class HeldRoom:
    """A room holding the session: its slot and its buffer."""

    room_id: str
    name: str
    slot_start: datetime
    slot_end: datetime
    buffer: timedelta


# --- pure rules -------------------------------------------------------------------------


def check_minutes(minutes: int) -> timedelta:
    if isinstance(minutes, bool) or not isinstance(minutes, int):
        raise DomainError("invalid-extension", "an extension is a whole number of minutes")
    if not 1 <= minutes <= MAX_EXTENSION_MINUTES:
        raise DomainError(
            "invalid-extension", f"an extension is 1 to {MAX_EXTENSION_MINUTES} minutes"
        )
    return timedelta(minutes=minutes)


def is_over(state: str, end: datetime, now: datetime) -> bool:
    """Ended, cancelled or failed, or past its end (the scheduler may lag a step)."""
    return state in lifecycle.TERMINAL_STATES or end <= now


def refusal_message(conflicts: Sequence[Conflict], names: dict[str, str]) -> str:
    """Which rooms are taken, and when, without the other bookings' titles."""
    parts = []
    seen: set[str] = set()
    for c in conflicts:
        if c.room_id in seen:
            continue
        seen.add(c.room_id)
        parts.append(
            f"room {names.get(c.room_id, c.room_id)} is booked from "
            f"{c.busy.start.isoformat(timespec='minutes')} to "
            f"{c.busy.end.isoformat(timespec='minutes')}"
        )
    return "; ".join(parts) or "the rooms were taken meanwhile"


# --- reading ----------------------------------------------------------------------------


def _session(db: DbSession, session_id: str) -> Session:
    found = db.get(Session, session_id, populate_existing=True)
    if found is None:
        raise DomainError("not-found", f"no session {session_id!r}")
    return found


def held_rooms(db: DbSession, session_id: str) -> list[HeldRoom]:
    """The rooms whose slot the session holds, by name; released rooms are left out."""
    rows = db.connection().execute(
        sa.select(
            col(RoomSlot.room_id),
            col(Room.name),
            col(RoomSlot.start_utc),
            col(RoomSlot.end_utc),
            col(Room.buffer_seconds),
        )
        .join(Room, col(Room.id) == col(RoomSlot.room_id))
        .outerjoin(
            Participation,
            sa.and_(
                col(Participation.session_id) == col(RoomSlot.session_id),
                col(Participation.room_id) == col(RoomSlot.room_id),
            ),
        )
        .where(
            col(RoomSlot.session_id) == session_id,
            col(Participation.released_at).is_(None),
        )
        .order_by(col(Room.name), col(RoomSlot.room_id))
    )
    return [HeldRoom(r, n, s, e, timedelta(seconds=b)) for r, n, s, e, b in rows]


def _conflicts(
    db: DbSession, session: Session, rooms: Sequence[HeldRoom], new_end: datetime
) -> list[Conflict]:
    """What holds the rooms over the session lengthened to ``new_end`` (itself aside)."""
    if not rooms:
        return []
    occurrence = Occurrence(
        recurrence_id=session.recurrence_id or session.start_utc,
        start=session.start_utc,
        end=new_end,
        start_local=session.start_utc.replace(tzinfo=None),
        end_local=new_end.replace(tzinfo=None),
    )
    widest = max(r.buffer for r in rooms)
    taken = busy_rows(db, [r.room_id for r in rooms], session.start_utc - widest, new_end + widest)
    others: dict[str, list[Busy]] = {
        room: [b for b in entries if b.session_id != session.id] for room, entries in taken.items()
    }
    request = SlotRequest(occurrence, tuple(r.room_id for r in rooms))
    return find_conflicts([request], others, {r.room_id: r.buffer for r in rooms})


def extension_options(
    db: DbSession,
    session_id: str,
    now: datetime,
    choices: Sequence[int] = EXTENSION_CHOICES,
) -> tuple[int, ...]:
    """The extensions (minutes, from ``choices``) that would be granted now."""
    session = _session(db, session_id)
    if is_over(session.state, session.end_utc, now):
        return ()
    rooms = held_rooms(db, session_id)
    return tuple(
        m
        for m in choices
        if not _conflicts(db, session, rooms, session.end_utc + timedelta(minutes=m))
    )


def extension_conflicts(
    db: DbSession, session_id: str, minutes: int, now: datetime
) -> list[Conflict]:
    """What holds the session's rooms over an extension by ``minutes`` now (each
    room's buffer included): empty when ``extend`` would grant it. ``ended`` for a
    session that has ended, as ``extend`` says."""
    extra = check_minutes(minutes)
    session = _session(db, session_id)
    if is_over(session.state, session.end_utc, now):
        raise DomainError("ended", "a session that has ended cannot be extended")
    return _conflicts(db, session, held_rooms(db, session_id), session.end_utc + extra)


# --- writing ----------------------------------------------------------------------------


def _touch_booking(db: DbSession, booking_id: str, now: datetime) -> None:
    booking = db.get(Booking, booking_id, populate_existing=True)
    if booking is None:
        return
    if booking.source == LOCAL:
        booking.sequence += 1
    booking.updated_at = now
    db.add(booking)


def _move_end(db: DbSession, session: Session, end: datetime, now: datetime) -> None:
    moved = db.connection().execute(
        sa.update(Session)
        .where(col(Session.id) == session.id, col(Session.revision) == session.revision)
        .values(end_utc=end, revision=session.revision + 1, updated_at=now)
    )
    if moved.rowcount != 1:
        raise DomainError("conflict", "the session changed meanwhile; try again")


def _set_slot_end(db: DbSession, session_id: str, room: HeldRoom, end: datetime) -> None:
    db.connection().execute(
        sa.update(RoomSlot)
        .where(col(RoomSlot.session_id) == session_id, col(RoomSlot.room_id) == room.room_id)
        .values(end_utc=end)
    )


class _Refused(Exception):
    def __init__(self, room: HeldRoom) -> None:
        super().__init__(room.room_id)
        self.room = room


def extend(
    db: DbSession, session_id: str, minutes: int, now: datetime, settings: BookingSettings
) -> Session:
    """Lengthen the session by ``minutes`` (see the module doc); returns it as it is now.

    ``settings`` are the booking core's settings; the conflict rule needs none of
    them today (the room policies come from the rooms).
    """
    del settings  # the conflict rule reads the rooms' own policies
    extra = check_minutes(minutes)
    session = _session(db, session_id)
    if is_over(session.state, session.end_utc, now):
        raise DomainError("ended", "a session that has ended cannot be extended")
    booking = db.get(Booking, session.booking_id)
    if booking is not None and is_reminder(booking.transparent, session.state):
        raise DomainError("no-call", "a reminder has no call to extend")
    new_end = session.end_utc + extra
    rooms = held_rooms(db, session_id)
    names = {r.room_id: r.name for r in rooms}
    conflicts = _conflicts(db, session, rooms, new_end)
    if conflicts:
        raise BookingConflict(conflicts, refusal_message(conflicts, names))
    try:
        with db.begin_nested():
            for room in rooms:
                _, slot_end = held(session.start_utc, new_end, room.buffer)
                try:
                    with db.begin_nested():
                        _set_slot_end(db, session_id, room, max(slot_end, room.slot_end))
                except (sa.exc.IntegrityError, sa.exc.OperationalError) as exc:
                    if not is_slot_overlap(exc):
                        raise
                    raise _Refused(room) from exc
            _move_end(db, session, new_end, now)
    except _Refused as refused:
        # Someone booked the room after our check; what they hold is committed now.
        found = _conflicts(db, _session(db, session_id), rooms, new_end)
        message = (
            refusal_message(found, names)
            if found
            else f"room {refused.room.name} was booked meanwhile"
        )
        raise BookingConflict(found, message) from None
    _touch_booking(db, session.booking_id, now)
    db.flush()
    return _session(db, session_id)


def end_now(db: DbSession, session_id: str, now: datetime) -> Session:
    """End the session now (see the module doc); returns it as it is now."""
    session = _session(db, session_id)
    if is_over(session.state, session.end_utc, now):
        raise DomainError("ended", "the session has already ended")
    if now < session.start_utc:
        raise DomainError("not-begun", "the session has not begun; cancel it instead")
    # A session lasts a moment at least (the lifecycle needs end > start).
    end = max(now, session.start_utc + timedelta(seconds=1))
    for room in held_rooms(db, session_id):
        _, slot_end = held(session.start_utc, end, room.buffer)
        if slot_end < room.slot_end:
            _set_slot_end(db, session_id, room, slot_end)
    _move_end(db, session, end, now)
    _touch_booking(db, session.booking_id, now)
    db.flush()
    return _session(db, session_id)


def _is_recurring(booking: Booking) -> bool:
    return bool(booking.rrule) or booking.rdates not in ("", "[]")


def cancel_occurrence(db: DbSession, session_id: str, now: datetime) -> list[str]:
    """Cancel this occurrence only (the whole booking if it has no other); returns the
    sessions cancelled. ``past`` if it has ended."""
    session = _session(db, session_id)
    booking = booking_or_fail(db, session.booking_id)
    if not _is_recurring(booking):
        if is_over(session.state, session.end_utc, now):
            if session.state == lifecycle.CANCELLED:
                return []
            raise DomainError("past", "an occurrence that has ended cannot be cancelled")
        return commands.cancel_series(db, booking.id, now=now, by=commands.ORGANISER)
    return commands.cancel_series(
        db,
        booking.id,
        recurrence_id=session.recurrence_id or session.start_utc,
        now=now,
        by=commands.ORGANISER,
    )


def cancel_series(db: DbSession, booking_id: str, now: datetime) -> list[str]:
    """Cancel the booking: every session that has not ended (a live one stops); what
    has ended stays as it was. Returns the sessions cancelled."""
    return commands.cancel_series(db, booking_id, now=now, by=commands.ORGANISER)
