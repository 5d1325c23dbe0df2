"""RFC 5545 RRULE values: parsing, and a bounded walk over their wall-clock dates.

The walk works on naive wall-clock times (RFC 5545 3.3.10: a rule repeats in the
local time of DTSTART), period by period (a year, a month, a week, a day, an hour,
a minute or a second, times INTERVAL), with the BYxxx parts of the RFC 3.3.10
table: BYMONTH, BYWEEKNO, BYYEARDAY, BYMONTHDAY and BYDAY choose the days of the
period, BYHOUR, BYMINUTE and BYSECOND the times, then BYSETPOS picks inside the
period. Unlike dateutil, the walk never runs unbounded: it stops at ``stop_after``
(the caller's window), at COUNT or UNTIL, or when its scan budget is spent (a rule
that never matches, such as ``FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30``, costs at most
the budget, not a walk to year 9999). Without COUNT it jumps straight to the
window, keeping the rule's phase, so a daily series from 1990 read in 2027 costs a
handful of steps.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

FREQUENCIES = ("SECONDLY", "MINUTELY", "HOURLY", "DAILY", "WEEKLY", "MONTHLY", "YEARLY")
WEEKDAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")  # index = date.weekday()

_SECONDLY, _MINUTELY, _HOURLY, _DAILY, _WEEKLY, _MONTHLY, _YEARLY = range(7)
_BYDAY = re.compile(r"^([+-]?)(\d{1,2})?(MO|TU|WE|TH|FR|SA|SU)$")
_UNTIL = re.compile(r"^(\d{4})(\d{2})(\d{2})(?:T(\d{2})(\d{2})(\d{2})(Z?))?$")
_INT = re.compile(r"^[+-]?\d{1,10}$")


class RecurrenceError(ValueError):
    """A recurrence that cannot be expanded, with a stable ``code``:
    ``bad-rrule``, ``unknown-timezone``, ``aware-wall-time``, ``bad-window``,
    ``out-of-range``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class RecurrenceRule:
    """One parsed RRULE. ``until`` is a date (inclusive of that whole local day), a
    naive wall-clock datetime, or an aware UTC datetime (``UNTIL=...Z``, which RFC
    5545 requires when DTSTART has a TZID). ``by_day`` holds (ordinal, weekday)
    with ordinal 0 for "every"."""

    freq: int
    interval: int = 1
    count: int | None = None
    until: date | None = None
    by_second: tuple[int, ...] = ()
    by_minute: tuple[int, ...] = ()
    by_hour: tuple[int, ...] = ()
    by_day: tuple[tuple[int, int], ...] = ()
    by_month_day: tuple[int, ...] = ()
    by_year_day: tuple[int, ...] = ()
    by_week_no: tuple[int, ...] = ()
    by_month: tuple[int, ...] = ()
    by_set_pos: tuple[int, ...] = ()
    week_start: int = 0

    @property
    def frequency(self) -> str:
        return FREQUENCIES[self.freq]


@dataclass(slots=True)
class ScanBudget:
    """How many periods and candidates a walk may still look at; ``exhausted`` tells
    the caller that the walk stopped early, and ``reached`` how far it got."""

    steps_left: int
    exhausted: bool = False
    reached: datetime | None = field(default=None)

    def spend(self) -> bool:
        if self.steps_left <= 0:
            self.exhausted = True
            return False
        self.steps_left -= 1
        return True


def _ints(name: str, text: str, low: int, high: int, *, signed: bool) -> tuple[int, ...]:
    values: list[int] = []
    for item in text.split(","):
        item = item.strip()
        if not _INT.match(item):
            raise RecurrenceError("bad-rrule", f"{name}: {item!r} is not a number")
        value = int(item)
        magnitude = abs(value) if signed else value
        if not low <= magnitude <= high or (signed and value == 0):
            raise RecurrenceError("bad-rrule", f"{name}: {value} is out of range")
        values.append(value)
    return tuple(sorted(set(values)))


def _parse_until(text: str) -> date:
    match = _UNTIL.match(text)
    if match is None:
        raise RecurrenceError("bad-rrule", f"UNTIL: {text!r} is not a date or date-time")
    year, month, day, hour, minute, second, zulu = match.groups()
    try:
        if hour is None:
            return date(int(year), int(month), int(day))
        wall = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second))
    except ValueError as exc:
        raise RecurrenceError("bad-rrule", f"UNTIL: {text!r}: {exc}") from None
    return wall.replace(tzinfo=UTC) if zulu else wall


def _parse_by_day(text: str) -> tuple[tuple[int, int], ...]:
    days: set[tuple[int, int]] = set()
    for item in text.split(","):
        match = _BYDAY.match(item.strip())
        if match is None:
            raise RecurrenceError("bad-rrule", f"BYDAY: {item!r} is not a weekday")
        sign, number, weekday = match.groups()
        ordinal = int(number) if number else 0
        if number and not 1 <= ordinal <= 53:
            raise RecurrenceError("bad-rrule", f"BYDAY: {item!r} has an ordinal out of range")
        days.add((-ordinal if sign == "-" else ordinal, WEEKDAYS.index(weekday)))
    return tuple(sorted(days))


_SPACED_SEPARATOR = re.compile(r"[ \t]*([;,=])[ \t]*")


def tidy_rule(text: str) -> str:
    """``text`` without the spaces around its separators (``;``, ``,``, ``=``) and at
    its ends. RFC 5545 3.3.10 allows none; Exchange writes ``BYDAY=MO, TU, WE``.
    A space anywhere else stays, so a rule that needs more than this repair is
    still refused."""
    return _SPACED_SEPARATOR.sub(r"\1", text.strip(" \t"))


def parse_rule(text: str) -> RecurrenceRule:
    """Parse an RRULE value (``FREQ=WEEKLY;BYDAY=MO``, an optional ``RRULE:`` prefix
    tolerated). Unknown parts (x-names, RFC 7529 SKIP) are ignored; a repeated
    part, a missing FREQ or an out-of-range value raises ``RecurrenceError``
    ``bad-rrule``. COUNT and UNTIL together (RFC 5545 forbids it) both apply."""
    body = text.strip()
    if body.upper().startswith("RRULE:"):
        body = body[6:]
    parts: dict[str, str] = {}
    for part in body.split(";"):
        if not part.strip():
            continue
        name, sep, value = part.partition("=")
        name = name.strip().upper()
        if not sep or not value.strip():
            raise RecurrenceError("bad-rrule", f"{part!r} is not NAME=VALUE")
        if name in parts:
            raise RecurrenceError("bad-rrule", f"{name} appears twice")
        parts[name] = value.strip().upper()
    freq = parts.get("FREQ")
    if freq not in FREQUENCIES:
        raise RecurrenceError("bad-rrule", f"FREQ {freq!r} is not one of {FREQUENCIES}")
    if "RSCALE" in parts and parts["RSCALE"] != "GREGORIAN":
        raise RecurrenceError("bad-rrule", f"RSCALE {parts['RSCALE']} is not supported")
    interval = _ints("INTERVAL", parts.get("INTERVAL", "1"), 1, 10**6, signed=False)
    count = _ints("COUNT", parts["COUNT"], 1, 2**31 - 1, signed=False) if "COUNT" in parts else None
    week_start = parts.get("WKST", "MO")
    if week_start not in WEEKDAYS:
        raise RecurrenceError("bad-rrule", f"WKST {week_start!r} is not a weekday")

    def listed(name: str, low: int, high: int, *, signed: bool = False) -> tuple[int, ...]:
        return _ints(name, parts[name], low, high, signed=signed) if name in parts else ()

    return RecurrenceRule(
        freq=FREQUENCIES.index(freq),
        interval=interval[0],
        count=count[0] if count else None,
        until=_parse_until(parts["UNTIL"]) if "UNTIL" in parts else None,
        # A leap second (60) is a valid BYSECOND but no datetime: it never matches.
        by_second=listed("BYSECOND", 0, 60),
        by_minute=listed("BYMINUTE", 0, 59),
        by_hour=listed("BYHOUR", 0, 23),
        by_day=_parse_by_day(parts["BYDAY"]) if "BYDAY" in parts else (),
        by_month_day=listed("BYMONTHDAY", 1, 31, signed=True),
        by_year_day=listed("BYYEARDAY", 1, 366, signed=True),
        by_week_no=listed("BYWEEKNO", 1, 53, signed=True),
        by_month=listed("BYMONTH", 1, 12),
        by_set_pos=listed("BYSETPOS", 1, 366, signed=True),
        week_start=WEEKDAYS.index(week_start),
    )


@dataclass(frozen=True, slots=True)
class _Plan:
    """The rule with RFC 5545 defaults taken from DTSTART filled in."""

    rule: RecurrenceRule
    weekdays: frozenset[int]  # BYDAY entries without ordinal
    ordinal_days: tuple[tuple[int, int], ...]  # BYDAY entries with ordinal
    ordinal_scope_month: bool
    month_days: tuple[int, ...]
    months: tuple[int, ...]
    hours: tuple[int, ...]
    minutes: tuple[int, ...]
    seconds: tuple[int, ...]


def _plan(rule: RecurrenceRule, dtstart: datetime) -> _Plan:
    by_day, month_days, months = rule.by_day, rule.by_month_day, rule.by_month
    if not (rule.by_week_no or rule.by_year_day or month_days or by_day):
        # RFC 5545 3.3.10: parts not given are taken from DTSTART.
        if rule.freq == _YEARLY:
            months = months or (dtstart.month,)
            month_days = (dtstart.day,)
        elif rule.freq == _MONTHLY:
            month_days = (dtstart.day,)
        elif rule.freq == _WEEKLY:
            by_day = ((0, dtstart.weekday()),)
    # Ordinals ("2TU") count inside the month for MONTHLY and YEARLY;BYMONTH, inside
    # the year for plain YEARLY, and mean nothing elsewhere (treated as plain days).
    ordinal_allowed = rule.freq == _MONTHLY or (rule.freq == _YEARLY and not rule.by_week_no)
    weekdays = frozenset(wd for n, wd in by_day if n == 0 or not ordinal_allowed)
    ordinal_days = tuple((n, wd) for n, wd in by_day if n != 0 and ordinal_allowed)
    daily_or_longer = rule.freq >= _DAILY
    return _Plan(
        rule=rule,
        weekdays=weekdays,
        ordinal_days=ordinal_days,
        ordinal_scope_month=rule.freq == _MONTHLY or bool(rule.by_month),
        month_days=month_days,
        months=months,
        hours=rule.by_hour or ((dtstart.hour,) if daily_or_longer else ()),
        minutes=rule.by_minute or ((dtstart.minute,) if rule.freq >= _HOURLY else ()),
        seconds=tuple(s for s in rule.by_second if s < 60)
        if rule.by_second
        else ((dtstart.second,) if rule.freq >= _MINUTELY else ()),
    )


def _week1_start(year: int, week_start: int) -> date:
    """Week 1 is the first week with at least four days in the year (RFC 5545 BYWEEKNO),
    so it is the week that holds January 4th."""
    jan4 = date(year, 1, 4)
    return jan4 - timedelta(days=(jan4.weekday() - week_start) % 7)


def _week_number_matches(day: date, weeks: tuple[int, ...], week_start: int) -> bool:
    year = day.year
    if year < 9999 and day >= _week1_start(year + 1, week_start):
        year += 1
    elif year > 1 and day < _week1_start(year, week_start):
        year -= 1
    first = _week1_start(year, week_start)
    number = (day - first).days // 7 + 1
    total = (_week1_start(year + 1, week_start) - first).days // 7 if year < 9999 else 52
    return number in weeks or number - total - 1 in weeks


def _day_matches(plan: _Plan, day: date) -> bool:
    rule = plan.rule
    if plan.months and day.month not in plan.months:
        return False
    month_length = calendar.monthrange(day.year, day.month)[1]
    if plan.month_days and not (
        day.day in plan.month_days or day.day - month_length - 1 in plan.month_days
    ):
        return False
    year_length = 366 if calendar.isleap(day.year) else 365
    year_day = day.timetuple().tm_yday
    if rule.by_year_day and not (
        year_day in rule.by_year_day or year_day - year_length - 1 in rule.by_year_day
    ):
        return False
    if rule.by_week_no and not _week_number_matches(day, rule.by_week_no, rule.week_start):
        return False
    if not (plan.weekdays or plan.ordinal_days):
        return True
    weekday = day.weekday()
    if weekday in plan.weekdays:
        return True
    if plan.ordinal_scope_month:
        forward, backward = (day.day - 1) // 7 + 1, -((month_length - day.day) // 7 + 1)
    else:
        forward, backward = (year_day - 1) // 7 + 1, -((year_length - year_day) // 7 + 1)
    return (forward, weekday) in plan.ordinal_days or (backward, weekday) in plan.ordinal_days


def _period_days(rule: RecurrenceRule, start: datetime) -> list[date]:
    first = start.date()
    if rule.freq == _YEARLY:
        length = 366 if calendar.isleap(first.year) else 365
    elif rule.freq == _MONTHLY:
        length = calendar.monthrange(first.year, first.month)[1]
    elif rule.freq == _WEEKLY:
        length = 7
    else:
        length = 1
    return [first + timedelta(days=i) for i in range(length)]


def _candidates(plan: _Plan, start: datetime, day_ok: Callable[[date], bool]) -> list[datetime]:
    """Every start the rule picks in the period beginning at ``start``, in order."""
    rule = plan.rule
    days = [d for d in _period_days(rule, start) if day_ok(d)]
    if not days:
        return []
    if rule.freq >= _DAILY:
        times = [time(h, m, s) for h in plan.hours for m in plan.minutes for s in plan.seconds]
    else:
        # Sub-daily periods fix the coarser fields and filter on the BY parts.
        if plan.rule.by_hour and start.hour not in plan.rule.by_hour:
            return []
        if rule.freq <= _MINUTELY and rule.by_minute and start.minute not in rule.by_minute:
            return []
        if rule.freq == _SECONDLY and rule.by_second and start.second not in rule.by_second:
            return []
        minutes = plan.minutes if rule.freq == _HOURLY else (start.minute,)
        seconds = plan.seconds if rule.freq >= _MINUTELY else (start.second,)
        times = [time(start.hour, m, s) for m in minutes for s in seconds]
    found = sorted(datetime.combine(d, t) for d in days for t in sorted(set(times)))
    if rule.by_set_pos:
        picked = {
            found[pos - 1 if pos > 0 else pos]
            for pos in rule.by_set_pos
            if -len(found) <= pos <= len(found)
        }
        found = sorted(picked)
    return found


def _first_period(rule: RecurrenceRule, dtstart: datetime) -> datetime:
    if rule.freq == _YEARLY:
        return datetime(dtstart.year, 1, 1)
    if rule.freq == _MONTHLY:
        return datetime(dtstart.year, dtstart.month, 1)
    if rule.freq == _WEEKLY:
        day = dtstart.date() - timedelta(days=(dtstart.weekday() - rule.week_start) % 7)
        return datetime.combine(day, time())
    if rule.freq == _DAILY:
        return datetime.combine(dtstart.date(), time())
    if rule.freq == _HOURLY:
        return dtstart.replace(minute=0, second=0, microsecond=0)
    if rule.freq == _MINUTELY:
        return dtstart.replace(second=0, microsecond=0)
    return dtstart.replace(microsecond=0)


_FIXED_STEP = {
    _WEEKLY: timedelta(weeks=1),
    _DAILY: timedelta(days=1),
    _HOURLY: timedelta(hours=1),
    _MINUTELY: timedelta(minutes=1),
    _SECONDLY: timedelta(seconds=1),
}


def _period_start(rule: RecurrenceRule, first: datetime, index: int) -> datetime:
    """Start of the ``index``-th period; OverflowError/ValueError past year 9999."""
    if rule.freq == _YEARLY:
        return datetime(first.year + index * rule.interval, 1, 1)
    if rule.freq == _MONTHLY:
        months = first.year * 12 + first.month - 1 + index * rule.interval
        return datetime(months // 12, months % 12 + 1, 1)
    return first + _FIXED_STEP[rule.freq] * (index * rule.interval)


def _index_at_or_before(rule: RecurrenceRule, first: datetime, moment: datetime) -> int:
    """The last period index whose start is not after ``moment`` (0 when before)."""
    if moment <= first:
        return 0
    if rule.freq == _YEARLY:
        return (moment.year - first.year) // rule.interval
    if rule.freq == _MONTHLY:
        months = (moment.year - first.year) * 12 + moment.month - first.month
        return months // rule.interval
    return (moment - first) // (_FIXED_STEP[rule.freq] * rule.interval)


def _next_index_from(rule: RecurrenceRule, first: datetime, moment: datetime) -> int:
    """The first period index whose start is at or after ``moment``."""
    index = _index_at_or_before(rule, first, moment)
    return index if _period_start(rule, first, index) >= moment else index + 1


def _skip_target(plan: _Plan, start: datetime, day_ok: Callable[[date], bool]) -> datetime | None:
    """For sub-daily rules, the next moment worth looking at when the coarser
    fields of ``start`` cannot match: the next day, hour or minute."""
    rule = plan.rule
    if rule.freq >= _DAILY:
        return None
    if not day_ok(start.date()):
        return datetime.combine(start.date(), time()) + timedelta(days=1)
    if rule.freq <= _MINUTELY and rule.by_hour and start.hour not in rule.by_hour:
        return start.replace(minute=0, second=0) + timedelta(hours=1)
    if rule.freq == _SECONDLY and rule.by_minute and start.minute not in rule.by_minute:
        return start.replace(second=0) + timedelta(minutes=1)
    return None


def walk_rule(
    rule: RecurrenceRule,
    dtstart: datetime,
    *,
    start_from: datetime,
    stop_after: datetime,
    past_until: Callable[[datetime], bool],
    budget: ScanBudget,
) -> Iterator[datetime]:
    """Yield the naive wall-clock starts of ``rule`` anchored at ``dtstart``, in order.

    DTSTART always comes first and counts towards COUNT (RFC 5545 3.8.5.3), even when
    the rule would not pick it. The walk ends after ``stop_after``, at the first start
    for which ``past_until`` is true (the caller compares UNTIL as an instant or a
    wall-clock time), at COUNT, or when ``budget`` is spent. Starts before
    ``start_from`` may be yielded; without COUNT the walk jumps to ``start_from``.
    """
    plan = _plan(rule, dtstart)
    known: dict[date, bool] = {}

    def day_ok(day: date) -> bool:
        if day not in known:
            if len(known) > 4096:
                known.clear()
            known[day] = _day_matches(plan, day)
        return known[day]

    emitted = 1
    yield dtstart
    if rule.count is not None and emitted >= rule.count:
        return
    first = _first_period(rule, dtstart)
    index = 0 if rule.count is not None else _index_at_or_before(rule, first, start_from)
    while True:
        if not budget.spend():
            return
        try:
            start = _period_start(rule, first, index)
        except (OverflowError, ValueError):
            return
        if start > stop_after:
            return
        budget.reached = start
        try:
            skip_to = _skip_target(plan, start, day_ok)
            if skip_to is not None:
                index = max(index + 1, _next_index_from(rule, first, skip_to))
                continue
            candidates = _candidates(plan, start, day_ok)
        except (OverflowError, ValueError):
            return  # a period that reaches past year 9999
        for candidate in candidates:
            if candidate <= dtstart:
                continue
            if candidate > stop_after or past_until(candidate) or not budget.spend():
                return
            yield candidate
            emitted += 1
            if rule.count is not None and emitted >= rule.count:
                return
        index += 1
