"""Decoding one VEVENT's values for orchestrator.calendars.ical_in.parse: dates and times as
written (with their zone named by orchestrator.calendars.ical_in.zones), recurrence parts,
status, transparency, sequence and room hints. Nothing here picks a series zone;
orchestrator.calendars.ical_in.parse does.

What is read leniently is said in the event's ``warnings`` (a stable code and a
message), which the import report lists:

- ``lenient-rrule``: an RRULE with spaces around its separators (Exchange writes
  ``BYDAY=MO, TU, WE``; RFC 5545 3.3.10 has none) is read without them
  (``booking.rrule.tidy_rule``), and kept so;
- ``made-up-title``: an event without SUMMARY (optional in RFC 5545 3.8.1.12;
  Google exports them) is titled after its LOCATION, else its ORGANIZER (CN, else
  the address without ``mailto:``), else the importer's word for "Busy"
  (``made_up_title``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from icalendar import Component, vRecur

from orchestrator.booking.recurrence import localize
from orchestrator.booking.rrule import RecurrenceError, parse_rule, tidy_rule
from orchestrator.booking.values import CANCELLED, CONFIRMED, TENTATIVE
from orchestrator.calendars.ical_in.zones import ZoneResolver
from orchestrator.inputs import fold_line

_ROOM_TYPES = frozenset({"ROOM", "RESOURCE"})
_DATE_PROPERTIES = frozenset({"DTSTART", "DTEND", "DURATION", "RDATE", "EXDATE", "RECURRENCE-ID"})


class SkipEvent(Exception):
    """Raised while reading one event: it becomes a ``Skipped`` with this code."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass(frozen=True, slots=True)
class IcalTime:
    """A DATE or DATE-TIME value as written: ``zone`` is the IANA zone of a TZID value,
    ``UTC`` for a ``Z`` value, None for floating values and dates."""

    wall: datetime
    zone: str | None
    is_date: bool
    text: str

    def instant(self, zone: str) -> datetime:
        return localize(self.wall, self.zone or zone)


@dataclass(frozen=True, slots=True)
class EventData:
    """One VEVENT with its values decoded but not yet placed in a series zone."""

    uid: str | None
    position: int
    recurrence_id: IcalTime | None
    this_and_future: bool
    start: IcalTime | None
    end: IcalTime | None
    duration: timedelta | None
    rrules: tuple[str, ...]
    rdates: tuple[IcalTime, ...]
    periods: tuple[tuple[IcalTime, IcalTime | timedelta], ...]
    exdates: tuple[IcalTime, ...]
    title: str | None
    status: str
    transparent: bool
    sequence: int
    location: str | None
    rooms: tuple[str, ...]
    organiser: str | None
    all_day_hint: bool
    organiser_name: str | None = None  # ORGANIZER's CN
    warnings: tuple[tuple[str, str], ...] = ()  # (code, message): what was read leniently

    @property
    def rid_text(self) -> str | None:
        return self.recurrence_id.text if self.recurrence_id else None


def _all(component: Component, name: str) -> list[object]:
    value = component.get(name)
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _first(component: Component, name: str) -> object | None:
    values = _all(component, name)
    return values[0] if values else None


def _title(summary: str | None) -> str | None:
    """A SUMMARY as a booking's title: one line (``inputs.fold_line``), which the
    booking rules require and a multi-line SUMMARY is not."""
    return None if summary is None else fold_line(summary) or None


def text_value(component: Component, name: str) -> str | None:
    value = _first(component, name)
    return None if value is None else str(value)


def _written(moment: date, tzid: object) -> str:
    """A value as the file wrote it, for reports: ``2027-03-08T09:00:00 Europe/Paris``,
    ``2027-03-08T08:00:00Z``, ``2027-03-08T09:00:00`` (floating), ``2027-03-08``."""
    if not isinstance(moment, datetime):
        return moment.isoformat()
    if isinstance(tzid, str) and tzid:
        return f"{moment.replace(tzinfo=None).isoformat()} {tzid}"
    if moment.tzinfo is not None:
        return moment.astimezone(UTC).replace(tzinfo=None).isoformat() + "Z"
    return moment.isoformat()


def _when(value: object, tzid: object, resolver: ZoneResolver) -> IcalTime:
    moment = getattr(value, "dt", value)
    if isinstance(moment, datetime):
        text = _written(moment, tzid)
        if isinstance(tzid, str) and tzid:
            zone = resolver.resolve(tzid)
            if zone is None:
                raise SkipEvent("unknown-timezone", f"unknown time zone {tzid!r}")
            return IcalTime(moment.replace(tzinfo=None), zone, False, text)
        if moment.tzinfo is not None:
            return IcalTime(moment.astimezone(UTC).replace(tzinfo=None), "UTC", False, text)
        return IcalTime(moment, None, False, text)
    if isinstance(moment, date):
        return IcalTime(datetime.combine(moment, time()), None, True, _written(moment, None))
    raise SkipEvent("bad-date", f"{moment!r} is not a date or a date-time")


def recurrence_id_text(event: Component) -> str | None:
    """The RECURRENCE-ID of an event that could not be read, as best it can be said."""
    prop = _first(event, "RECURRENCE-ID")
    if prop is None:
        return None
    try:
        moment = getattr(prop, "dt", None)
        if isinstance(moment, date):
            return _written(moment, _params(prop).get("TZID"))
        to_ical = getattr(prop, "to_ical", None)
        return to_ical().decode() if callable(to_ical) else str(prop)
    except Exception:  # a report line must never fail the import
        return None


def _params(value: object) -> dict[str, object]:
    params = getattr(value, "params", None)
    return dict(params) if params is not None else {}


def _whens(component: Component, name: str, resolver: ZoneResolver) -> list[IcalTime]:
    found: list[IcalTime] = []
    for prop in _all(component, name):
        items = getattr(prop, "dts", None) or [prop]
        for item in items:
            tzid = _params(item).get("TZID") or _params(prop).get("TZID")
            found.append(_when(item, tzid, resolver))
    return found


def _one_when(component: Component, name: str, resolver: ZoneResolver) -> IcalTime | None:
    whens = _whens(component, name, resolver)
    return whens[0] if whens else None


def _periods(
    component: Component, resolver: ZoneResolver
) -> tuple[list[IcalTime], list[tuple[IcalTime, IcalTime | timedelta]]]:
    """RDATE values: plain ones, and PERIOD ones with their end or length."""
    plain: list[IcalTime] = []
    periods: list[tuple[IcalTime, IcalTime | timedelta]] = []
    for prop in _all(component, "RDATE"):
        for item in getattr(prop, "dts", None) or [prop]:
            tzid = _params(item).get("TZID") or _params(prop).get("TZID")
            moment = getattr(item, "dt", None)
            if isinstance(moment, tuple) and len(moment) == 2:
                start = _when(moment[0], tzid, resolver)
                other = moment[1]
                end = other if isinstance(other, timedelta) else _when(other, tzid, resolver)
                periods.append((start, end))
            else:
                plain.append(_when(item, tzid, resolver))
    return plain, periods


def _rooms(component: Component) -> tuple[str, ...]:
    names: list[str] = []
    for attendee in _all(component, "ATTENDEE"):
        params = _params(attendee)
        if str(params.get("CUTYPE", "")).upper() not in _ROOM_TYPES:
            continue
        if params.get("CN"):
            names.append(str(params["CN"]).strip())
        address = str(attendee).strip()
        if address.lower().startswith("mailto:"):
            names.append(address[7:].split("@", 1)[0].strip())
    location = text_value(component, "LOCATION")
    if location:
        names.extend(part.strip() for part in re.split(r"[;,]", location))
    unique: dict[str, str] = {}
    for name in names:
        if name and name.lower() not in unique:
            unique[name.lower()] = name
    return tuple(unique.values())


def _status(component: Component) -> str:
    status = (text_value(component, "STATUS") or "").strip().upper()
    return {"CANCELLED": CANCELLED, "TENTATIVE": TENTATIVE}.get(status, CONFIRMED)


def _transparent(component: Component) -> bool:
    transp = text_value(component, "TRANSP")
    if transp is not None:
        return transp.strip().upper() == "TRANSPARENT"
    busy = text_value(component, "X-MICROSOFT-CDO-BUSYSTATUS") or ""
    return busy.strip().upper() == "FREE"


def _sequence(component: Component) -> int:
    try:
        return max(0, int(str(_first(component, "SEQUENCE") or 0)))
    except ValueError:
        return 0


def _rrules(event: Component, broken: dict[str, str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The RRULE values, and those that were read only once their spaces went."""
    rules: list[str] = []
    tidied: list[str] = []
    for rule in _all(event, "RRULE"):
        # icalendar keeps a rule it cannot read as the text written (vBroken).
        readable = isinstance(rule, vRecur)
        to_ical = getattr(rule, "to_ical", None)
        written = to_ical().decode() if readable and callable(to_ical) else str(rule)
        tidy = tidy_rule(written)
        if not readable:
            if tidy == written:
                raise SkipEvent("bad-rrule", f"RRULE: {broken.get('RRULE', written)}")
            try:
                parse_rule(tidy)
            except RecurrenceError as exc:
                raise SkipEvent("bad-rrule", f"RRULE {written!r}: {exc.message}") from None
        if tidy != written:
            tidied.append(written)
        rules.append(tidy)
    return tuple(rules), tuple(tidied)


def _organiser_name(event: Component) -> str | None:
    name = _params(_first(event, "ORGANIZER")).get("CN")
    return (fold_line(str(name)) or None) if name else None


def made_up_title(event: EventData, untitled: str) -> tuple[str, str]:
    """A title for an event without SUMMARY, and a warning message saying where it
    came from: its LOCATION, else its ORGANIZER's name (CN), else its address, else
    ``untitled`` (the importer's word for "Busy")."""
    for value, what in (
        (event.location, "LOCATION"),
        (event.organiser_name, "ORGANIZER's name"),
        (event.organiser, "ORGANIZER"),
    ):
        title = fold_line(value or "")
        if title:
            return title, f"no SUMMARY: titled {title!r} after its {what}"
    title = fold_line(untitled) or "Busy"
    return title, f"no SUMMARY, LOCATION or ORGANIZER: titled {title!r}"


def read_event(event: Component, position: int, resolver: ZoneResolver) -> EventData:
    uid = (text_value(event, "UID") or "").strip() or None
    # icalendar keeps properties it cannot read as "broken" and lists them here.
    broken = {str(name).upper(): str(why) for name, why in getattr(event, "errors", []) if name}
    rrules, tidied = _rrules(event, broken)
    unreadable = sorted(set(broken) & _DATE_PROPERTIES)
    if unreadable:
        raise SkipEvent("bad-date", "; ".join(f"{name}: {broken[name]}" for name in unreadable))
    duration = getattr(_first(event, "DURATION"), "dt", None)
    if duration is not None and not isinstance(duration, timedelta):
        raise SkipEvent("bad-date", "DURATION is not a duration")
    rid_prop = _first(event, "RECURRENCE-ID")
    rdates, periods = _periods(event, resolver)
    warnings = []
    if tidied:
        shown = ", ".join(repr(rule) for rule in tidied)
        reason = f"RRULE {shown}: read without the spaces around its separators"
        warnings.append(("lenient-rrule", reason))
    return EventData(
        uid=uid,
        position=position,
        recurrence_id=_one_when(event, "RECURRENCE-ID", resolver),
        this_and_future=str(_params(rid_prop).get("RANGE", "")).upper() == "THISANDFUTURE",
        start=_one_when(event, "DTSTART", resolver),
        end=_one_when(event, "DTEND", resolver),
        duration=duration,
        rrules=rrules,
        rdates=tuple(rdates),
        periods=tuple(periods),
        exdates=tuple(_whens(event, "EXDATE", resolver)),
        title=_title(text_value(event, "SUMMARY")),
        status=_status(event),
        transparent=_transparent(event),
        sequence=_sequence(event),
        location=text_value(event, "LOCATION"),
        rooms=_rooms(event),
        organiser=re.sub(r"(?i)^mailto:", "", text_value(event, "ORGANIZER") or "").strip() or None,
        all_day_hint=(text_value(event, "X-MICROSOFT-CDO-ALLDAYEVENT") or "").upper() == "TRUE",
        organiser_name=_organiser_name(event),
        warnings=tuple(warnings),
    )
