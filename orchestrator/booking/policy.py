"""Booking policy: what a booking may ask for, per booking and per room. Pure functions.

Per booking (issue 3):

- connect mode: ``automatic`` (the rooms join by themselves at ``start - lead``),
  ``one-button`` (the room's panel shows a join button), ``reserve-only`` (the
  rooms are held, no call is set up). ``manual`` is accepted as another name for
  ``one-button``. All-day occurrences never auto-connect: they are reserve-only,
  whatever was asked;
- lead (pre-roll), 0 to 3600 seconds.

Per room:

- a maximum duration for one occurrence (none by default);
- how far ahead one may book (``max_advance_days``, 180 by default, like
  Exchange's booking window): the *first* occurrence of a request (a one-off, a
  new series, the new part of a split series, one moved occurrence) must start
  within it. Later occurrences of an accepted series are booked as the horizon
  reaches them;
- a buffer between two occurrences (see ``orchestrator.booking.conflicts``).

The horizon, within which every occurrence of a series has its session, is never
shorter than the furthest any room may be booked ahead: so whatever one can book
is tested against every series occurrence that could collide with it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

# The connect modes are named once for every plane (common/sessions.py); the rules are here.
from common.sessions import AUTOMATIC as AUTOMATIC
from common.sessions import CALL_MODES as CALL_MODES
from common.sessions import CONNECT_MODE_ALIASES as CONNECT_MODE_ALIASES
from common.sessions import CONNECT_MODES as CONNECT_MODES
from common.sessions import MANUAL as MANUAL
from common.sessions import ONE_BUTTON as ONE_BUTTON
from common.sessions import RESERVE_ONLY as RESERVE_ONLY

MAX_LEAD_SECONDS = 3600
DEFAULT_MAX_ADVANCE_DAYS = 180


class PolicyError(ValueError):
    """A request the policy refuses; ``code`` is stable (the API and CLI show it)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class BookingSettings:
    """The booking core's settings.

    ``horizon_days``: occurrences starting within this many days have their session
    (raised to the longest room booking window, see ``horizon``);
    ``max_occurrences``: the most occurrences one series expands to in one pass;
    ``no_show_seconds``: a room not joined this long after the start is released.
    """

    horizon_days: int = 180
    max_occurrences: int = 1000
    no_show_seconds: int = 600

    def __post_init__(self) -> None:
        if self.horizon_days < 1:
            raise ValueError("horizon_days is at least 1")
        if self.max_occurrences < 1:
            raise ValueError("max_occurrences is at least 1")
        if self.no_show_seconds < 0:
            raise ValueError("no_show_seconds is not negative")


@dataclass(frozen=True, slots=True)
class RoomPolicy:
    room_id: str
    buffer_seconds: int = 0
    max_duration_seconds: int | None = None
    max_advance_days: int = DEFAULT_MAX_ADVANCE_DAYS

    @property
    def buffer(self) -> timedelta:
        return timedelta(seconds=self.buffer_seconds)


def connect_mode(mode: str, *, all_day: bool = False) -> str:
    """The canonical connect mode for ``mode``; reserve-only for all-day occurrences."""
    canonical = CONNECT_MODE_ALIASES.get(mode, mode)
    if canonical not in CONNECT_MODES:
        names = sorted(CONNECT_MODES | CONNECT_MODE_ALIASES.keys())
        raise PolicyError("invalid-connect-mode", f"connect mode is one of {names}")
    return RESERVE_ONLY if all_day else canonical


def joins_call(mode: str) -> bool:
    """Whether rooms of a booking in ``mode`` are expected to join (and so can no-show)."""
    return CONNECT_MODE_ALIASES.get(mode, mode) in CALL_MODES


def check_lead(lead_seconds: int) -> int:
    if not 0 <= lead_seconds <= MAX_LEAD_SECONDS:
        raise PolicyError("invalid-lead", f"lead is between 0 and {MAX_LEAD_SECONDS} s")
    return lead_seconds


def horizon(settings: BookingSettings, max_advance_days: Iterable[int] = ()) -> timedelta:
    """How far ahead sessions exist: the setting, or the longest room booking window."""
    return timedelta(days=max([settings.horizon_days, *max_advance_days]))


def check_duration(duration: timedelta, rooms: Iterable[RoomPolicy]) -> None:
    """An occurrence may not last longer than any of its rooms allows."""
    if duration <= timedelta(0):
        raise PolicyError("invalid-time", "an occurrence ends after it starts")
    for room in rooms:
        limit = room.max_duration_seconds
        if limit is not None and duration > timedelta(seconds=limit):
            raise PolicyError(
                "too-long",
                f"room {room.room_id} takes occurrences of at most {limit} s "
                f"(asked {int(duration.total_seconds())} s)",
            )


def check_advance(first_start: datetime, rooms: Iterable[RoomPolicy], now: datetime) -> None:
    """The first occurrence of a request starts within every room's booking window."""
    for room in rooms:
        latest = now + timedelta(days=room.max_advance_days)
        if first_start > latest:
            raise PolicyError(
                "too-far-ahead",
                f"room {room.room_id} is booked at most {room.max_advance_days} days ahead "
                f"(until {latest.isoformat()})",
            )


def no_show_deadline(start: datetime, settings: BookingSettings) -> datetime:
    """A room that has not joined by then is released for the rest of the occurrence."""
    return start + timedelta(seconds=settings.no_show_seconds)
