"""Which requested occurrences collide with what already holds a room: a pure function.

Rules (issue 3, "Booking core"):

- Intervals are half-open, ``[start, end)``: a meeting ending at 10:00 and one
  starting at 10:00 do not collide.
- A room's buffer ``b`` is the least gap between two of its occurrences (time to
  tidy the room and let the next group in). It widens only the *tested* interval,
  and it does so symmetrically: every occurrence of the room, the one requested
  and the ones already booked alike, is tested as ``[start, end + b)``. Two
  occurrences therefore collide when the gap between them, in either order, is
  shorter than ``b``. The widened interval is what ``room_slot`` stores, so that
  PostgreSQL's exclusion constraint enforces the very same rule; the session's
  own times, the invitations and the feeds never include the buffer.
- Cancelled and transparent occurrences never block (``Occurrence.blocks``); a
  room released for a no-show holds its slot only up to its release, which the
  caller gives as the ``Busy`` end. ``Busy`` entries are blocking time by
  definition: the caller leaves out what does not block.
- A multi-room request is all-or-nothing per occurrence: one busy room is enough
  for the occurrence to conflict (each busy room is named).
- Requested occurrences are also tested against each other, in order of start:
  an occurrence that collides with an earlier *accepted* one of the same request
  conflicts with it (a ``Busy`` without session or booking id).
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from orchestrator.booking.values import Occurrence

NO_BUFFER = timedelta(0)


@dataclass(frozen=True, slots=True)
class Busy:
    """A room held over ``[start, end)`` (aware UTC, buffer *not* included) by one
    occurrence: its session and booking, and the title to show."""

    room_id: str
    start: datetime
    end: datetime
    session_id: str | None = None
    booking_id: str | None = None
    title: str | None = None


@dataclass(frozen=True, slots=True)
class SlotRequest:
    """One occurrence asking for every one of ``room_ids``."""

    occurrence: Occurrence
    room_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Conflict:
    """``occurrence`` cannot have ``room_id``: ``busy`` holds it."""

    room_id: str
    occurrence: Occurrence
    busy: Busy

    @property
    def booking_id(self) -> str | None:
        return self.busy.booking_id

    @property
    def session_id(self) -> str | None:
        return self.busy.session_id

    def __str__(self) -> str:
        return self.describe()

    def describe(self) -> str:
        what = self.busy.title or self.busy.booking_id or "another occurrence of this request"
        return (
            f"room {self.room_id} is taken {self.busy.start.isoformat()} - "
            f"{self.busy.end.isoformat()} by {what!s} "
            f"(requested {self.occurrence.start.isoformat()} - {self.occurrence.end.isoformat()})"
        )


def held(
    start: datetime, end: datetime, buffer: timedelta = NO_BUFFER
) -> tuple[datetime, datetime]:
    """The interval an occurrence holds its room for in the conflict test."""
    if buffer < NO_BUFFER:
        raise ValueError("a buffer is not negative")
    return start, end + buffer


def overlaps(a: tuple[datetime, datetime], b: tuple[datetime, datetime]) -> bool:
    """Half-open intervals ``[start, end)`` share an instant."""
    return a[0] < b[1] and b[0] < a[1]


class _RoomIndex:
    """A room's held intervals sorted by start, with the running maximum of their ends,
    so the ones overlapping a probe are found without scanning the whole list."""

    def __init__(self, entries: Iterable[tuple[datetime, datetime, Busy]]) -> None:
        self._items = sorted(entries, key=lambda e: (e[0], e[1]))
        self._starts = [e[0] for e in self._items]
        self._max_end: list[datetime] = []
        for _, end, _ in self._items:
            self._max_end.append(end if not self._max_end else max(end, self._max_end[-1]))

    def hits(self, start: datetime, end: datetime) -> list[Busy]:
        found: list[Busy] = []
        index = bisect.bisect_left(self._starts, end) - 1
        while index >= 0 and self._max_end[index] > start:
            s, e, busy = self._items[index]
            if overlaps((s, e), (start, end)):
                found.append(busy)
            index -= 1
        found.reverse()
        return found

    def add(self, start: datetime, end: datetime, busy: Busy) -> None:
        """Append an interval starting no earlier than every one held."""
        if self._starts and start < self._starts[-1]:
            raise ValueError("intervals are added in order of start")
        self._items.append((start, end, busy))
        self._starts.append(start)
        self._max_end.append(end if not self._max_end else max(end, self._max_end[-1]))


def _by_room(busy: Mapping[str, Sequence[Busy]] | Iterable[Busy]) -> dict[str, list[Busy]]:
    if isinstance(busy, Mapping):
        return {room: list(entries) for room, entries in busy.items()}
    grouped: dict[str, list[Busy]] = defaultdict(list)
    for entry in busy:
        grouped[entry.room_id].append(entry)
    return grouped


def find_conflicts(
    requests: Iterable[SlotRequest],
    busy: Mapping[str, Sequence[Busy]] | Iterable[Busy],
    buffers: Mapping[str, timedelta] | None = None,
) -> list[Conflict]:
    """Every (room, requested occurrence, busy occurrence) collision, by the rules above.

    ``busy`` is what already holds the rooms (by room id, or a flat iterable);
    ``buffers`` maps a room id to its buffer (rooms not named have none). The result
    is ordered by occurrence start, then room id, then busy start.
    """
    buffer_of = buffers or {}
    existing = _by_room(busy)
    indexes: dict[str, _RoomIndex] = {}
    accepted: dict[str, _RoomIndex] = defaultdict(lambda: _RoomIndex(()))

    def index(room_id: str) -> _RoomIndex:
        found = indexes.get(room_id)
        if found is None:
            b = buffer_of.get(room_id, NO_BUFFER)
            entries = ((*held(x.start, x.end, b), x) for x in existing.get(room_id, ()))
            found = indexes[room_id] = _RoomIndex(entries)
        return found

    ordered = sorted(
        (r for r in requests if r.occurrence.blocks),
        key=lambda r: (r.occurrence.start, r.occurrence.end, r.occurrence.recurrence_id),
    )
    conflicts: list[Conflict] = []
    for request in ordered:
        occurrence = request.occurrence
        found: list[Conflict] = []
        for room_id in sorted(set(request.room_ids)):
            start, end = held(occurrence.start, occurrence.end, buffer_of.get(room_id, NO_BUFFER))
            hits = index(room_id).hits(start, end) + accepted[room_id].hits(start, end)
            found += [Conflict(room_id, occurrence, hit) for hit in hits]
        if found:
            conflicts += sorted(found, key=lambda c: (c.room_id, c.busy.start, c.busy.end))
            continue
        for room_id in set(request.room_ids):
            start, end = held(occurrence.start, occurrence.end, buffer_of.get(room_id, NO_BUFFER))
            mine = Busy(room_id, occurrence.start, occurrence.end, title=occurrence.title)
            accepted[room_id].add(start, end, mine)
    return conflicts


def conflicting(conflicts: Iterable[Conflict]) -> frozenset[datetime]:
    """The recurrence ids of the occurrences that conflict."""
    return frozenset(c.occurrence.recurrence_id for c in conflicts)
