"""The generated calendar of bench/calendar: 1,000 VEVENTs over 200 rooms, about 10,000
occurrences inside a 180-day booking horizon, deterministic for a seed and a ``now``.

Layout (so that no two occurrences of one room ever overlap, and every occurrence of
the file is booked):

- 200 rooms, ``Room 001`` .. ``Room 200``; rooms go in pairs (``Room 001`` + ``Room 002``,
  ...), each pair in one of three IANA zones (Europe/Paris, Europe/Amsterdam,
  America/Toronto, in turn), so each room's centre is in the zone its events use.
- Every room has its own events in four daily bands of its zone's wall clock (08:00,
  10:00, 12:00, 14:00; 800 events), and every pair shares two two-room events in the
  16:00 and 18:00 bands (200 events): 1,000 VEVENTs. An event lasts at most 60 min and
  a moved occurrence at most 30 min later, so it stays inside its 2-hour band.
- Kinds: weekly, weekly every other week, weekly on Monday and Thursday, every weekday,
  daily, each ending with COUNT or UNTIL (UTC, RFC 5545 3.3.10); about 5 % single
  events. About 30 % of the series carry one or two EXDATEs, about 25 % a
  RECURRENCE-ID override that moves one occurrence (weekly kinds: the next day; daily
  kinds: 30 min later, as the next day is taken by the series itself).
- Times are written with TZID and the file carries a VTIMEZONE per zone; a third of
  the events give DURATION instead of DTEND. Rooms are named by
  ``ATTENDEE;CUTYPE=ROOM;CN=Room 017:mailto:room017@example.org``, by ``LOCATION``,
  or by both.

``Generated.expected_occurrences`` counts, from the generator's own list of occurrence
times (zoneinfo, no iCalendar library), those overlapping ``[now, now + horizon)``: what
recurring-ical-events should return. telecentre should write that many sessions plus
``overrides_beyond_horizon``: it also keeps a session for each occurrence an override
names explicitly past the horizon (moved out of it, or wholly beyond it).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

ROOMS = 200
OWN_BANDS = (8, 10, 12, 14)  # local hours of each room's own events
PAIR_BANDS = (16, 18)  # local hours of the two-room events of each pair
ZONES = ("Europe/Paris", "Europe/Amsterdam", "America/Toronto")
CENTRES = {"Europe/Paris": "Paris", "Europe/Amsterdam": "Amsterdam", "America/Toronto": "Toronto"}
HORIZON_DAYS = 180

# (kind, weight): about 5 % single events.
KINDS: tuple[tuple[str, int], ...] = (
    ("weekly", 40),
    ("biweekly", 15),
    ("mon-thu", 15),
    ("weekdays", 15),
    ("daily", 10),
    ("single", 5),
)
STEP_DAYS = {"weekly": 7, "biweekly": 14}
EXDATE_SHARE = 0.3
OVERRIDE_SHARE = 0.25

# zone: (standard offset, daylight offset, names, daylight from MMDDTHHMMSS and BYDAY,
# standard from and BYDAY), as RFC 5545 VTIMEZONE rules.
_EU = ("+0100", "+0200", "CET", "CEST", "0329T020000", "-1SU", "1025T030000", "-1SU")
_CA = ("-0500", "-0400", "EST", "EDT", "0308T020000", "2SU", "1101T020000", "1SU")
VTIMEZONES = {"Europe/Paris": _EU, "Europe/Amsterdam": _EU, "America/Toronto": _CA}


def room_name(index: int) -> str:
    """``Room 001`` for index 0."""
    return f"Room {index + 1:03d}"


def room_zone(index: int) -> str:
    return ZONES[(index // 2) % len(ZONES)]


@dataclass(frozen=True)
class Generated:
    data: bytes
    events: int  # VEVENTs that are series masters or single events
    overrides: int  # extra VEVENTs with a RECURRENCE-ID
    exdates: int
    kinds: dict[str, int]
    terminations: dict[str, int]  # COUNT / UNTIL
    two_room_events: int
    expected_occurrences: int  # overlapping [now, now + horizon), from the generator's list
    # Moved occurrences outside the window whose original or new start is at or after its
    # end: telecentre keeps a session for every occurrence an override names explicitly,
    # wherever it falls (orchestrator/booking/commands.py), so these are sessions too.
    overrides_beyond_horizon: int


def _fold(line: str) -> str:
    """RFC 5545 3.1 folding of an ASCII line at 75 octets."""
    out = [line[:75]]
    rest = line[75:]
    while rest:
        out.append(" " + rest[:74])
        rest = rest[74:]
    return "\r\n".join(out) + "\r\n"


def _local(moment: datetime) -> str:
    return moment.strftime("%Y%m%dT%H%M%S")


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def _vtimezone(zone: str) -> list[str]:
    std, dst, std_name, dst_name, dst_at, dst_day, std_at, std_day = VTIMEZONES[zone]
    return [
        "BEGIN:VTIMEZONE",
        f"TZID:{zone}",
        "BEGIN:DAYLIGHT",
        f"TZOFFSETFROM:{std}",
        f"TZOFFSETTO:{dst}",
        f"TZNAME:{dst_name}",
        f"DTSTART:1970{dst_at}",
        f"RRULE:FREQ=YEARLY;BYMONTH={int(dst_at[:2])};BYDAY={dst_day}",
        "END:DAYLIGHT",
        "BEGIN:STANDARD",
        f"TZOFFSETFROM:{dst}",
        f"TZOFFSETTO:{std}",
        f"TZNAME:{std_name}",
        f"DTSTART:1970{std_at}",
        f"RRULE:FREQ=YEARLY;BYMONTH={int(std_at[:2])};BYDAY={std_day}",
        "END:STANDARD",
        "END:VTIMEZONE",
    ]


def _occurrence_dates(kind: str, first: date, count: int) -> list[date]:
    """The first ``count`` dates of a series of ``kind`` starting on ``first``."""
    if kind in STEP_DAYS:
        return [first + timedelta(days=STEP_DAYS[kind] * k) for k in range(count)]
    if kind == "daily":
        return [first + timedelta(days=k) for k in range(count)]
    wanted = {0, 3} if kind == "mon-thu" else {0, 1, 2, 3, 4}
    found: list[date] = []
    day = first
    while len(found) < count:
        if day.weekday() in wanted:
            found.append(day)
        day += timedelta(days=1)
    return found


RULES = {
    "weekly": "FREQ=WEEKLY",
    "biweekly": "FREQ=WEEKLY;INTERVAL=2",
    "mon-thu": "FREQ=WEEKLY;BYDAY=MO,TH",
    "weekdays": "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR",
    "daily": "FREQ=DAILY",
}
# Occurrence counts per kind (uniform between the bounds).
COUNTS = {
    "weekly": (6, 19),
    "biweekly": (4, 10),
    "mon-thu": (8, 24),
    "weekdays": (8, 24),
    "daily": (5, 17),
}


class _Writer:
    def __init__(self, rng: random.Random, now: datetime, horizon: timedelta) -> None:
        self.rng = rng
        self.now = now
        self.until = now + horizon
        self.lines: list[str] = []
        self.events = 0
        self.overrides = 0
        self.exdates = 0
        self.kinds: dict[str, int] = {}
        self.terminations = {"COUNT": 0, "UNTIL": 0, "single": 0}
        self.two_room = 0
        self.expected = 0
        self.beyond = 0

    def _count(self, starts: list[datetime], lengths: list[timedelta], zone: ZoneInfo) -> None:
        for start, length in zip(starts, lengths, strict=True):
            begin = start.replace(tzinfo=zone).astimezone(UTC)
            if begin < self.until and begin + length > self.now:
                self.expected += 1

    def _rooms(self, rooms: list[int]) -> list[str]:
        mode = self.rng.choice(("attendee", "location", "both"))
        lines = []
        if mode in ("attendee", "both"):
            for r in rooms:
                lines.append(
                    f"ATTENDEE;CUTYPE=ROOM;ROLE=NON-PARTICIPANT;CN={room_name(r)}:"
                    f"mailto:room{r + 1:03d}@example.org"
                )
        if mode in ("location", "both"):
            lines.append("LOCATION:" + "\\, ".join(room_name(r) for r in rooms))
        return lines

    def event(self, index: int, rooms: list[int], hour: int) -> None:
        rng = self.rng
        zone_name = room_zone(rooms[0])
        zone = ZoneInfo(zone_name)
        kind = rng.choices([k for k, _ in KINDS], [w for _, w in KINDS])[0]
        self.kinds[kind] = self.kinds.get(kind, 0) + 1
        self.two_room += len(rooms) > 1
        minutes = rng.choice((30, 45, 60))
        length = timedelta(minutes=minutes)
        at = time(hour, rng.choice((0, 0, 0, 15)) if minutes < 60 else 0)
        today = self.now.astimezone(zone).date()
        if kind == "single":
            dates = [today + timedelta(days=rng.randint(0, HORIZON_DAYS - 10))]
        else:
            first = today + timedelta(days=rng.randint(-28, 110))
            if kind in ("mon-thu", "weekdays"):
                first -= timedelta(days=first.weekday())  # a Monday, the rule's first day
            elif kind != "daily":
                first -= timedelta(days=max(0, first.weekday() - 4))  # a weekday
            dates = _occurrence_dates(kind, first, rng.randint(*COUNTS[kind]))
        starts = [datetime.combine(d, at) for d in dates]
        uid = f"bench-{index:04d}@telecentre.example"
        title = f"Meeting {index:04d}" + (" (" + ", ".join(room_name(r) for r in rooms) + ")")
        sequence = rng.choice((0, 0, 0, 1, 2))
        organiser = f"{index % 37:02d}"
        head = [
            "BEGIN:VEVENT",
            f"UID:{uid}",
            "DTSTAMP:20260101T000000Z",
            f"SEQUENCE:{sequence}",
            f"SUMMARY:{title}",
            f"ORGANIZER;CN=Organiser {organiser}:mailto:organiser{organiser}@example.org",
            f"DTSTART;TZID={zone_name}:{_local(starts[0])}",
        ]
        if rng.random() < 1 / 3:
            head.append(f"DURATION:PT{minutes}M")
        else:
            head.append(f"DTEND;TZID={zone_name}:{_local(starts[0] + length)}")
        lengths = [length] * len(starts)
        moved: list[str] = []
        if kind == "single":
            self.terminations["single"] += 1
        else:
            if rng.random() < 0.5:
                head.append(f"RRULE:{RULES[kind]};COUNT={len(starts)}")
                self.terminations["COUNT"] += 1
            else:
                last = starts[-1].replace(tzinfo=zone)
                head.append(f"RRULE:{RULES[kind]};UNTIL={_utc(last)}")
                self.terminations["UNTIL"] += 1
            free = list(range(1, len(starts)))
            rng.shuffle(free)
            if rng.random() < EXDATE_SHARE and len(free) > 3:
                excluded = sorted(free[: rng.randint(1, 2)])
                free = free[len(excluded) :]
                head.append(
                    f"EXDATE;TZID={zone_name}:" + ",".join(_local(starts[k]) for k in excluded)
                )
                self.exdates += len(excluded)
                for k in reversed(excluded):
                    del starts[k], lengths[k]
                    free = [f - 1 if f > k else f for f in free]
            if rng.random() < OVERRIDE_SHARE and free:
                k = free[0]
                original = starts[k]
                shift = timedelta(minutes=30) if kind in ("daily", "weekdays") else timedelta(1)
                starts[k] = original + shift
                self.overrides += 1
                begin = starts[k].replace(tzinfo=zone)
                inside = begin < self.until and begin + length > self.now
                if not inside and max(begin, original.replace(tzinfo=zone)) >= self.until:
                    self.beyond += 1
                moved = [
                    "BEGIN:VEVENT",
                    f"UID:{uid}",
                    "DTSTAMP:20260101T000000Z",
                    f"SEQUENCE:{sequence}",
                    f"RECURRENCE-ID;TZID={zone_name}:{_local(original)}",
                    f"SUMMARY:{title} (moved)",
                    f"DTSTART;TZID={zone_name}:{_local(starts[k])}",
                    f"DTEND;TZID={zone_name}:{_local(starts[k] + length)}",
                    *self._rooms(rooms),
                    "END:VEVENT",
                ]
        self._count(starts, lengths, zone)
        self.lines += [*head, *self._rooms(rooms), "END:VEVENT", *moved]
        self.events += 1


def generate(now: datetime, *, seed: int = 20261128, horizon_days: int = HORIZON_DAYS) -> Generated:
    """The benchmark calendar for ``now`` (aware) and ``seed``."""
    writer = _Writer(random.Random(seed), now, timedelta(days=horizon_days))
    index = 0
    for room in range(ROOMS):
        for hour in OWN_BANDS:
            writer.event(index, [room], hour)
            index += 1
    for pair in range(0, ROOMS, 2):
        for hour in PAIR_BANDS:
            writer.event(index, [pair, pair + 1], hour)
            index += 1
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//telecentre//bench calendar//EN",
        "CALSCALE:GREGORIAN",
        "X-WR-CALNAME:telecentre bench",
    ]
    for zone in ZONES:
        lines += _vtimezone(zone)
    lines += [*writer.lines, "END:VCALENDAR"]
    return Generated(
        data="".join(_fold(line) for line in lines).encode("ascii"),
        events=writer.events,
        overrides=writer.overrides,
        exdates=writer.exdates,
        kinds=dict(sorted(writer.kinds.items())),
        terminations=writer.terminations,
        two_room_events=writer.two_room,
        expected_occurrences=writer.expected,
        overrides_beyond_horizon=writer.beyond,
    )
