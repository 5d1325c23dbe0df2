"""Reading an iCalendar file (Outlook, Google, Nextcloud, Apple exports) into booking
series, never crashing: the file is refused with a ``CalendarError`` or each event
becomes a ``ParsedEvent`` or a ``Skipped`` with its reason.

Rules (each shown by a fixture in tests/fixtures/ics/ and tests/test_ical_parse.py):

- Size is checked before anything else (``too-large``). Bytes that do not start with
  ``BEGIN:VCALENDAR`` are ``not-icalendar``; what icalendar refuses is ``malformed``.
  UTF-8 is expected; a file that is not UTF-8 is read as Windows-1252 (old Outlook).
- Broken folding (a continuation line that lost its leading space, as some mail
  gateways do) is joined back to the line before it when it cannot be a property.
- The series zone is DTSTART's TZID (``orchestrator.calendars.ical_in.zones`` names it: IANA,
  Windows, globally unique or VTIMEZONE rules); for a UTC (``Z``) or floating DTSTART
  or an all-day one, the calendar's X-WR-TIMEZONE (Google) or else UTC. So a Google
  export's UTC times recur in the calendar's zone, as Google shows them. Other
  values (DTEND, EXDATE, RDATE, RECURRENCE-ID) are converted to that zone's wall
  clock; floating ones are read in it. ``ParsedEvent.floating`` tells the importer
  when the zone is only the UTC placeholder and the room's zone should replace it.
- Length (RFC 5545 3.6.1, 3.8.5.3): DTEND gives an exact length; DURATION its own;
  neither: one day for a date, zero for a date-time. A timed event of zero length
  reserves nothing and is skipped (``zero-length``); an all-day one whose DTEND
  equals DTSTART lasts one day; DTEND before DTSTART is ``end-before-start``. An
  override without DTEND and DURATION keeps the series' length.
- Outlook's timed midnight-to-midnight events marked X-MICROSOFT-CDO-ALLDAYEVENT
  are all-day.
- RECURRENCE-ID components go into their master's ``overrides`` (RANGE=THISANDFUTURE
  kept); RDATE;VALUE=PERIOD becomes an override with its own length. Overrides
  whose master is absent become one series under their UID (Google exports of
  invited single instances), each occurrence keeping its RECURRENCE-ID. Overrides
  of a master that was skipped are skipped with it.
- The same UID + RECURRENCE-ID twice: the higher SEQUENCE wins, on a tie the later
  one in the file; the other is skipped (``duplicate-uid``).
- Room hints: ATTENDEE with CUTYPE=ROOM or RESOURCE (Exchange writes rooms as
  resources) gives its CN and its mailto local part; LOCATION is split on ';' and ','.
- Leniency is reported, never silent (``EventWarning``, see
  ``orchestrator.calendars.ical_in.values``): an RRULE with spaces around its separators
  is read without them (``lenient-rrule``); a series without SUMMARY gets a title
  made up from its LOCATION, ORGANIZER or the caller's ``untitled`` word
  (``made-up-title``).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta

from icalendar import Calendar, Component

from orchestrator.booking.recurrence import RecurrenceError, localize, to_wall, validate_rrule
from orchestrator.booking.values import OverrideSpec, SeriesSpec
from orchestrator.calendars.ical_in.values import (
    EventData,
    IcalTime,
    SkipEvent,
    made_up_title,
    read_event,
    recurrence_id_text,
    text_value,
)
from orchestrator.calendars.ical_in.zones import ZoneResolver, zone_by_name

MAX_BYTES = 10 * 1024 * 1024
UNTITLED = "Busy"
"""The title of an event with no SUMMARY, LOCATION or ORGANIZER, unless the caller
gives one in its own language."""
_CONTENT_LINE = re.compile(r"^[A-Za-z0-9-]+[;:]")


class CalendarError(ValueError):
    """A file refused as a whole: ``code`` is ``too-large``, ``not-icalendar`` or
    ``malformed``; ``message`` says why in words."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class RoomHint:
    """Names that may match a room's name or alias, in the order the file gave them."""

    names: tuple[str, ...]


@dataclass(frozen=True)
class Skipped:
    """An event (or one override, with its ``recurrence_id`` as written) left out, with
    a stable ``reason_code`` (``end-before-start``, ``zero-length``,
    ``unknown-timezone``, ``bad-date``, ``no-dtstart``, ``no-uid``, ``bad-rrule``,
    ``duplicate-uid``, ``malformed``) and a ``reason`` in words."""

    uid: str | None
    recurrence_id: str | None
    reason_code: str
    reason: str


@dataclass(frozen=True)
class EventWarning:
    """An event (or one override) read leniently: a stable ``code``
    (``lenient-rrule``, ``made-up-title``) and a ``message`` in words."""

    uid: str | None
    recurrence_id: str | None
    code: str
    message: str


@dataclass(frozen=True)
class ParsedEvent:
    """One series as the file describes it. ``floating`` is true when the file gave no
    zone for it (floating times or dates, no X-WR-TIMEZONE): ``spec.timezone`` is
    then ``UTC`` as a placeholder for the room's own zone."""

    spec: SeriesSpec
    rooms: RoomHint
    location: str | None
    floating: bool = False


@dataclass(frozen=True)
class ParsedCalendar:
    events: tuple[ParsedEvent, ...]
    skipped: tuple[Skipped, ...]
    calendar_zone: str | None
    warnings: tuple[EventWarning, ...] = ()


# --------------------------------------------------------------------------- bytes


def _decode(data: bytes) -> str:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            raise CalendarError("not-icalendar", "not a text file") from None
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def _repair_folding(text: str) -> str:
    lines: list[str] = []
    for line in re.split(r"\r\n|\n|\r", text):
        if not line.strip():
            continue
        if lines and not line.startswith((" ", "\t")) and not _CONTENT_LINE.match(line):
            lines[-1] += line  # broken folding: the continuation lost its space
        else:
            lines.append(line)
    return "\r\n".join(lines) + "\r\n"


def _calendars(data: bytes) -> list[Component]:
    text = _decode(data)
    if "\x00" in text or not text.lstrip().upper().startswith("BEGIN:VCALENDAR"):
        raise CalendarError("not-icalendar", "the file does not start with BEGIN:VCALENDAR")
    try:
        found = Calendar.from_ical(_repair_folding(text), multiple=True)
    except Exception as exc:  # icalendar raises ValueError, KeyError, IndexError...
        raise CalendarError("malformed", f"icalendar cannot read the file: {exc}") from None
    calendars: list[Component] = [c for c in found if c.name == "VCALENDAR"]
    if not calendars:
        raise CalendarError("malformed", "no complete VCALENDAR (missing END:VCALENDAR?)")
    return calendars


# --------------------------------------------------------------------------- series


def _series_zone(start: IcalTime, calendar_zone: str | None) -> tuple[str, bool]:
    """The zone a series recurs in, and whether it is only the UTC placeholder."""
    if start.zone is not None and start.zone != "UTC":
        return start.zone, False
    if calendar_zone is not None:
        return calendar_zone, False
    return "UTC", start.zone is None


def _wall(when: IcalTime, zone: str, *, all_day: bool, time_of_day: time) -> datetime:
    """``when`` as a wall-clock time in ``zone``: a date on a timed series takes the
    series' time of day (EXDATE;VALUE=DATE as some producers write it); a date-time
    on an all-day series keeps only its date."""
    if when.is_date:
        wall = datetime.combine(when.wall.date(), time() if all_day else time_of_day)
    elif when.zone is None or when.zone == zone:
        wall = when.wall
    else:
        wall = to_wall(localize(when.wall, when.zone), zone)
    return datetime.combine(wall.date(), time()) if all_day else wall


def _length(event: EventData, start: IcalTime, zone: str) -> timedelta | None:
    """The length DTEND or DURATION gives, None when neither is there. All-day
    lengths are whole days (a partial day counts as a day)."""
    if event.end is not None:
        if event.end.is_date != start.is_date:
            raise SkipEvent("bad-date", "DTSTART and DTEND are not both dates or both date-times")
        if start.is_date:
            return timedelta(days=(event.end.wall - start.wall).days)
        return event.end.instant(zone) - start.instant(zone)
    if event.duration is not None:
        if start.is_date:
            whole, part = divmod(event.duration, timedelta(days=1))
            return timedelta(days=whole + (1 if part else 0))
        return event.duration
    return None


def _checked(length: timedelta, all_day: bool) -> timedelta:
    if length < timedelta(0):
        raise SkipEvent("end-before-start", "DTEND (or DURATION) ends before DTSTART")
    if length == timedelta(0):
        if all_day:
            return timedelta(days=1)
        raise SkipEvent("zero-length", "a zero-length event reserves nothing")
    return length


def _outlook_all_day(start: datetime, length: timedelta, zone: str) -> timedelta | None:
    """Whole days when a timed event runs from local midnight to local midnight."""
    end = to_wall(localize(start, zone) + length, zone)
    if start.time() == time() and end.time() == time() and end.date() > start.date():
        return timedelta(days=(end.date() - start.date()).days)
    return None


def _override(
    event: EventData, zone: str, all_day: bool, time_of_day: time, fallback: timedelta
) -> OverrideSpec:
    assert event.recurrence_id is not None
    recurrence_id = _wall(event.recurrence_id, zone, all_day=all_day, time_of_day=time_of_day)
    start = event.start or event.recurrence_id
    length = _length(event, start, zone)
    return OverrideSpec(
        recurrence_id=recurrence_id,
        start_local=_wall(start, zone, all_day=all_day, time_of_day=time_of_day),
        duration=fallback if length is None else _checked(length, all_day),
        status=event.status,
        title=event.title,
        sequence=event.sequence,
        this_and_future=event.this_and_future,
    )


def _master_series(
    master: EventData, calendar_zone: str | None, title: str
) -> tuple[SeriesSpec, time, bool]:
    if master.start is None:
        raise SkipEvent("no-dtstart", "VEVENT without DTSTART")
    zone, floating = _series_zone(master.start, calendar_zone)
    all_day = master.start.is_date
    start = _wall(master.start, zone, all_day=all_day, time_of_day=time())
    length = _length(master, master.start, zone)
    if length is None:
        length = timedelta(days=1) if all_day else timedelta(0)
    length = _checked(length, all_day)
    if not all_day and master.all_day_hint:
        days = _outlook_all_day(start, length, zone)
        if days is not None:
            all_day, length = True, days
    for rule in master.rrules:
        try:
            validate_rrule(rule)
        except RecurrenceError as exc:
            raise SkipEvent("bad-rrule", f"RRULE {rule!r}: {exc.message}") from None
    time_of_day = start.time()

    def place(when: IcalTime) -> datetime:
        return _wall(when, zone, all_day=all_day, time_of_day=time_of_day)

    periods = []
    for period_start, period_end in master.periods:
        wall = place(period_start)
        span = (
            period_end
            if isinstance(period_end, timedelta)
            else period_end.instant(zone) - period_start.instant(zone)
        )
        periods.append(OverrideSpec(wall, wall, _checked(span, all_day)))
    spec = SeriesSpec(
        uid=master.uid or "",
        title=title,
        timezone=zone,
        start_local=start,
        duration=length,
        all_day=all_day,
        rrules=master.rrules,
        rdates=tuple(place(w) for w in master.rdates),
        exdates=tuple(place(w) for w in master.exdates),
        overrides=tuple(periods),
        status=master.status,
        transparent=master.transparent,
        sequence=master.sequence,
        organiser=master.organiser,
    )
    return spec, time_of_day, floating


def _orphan_series(
    overrides: list[EventData], calendar_zone: str | None, title: str
) -> tuple[SeriesSpec, bool]:
    """Overrides without their master (Google exports of invited instances): one series
    whose occurrences are exactly these, each under its own RECURRENCE-ID."""
    first = overrides[0]
    anchor = first.start or first.recurrence_id
    assert anchor is not None
    zone, floating = _series_zone(anchor, calendar_zone)
    all_day = anchor.is_date
    length = _length(first, anchor, zone)
    if length is None:
        length = timedelta(days=1) if all_day else timedelta(0)
    length = _checked(length, all_day)
    time_of_day = _wall(anchor, zone, all_day=all_day, time_of_day=time()).time()
    specs = [
        dataclasses.replace(_override(o, zone, all_day, time_of_day, length), this_and_future=False)
        for o in overrides
    ]
    originals = sorted({o.recurrence_id for o in specs})
    spec = SeriesSpec(
        uid=first.uid or "",
        title=title,
        timezone=zone,
        start_local=originals[0],
        duration=length,
        all_day=all_day,
        rdates=tuple(originals[1:]),
        overrides=tuple(specs),
        transparent=first.transparent,
        sequence=max(o.sequence for o in overrides),
        organiser=first.organiser,
    )
    return spec, floating


def _dedup_key(event: EventData) -> tuple[str | None, object]:
    rid = event.recurrence_id
    if rid is None:
        return event.uid, None
    if rid.zone is not None:
        try:
            return event.uid, rid.instant(rid.zone)
        except RecurrenceError:
            return event.uid, (rid.zone, rid.wall)
    return event.uid, ("date" if rid.is_date else "floating", rid.wall)


def _skipped(event: EventData, error: SkipEvent) -> Skipped:
    return Skipped(event.uid, event.rid_text, error.code, error.reason)


@dataclass
class _Reader:
    """The pass over one file: decoded events in, series, skips and warnings out."""

    calendar_zone: str | None
    untitled: str = UNTITLED
    skipped: list[Skipped] = dataclasses.field(default_factory=list)
    warnings: list[EventWarning] = dataclasses.field(default_factory=list)

    def title(self, event: EventData) -> str:
        """The series' title: its SUMMARY, or one made up (and said so)."""
        if event.title:
            return event.title
        title, message = made_up_title(event, self.untitled)
        self.warn(event, "made-up-title", message)
        return title

    def warn(self, event: EventData, code: str, message: str) -> None:
        self.warnings.append(EventWarning(event.uid, event.rid_text, code, message))

    def kept(self, events: list[EventData]) -> None:
        """What was read leniently in the events of a series that was kept."""
        for event in events:
            for code, message in event.warnings:
                self.warn(event, code, message)

    def latest(self, events: list[EventData]) -> list[EventData]:
        """One copy per UID + RECURRENCE-ID: higher SEQUENCE, then later in the file."""
        winners: dict[tuple[str | None, object], EventData] = {}
        for event in events:
            key = _dedup_key(event)
            held = winners.get(key)
            if held is None:
                winners[key] = event
                continue
            loser, winner = sorted((held, event), key=lambda e: (e.sequence, e.position))
            winners[key] = winner
            reason = f"another copy with SEQUENCE {winner.sequence} wins"
            self.skipped.append(Skipped(loser.uid, loser.rid_text, "duplicate-uid", reason))
        return sorted(winners.values(), key=lambda e: e.position)

    def series(self, uid: str, events: list[EventData]) -> ParsedEvent | None:
        masters = [e for e in events if e.recurrence_id is None]
        overrides = [e for e in events if e.recurrence_id is not None]
        if not masters:
            mark = len(self.warnings)
            try:
                spec, floating = _orphan_series(
                    overrides, self.calendar_zone, self.title(overrides[0])
                )
            except Exception as exc:  # one event's trouble never sinks the file
                del self.warnings[mark:]
                self.skipped.extend(_skipped(o, _as_skip(exc)) for o in overrides)
                return None
            self.kept(overrides)
            rooms = tuple(dict.fromkeys(name for o in overrides for name in o.rooms))
            return ParsedEvent(spec, RoomHint(rooms), overrides[0].location, floating)
        master = masters[0]
        mark = len(self.warnings)
        try:
            spec, time_of_day, floating = _master_series(
                master, self.calendar_zone, self.title(master)
            )
        except Exception as exc:  # one event's trouble never sinks the file
            del self.warnings[mark:]
            skip = _as_skip(exc)
            self.skipped.append(_skipped(master, skip))
            reason = f"its series was skipped: {skip.reason}"
            self.skipped.extend(Skipped(uid, o.rid_text, skip.code, reason) for o in overrides)
            return None
        changed = list(spec.overrides)
        for event in overrides:
            try:
                changed.append(
                    _override(event, spec.timezone, spec.all_day, time_of_day, spec.duration)
                )
            except Exception as exc:  # one override's trouble never sinks its series
                self.skipped.append(_skipped(event, _as_skip(exc)))
            else:
                self.kept([event])
        self.kept([master])
        spec = dataclasses.replace(spec, overrides=tuple(changed))
        return ParsedEvent(spec, RoomHint(master.rooms), master.location, floating)


def _as_skip(exc: Exception) -> SkipEvent:
    """The skip reason for what reading one event raised: our codes as they are,
    impossible dates (year 0, overflow) as ``bad-date``, anything else ``malformed``."""
    if isinstance(exc, SkipEvent):
        return exc
    if isinstance(exc, RecurrenceError):
        code = exc.code if exc.code in {"unknown-timezone", "bad-rrule"} else "bad-date"
        return SkipEvent(code, exc.message)
    if isinstance(exc, ValueError | OverflowError):
        return SkipEvent("bad-date", str(exc))
    return SkipEvent("malformed", f"{type(exc).__name__}: {exc}")


def _calendar_zone(calendars: Sequence[Component]) -> str | None:
    for calendar in calendars:
        name = text_value(calendar, "X-WR-TIMEZONE")
        if name:
            return zone_by_name(name)
    return None


def _read(calendars: list[Component], untitled: str) -> ParsedCalendar:
    vtimezones = [c for cal in calendars for c in cal.subcomponents if c.name == "VTIMEZONE"]
    resolver = ZoneResolver(vtimezones)
    reader = _Reader(_calendar_zone(calendars), untitled)
    decoded: list[EventData] = []
    position = 0
    for calendar in calendars:
        for event in (c for c in calendar.subcomponents if c.name == "VEVENT"):
            position += 1
            uid = (text_value(event, "UID") or "").strip() or None
            try:
                component = read_event(event, position, resolver)
            except Exception as exc:  # one event's trouble never sinks the file
                skip = _as_skip(exc)
                rid = recurrence_id_text(event)
                reader.skipped.append(Skipped(uid, rid, skip.code, skip.reason))
                continue
            if component.uid is None:
                reason = "a VEVENT without UID cannot be re-imported idempotently"
                reader.skipped.append(Skipped(None, component.rid_text, "no-uid", reason))
                continue
            decoded.append(component)
    groups: dict[str, list[EventData]] = {}
    for component in reader.latest(decoded):
        assert component.uid is not None
        groups.setdefault(component.uid, []).append(component)
    events = [e for uid, group in groups.items() if (e := reader.series(uid, group)) is not None]
    return ParsedCalendar(
        tuple(events), tuple(reader.skipped), reader.calendar_zone, tuple(reader.warnings)
    )


def parse_calendar(
    data: bytes, *, max_bytes: int = MAX_BYTES, untitled: str = UNTITLED
) -> ParsedCalendar:
    """Parse an iCalendar file into series (see the module rules). Pure and
    synchronous: the caller runs it off the event loop. ``untitled`` titles an event
    with no SUMMARY, LOCATION or ORGANIZER, in the importer's language. Raises only
    ``CalendarError``: ``too-large`` (checked before parsing), ``not-icalendar``,
    ``malformed``."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise CalendarError("not-icalendar", "expected the bytes of a file")
    if len(data) > max_bytes:
        raise CalendarError("too-large", f"the file has {len(data)} bytes, over {max_bytes}")
    try:
        return _read(_calendars(bytes(data)), untitled)
    except CalendarError:
        raise
    except Exception as exc:  # the boundary: whatever icalendar or a bad value throws
        raise CalendarError("malformed", f"cannot read the calendar: {exc}") from None
