"""The availability finder's and the booking form's fields: read from the query or the
posted form, kept as entered (a refused form comes back as it was typed), checked
field by field. Error messages are English msgids, translated when rendered."""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo, available_timezones

from multidict import MultiMapping

from orchestrator.booking.availability import WorkingHours
from orchestrator.booking.policy import AUTOMATIC, CONNECT_MODES, MAX_LEAD_SECONDS
from orchestrator.booking.store import OnConflict
from orchestrator.desk.door import (
    FREQUENCIES,
    MAX_GUESTS,
    BookingRequest,
    GuestRequest,
    rrule_for,
)
from orchestrator.errors import DomainError
from orchestrator.inputs import check_date

DURATIONS = (15, 30, 45, 60, 90, 120, 180, 240)
SPANS = ("day", "week")
REPEATS = ("none", *FREQUENCIES)
FORM_ID = re.compile(r"^[0-9a-f]{32}$")
GUEST_ROWS = 3

# Domain error codes -> the field they concern and what the person reads.
CODE_FIELDS: dict[str, tuple[str, str]] = {
    "invalid-name": ("title", "Give the booking a title (at most 200 characters)."),
    "too-few-rooms": ("rooms", "Choose at least one room."),
    "duplicate": ("rooms", "A room is listed twice."),
    "not-found": ("rooms", "One of the rooms no longer exists."),
    "unknown-room": ("rooms", "One of the rooms no longer exists."),
    "invalid-time": ("end", "The end comes after the start."),
    "past": ("date", "This time has passed; choose a time to come."),
    "out-of-range": ("date", "This date is out of range."),
    "unknown-timezone": ("zone", "Choose a time zone from the list."),
    "bad-recurrence": ("repeat", "Check the repetition: a number of meetings or a last date."),
    "bad-rrule": ("repeat", "Check the repetition: a number of meetings or a last date."),
    "invalid-connect-mode": ("connect_mode", "Choose how the rooms connect."),
    "invalid-lead": ("lead", "The lead time is between 0 and 60 minutes."),
    "too-long": ("end", "This meeting is longer than one of the rooms allows."),
    "too-far-ahead": ("date", "One of the rooms cannot be booked that far ahead."),
    "too-many-guests": ("guests", "At most 20 guests."),
    "bad-guest": ("guests", "Each guest needs a name of at most 100 characters."),
    "bad-request": ("guests", "Each guest needs a name of at most 100 characters."),
    "invalid-email": ("guests", "A guest's email address is not valid."),
    "guests-need-call": (
        "guests",
        "Guests join a call: choose automatic or one-button, or remove the guests.",
    ),
}


FormData = MultiMapping[Any]
"""The query string or a posted form."""


def _one(data: FormData, name: str, default: str = "") -> str:
    value = data.get(name, default)
    return value.strip()[:500] if isinstance(value, str) else default


def _many(data: FormData, name: str) -> list[str]:
    return [v.strip()[:500] for v in data.getall(name, []) if isinstance(v, str)]


@cache
def all_zones() -> tuple[str, ...]:
    return tuple(sorted(z for z in available_timezones() if "/" in z and not z.startswith("Etc/")))


def is_zone(name: str) -> bool:
    if name != "UTC" and name not in all_zones():
        return False
    try:
        ZoneInfo(name)
    except (KeyError, ValueError, OSError):
        return False
    return True


def parse_date(text: str) -> date | None:
    """A date the domain takes (``inputs.check_date``: years 1 and 9999 have no
    instant in every zone), or None."""
    try:
        return check_date(date.fromisoformat(text))
    except ValueError:  # not a date, or DomainError("invalid-time")
        return None


def parse_time(text: str) -> time | None:
    try:
        value = time.fromisoformat(text)
    except ValueError:
        return None
    return value.replace(second=0, microsecond=0, tzinfo=None)


def parse_int(text: str, low: int, high: int) -> int | None:
    try:
        value = int(text)
    except ValueError:
        return None
    return value if low <= value <= high else None


# --- the availability finder ------------------------------------------------------------


@dataclass(slots=True)
class FinderForm:
    rooms: list[str] = field(default_factory=list)
    date: str = ""
    span: str = "day"
    duration: str = "60"
    zone: str = ""
    hours: dict[str, tuple[str, str]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def days(self) -> int:
        return 7 if self.span == "week" else 1


def finder_from(data: FormData, centre_ids: Sequence[str]) -> FinderForm:
    form = FinderForm(
        rooms=_many(data, "room"),
        date=_one(data, "date"),
        span=_one(data, "span", "day"),
        duration=_one(data, "duration", "60"),
        zone=_one(data, "zone"),
    )
    for centre_id in centre_ids:
        start = _one(data, f"from_{centre_id}", "08:00")
        end = _one(data, f"to_{centre_id}", "19:00")
        form.hours[centre_id] = (start, end)
    return form


@dataclass(frozen=True, slots=True)
class FinderQuery:
    first_day: date
    days: int
    duration: timedelta
    zone: str
    hours: dict[str, WorkingHours]


def check_finder(form: FinderForm) -> FinderQuery | None:
    """The finder's query, or None with ``form.errors`` filled."""
    day = parse_date(form.date)
    if day is None:
        form.errors["date"] = "Give a date."
    if form.span not in SPANS:
        form.errors["span"] = "Choose a day or a week."
    minutes = parse_int(form.duration, 15, 12 * 60)
    if minutes is None:
        form.errors["duration"] = "A meeting lasts between 15 minutes and 12 hours."
    if not is_zone(form.zone):
        form.errors["zone"] = "Choose a time zone from the list."
    hours: dict[str, WorkingHours] = {}
    for centre_id, (start_text, end_text) in form.hours.items():
        start, end = parse_time(start_text), parse_time(end_text)
        if start is None or end is None or end <= start:
            form.errors[f"hours_{centre_id}"] = "Working hours end after they start."
            continue
        hours[centre_id] = WorkingHours(start, end)
    if form.errors or day is None or minutes is None:
        return None
    return FinderQuery(day, form.days, timedelta(minutes=minutes), form.zone, hours)


# --- the booking form -------------------------------------------------------------------


@dataclass(slots=True)
class BookingForm:
    """The booking form as entered; times are wall-clock times in ``zone``."""

    title: str = ""
    rooms: list[str] = field(default_factory=list)
    date: str = ""
    start: str = ""
    end: str = ""
    zone: str = ""
    repeat: str = "none"
    repeat_end: str = "count"
    count: str = "4"
    until: str = ""
    connect_mode: str = AUTOMATIC
    lead: str = "1"
    guests: list[tuple[str, str]] = field(default_factory=list)
    on_conflict: str = "reject"
    form_id: str = field(default_factory=lambda: secrets.token_hex(16))
    errors: dict[str, str] = field(default_factory=dict)

    def guest_rows(self) -> list[tuple[str, str]]:
        """The guests entered and enough empty rows to add more (without JavaScript)."""
        rows = [g for g in self.guests if g[0] or g[1]]
        return rows + [("", "")] * max(GUEST_ROWS - len(rows), 1)

    def refill(self, date_text: str, start_text: str, end_text: str) -> BookingForm:
        """The same form at another time (an alternative the organiser chose)."""
        return replace(self, date=date_text, start=start_text, end=end_text, errors={})


def booking_from(data: FormData) -> BookingForm:
    names, emails = _many(data, "guest_name"), _many(data, "guest_email")
    emails += [""] * (len(names) - len(emails))
    form_id = _one(data, "form_id")
    return BookingForm(
        title=_one(data, "title"),
        rooms=_many(data, "room"),
        date=_one(data, "date"),
        start=_one(data, "start"),
        end=_one(data, "end"),
        zone=_one(data, "zone"),
        repeat=_one(data, "repeat", "none") or "none",
        repeat_end=_one(data, "repeat_end", "count"),
        count=_one(data, "count", "4"),
        until=_one(data, "until"),
        connect_mode=_one(data, "connect_mode", AUTOMATIC),
        lead=_one(data, "lead", "1"),
        guests=[(n, e) for n, e in zip(names, emails, strict=False) if n or e][: MAX_GUESTS + 1],
        on_conflict=_one(data, "on_conflict", "reject"),
        form_id=form_id if FORM_ID.match(form_id) else secrets.token_hex(16),
    )


def wall_times(form: BookingForm) -> tuple[datetime, datetime] | None:
    """Start and end as naive wall-clock times, if the date and times read; an end at
    or before the start is read as the next day only when it is 00:00 (midnight)."""
    day, start, end = parse_date(form.date), parse_time(form.start), parse_time(form.end)
    if day is None or start is None or end is None:
        return None
    first = datetime.combine(day, start)
    last = datetime.combine(day, end)
    if end == time(0) and start != time(0):
        last += timedelta(days=1)
    return first, last


def check_booking(form: BookingForm) -> BookingRequest | None:
    """The booking request, or None with ``form.errors`` filled (field -> msgid)."""
    errors = form.errors
    if not form.title:
        errors["title"] = "Give the booking a title (at most 200 characters)."
    elif len(form.title) > 200:
        errors["title"] = "Give the booking a title (at most 200 characters)."
    if not form.rooms:
        errors["rooms"] = "Choose at least one room."
    if parse_date(form.date) is None:
        errors["date"] = "Give a date."
    if parse_time(form.start) is None:
        errors["start"] = "Give a start time (hours and minutes)."
    if parse_time(form.end) is None:
        errors["end"] = "Give an end time (hours and minutes)."
    times = wall_times(form)
    if times is not None and times[1] <= times[0]:
        errors["end"] = "The end comes after the start."
    if not is_zone(form.zone):
        errors["zone"] = "Choose a time zone from the list."
    if form.connect_mode not in CONNECT_MODES:
        errors["connect_mode"] = "Choose how the rooms connect."
    lead = parse_int(form.lead, 0, MAX_LEAD_SECONDS // 60)
    if lead is None:
        errors["lead"] = "The lead time is between 0 and 60 minutes."
    on_conflict: OnConflict = "skip" if form.on_conflict == "skip" else "reject"
    rrule: str | None = None
    if form.repeat not in REPEATS:
        errors["repeat"] = "Check the repetition: a number of meetings or a last date."
    elif form.repeat != "none" and "zone" not in errors:
        count = until = None
        if form.repeat_end == "until":
            until = parse_date(form.until)
            if until is None:
                errors["repeat"] = "Give the date of the last meeting."
        else:
            count = parse_int(form.count, 1, 366)
            if count is None:
                errors["repeat"] = "A series has 1 to 366 meetings."
        if "repeat" not in errors:
            try:
                rrule = rrule_for(form.repeat, count=count, until=until, timezone=form.zone)
            except DomainError:
                errors["repeat"] = "Check the repetition: a number of meetings or a last date."
    guests = [GuestRequest(n, e or None) for n, e in form.guests if n or e]
    if any(not g.name for g in guests):
        errors["guests"] = "Each guest needs a name."
    elif len(guests) > MAX_GUESTS:
        errors["guests"] = "At most 20 guests."
    if errors or times is None or lead is None:
        return None
    return BookingRequest(
        title=form.title,
        room_ids=tuple(dict.fromkeys(form.rooms)),
        timezone=form.zone,
        start_local=times[0],
        end_local=times[1],
        rrule=rrule,
        connect_mode=form.connect_mode,
        lead_seconds=lead * 60,
        guests=tuple(guests),
        on_conflict=on_conflict,
        uid=f"{form.form_id}@telecentre",
    )


def error_for(code: str) -> tuple[str, str]:
    """The field a domain error concerns and its message; the form as a whole for codes
    no field owns."""
    return CODE_FIELDS.get(code, ("form", "The booking was refused: %(code)s."))


def prefill(query: Mapping[str, str], rooms: Sequence[str]) -> dict[str, Any]:
    """What a link into the form may set (the finder's proposals do)."""
    return {
        "rooms": list(rooms),
        **{
            k: query[k].strip()[:100]
            for k in ("date", "start", "end", "zone", "title")
            if k in query
        },
    }
