"""iCalendar out: subscription feeds, free/busy and invitations (RFC 5545, RFC 5546).

The documents are pure functions of value objects (orchestrator/calendars/ical_out/model.py)
to bytes; the loaders at the bottom fill those objects from one transaction.

Rules:

- Feeds (no METHOD) hold one VEVENT per booking in scope, in the booking's zone
  (TZID, wall-clock times) with its RRULE/RDATE/EXDATE, plus one VEVENT with a
  RECURRENCE-ID per occurrence whose session left the rule: moved, retitled, or
  **cancelled while the series is not, written as STATUS:CANCELLED** (not EXDATE).
  That keeps the occurrence's identity, so a subscriber sees the same UID and
  RECURRENCE-ID the per-occurrence CANCEL message named, and an import of the feed
  gets back the cancelled session rather than a gap.
- Invitations (METHOD:REQUEST) restate the series the way Outlook does: cancelled
  occurrences fold into EXDATE, since each was announced by its own METHOD:CANCEL
  carrying its RECURRENCE-ID (``cancellation_ics(..., occurrence=...)``).
- ``busy_only`` feeds (for other centres, until the privacy rules exist) replace
  SUMMARY by "Busy" and drop ORGANIZER, DESCRIPTION and URL; rooms and times stay.
- DTSTAMP of a feed's event is the time it was last revised (RFC 5545 §3.8.7.2,
  no METHOD), so an unchanged feed is byte-identical and its ETag holds; messages
  with a METHOD take the time they are made (``stamp``).
- Every VTIMEZONE is computed from the IANA database (orchestrator/calendars/ical_out/timezones.py).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from icalendar import Calendar, FreeBusy, vCalAddress, vDuration

from orchestrator.booking.values import CANCELLED
from orchestrator.calendars.ical_out.events import (
    BUSY,
    DEFAULT_ORGANISER,
    Style,
    master_event,
    occurrence_times,
    override_event,
    series_events,
    site_times,
)
from orchestrator.calendars.ical_out.load import (
    load_booking,
    load_bookings,
    load_busy,
    load_centre,
    load_room,
    room_infos,
)
from orchestrator.calendars.ical_out.model import (
    BookingInfo,
    BusyPeriod,
    FeedScope,
    RoomInfo,
    SessionInfo,
    booking_info,
    first_year,
    room_address,
    room_id_from_address,
)
from orchestrator.calendars.ical_out.timezones import vtimezone
from orchestrator.db import DbSession

__all__ = [
    "BUSY",
    "DEFAULT_ORGANISER",
    "PRODID",
    "BookingInfo",
    "BusyPeriod",
    "FeedData",
    "FeedDocument",
    "FeedScope",
    "RoomInfo",
    "SessionInfo",
    "booking_info",
    "busy_periods",
    "cancellation_ics",
    "etag",
    "feed_document",
    "feed_ics",
    "freebusy_ics",
    "invitation_ics",
    "last_modified",
    "load_booking",
    "load_bookings",
    "load_busy",
    "load_centre",
    "load_centre_feed",
    "load_freebusy",
    "load_room",
    "load_room_feed",
    "room_address",
    "room_id_from_address",
    "room_infos",
    "site_times",
]

PRODID = "-//telecentre//iCalendar out//EN"
REFRESH = timedelta(minutes=15)
"""How often subscribers should re-read a feed (RFC 7986 REFRESH-INTERVAL and the
X-PUBLISHED-TTL Outlook reads)."""


# --- documents (pure) -----------------------------------------------------------------


def _calendar(method: str | None = None) -> Calendar:
    cal = Calendar()
    cal.add("PRODID", PRODID)
    cal.add("VERSION", "2.0")
    cal.add("CALSCALE", "GREGORIAN")
    if method is not None:
        cal.add("METHOD", method)
    return cal


def _bytes(cal: Calendar) -> bytes:
    data: bytes = cal.to_ical()
    return data


def _add_timezones(cal: Calendar, zones: Iterable[str], since_year: int | None) -> None:
    if since_year is None:
        return
    for zone in sorted(set(zones)):
        cal.add_component(vtimezone(zone, since_year))


def _zones(bookings: Sequence[BookingInfo]) -> set[str]:
    return {b.timezone for b in bookings if not b.all_day}


def feed_ics(
    scope: FeedScope, bookings: Sequence[BookingInfo], *, busy_only: bool = False
) -> bytes:
    """A subscription feed: one VEVENT per booking and one per changed occurrence
    (module rules), VTIMEZONEs for the zones used and the scope's own."""
    cal = _calendar()
    cal.add("X-WR-CALNAME", scope.name)
    cal.add("X-WR-TIMEZONE", scope.timezone)
    cal.add("REFRESH-INTERVAL", REFRESH, parameters={"VALUE": "DURATION"})
    cal.add("X-PUBLISHED-TTL", vDuration(REFRESH))
    ordered = sorted(bookings, key=lambda b: (b.start_local, b.uid, b.id))
    zones = _zones(ordered) | ({scope.timezone} if ordered else set())
    _add_timezones(cal, zones, first_year(ordered))
    style = Style(busy_only=busy_only)
    for booking in ordered:
        for event in series_events(booking, style):
            cal.add_component(event)
    return _bytes(cal)


def last_modified(bookings: Sequence[BookingInfo]) -> datetime | None:
    """The latest change among the bookings and their sessions (Last-Modified)."""
    return max((b.last_modified for b in bookings), default=None)


def etag(body: bytes) -> str:
    """A strong entity tag of a document: its SHA-256, quoted."""
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def busy_periods(
    periods: Iterable[BusyPeriod], since: datetime, until: datetime
) -> list[BusyPeriod]:
    """The periods clipped to ``[since, until)``, overlapping or touching ones of
    the same kind merged, ordered by start (RFC 5545 §3.8.2.6 wants them sorted)."""
    merged: list[BusyPeriod] = []
    for tentative in (False, True):
        spans = sorted(
            (max(p.start, since), min(p.end, until))
            for p in periods
            if p.tentative is tentative and p.end > since and p.start < until
        )
        current: list[datetime] | None = None
        for start, end in spans:
            if current is not None and start <= current[1]:
                current[1] = max(current[1], end)
                continue
            if current is not None:
                merged.append(BusyPeriod(current[0], current[1], tentative))
            current = [start, end]
        if current is not None:
            merged.append(BusyPeriod(current[0], current[1], tentative))
    return sorted(merged, key=lambda p: (p.start, p.tentative))


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def _fold_ascii(line: str) -> str:
    """RFC 5545 §3.1 folding of an ASCII line as icalendar folds: 74 octets a line."""
    return "\r\n ".join(line[i : i + 74] for i in range(0, len(line), 74)) + "\r\n"


def _freebusy_lines(periods: Sequence[BusyPeriod]) -> bytes:
    """FREEBUSY content lines, written directly in icalendar's own form: a fixed
    ASCII shape that needs no escaping, where icalendar takes ~0.2 ms a property,
    which for 200 rooms over a busy week is seconds."""
    return "".join(
        _fold_ascii(
            f"FREEBUSY;FBTYPE={'BUSY-TENTATIVE' if p.tentative else 'BUSY'};VALUE=PERIOD:"
            f"{_utc(p.start)}/{_utc(p.end)}"
        )
        for p in periods
    ).encode("ascii")


def freebusy_ics(
    rooms: Sequence[tuple[RoomInfo, Iterable[BusyPeriod]]],
    since: datetime,
    until: datetime,
    *,
    stamp: datetime,
) -> bytes:
    """One VFREEBUSY per room for ``[since, until)`` (METHOD:PUBLISH, RFC 5546
    §3.3.1), periods in UTC; each room is the ORGANIZER of its own, as the calendar
    user whose time is published."""
    head, end_calendar = _bytes(_calendar("PUBLISH")).split(b"END:VCALENDAR\r\n")
    parts = [head]
    for room, periods in rooms:
        fb = FreeBusy()
        fb.add("UID", f"freebusy-{room.id}-{_utc(since)}-{_utc(until)}")
        fb.add("DTSTAMP", stamp)
        fb.add("DTSTART", since)
        fb.add("DTEND", until)
        organiser = vCalAddress(room_address(room.id))
        organiser.params["CN"] = room.name
        organiser.params["CUTYPE"] = "ROOM"
        fb.add("ORGANIZER", organiser)
        component: bytes = fb.to_ical()
        # Where icalendar itself puts them (properties by name), so a re-parse
        # writes the same bytes.
        at = component.index(b"\r\nORGANIZER") + 2
        parts += [component[:at], _freebusy_lines(busy_periods(periods, since, until))]
        parts.append(component[at:])
    parts.append(b"END:VCALENDAR\r\n" + end_calendar)
    return b"".join(parts)


def _message_zones(booking: BookingInfo) -> set[str]:
    """Every zone an invitation names: the booking's and each room's centre's."""
    zones = {r.timezone for r in booking.rooms}
    return zones if booking.all_day else zones | {booking.timezone}


def invitation_ics(
    booking: BookingInfo,
    *,
    stamp: datetime,
    join_url: str | None = None,
    sequence: int | None = None,
    organiser: str | None = None,
) -> bytes:
    """The invitation (METHOD:REQUEST): the series with its changed occurrences,
    rooms as ATTENDEE;CUTYPE=ROOM;ROLE=REQ-PARTICIPANT;PARTSTAT=ACCEPTED, the join
    link as URL and in DESCRIPTION, each site's local time in DESCRIPTION.

    An update is the same call with ``sequence`` one higher than the last one sent
    (``Booking.sequence`` by default); ``organiser`` defaults to the booking's, then
    to ``DEFAULT_ORGANISER``.
    """
    style = Style(
        stamp=stamp, invitation=True, join_url=join_url, sequence=sequence, organiser=organiser
    )
    cal = _calendar("REQUEST")
    _add_timezones(cal, _message_zones(booking), first_year([booking]))
    for event in series_events(booking, style):
        cal.add_component(event)
    return _bytes(cal)


def cancellation_ics(
    booking: BookingInfo,
    *,
    stamp: datetime,
    occurrence: datetime | None = None,
    sequence: int | None = None,
    organiser: str | None = None,
) -> bytes:
    """The cancellation (METHOD:CANCEL, STATUS:CANCELLED, RFC 5546 §3.2.5) of the
    whole booking, or with ``occurrence`` (its original start, aware) of that one
    occurrence, which then carries its RECURRENCE-ID. A booking that does not recur
    has one occurrence: cancelling it is cancelling the booking."""
    style = Style(stamp=stamp, invitation=True, sequence=sequence, organiser=organiser)
    cal = _calendar("CANCEL")
    _add_timezones(cal, _message_zones(booking), first_year([booking]))
    if occurrence is None or not booking.recurring:
        event = master_event(booking, style)
        event["STATUS"] = "CANCELLED"
    else:
        session = occurrence_times(booking, occurrence)
        # The same VEVENT a feed writes for a cancelled occurrence.
        event = override_event(booking, replace(session, state=CANCELLED), style)
    cal.add_component(event)
    return _bytes(cal)


@dataclass(frozen=True, slots=True)
class FeedDocument:
    """A feed's bytes with what HTTP caching needs."""

    body: bytes
    etag: str
    last_modified: datetime | None


@dataclass(frozen=True, slots=True)
class FeedData:
    """What a feed is made of, as loaded: its scope and its bookings."""

    scope: FeedScope
    bookings: tuple[BookingInfo, ...]


def feed_document(data: FeedData, *, busy_only: bool = False) -> FeedDocument:
    body = feed_ics(data.scope, data.bookings, busy_only=busy_only)
    return FeedDocument(body, etag(body), last_modified(data.bookings))


# --- loaders (one transaction each; build the document outside it) ------------------


def load_room_feed(db: DbSession, room_id: str, *, since: datetime | None = None) -> FeedData:
    """The room's feed data (``DomainError("not-found")`` for an unknown room); with
    ``since``, bookings over before then are left out."""
    room = load_room(db, room_id)
    scope = FeedScope(f"{room.name} ({room.centre})", room.timezone)
    return FeedData(scope, tuple(load_bookings(db, [room_id], since=since)))


def load_centre_feed(db: DbSession, centre_id: str, *, since: datetime | None = None) -> FeedData:
    """Every booking holding a room of the centre, with the centre's name and zone."""
    centre, rooms = load_centre(db, centre_id)
    scope = FeedScope(centre.name, centre.timezone)
    return FeedData(scope, tuple(load_bookings(db, [r.id for r in rooms], since=since)))


def load_freebusy(
    db: DbSession, room_ids: Sequence[str], since: datetime, until: datetime
) -> list[tuple[RoomInfo, list[BusyPeriod]]]:
    """The rooms (unknown ids left out) with what holds them in ``[since, until)``,
    ready for ``freebusy_ics``; one query for the busy times of all of them."""
    rooms = room_infos(db, room_ids)
    busy = load_busy(db, [r for r in room_ids if r in rooms], since, until)
    return [(rooms[r], busy[r]) for r in room_ids if r in rooms]
