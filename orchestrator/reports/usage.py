"""Usage per centre and per month: sessions, minutes and rooms used (the CDR report).

The rules (pure functions over value objects; the store function at the end only
reads the rows they need):

- A session *took place* when it reached ``live`` (a ``live`` transition is on
  record: a session the service missed entirely goes straight to ``ended``) and was
  not cancelled or failed afterwards.
- A room *took part* in a session when signalling recorded it joining and its time
  in the session, clipped to the session, is positive; or, having no join on record
  (reserve-only and manual rooms, lost reports), when the session took place and
  the room was not released as a no-show.
- Its *minutes* are measured from its participation, ``joined_at`` to ``left_at``
  (or the session's end, or now while it runs) clipped to ``[start, end)``, where
  a join is on record; otherwise the booked minutes, ``start`` to ``end`` (or now
  while it runs). The CDR keeps the first join and the last departure, so the gaps
  of a room that dropped and rejoined are counted as used.
- A session counts once for every centre with a room that took part, in the month
  of its start *in that centre's time zone*: one session can be in January for
  Montréal and in February for Paris. Its minutes count in that month whole.
- A centre's minutes are room-minutes: the sum of its rooms' minutes (two rooms of
  one centre in one hour-long session make 120 minutes).
- Minutes are whole from the start: each room's time in a session is rounded to the
  nearest minute (``room_minutes``) before anything is added, so every total is the
  exact sum of its parts: a centre's month of its rooms' sessions, its year of its
  months, the network's of its centres' years. (Rounding each sum separately made
  three centres of 7 min 45 s each in a session under way show 23 minutes across
  the network beside 8 + 8 + 8.) The report reads ``now`` once, so every room of a
  session under way is counted up to the same instant.
- Rooms used: the centre's distinct rooms that took part in that month's sessions.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlmodel import col

from orchestrator.db import DbSession
from orchestrator.lifecycle import ENDED, ENDING, LIVE
from orchestrator.models import Centre, Participation, Room, Session, SessionTransitionRecord

TOOK_PLACE = frozenset({LIVE, ENDING, ENDED})
MONTHS = tuple(range(1, 13))
# The widest UTC offsets in use (UTC-12 .. UTC+14): a year in any centre's zone lies
# inside the UTC year widened by these.
_ZONE_SLACK_BEFORE = timedelta(hours=14)
_ZONE_SLACK_AFTER = timedelta(hours=12)


@dataclass(frozen=True, slots=True)
class CentreRef:
    id: str
    name: str
    timezone: str


@dataclass(frozen=True, slots=True)
class RoomPart:
    """A room's participation as the report needs it (aware UTC instants)."""

    room_id: str
    centre_id: str
    joined_at: datetime | None = None
    left_at: datetime | None = None
    released_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class UsageSession:
    id: str
    start: datetime
    end: datetime
    state: str
    rooms: tuple[RoomPart, ...]
    reached_live: bool = True


@dataclass(frozen=True, slots=True)
class MonthUsage:
    """One centre's figures for one month (``minutes``: the sum of its rooms' whole
    minutes in each session)."""

    centre_id: str
    centre_name: str
    year: int
    month: int
    sessions: int
    minutes: int
    rooms_used: int

    @property
    def label(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"


@dataclass(frozen=True, slots=True)
class CentreUsage:
    centre: CentreRef
    months: tuple[MonthUsage, ...]
    sessions: int
    minutes: int
    rooms_used: int
    """Distinct rooms over the year (not the sum of the months)."""


@dataclass(frozen=True, slots=True)
class UsageReport:
    year: int
    centres: tuple[CentreUsage, ...]
    sessions: int
    """Distinct sessions over the network: a session of two centres counts once."""
    minutes: int
    rooms_used: int

    def rows(self) -> list[MonthUsage]:
        return [m for c in self.centres for m in c.months]


def _seconds(start: datetime, end: datetime) -> float:
    return max(0.0, (end - start).total_seconds())


def room_seconds(session: UsageSession, part: RoomPart, now: datetime) -> float | None:
    """Seconds the room used in the session, or None if it did not take part."""
    took_place = session.reached_live and session.state in TOOK_PLACE
    until = session.end if session.state == ENDED else min(session.end, now)
    if part.joined_at is not None:
        left = part.left_at if part.left_at is not None else until
        used = _seconds(max(part.joined_at, session.start), min(left, session.end))
        return used if used > 0 else None
    if took_place and part.released_at is None:
        return _seconds(session.start, until)
    return None


def _minutes(seconds: float) -> int:
    return int((seconds + 30) // 60)


def room_minutes(session: UsageSession, part: RoomPart, now: datetime) -> int | None:
    """Whole minutes the room used in the session (nearest, half up), or None if it
    did not take part: the unit every usage figure adds up."""
    used = room_seconds(session, part, now)
    return None if used is None else _minutes(used)


def month_in_zone(instant: datetime, zone: str) -> tuple[int, int]:
    local = instant.astimezone(ZoneInfo(zone))
    return local.year, local.month


def aggregate(
    sessions: Iterable[UsageSession], centres: Sequence[CentreRef], year: int, now: datetime
) -> UsageReport:
    """The year's report: every centre, every month (zeros included), by centre name."""
    by_centre = {c.id: c for c in centres}
    counted: dict[tuple[str, int], set[str]] = {}
    minutes: dict[tuple[str, int], int] = {}
    rooms: dict[tuple[str, int], set[str]] = {}
    network_sessions: set[str] = set()
    network_rooms: set[str] = set()
    for session in sessions:
        for part in session.rooms:
            centre = by_centre.get(part.centre_id)
            if centre is None:
                continue
            used = room_minutes(session, part, now)
            if used is None:
                continue
            y, m = month_in_zone(session.start, centre.timezone)
            if y != year:
                continue
            key = (centre.id, m)
            counted.setdefault(key, set()).add(session.id)
            minutes[key] = minutes.get(key, 0) + used
            rooms.setdefault(key, set()).add(part.room_id)
            network_sessions.add(session.id)
            network_rooms.add(part.room_id)
    out = []
    for centre in sorted(centres, key=lambda c: (c.name.casefold(), c.id)):
        months = tuple(
            MonthUsage(
                centre_id=centre.id,
                centre_name=centre.name,
                year=year,
                month=m,
                sessions=len(counted.get((centre.id, m), ())),
                minutes=minutes.get((centre.id, m), 0),
                rooms_used=len(rooms.get((centre.id, m), ())),
            )
            for m in MONTHS
        )
        year_rooms: set[str] = set().union(*(rooms.get((centre.id, m), set()) for m in MONTHS))
        out.append(
            CentreUsage(
                centre=centre,
                months=months,
                sessions=sum(x.sessions for x in months),
                minutes=sum(x.minutes for x in months),
                rooms_used=len(year_rooms),
            )
        )
    return UsageReport(
        year=year,
        centres=tuple(out),
        sessions=len(network_sessions),
        minutes=sum(c.minutes for c in out),
        rooms_used=len(network_rooms),
    )


def year_window(year: int) -> tuple[datetime, datetime]:
    """UTC bounds wide enough to hold ``year`` in every time zone."""
    start = datetime(year, 1, 1, tzinfo=UTC) - _ZONE_SLACK_BEFORE
    end = datetime(year + 1, 1, 1, tzinfo=UTC) + _ZONE_SLACK_AFTER
    return start, end


# --- store ----------------------------------------------------------------------------


def load_centres(db: DbSession) -> list[CentreRef]:
    rows = db.connection().execute(
        sa.select(col(Centre.id), col(Centre.name), col(Centre.timezone)).order_by(col(Centre.name))
    )
    return [CentreRef(i, n, tz) for i, n, tz in rows]


def load_sessions(db: DbSession, since: datetime, until: datetime) -> list[UsageSession]:
    """Sessions starting in ``[since, until)`` with their rooms' participations."""
    went_live = (
        sa.select(col(SessionTransitionRecord.session_id))
        .where(
            col(SessionTransitionRecord.session_id) == col(Session.id),
            col(SessionTransitionRecord.state) == LIVE,
        )
        .exists()
    )
    rows = db.connection().execute(
        sa.select(
            col(Session.id),
            col(Session.start_utc),
            col(Session.end_utc),
            col(Session.state),
            went_live,
            col(Participation.room_id),
            col(Room.centre_id),
            col(Participation.joined_at),
            col(Participation.left_at),
            col(Participation.released_at),
        )
        .join(Participation, col(Participation.session_id) == col(Session.id))
        .join(Room, col(Room.id) == col(Participation.room_id))
        .where(col(Session.start_utc) >= since, col(Session.start_utc) < until)
        .order_by(col(Session.start_utc), col(Session.id), col(Participation.room_id))
    )
    sessions: dict[str, tuple[datetime, datetime, str, bool, list[RoomPart]]] = {}
    for sid, start, end, state, live, room_id, centre_id, joined, left, released in rows:
        entry = sessions.setdefault(sid, (_aware(start), _aware(end), state, bool(live), []))
        entry[4].append(
            RoomPart(
                room_id,
                centre_id,
                _aware_or_none(joined),
                _aware_or_none(left),
                _aware_or_none(released),
            )
        )
    return [
        UsageSession(sid, start, end, state, tuple(parts), reached_live=live)
        for sid, (start, end, state, live, parts) in sessions.items()
    ]


def first_year(db: DbSession) -> int | None:
    """The year of the earliest session on record (UTC), for the year chooser."""
    found = db.connection().execute(sa.select(sa.func.min(col(Session.start_utc)))).scalar()
    return None if found is None else _aware(found).year


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _aware_or_none(value: datetime | None) -> datetime | None:
    return None if value is None else _aware(value)


def usage_report(db: DbSession, year: int, now: datetime) -> UsageReport:
    since, until = year_window(year)
    return aggregate(load_sessions(db, since, until), load_centres(db), year, now)
