"""Expanding a booking series into its occurrences, in the wall-clock time of its zone.

Rules (each tested in tests/test_recurrence.py):

- Recurrence runs in wall-clock time of ``SeriesSpec.timezone`` (RFC 5545 3.3.10),
  so a weekly 09:00 Europe/Paris series stays at 09:00 local across DST.
- ``localize`` turns a wall-clock time into an instant. A time in the spring-forward
  gap is read with the offset before the gap (RFC 5545 3.3.5), which moves it
  forward by the gap: 02:30 on the Paris spring day is 03:30 CEST, 01:30 UTC. A
  time that occurs twice in autumn is the first of the two (the earlier instant,
  PEP 495 ``fold=0``): 02:30 on the Paris autumn day is 02:30 CEST, 00:30 UTC.
- The recurrence set is DTSTART, every RRULE (their union), every RDATE, minus
  every EXDATE. Two starts that are the same instant are one occurrence. EXDATEs
  and RECURRENCE-IDs match starts as instants, so a UTC EXDATE removes a
  TZID start.
- An override replaces the occurrence whose start is its ``recurrence_id``; one
  whose ``recurrence_id`` is not in the set still adds its occurrence (RFC 5545
  practice: the explicit VEVENT exists). A ``this_and_future`` override
  (RANGE=THISANDFUTURE) also moves every later occurrence by the same wall-clock
  shift and gives it its duration, status and title; a later plain override of one
  of them still wins for that one.
- Timed occurrences last ``duration`` of elapsed time (RFC 5545 3.8.5.3: DTEND
  gives an exact duration); all-day ones last ``duration`` in whole local days,
  from local midnight to local midnight.
- An occurrence is in the window when ``[start, end)`` overlaps ``[since,
  until)``; a zero-length one when ``since <= start < until``.
- A cancelled series yields cancelled occurrences; callers decide what to do.
- Expansion never runs unbounded: see ``expand_with_info`` for the cut rules.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from orchestrator.booking.rrule import (
    RecurrenceError,
    ScanBudget,
    parse_rule,
    walk_rule,
)
from orchestrator.booking.values import CANCELLED, Occurrence, OverrideSpec, SeriesSpec

__all__ = [
    "Expansion",
    "RecurrenceError",
    "expand",
    "expand_with_info",
    "localize",
    "to_wall",
    "validate_rrule",
    "zone_info",
]

# Beyond the window, originals are looked at this much further on each side, so an
# occurrence whose start's wall-clock date differs from its UTC date is never missed.
_WALL_SLACK = timedelta(days=2)
# How many periods and candidates one RRULE may look at, on top of ten per wanted
# occurrence: enough for an hourly rule over two years, and a bound on pathological
# rules (FREQ=SECONDLY, rules that never match).
_BASE_SCAN_BUDGET = 20_000


@cache
def zone_info(zone: str) -> ZoneInfo:
    """The IANA zone ``zone``; ``RecurrenceError`` ``unknown-timezone`` otherwise."""
    try:
        return ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError, OSError, TypeError):
        raise RecurrenceError("unknown-timezone", f"unknown time zone {zone!r}") from None


def localize(wall: datetime, zone: str) -> datetime:
    """The aware UTC instant of the naive wall-clock time ``wall`` in IANA ``zone``.

    A wall time in a spring-forward gap is read with the UTC offset in force before
    the gap (RFC 5545 3.3.5), i.e. moved forward by the gap; an ambiguous autumn
    time is the first of the two instants (``fold=0``). Raises ``RecurrenceError``
    with code ``unknown-timezone``, ``aware-wall-time`` or ``out-of-range``.
    """
    if wall.tzinfo is not None:
        raise RecurrenceError("aware-wall-time", f"{wall.isoformat()} is not a wall-clock time")
    tz = zone_info(zone)
    try:
        # zoneinfo follows PEP 495: fold=0 gives the offset before a transition,
        # which is exactly the RFC 5545 rule for gaps and the "first" rule for folds.
        return wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
    except OverflowError:
        raise RecurrenceError("out-of-range", f"{wall.isoformat()} is out of range") from None


def to_wall(instant: datetime, zone: str) -> datetime:
    """The naive wall-clock time of the aware ``instant`` in IANA ``zone``."""
    if instant.tzinfo is None:
        raise RecurrenceError("bad-window", f"{instant.isoformat()} has no time zone")
    try:
        return instant.astimezone(zone_info(zone)).replace(tzinfo=None, fold=0)
    except OverflowError:
        raise RecurrenceError("out-of-range", f"{instant.isoformat()} is out of range") from None


def validate_rrule(value: str) -> None:
    """Raise ``RecurrenceError`` ``bad-rrule`` unless ``value`` is an RRULE we expand."""
    parse_rule(value)


@dataclass(frozen=True, slots=True)
class Expansion:
    """Occurrences of one series in a window, sorted by start.

    ``truncated`` is true when more occurrences exist in the window than were
    returned: either ``max_count`` cut the list (the first ``max_count`` by start
    are kept), or a pathological rule spent its scan budget (then the list holds
    the occurrences found up to where the scan stopped, still in start order).
    """

    occurrences: tuple[Occurrence, ...]
    truncated: bool


def _shift(moment: datetime, delta: timedelta) -> datetime:
    try:
        return moment + delta
    except OverflowError:
        return datetime.max if delta > timedelta(0) else datetime.min


def _instant(wall: datetime, zone: str) -> datetime | None:
    """``localize``, or None for a wall time that has no instant (year 1 or 9999)."""
    try:
        return localize(wall, zone)
    except RecurrenceError as exc:
        if exc.code == "out-of-range":
            return None
        raise


@dataclass(frozen=True, slots=True)
class _UntilTest:
    """Whether a wall-clock start lies beyond UNTIL. A UTC UNTIL (``...Z``) bounds
    the instant; a floating one the wall-clock time; a date the whole local day."""

    until: date | None
    zone: str

    def __call__(self, wall: datetime) -> bool:
        until = self.until
        if until is None:
            return False
        if isinstance(until, datetime):
            if until.tzinfo is None:
                return wall > until
            instant = _instant(wall, self.zone)
            return instant is None or instant > until
        return wall.date() > until


@dataclass(frozen=True, slots=True)
class _Slot:
    """One occurrence before localizing: its original start and what it became."""

    original: datetime
    start: datetime
    duration: timedelta
    status: str
    title: str | None


def _originals(
    spec: SeriesSpec, low: datetime, high: datetime, budget_steps: int
) -> tuple[list[datetime], datetime | None]:
    """Original wall-clock starts in ``[low, high]``, and the wall time a budget cut
    stopped at (None when every rule ran to the end of the window)."""
    starts: list[datetime] = [spec.start_local, *spec.rdates]
    cut: datetime | None = None
    for text in spec.rrules:
        rule = parse_rule(text)
        budget = ScanBudget(budget_steps)
        for wall in walk_rule(
            rule,
            spec.start_local,
            start_from=low,
            stop_after=high,
            past_until=_UntilTest(rule.until, spec.timezone),
            budget=budget,
        ):
            if wall >= low:
                starts.append(wall)
        if budget.exhausted and budget.reached is not None:
            cut = budget.reached if cut is None else min(cut, budget.reached)
    kept = [s for s in starts if low <= s <= high and (cut is None or s <= cut)]
    return kept, cut


def _slots(spec: SeriesSpec, low: datetime, high: datetime, steps: int) -> tuple[list[_Slot], bool]:
    zone = spec.timezone
    originals, cut = _originals(spec, low, high, steps)
    excluded = {i for i in (_instant(x, zone) for x in spec.exdates) if i is not None}
    # One override per recurrence id: the higher SEQUENCE, then the later one, wins.
    by_instant: dict[datetime, OverrideSpec] = {}
    for override in spec.overrides:
        instant = _instant(override.recurrence_id, zone)
        if instant is not None and (
            instant not in by_instant or override.sequence >= by_instant[instant].sequence
        ):
            by_instant[instant] = override
    singles = {i: o for i, o in by_instant.items() if not o.this_and_future}
    futures = sorted(
        ((i, o) for i, o in by_instant.items() if o.this_and_future), key=lambda item: item[0]
    )
    future_keys = [instant for instant, _ in futures]

    slots: list[_Slot] = []
    seen: set[datetime] = set()
    for original in sorted(originals):
        instant = _instant(original, zone)
        if instant is None or instant in seen or instant in excluded or instant in singles:
            continue
        seen.add(instant)
        position = bisect.bisect_right(future_keys, instant)
        if position == 0:
            slots.append(_Slot(original, original, spec.duration, spec.status, None))
            continue
        anchor, override = futures[position - 1]
        if anchor == instant:
            continue  # the THISANDFUTURE override itself, added below
        shift = override.start_local - override.recurrence_id
        slots.append(
            _Slot(
                original,
                _shift(original, shift),
                override.duration,
                override.status,
                override.title,
            )
        )
    for override in [*singles.values(), *(o for _, o in futures)]:
        slots.append(
            _Slot(
                override.recurrence_id,
                override.start_local,
                override.duration,
                override.status,
                override.title,
            )
        )
    if cut is not None:
        slots = [s for s in slots if s.original <= cut and s.start <= cut]
    return slots, cut is not None


def _occurrence(spec: SeriesSpec, slot: _Slot) -> Occurrence | None:
    zone = spec.timezone
    recurrence_id = _instant(slot.original, zone)
    start = _instant(slot.start, zone)
    if recurrence_id is None or start is None:
        return None
    try:
        if spec.all_day:
            end = _instant(slot.start + timedelta(days=slot.duration.days), zone)
        else:
            end = start + slot.duration
        if end is None:
            return None
        start_local, end_local = to_wall(start, zone), to_wall(end, zone)
    except (OverflowError, RecurrenceError):
        return None
    return Occurrence(
        recurrence_id=recurrence_id,
        start=start,
        end=end,
        start_local=start_local,
        end_local=end_local,
        status=CANCELLED if spec.status == CANCELLED else slot.status,
        transparent=spec.transparent,
        title=slot.title if slot.title is not None else spec.title,
    )


def _in_window(occurrence: Occurrence, since: datetime, until: datetime) -> bool:
    if occurrence.end == occurrence.start:
        return since <= occurrence.start < until
    return occurrence.start < until and occurrence.end > since


def expand_with_info(
    spec: SeriesSpec, since: datetime, until: datetime, max_count: int
) -> Expansion:
    """The occurrences of ``spec`` overlapping ``[since, until)`` (aware bounds), sorted
    by start (then recurrence id), at most ``max_count``; see ``Expansion`` for when
    and how the list is cut. Raises ``RecurrenceError`` for an unknown zone
    (``unknown-timezone``), an RRULE we cannot read (``bad-rrule``) or naive bounds
    (``bad-window``)."""
    if since.tzinfo is None or until.tzinfo is None:
        raise RecurrenceError("bad-window", "since and until must be aware datetimes")
    zone_info(spec.timezone)
    if until <= since:
        return Expansion((), False)
    longest = max([spec.duration, *(o.duration for o in spec.overrides)])
    shifts = [o.start_local - o.recurrence_id for o in spec.overrides if o.this_and_future]
    earliest_shift = min([timedelta(0), *shifts])
    latest_shift = max([timedelta(0), *shifts])
    low = _shift(to_wall(since, spec.timezone), -(abs(longest) + latest_shift + _WALL_SLACK))
    high = _shift(to_wall(until, spec.timezone), -earliest_shift + _WALL_SLACK)
    steps = _BASE_SCAN_BUDGET + 10 * max(0, max_count)
    slots, scan_cut = _slots(spec, low, high, steps)
    found = [o for o in (_occurrence(spec, s) for s in slots) if o is not None]
    found = [o for o in found if _in_window(o, since, until)]
    found.sort(key=lambda o: (o.start, o.recurrence_id))
    limit = max(0, max_count)
    return Expansion(tuple(found[:limit]), scan_cut or len(found) > limit)


def expand(spec: SeriesSpec, since: datetime, until: datetime, max_count: int) -> list[Occurrence]:
    """``expand_with_info(...).occurrences`` as a list: callers that must know whether
    the list was cut (the horizon roller, the importer) use ``expand_with_info``."""
    return list(expand_with_info(spec, since, until, max_count).occurrences)
