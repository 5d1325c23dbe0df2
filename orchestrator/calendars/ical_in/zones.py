"""Naming the IANA zone behind an iCalendar TZID, as calendars in the wild write them.

Rules, first match wins:

1. The TZID, trimmed of spaces, quotes and surrounding ``/``, is an IANA name
   (case-insensitive): ``Europe/Paris``, ``"Europe/Paris"``, ``/Europe/Paris``.
2. It is a Windows zone name, as Outlook and Exchange write them (``Romance Standard
   Time`` -> ``Europe/Paris``), through the CLDR windowsZones table that icalendar
   ships (``icalendar.timezone.windows_to_olson``).
3. It is an RFC 5545 3.2.19 "globally unique" TZID ending with an IANA name
   (``/freeassociation.sourceforge.net/Tzfile/Europe/Paris``, libical, Evolution,
   Lightning): the longest IANA suffix.
4. Otherwise, when the file carries a VTIMEZONE for it (Outlook's ``Customized Time
   Zone``, ``(UTC+01:00) Amsterdam, Berlin, ...``), the IANA zone whose UTC offsets
   match that VTIMEZONE's rules on every day at 12:00 UTC from 2024 to 2031. Among
   equal zones: one whose city the TZID names (earliest mention first), then the
   Windows table's zones, then a continent/city name, then the alphabetical first.
   A VTIMEZONE with a single offset maps to ``Etc/GMT±N`` when N is whole hours.

A TZID that is an IANA name is taken as that IANA zone even when the file's
VTIMEZONE says otherwise (stale rules are the usual cause of a mismatch). Nothing
here uses icalendar's process-wide cache of custom zones, so two files defining
different "Customized Time Zone" rules never see each other's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cache, lru_cache
from zoneinfo import ZoneInfo, available_timezones

from icalendar import Component
from icalendar.timezone.windows_to_olson import WINDOWS_TO_OLSON

from orchestrator.booking.rrule import RecurrenceError, ScanBudget, parse_rule, walk_rule

_SAMPLE_FIRST = datetime(2024, 1, 1, 12, tzinfo=UTC)
_SAMPLE_DAYS = 8 * 365 + 2
_PROBES = tuple(datetime(2027, month, 15, 12, tzinfo=UTC) for month in (1, 4, 7, 10))
_CONTINENTS = tuple(
    f"{area}/"
    for area in "Africa America Antarctica Asia Atlantic Australia Europe Indian Pacific".split()
)
_NOT_ZONES = frozenset({"localtime", "Factory", "posixrules"})


@cache
def iana_names() -> dict[str, str]:
    """Every IANA zone name the tz database here knows, keyed by its lower case."""
    return {name.lower(): name for name in available_timezones() if name not in _NOT_ZONES}


@cache
def _windows_names() -> dict[str, str]:
    return {name.lower(): zone for name, zone in WINDOWS_TO_OLSON.items()}


def zone_by_name(tzid: str) -> str | None:
    """Rules 1 to 3 above: the IANA zone a TZID names, or None."""
    cleaned = tzid.strip().strip("\"'").strip().strip("/").strip()
    if not cleaned:
        return None
    names = iana_names()
    key = cleaned.lower()
    if key in names:
        return names[key]
    if key in _windows_names():
        zone = _windows_names()[key]
        return names.get(zone.lower(), zone)
    parts = key.split("/")
    for first in range(1, len(parts)):
        suffix = "/".join(parts[first:])
        if suffix in names:
            return names[suffix]
    return None


@dataclass(frozen=True, slots=True)
class _Transition:
    at: datetime  # aware UTC
    offset: timedelta  # TZOFFSETTO


def _offset(component: Component, name: str) -> timedelta | None:
    value = component.get(name)
    offset = getattr(value, "td", None)
    return offset if isinstance(offset, timedelta) else None


def _transitions(observance: Component) -> list[_Transition]:
    """Onsets of one STANDARD or DAYLIGHT block: DTSTART, RRULE and RDATE are wall
    times in TZOFFSETFROM (RFC 5545 3.6.5)."""
    before, after = _offset(observance, "TZOFFSETFROM"), _offset(observance, "TZOFFSETTO")
    start = getattr(observance.get("DTSTART"), "dt", None)
    if before is None or after is None or not isinstance(start, datetime):
        return []
    start = start.replace(tzinfo=None)
    walls = [start]
    for rdate in _as_list(observance.get("RDATE")):
        walls.extend(
            d.dt.replace(tzinfo=None)
            for d in getattr(rdate, "dts", [])
            if isinstance(getattr(d, "dt", None), datetime)
        )
    last = _SAMPLE_FIRST + timedelta(days=_SAMPLE_DAYS)
    for rrule in _as_list(observance.get("RRULE")):
        to_ical = getattr(rrule, "to_ical", None)
        try:
            rule = parse_rule(to_ical().decode() if callable(to_ical) else str(rrule))
        except (RecurrenceError, UnicodeDecodeError):
            continue
        until = rule.until

        def past(wall: datetime, until: date | None = until) -> bool:
            if isinstance(until, datetime):
                if until.tzinfo is not None:
                    return (wall - before).replace(tzinfo=UTC) > until
                return wall > until
            return until is not None and wall.date() > until

        walls.extend(
            walk_rule(
                rule,
                start,
                start_from=datetime(2022, 1, 1),
                stop_after=last.replace(tzinfo=None),
                past_until=past,
                budget=ScanBudget(2_000),
            )
        )
    found = []
    for wall in walls:
        try:
            found.append(_Transition((wall - before).replace(tzinfo=UTC), after))
        except OverflowError:
            continue
    return found


def _as_list(value: object) -> Sequence[object]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _vtimezone_offsets(vtimezone: Component) -> tuple[timedelta, ...] | None:
    transitions = sorted(
        (t for sub in vtimezone.subcomponents for t in _transitions(sub)), key=lambda t: t.at
    )
    if not transitions:
        return None
    offsets: list[timedelta] = []
    index = 0
    current = transitions[0].offset
    for day in range(_SAMPLE_DAYS):
        moment = _SAMPLE_FIRST + timedelta(days=day)
        while index < len(transitions) and transitions[index].at <= moment:
            current = transitions[index].offset
            index += 1
        offsets.append(current)
    return tuple(offsets)


@cache
def _probe_table() -> dict[str, tuple[timedelta | None, ...]]:
    return {
        name: tuple(p.astimezone(ZoneInfo(name)).utcoffset() for p in _PROBES)
        for name in iana_names().values()
    }


@lru_cache(maxsize=128)
def _zone_offsets(name: str) -> tuple[timedelta | None, ...]:
    tz = ZoneInfo(name)
    return tuple(
        (_SAMPLE_FIRST + timedelta(days=day)).astimezone(tz).utcoffset()
        for day in range(_SAMPLE_DAYS)
    )


def _rank(name: str, text: str) -> tuple[int, int, int, str]:
    city = name.rsplit("/", 1)[-1].replace("_", " ").lower()
    mention = text.find(city) if "/" in name else -1
    return (
        mention if mention >= 0 else len(text) + 1,
        0 if name in _canonical() else 1,
        0 if name.startswith(_CONTINENTS) else 1,
        name,
    )


@cache
def _canonical() -> frozenset[str]:
    return frozenset(WINDOWS_TO_OLSON.values())


@lru_cache(maxsize=256)
def _match_offsets(offsets: tuple[timedelta, ...], tzid: str) -> str | None:
    if len(set(offsets)) == 1:
        hours, rest = divmod(offsets[0], timedelta(hours=1))
        if not rest and -12 <= hours <= 14:
            # POSIX sign convention: Etc/GMT-1 is UTC+01:00.
            return "UTC" if hours == 0 else f"Etc/GMT{-hours:+d}"
    probes = tuple(offsets[(p - _SAMPLE_FIRST).days] for p in _PROBES)
    candidates = [name for name, seen in _probe_table().items() if seen == probes]
    matching = [name for name in candidates if _zone_offsets(name) == offsets]
    if not matching:
        return None
    text = tzid.lower()
    return min(matching, key=lambda name: _rank(name, text))


def zone_from_vtimezone(tzid: str, vtimezone: Component) -> str | None:
    """Rule 4 above: the IANA zone whose offsets follow ``vtimezone``'s rules."""
    offsets = _vtimezone_offsets(vtimezone)
    if offsets is None:
        return None
    return _match_offsets(offsets, tzid)


class ZoneResolver:
    """TZID -> IANA zone for one file, with its VTIMEZONE blocks (see module rules)."""

    def __init__(self, vtimezones: Sequence[Component]) -> None:
        self._blocks: dict[str, Component] = {}
        for block in vtimezones:
            tzid = block.get("TZID")
            if tzid is not None:
                self._blocks.setdefault(str(tzid).strip().strip("\"'").strip(), block)
        self._known: dict[str, str | None] = {}

    def resolve(self, tzid: str) -> str | None:
        if tzid not in self._known:
            zone = zone_by_name(tzid)
            if zone is None:
                block = self._blocks.get(tzid.strip().strip("\"'").strip())
                zone = zone_from_vtimezone(tzid, block) if block is not None else None
            self._known[tzid] = zone
        return self._known[tzid]
