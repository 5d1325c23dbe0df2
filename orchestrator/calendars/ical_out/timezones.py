"""VTIMEZONE blocks (RFC 5545 §3.6.5) computed from the IANA database.

A zone whose clock changes by a yearly rule (Europe/Paris: last Sunday of March
and of October) gets one STANDARD and one DAYLIGHT observance with
``RRULE:FREQ=YEARLY``, the compact form Outlook, Google and Thunderbird ship
and the only one that stays right for an open-ended series. Transitions that
follow no yearly rule (an earlier rule, Morocco's Ramadan changes, a zone that
gave up DST) are listed one by one with RDATE. Each observance's DTSTART is the
local time *before* the change, in TZOFFSETFROM, as §3.6.5 requires (icalendar's
own ``Timezone.from_tzinfo`` writes the time after a spring change, an hour late).

The block covers the changes from the year before ``since_year`` on; clients
only need it for the times our events use.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from icalendar import Timezone, TimezoneDaylight, TimezoneStandard, vRecur

CHECKED_YEARS = 28
"""Transitions are read this many years ahead of the first year needed (the
calendar repeats its weekdays every 28 years); irregular ones are listed up to
there."""
MIN_RULE_YEARS = 14
"""A yearly rule must hold this long, to the end of the checked years, to be
written as RRULE: "first Sunday on or after the 2nd" (Chile) looks like "first
Sunday" for at most 11 years in a row."""

_WEEKDAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
_DAY_SECONDS = 86_400


@dataclass(frozen=True, slots=True)
class _State:
    offset: timedelta
    name: str
    is_dst: bool


@dataclass(frozen=True, slots=True)
class _Transition:
    onset: datetime  # naive local wall time, in the offset before the change
    before: _State
    after: _State

    @property
    def kind(self) -> tuple[timedelta, _State]:
        return self.before.offset, self.after


def _state(tz: ZoneInfo, instant: datetime) -> _State:
    local = instant.astimezone(tz)
    offset = local.utcoffset() or timedelta(0)
    return _State(offset, local.tzname() or _offset_name(offset), bool(local.dst()))


def _offset_name(offset: timedelta) -> str:
    seconds = int(offset.total_seconds())
    sign = "-" if seconds < 0 else "+"
    hours, minutes = divmod(abs(seconds) // 60, 60)
    return f"{sign}{hours:02d}{minutes:02d}"


def _transitions(tz: ZoneInfo, since: datetime, until: datetime) -> list[_Transition]:
    """Every change of offset, name or DST flag in ``[since, until)`` (aware UTC),
    found day by day and then to the second by bisection (tzdata counts in seconds)."""

    def at(seconds: int) -> _State:
        return _state(tz, datetime.fromtimestamp(seconds, UTC))

    found: list[_Transition] = []
    day, end = int(since.timestamp()), int(until.timestamp())
    state = at(day)
    while day < end:
        nxt = day + _DAY_SECONDS
        if at(nxt) == state:
            day = nxt
            continue
        low, high = day, nxt  # at(low) == state, at(high) != state
        while high - low > 1:
            mid = (low + high) // 2
            if at(mid) == state:
                low = mid
            else:
                high = mid
        after = at(high)
        onset = datetime.fromtimestamp(high, UTC).replace(tzinfo=None) + state.offset
        found.append(_Transition(onset, state, after))
        # Two changes in one day are unheard of since 1970; look on from this one.
        state, day = after, high
    return found


def _bydays(moment: datetime) -> frozenset[str]:
    """The BYDAY forms that name ``moment``'s date in its month: nth and, if it
    falls in the last seven days, last (-1)."""
    weekday = _WEEKDAYS[moment.weekday()]
    forms = {f"{(moment.day - 1) // 7 + 1}{weekday}"}
    if moment.day + 7 > calendar.monthrange(moment.year, moment.month)[1]:
        forms.add(f"-1{weekday}")
    return frozenset(forms)


def _yearly_rule(changes: list[_Transition], last_year: int) -> tuple[int, str] | None:
    """The longest run of ``changes`` (one kind, oldest first) that ends in
    ``last_year`` and recurs every year on the same month, weekday rule and time:
    (index where the run starts, BYDAY), or None."""
    if len(changes) < 2 or changes[-1].onset.year != last_year:
        return None
    last = changes[-1].onset
    forms = _bydays(last)
    start = len(changes) - 1
    for index in range(len(changes) - 2, -1, -1):
        here, later = changes[index].onset, changes[index + 1].onset
        same = (
            here.year == later.year - 1
            and here.month == last.month
            and here.time() == last.time()
            and forms & _bydays(here)
        )
        if not same:
            break
        forms &= _bydays(here)
        start = index
    if len(changes) - start < MIN_RULE_YEARS:
        return None
    # Prefer "last Sunday" over "4th Sunday" when both fit: that is how the rules read.
    byday = min(forms, key=lambda f: (not f.startswith("-"), f))
    return start, byday


def _observance(
    state: _State, offset_from: timedelta, dtstart: datetime
) -> TimezoneStandard | TimezoneDaylight:
    component = TimezoneDaylight() if state.is_dst else TimezoneStandard()
    component.add("TZNAME", state.name)
    component.add("TZOFFSETFROM", offset_from)
    component.add("TZOFFSETTO", state.offset)
    component.add("DTSTART", dtstart)
    return component


@lru_cache(maxsize=256)
def _vtimezone_text(zone: str, since_year: int) -> bytes:
    tz = ZoneInfo(zone)
    first_year = since_year - 1
    last_year = since_year + CHECKED_YEARS - 1
    scan_from = datetime(first_year, 1, 1, tzinfo=UTC)
    scan_until = datetime(last_year + 1, 1, 1, tzinfo=UTC)
    transitions = _transitions(tz, scan_from, scan_until)
    vtimezone = Timezone()
    vtimezone.add("TZID", zone)
    if not transitions or transitions[0].onset.year >= since_year:
        # Nothing changed during the lead-in year: say what held from its start.
        initial = _state(tz, scan_from)
        local_start = (scan_from + initial.offset).replace(tzinfo=None)
        vtimezone.add_component(_observance(initial, initial.offset, local_start))
    kinds: dict[tuple[timedelta, _State], list[_Transition]] = {}
    for transition in transitions:
        kinds.setdefault(transition.kind, []).append(transition)
    for (offset_from, state), changes in sorted(kinds.items(), key=lambda item: item[1][0].onset):
        rule = _yearly_rule(changes, last_year)
        listed = changes if rule is None else changes[: rule[0]]
        if listed:
            observance = _observance(state, offset_from, listed[0].onset)
            if len(listed) > 1:
                observance.add("RDATE", [c.onset for c in listed[1:]])
            vtimezone.add_component(observance)
        if rule is not None:
            start, byday = rule
            onset = changes[start].onset
            observance = _observance(state, offset_from, onset)
            observance.add(
                "RRULE", vRecur({"FREQ": "YEARLY", "BYMONTH": onset.month, "BYDAY": byday})
            )
            vtimezone.add_component(observance)
    data: bytes = vtimezone.to_ical()
    return data


def vtimezone(zone: str, since_year: int) -> Timezone:
    """The VTIMEZONE of the IANA ``zone`` for events from ``since_year`` on.

    Cached per (zone, year): the scan reads a few thousand instants.
    """
    return Timezone.from_ical(_vtimezone_text(zone, since_year))  # type: ignore[return-value]
