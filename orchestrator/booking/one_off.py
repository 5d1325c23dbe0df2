"""One-off booking commands over one transaction: cancel a booking, list bookings, and
``book``, which writes one meeting's session directly, with no clock and no booking
window. No door calls ``book``: every booking comes in by ``orchestrator.desk.door``
(on the caller's clock, through ``commands.create_series``); ``book`` stays for the
tests that set up sessions as they please (history included).

Refusals raise ``DomainError`` with a stable code that the API and the CLI show as is.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from sqlmodel import col, select

from orchestrator import lifecycle
from orchestrator.booking import busy, policy, store
from orchestrator.booking.values import Occurrence
from orchestrator.centres import check_name, get_row, zone
from orchestrator.db import DbSession
from orchestrator.errors import DomainError
from orchestrator.inputs import check_instant
from orchestrator.models import Booking, Centre, Room, Session, utcnow

MIN_ROOMS = 2
"""A telepresence booking links at least two rooms."""
MAX_LEAD_SECONDS = 3600


def check_times(start: datetime, end: datetime) -> None:
    """Aware instants within the range every computation holds (``inputs``), the end
    after the start."""
    check_instant(start, "the start")
    check_instant(end, "the end")
    if end <= start:
        raise DomainError("invalid-time", "a booking ends after it starts")


def _check_room_ids(room_ids: Sequence[str]) -> None:
    if len(set(room_ids)) != len(room_ids):
        raise DomainError("duplicate", "a room is listed twice")
    if len(room_ids) < MIN_ROOMS:
        raise DomainError("too-few-rooms", f"a booking links at least {MIN_ROOMS} rooms")


def _wall_clock(instant: datetime, tz: ZoneInfo) -> datetime:
    return instant.astimezone(tz).replace(tzinfo=None)


def book(
    db: DbSession,
    title: str,
    start: datetime,
    end: datetime,
    room_ids: Sequence[str],
    lead_seconds: int = 60,
    timezone: str | None = None,
    connect_mode: str = policy.AUTOMATIC,
) -> tuple[Booking, Session]:
    """Book rooms (of any centres) together for one meeting; the session exists at once,
    ``scheduled``, and holds the rooms (``store.BookingConflict`` if one is taken).

    ``timezone`` is the zone the wall-clock times are kept in; by default the first
    room's centre's. The instants are kept exactly as given (an ambiguous autumn wall
    time is not re-read). Series, the booking window and an injected clock are
    ``orchestrator.booking.commands.create_series``'s; this one-off command has no ``now`` and
    so checks no booking window.
    """
    title = check_name(title, "booking")
    check_times(start, end)
    if not 0 <= lead_seconds <= MAX_LEAD_SECONDS:
        raise DomainError("invalid-lead", f"lead is between 0 and {MAX_LEAD_SECONDS} s")
    try:
        mode = policy.connect_mode(connect_mode)
    except policy.PolicyError as exc:
        raise DomainError("invalid-connect-mode", exc.message) from None
    _check_room_ids(room_ids)
    rooms = [get_row(db, Room, room_id) for room_id in room_ids]
    if timezone is None:
        timezone = get_row(db, Centre, rooms[0].centre_id).timezone
    tz = zone(timezone)
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    policies = busy.room_policies(db, room_ids)
    try:
        policy.check_duration(end - start, policies)
    except policy.PolicyError as exc:
        raise DomainError(exc.code, exc.message) from None
    now = utcnow()
    booking = Booking(
        title=title,
        start_utc=start,
        end_utc=end,
        start_local=_wall_clock(start, tz),
        end_local=_wall_clock(end, tz),
        timezone=timezone,
        lead_seconds=lead_seconds,
        connect_mode=mode,
        created_at=now,
        updated_at=now,
    )
    db.add(booking)
    db.flush()  # parents first: no relationships tell the unit of work the order
    store.set_rooms(db, booking.id, room_ids)
    occurrence = Occurrence(
        recurrence_id=start,
        start=start,
        end=end,
        start_local=booking.start_local,
        end_local=booking.end_local,
    )
    result = store.apply_occurrences(
        db,
        booking.id,
        [occurrence],
        policies,
        lead_seconds=lead_seconds,
        on_conflict="reject",
        now=now,
    )
    session = get_row(db, Session, result.session_ids[0])
    return booking, session


def cancel_booking(db: DbSession, booking_id: str) -> list[Session]:
    """Cancel every session of the booking that has not finished, and free its rooms;
    the scheduler tells signalling and revokes the tickets it minted for them."""
    booking = get_row(db, Booking, booking_id)
    booking.status = "cancelled"
    db.add(booking)
    query = select(Session).where(Session.booking_id == booking_id).with_for_update()
    cancelled = []
    now = utcnow()
    for session in db.exec(query).all():
        if session.state in lifecycle.TERMINAL_STATES:
            continue
        if store.cancel_session(db, session.id, now):
            cancelled.append(session)
    return cancelled


def list_bookings(
    db: DbSession, since: datetime | None = None, until: datetime | None = None
) -> list[Booking]:
    """Bookings overlapping ``[since, until)``, by start."""
    query = select(Booking).order_by(col(Booking.start_utc), col(Booking.id))
    if since is not None:
        query = query.where(Booking.end_utc > since)
    if until is not None:
        query = query.where(Booking.start_utc < until)
    return list(db.exec(query))
