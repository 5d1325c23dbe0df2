"""The availability finder: free/busy of rooms across centres and their common free
slots. Pure functions over value objects (rooms with their centre's zone, what holds
each room, working hours per site); ``orchestrator.desk.web_booking`` loads them.

Rules:

- The window is one day, or several, in the organiser's zone: each day runs from
  local midnight to the next (23 or 25 hours on a DST day), cut into ``step``
  columns counted in real time from that midnight.
- A room's site is open during its working hours (08:00-19:00 local by default),
  read each local day in the site's own zone; a meeting fits a site only when it
  lies wholly inside one such span.
- What holds a room (``Hold``: an occurrence with the booking's owner and its
  rooms' centres) blocks ``[start - buffer, end + buffer)``: the conflict test
  (``orchestrator.booking.conflicts``) refuses any gap shorter than the room's buffer, in
  either order, so the buffer counts as busy on both sides.
- A common free slot starts on a column boundary, is free in every room and open
  at every site, and does not start before ``now``. The proposals are the first
  ``limit`` such slots by start that do not overlap each other (an organiser wants
  different times to choose from, not one time in quarter-hour variations).
- Privacy (``orchestrator.people.access``): a hold shows its booking's title only to
  whoever ``can_see_booking``; everyone else reads ``access.BUSY``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from orchestrator.booking.recurrence import localize, to_wall, zone_info
from orchestrator.people import access
from orchestrator.people.accounts import Principal

STEP = timedelta(minutes=15)
DEFAULT_LIMIT = 5
NO_BUFFER = timedelta(0)

FREE = "free"
BUSY = "busy"
BUFFER = "buffer"
CLOSED = "closed"
PAST = "past"


@dataclass(frozen=True, slots=True)
class WorkingHours:
    """A site's opening hours, in its local time; ``end`` after ``start``."""

    start: time = time(8, 0)
    end: time = time(19, 0)

    def __post_init__(self) -> None:
        if self.end <= self.start:
            raise ValueError("working hours end after they start")


DEFAULT_HOURS = WorkingHours()


@dataclass(frozen=True, slots=True)
class RoomSite:
    """A room with what the finder needs of its centre."""

    room_id: str
    name: str
    centre_id: str
    centre: str
    timezone: str
    buffer: timedelta = NO_BUFFER
    requires_approval: bool = False


@dataclass(frozen=True, slots=True)
class Hold:
    """A room held by one occurrence over ``[start, end)`` (aware UTC, buffer not
    included), with what the privacy rule needs: the booking's owner, the owner's
    centre then, and the centres of every room the booking holds."""

    room_id: str
    start: datetime
    end: datetime
    booking_id: str | None = None
    title: str | None = None
    owner_id: str | None = None
    owner_centre_id: str | None = None
    room_centre_ids: tuple[str, ...] = ()


def visible_title(hold: Hold, viewer: Principal | None) -> str:
    """The hold's title for ``viewer``, or ``access.BUSY`` when they may not see it."""
    if hold.title and access.can_see_booking(
        viewer, hold.owner_id, hold.owner_centre_id, hold.room_centre_ids
    ):
        return hold.title
    return access.BUSY


def may_see(hold: Hold, viewer: Principal | None) -> bool:
    return access.can_see_booking(viewer, hold.owner_id, hold.owner_centre_id, hold.room_centre_ids)


@dataclass(frozen=True, slots=True)
class Slot:
    """``[start, end)``, aware UTC."""

    start: datetime
    end: datetime


@dataclass(frozen=True, slots=True)
class SiteTime:
    """A slot as one site reads it: local wall-clock start and end, and how many days
    the site's date differs from the organiser's."""

    centre_id: str
    centre: str
    timezone: str
    start_local: datetime
    end_local: datetime
    day_shift: int


@dataclass(frozen=True, slots=True)
class Run:
    """Consecutive grid columns of one room in the same state (and the same hold):
    ``span`` columns from ``start`` to ``end``. ``label`` is the hold's title as the
    viewer may see it (``access.BUSY`` otherwise); ``booking_id`` only when visible."""

    start: datetime
    end: datetime
    state: str
    span: int
    label: str | None = None
    booking_id: str | None = None


@dataclass(frozen=True, slots=True)
class RoomRow:
    room: RoomSite
    runs: tuple[Run, ...]


@dataclass(frozen=True, slots=True)
class HeaderSpan:
    """Columns sharing one local hour at a site: the first column's start (aware UTC)
    and the site's local date offset from the organiser's day."""

    start: datetime
    span: int
    day_shift: int


@dataclass(frozen=True, slots=True)
class SiteHeader:
    """One header row of the grid: a site (or the organiser's zone, ``centre_id``
    None) and its local hours over the columns."""

    centre_id: str | None
    name: str
    timezone: str
    spans: tuple[HeaderSpan, ...]


@dataclass(frozen=True, slots=True)
class DayGrid:
    """One day of the organiser: the columns shown (their starts, aware UTC), the
    header rows (the organiser's zone first, then each site) and a row per room."""

    day: date
    since: datetime
    until: datetime
    columns: tuple[datetime, ...]
    headers: tuple[SiteHeader, ...]
    rows: tuple[RoomRow, ...]


@dataclass(frozen=True, slots=True)
class Availability:
    zone: str
    step: timedelta
    duration: timedelta
    days: tuple[DayGrid, ...]
    proposals: tuple[Slot, ...]


# --- windows and opening hours -----------------------------------------------------------


def day_bounds(day: date, zone: str) -> tuple[datetime, datetime]:
    """The organiser's day as aware UTC ``[local midnight, next local midnight)``."""
    start = localize(datetime.combine(day, time()), zone)
    end = localize(datetime.combine(day + timedelta(days=1), time()), zone)
    return start, end


def window(first_day: date, days: int, zone: str) -> tuple[datetime, datetime]:
    """``days`` local days from ``first_day`` in ``zone``, as aware UTC bounds."""
    if days < 1:
        raise ValueError("a window has at least one day")
    return (
        day_bounds(first_day, zone)[0],
        day_bounds(first_day + timedelta(days=days - 1), zone)[1],
    )


def columns(since: datetime, until: datetime, step: timedelta = STEP) -> list[datetime]:
    """Column starts from ``since`` every ``step`` (real time) before ``until``."""
    if step <= timedelta(0):
        raise ValueError("a step is positive")
    found: list[datetime] = []
    at = since
    while at < until:
        found.append(at)
        at += step
    return found


def open_spans(
    zone: str, hours: WorkingHours, since: datetime, until: datetime
) -> list[tuple[datetime, datetime]]:
    """A site's working hours that meet ``[since, until)``, as aware UTC spans, one per
    local day (a day reaching into the window from either side included)."""
    first = to_wall(since, zone).date() - timedelta(days=1)
    last = to_wall(until, zone).date() + timedelta(days=1)
    spans: list[tuple[datetime, datetime]] = []
    day = first
    while day <= last:
        start = localize(datetime.combine(day, hours.start), zone)
        end = localize(datetime.combine(day, hours.end), zone)
        if start < until and end > since and start < end:
            spans.append((start, end))
        day += timedelta(days=1)
    return spans


def _inside(spans: Sequence[tuple[datetime, datetime]], start: datetime, end: datetime) -> bool:
    return any(s <= start and end <= e for s, e in spans)


def _hours_of(room: RoomSite, hours: Mapping[str, WorkingHours]) -> WorkingHours:
    return hours.get(room.centre_id, DEFAULT_HOURS)


def blocked(hold: Hold, buffer: timedelta) -> tuple[datetime, datetime]:
    """The interval a hold denies to a new meeting of its room."""
    return hold.start - buffer, hold.end + buffer


def _holds_by_room(holds: Iterable[Hold]) -> dict[str, list[Hold]]:
    grouped: dict[str, list[Hold]] = {}
    for hold in holds:
        grouped.setdefault(hold.room_id, []).append(hold)
    for entries in grouped.values():
        entries.sort(key=lambda h: (h.start, h.end))
    return grouped


def room_free(room: RoomSite, holds: Sequence[Hold], start: datetime, end: datetime) -> bool:
    """No hold of the room (widened by its buffer) meets ``[start, end)``."""
    for hold in holds:
        low, high = blocked(hold, room.buffer)
        if low < end and start < high:
            return False
    return True


# --- proposals ---------------------------------------------------------------------------


def common_free_slots(
    rooms: Sequence[RoomSite],
    holds: Iterable[Hold],
    since: datetime,
    until: datetime,
    duration: timedelta,
    *,
    hours: Mapping[str, WorkingHours] | None = None,
    step: timedelta = STEP,
    now: datetime | None = None,
    limit: int = DEFAULT_LIMIT,
) -> list[Slot]:
    """The first ``limit`` slots of ``duration`` starting in ``[since, until)`` on a
    ``step`` boundary counted from ``since``, free in every room, inside every site's
    working hours, not before ``now``, and not overlapping each other."""
    if duration <= timedelta(0):
        raise ValueError("a meeting lasts a positive time")
    if not rooms or limit < 1:
        return []
    hours = hours or {}
    by_room = _holds_by_room(holds)
    reach = until + duration
    opening = {
        room.room_id: open_spans(room.timezone, _hours_of(room, hours), since, reach)
        for room in rooms
    }
    found: list[Slot] = []
    for start in columns(since, until, step):
        if now is not None and start < now:
            continue
        if found and start < found[-1].end:
            continue
        end = start + duration
        if all(
            _inside(opening[room.room_id], start, end)
            and room_free(room, by_room.get(room.room_id, ()), start, end)
            for room in rooms
        ):
            found.append(Slot(start, end))
            if len(found) >= limit:
                break
    return found


def site_times(
    start: datetime, end: datetime, zone: str, rooms: Sequence[RoomSite]
) -> list[SiteTime]:
    """``[start, end)`` as each site (centre, in room order) reads it; ``day_shift``
    compares the site's start date with the organiser's (``zone``)."""
    home = to_wall(start, zone).date()
    seen: set[str] = set()
    found: list[SiteTime] = []
    for room in rooms:
        if room.centre_id in seen:
            continue
        seen.add(room.centre_id)
        local_start = to_wall(start, room.timezone)
        found.append(
            SiteTime(
                room.centre_id,
                room.centre,
                room.timezone,
                local_start,
                to_wall(end, room.timezone),
                (local_start.date() - home).days,
            )
        )
    return found


# --- the grid ----------------------------------------------------------------------------


def _cell(
    room: RoomSite,
    holds: Sequence[Hold],
    opening: Sequence[tuple[datetime, datetime]],
    start: datetime,
    end: datetime,
    now: datetime | None,
) -> tuple[str, Hold | None]:
    for hold in holds:
        if hold.start < end and start < hold.end:
            return BUSY, hold
    if not room_free(room, holds, start, end):
        return BUFFER, None
    if not _inside(opening, start, end):
        return CLOSED, None
    if now is not None and start < now:
        return PAST, None
    return FREE, None


def _header(
    centre_id: str | None, name: str, zone: str, shown: Sequence[datetime], day: date
) -> SiteHeader:
    spans: list[HeaderSpan] = []
    last_key: tuple[date, int, timedelta | None] | None = None
    for start in shown:
        local = start.astimezone(zone_info(zone))
        key = (local.date(), local.hour, local.utcoffset())
        if spans and key == last_key:
            previous = spans[-1]
            spans[-1] = HeaderSpan(previous.start, previous.span + 1, previous.day_shift)
        else:
            spans.append(HeaderSpan(start, 1, (local.date() - day).days))
        last_key = key
    return SiteHeader(centre_id, name, zone, tuple(spans))


def day_grid(
    day: date,
    zone: str,
    rooms: Sequence[RoomSite],
    holds: Iterable[Hold],
    *,
    viewer: Principal | None,
    hours: Mapping[str, WorkingHours] | None = None,
    step: timedelta = STEP,
    now: datetime | None = None,
) -> DayGrid:
    """The organiser's ``day`` as a grid: the columns from the first to the last that
    some site is open in (the whole day when none is), each room's runs of cells, and
    a header row for the organiser's zone and for each site."""
    hours = hours or {}
    since, until = day_bounds(day, zone)
    every = columns(since, until, step)
    by_room = _holds_by_room(holds)
    opening = {
        room.room_id: open_spans(room.timezone, _hours_of(room, hours), since, until + step)
        for room in rooms
    }
    open_columns = [
        i
        for i, start in enumerate(every)
        if any(_inside(opening[r.room_id], start, start + step) for r in rooms)
    ]
    if open_columns:
        shown = every[open_columns[0] : open_columns[-1] + 1]
    else:
        shown = every
    rows: list[RoomRow] = []
    for room in rooms:
        holds_here = by_room.get(room.room_id, [])
        cells = []
        for start in shown:
            end = min(start + step, until)
            state, hold = _cell(room, holds_here, opening[room.room_id], start, end, now)
            cells.append((start, end, state, hold))
        rows.append(RoomRow(room, _runs_by_hold(cells, viewer)))
    headers = [_header(None, zone, zone, shown, day)]
    seen: set[str] = set()
    for room in rooms:
        if room.centre_id not in seen:
            seen.add(room.centre_id)
            headers.append(_header(room.centre_id, room.centre, room.timezone, shown, day))
    return DayGrid(day, since, until, tuple(shown), tuple(headers), tuple(rows))


def _runs_by_hold(
    cells: Sequence[tuple[datetime, datetime, str, Hold | None]], viewer: Principal | None
) -> tuple[Run, ...]:
    """Merge consecutive cells of one state; busy cells merge only within one hold."""
    runs: list[Run] = []
    holds: list[Hold | None] = []
    for start, end, state, hold in cells:
        if runs and runs[-1].state == state and holds[-1] is hold and runs[-1].end == start:
            last = runs[-1]
            runs[-1] = Run(last.start, end, state, last.span + 1, last.label, last.booking_id)
            continue
        label = visible_title(hold, viewer) if hold is not None else None
        booking_id = hold.booking_id if hold is not None and may_see(hold, viewer) else None
        runs.append(Run(start, end, state, 1, label, booking_id))
        holds.append(hold)
    return tuple(runs)


def availability(
    first_day: date,
    days: int,
    zone: str,
    rooms: Sequence[RoomSite],
    holds: Sequence[Hold],
    duration: timedelta,
    *,
    viewer: Principal | None,
    hours: Mapping[str, WorkingHours] | None = None,
    step: timedelta = STEP,
    now: datetime | None = None,
    limit: int = DEFAULT_LIMIT,
) -> Availability:
    """The grid of each day of the window and the first common free slots in it."""
    since, until = window(first_day, days, zone)
    grids = tuple(
        day_grid(
            first_day + timedelta(days=i),
            zone,
            rooms,
            holds,
            viewer=viewer,
            hours=hours,
            step=step,
            now=now,
        )
        for i in range(days)
    )
    proposals = common_free_slots(
        rooms, holds, since, until, duration, hours=hours, step=step, now=now, limit=limit
    )
    return Availability(zone, step, duration, grids, tuple(proposals))
