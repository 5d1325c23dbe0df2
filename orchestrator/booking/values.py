"""Value objects of the booking core: a series as calendars describe it, and its occurrences.

A series keeps wall-clock times in its IANA zone (RFC 5545 local time with TZID),
so a weekly 09:00 Europe/Paris meeting stays at 09:00 across DST; occurrences
carry both their UTC instants and their wall-clock times. These objects are
plain data: expansion, conflicts, import and export are pure functions over them
(orchestrator/booking/recurrence.py, orchestrator/booking/conflicts.py, orchestrator/ical_*.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

CONFIRMED = "confirmed"
CANCELLED = "cancelled"
TENTATIVE = "tentative"


@dataclass(frozen=True, slots=True)
class OverrideSpec:
    """One occurrence changed on its own (RECURRENCE-ID), or, with ``this_and_future``,
    that occurrence and every later one (RANGE=THISANDFUTURE)."""

    recurrence_id: datetime  # naive wall-clock original start, in the series zone
    start_local: datetime  # naive wall-clock new start, in the series zone
    duration: timedelta
    status: str = CONFIRMED
    title: str | None = None
    sequence: int = 0
    this_and_future: bool = False


@dataclass(frozen=True, slots=True)
class SeriesSpec:
    """A booking as a calendar sees it: its first occurrence and its recurrence.

    ``start_local`` is naive wall-clock time in ``timezone`` (midnight for all-day
    events); ``rrules`` are RRULE values without the ``RRULE:`` prefix (a VEVENT may
    carry several, RFC 5545 allows it); ``rdates`` and ``exdates`` are naive
    wall-clock times in ``timezone``.
    """

    uid: str
    title: str
    timezone: str
    start_local: datetime
    duration: timedelta
    all_day: bool = False
    rrules: tuple[str, ...] = ()
    rdates: tuple[datetime, ...] = ()
    exdates: tuple[datetime, ...] = ()
    overrides: tuple[OverrideSpec, ...] = ()
    status: str = CONFIRMED
    transparent: bool = False
    sequence: int = 0
    organiser: str | None = None
    rooms: tuple[str, ...] = field(default=())  # room ids, when known


@dataclass(frozen=True, slots=True)
class Occurrence:
    """One meeting of a series. ``recurrence_id`` (aware UTC) names it for good, even
    after it moved; ``start``/``end`` are aware UTC; ``*_local`` are naive wall-clock
    times in the series zone."""

    recurrence_id: datetime
    start: datetime
    end: datetime
    start_local: datetime
    end_local: datetime
    status: str = CONFIRMED
    transparent: bool = False
    title: str | None = None

    @property
    def blocks(self) -> bool:
        """Cancelled and transparent occurrences never hold a room."""
        return self.status != CANCELLED and not self.transparent
