"""What the iCalendar export reads: plain value objects, built from table rows.

The export is pure over these (orchestrator/calendars/ical_out/export.py); the loaders in
orchestrator/calendars/ical_out/load.py fill them from one transaction.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from orchestrator.booking.values import CANCELLED, CONFIRMED
from orchestrator.models import Booking, Session

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ROOM_ADDRESS_DOMAIN = "rooms.telecentre.invalid"
"""Rooms appear as ``mailto:<room id>@rooms.telecentre.invalid``: a stable address
that names the room exactly and can never reach a real mailbox (RFC 6761 .invalid)."""


def room_address(room_id: str) -> str:
    """The calendar user address of a room (ATTENDEE;CUTYPE=ROOM, ORGANIZER of its free/busy)."""
    return f"mailto:{room_id}@{ROOM_ADDRESS_DOMAIN}"


def room_id_from_address(address: str) -> str | None:
    """The room id in an address made by ``room_address``, or None for any other address."""
    local, at, domain = address.removeprefix("mailto:").removeprefix("MAILTO:").rpartition("@")
    if not at or domain.lower() != ROOM_ADDRESS_DOMAIN or not local:
        return None
    return local


@dataclass(frozen=True, slots=True)
class RoomInfo:
    """A room as an exported calendar names it: an attendee with its centre's zone.

    Not common/schedule.py's ``ScheduleRoom`` or ``RoomRecord``: the export needs the
    zone (for VTIMEZONE and wall-clock times) and never the key, the schedule never
    the zone. The same room, read for another purpose."""

    id: str
    name: str
    centre: str  # the centre's name
    timezone: str  # the centre's IANA zone


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """One occurrence as stored: ``recurrence_id`` is its original start (aware UTC)."""

    recurrence_id: datetime
    start: datetime
    end: datetime
    state: str = "scheduled"
    title: str | None = None
    updated_at: datetime = EPOCH


@dataclass(frozen=True, slots=True)
class BookingInfo:
    """A booking as the export sees it: the series in its zone (wall-clock times,
    RRULE values, RDATE/EXDATE wall-clock times), its rooms and its sessions."""

    id: str
    uid: str
    title: str
    timezone: str
    start_local: datetime
    end_local: datetime
    rooms: tuple[RoomInfo, ...]
    sessions: tuple[SessionInfo, ...] = ()
    all_day: bool = False
    rrules: tuple[str, ...] = ()
    rdates: tuple[datetime, ...] = ()
    exdates: tuple[datetime, ...] = ()
    status: str = CONFIRMED
    transparent: bool = False
    sequence: int = 0
    organiser: str | None = None
    updated_at: datetime = EPOCH

    @property
    def recurring(self) -> bool:
        return bool(self.rrules or self.rdates)

    @property
    def cancelled(self) -> bool:
        return self.status == CANCELLED

    @property
    def last_modified(self) -> datetime:
        """The latest change to the booking or any of its sessions."""
        return max([self.updated_at, *(s.updated_at for s in self.sessions)])


@dataclass(frozen=True, slots=True)
class FeedScope:
    """Whose feed: its name (X-WR-CALNAME) and zone (X-WR-TIMEZONE)."""

    name: str
    timezone: str


@dataclass(frozen=True, slots=True)
class BusyPeriod:
    """``[start, end)`` in aware UTC; ``tentative`` for a TENTATIVE booking (RFC 5545
    FBTYPE=BUSY-TENTATIVE)."""

    start: datetime
    end: datetime
    tentative: bool = False


def _wall_clock_list(text: str, zone: str) -> tuple[datetime, ...]:
    """A JSON list of ISO times, read as naive wall-clock times in ``zone``; an aware
    value (written by hand, say) is converted rather than refused."""
    values: list[datetime] = []
    for item in json.loads(text or "[]"):
        value = datetime.fromisoformat(str(item))
        if value.tzinfo is not None:
            value = value.astimezone(ZoneInfo(zone)).replace(tzinfo=None)
        values.append(value)
    return tuple(sorted(values))


def session_info(session: Session) -> SessionInfo:
    return SessionInfo(
        recurrence_id=session.recurrence_id or session.start_utc,
        start=session.start_utc,
        end=session.end_utc,
        state=session.state,
        title=session.title,
        updated_at=session.updated_at,
    )


def booking_info(
    booking: Booking, rooms: Iterable[RoomInfo], sessions: Iterable[Session] = ()
) -> BookingInfo:
    """The export's view of a booking row, its rooms and its session rows."""
    rrules = tuple(line.strip() for line in (booking.rrule or "").splitlines() if line.strip())
    return BookingInfo(
        id=booking.id,
        uid=booking.uid,
        title=booking.title,
        timezone=booking.timezone,
        start_local=booking.start_local,
        end_local=booking.end_local,
        rooms=tuple(rooms),
        sessions=tuple(
            sorted((session_info(s) for s in sessions), key=lambda s: (s.recurrence_id, s.start))
        ),
        all_day=booking.all_day,
        rrules=tuple(r.removeprefix("RRULE:") for r in rrules),
        rdates=_wall_clock_list(booking.rdates, booking.timezone),
        exdates=_wall_clock_list(booking.exdates, booking.timezone),
        status=booking.status,
        transparent=booking.transparent,
        sequence=booking.sequence,
        organiser=booking.organiser,
        updated_at=booking.updated_at,
    )


def local(instant: datetime, zone: str) -> datetime:
    """The naive wall-clock time of an aware instant in ``zone``."""
    return instant.astimezone(ZoneInfo(zone)).replace(tzinfo=None)


def changed_sessions(booking: BookingInfo) -> list[SessionInfo]:
    """The sessions that differ from what the series rule says (RFC 5545 overrides):
    moved (start or length changed), retitled, or cancelled while the series is not.

    A session's length counts as unchanged when it matches the series either in
    wall-clock time or in elapsed time, since an expander may use either across DST.
    """
    wall_length = booking.end_local - booking.start_local
    zone = ZoneInfo(booking.timezone)
    exact_length = booking.end_local.replace(tzinfo=zone) - booking.start_local.replace(tzinfo=zone)
    excluded = set(booking.exdates)
    changed = []
    for s in booking.sessions:
        if local(s.recurrence_id, booking.timezone) in excluded:
            continue
        start_local, end_local = local(s.start, booking.timezone), local(s.end, booking.timezone)
        moved = s.start != s.recurrence_id or (
            end_local - start_local != wall_length and s.end - s.start != exact_length
        )
        retitled = s.title is not None and s.title != booking.title
        cancelled = s.state == CANCELLED and not booking.cancelled
        if moved or retitled or cancelled:
            changed.append(s)
    return changed


def day_span(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    """An all-day event's first day and the day after its last (DTEND is exclusive)."""
    first = datetime.combine(start.date(), datetime.min.time())
    after = datetime.combine(end.date(), datetime.min.time())
    if end.time() != datetime.min.time():
        after += timedelta(days=1)
    return first, max(after, first + timedelta(days=1))


def first_year(bookings: Sequence[BookingInfo]) -> int | None:
    """The earliest year any of the bookings' times fall in (the VTIMEZONE horizon)."""
    years = [b.start_local.year for b in bookings]
    years += [s.start.year for b in bookings for s in b.sessions]
    years += [s.recurrence_id.year for b in bookings for s in b.sessions]
    return min(years) if years else None
