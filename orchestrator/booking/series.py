"""A booking's series as calendars describe it: the master row, its expansion, its overrides.

The reading side of ``orchestrator.booking.commands``: a booking row is a series master
(UID, SEQUENCE, DTSTART as wall-clock time in its zone, RRULEs, RDATEs, EXDATEs,
STATUS, TRANSP); occurrences changed on their own are their sessions. Also the
checks and the writing of a master shared by every command.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlmodel import col, select

from orchestrator import lifecycle
from orchestrator.booking import policy, recurrence
from orchestrator.booking.policy import BookingSettings, PolicyError, RoomPolicy
from orchestrator.booking.store import (
    BookingResult,
    OnConflict,
    apply_occurrences,
    booking_room_ids,
)
from orchestrator.booking.values import CANCELLED, CONFIRMED, Occurrence, OverrideSpec, SeriesSpec
from orchestrator.db import DbSession
from orchestrator.errors import DomainError
from orchestrator.inputs import EARLIEST, LATEST, check_wall_time, one_line
from orchestrator.models import Booking, Participation, Room, Session

LOCAL = "local"
FAR = timedelta(days=366 * 10)

# --- pure helpers -----------------------------------------------------------------------


def _wall(value: str) -> datetime:
    return datetime.fromisoformat(value)


def _walls(text: str) -> tuple[datetime, ...]:
    return tuple(_wall(v) for v in json.loads(text or "[]"))


def _dump_walls(values: Sequence[datetime]) -> str:
    return json.dumps([v.replace(tzinfo=None).isoformat() for v in values])


def truncate_rule(rule: str, before: datetime, *, all_day: bool, zone: str) -> str:
    """``rule`` ending just before the occurrence starting at ``before`` (aware): an
    UNTIL (UTC for timed series, the previous local date for all-day ones, as RFC
    5545 3.3.10 wants UNTIL of DTSTART's type) replaces COUNT and any earlier UNTIL,
    whichever ends first is kept."""
    parts = [p for p in rule.split(";") if p and p.split("=", 1)[0].upper() not in ("COUNT",)]
    old_until = next((p for p in parts if p.upper().startswith("UNTIL=")), None)
    parts = [p for p in parts if not p.upper().startswith("UNTIL=")]
    if all_day:
        until = (recurrence.to_wall(before, zone).date() - timedelta(days=1)).strftime("%Y%m%d")
    else:
        until = (before - timedelta(seconds=1)).astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    if old_until is not None and old_until.split("=", 1)[1][:8] < until[:8]:
        until = old_until.split("=", 1)[1]
    return ";".join([*parts, f"UNTIL={until}"])


def with_count(rule: str, count: int) -> str:
    return ";".join(
        f"COUNT={count}" if p.upper().startswith("COUNT=") else p for p in rule.split(";") if p
    )


def count_of(rule: str) -> int | None:
    for part in rule.split(";"):
        if part.upper().startswith("COUNT="):
            return int(part.split("=", 1)[1])
    return None


def policy_error(exc: PolicyError) -> DomainError:
    return DomainError(exc.code, exc.message)


def recurrence_error(exc: ValueError) -> DomainError:
    return DomainError(getattr(exc, "code", "invalid-recurrence"), str(exc))


def session_occurrence(occurrence: Occurrence, series_title: str) -> Occurrence:
    """A session keeps a title only when its occurrence was retitled."""
    if occurrence.title == series_title:
        return dataclasses.replace(occurrence, title=None)
    return occurrence


# --- reading ----------------------------------------------------------------------------


def booking_or_fail(db: DbSession, booking_id: str) -> Booking:
    found = db.get(Booking, booking_id, populate_existing=True)
    if found is None:
        raise DomainError("not-found", f"no booking {booking_id!r}")
    return found


def find_booking(db: DbSession, source: str, uid: str) -> Booking | None:
    """The booking ``source`` (``local``, ``feed:<id>``, ...) knows by ``uid``."""
    return db.exec(select(Booking).where(Booking.source == source, Booking.uid == uid)).first()


def horizon_end(db: DbSession, now: datetime, settings: BookingSettings) -> datetime:
    """Sessions exist for occurrences starting before this instant (``policy.horizon``
    over every room's booking window)."""
    longest = db.exec(select(sa.func.max(Room.max_advance_days))).one()
    return now + policy.horizon(settings, [longest] if longest is not None else [])


def master_spec(booking: Booking) -> SeriesSpec:
    return SeriesSpec(
        uid=booking.uid,
        title=booking.title,
        timezone=booking.timezone,
        start_local=booking.start_local,
        duration=booking.end_local - booking.start_local
        if booking.all_day
        else booking.end_utc - booking.start_utc,
        all_day=booking.all_day,
        rrules=tuple(booking.rrule.splitlines()) if booking.rrule else (),
        rdates=_walls(booking.rdates),
        exdates=_walls(booking.exdates),
        status=booking.status,
        transparent=booking.transparent,
        sequence=booking.sequence,
        organiser=booking.organiser,
    )


def expand_checked(
    spec: SeriesSpec, since: datetime, until: datetime, limit: int
) -> list[Occurrence]:
    try:
        return recurrence.expand(spec, since, until, limit)
    except ValueError as exc:
        raise recurrence_error(exc) from None


def series_spec(db: DbSession, booking_id: str, *, include_skipped: bool = False) -> SeriesSpec:
    """The booking as a calendar would carry it (for export and for re-import diffs).

    Overrides are read from the sessions of occurrences the master still produces
    whose times, title or status differ from the master's. An override's own
    SEQUENCE is not kept (it reads as 0), nor RANGE=THISANDFUTURE (its occurrences
    read as single overrides). Occurrences skipped for a conflict are not part of
    what the organiser asked for, so they are left out unless ``include_skipped``
    (a room's feed must not show them as booked), when they read as cancelled.
    """
    booking = booking_or_fail(db, booking_id)
    master = master_spec(booking)
    rows = db.exec(
        select(Session).where(Session.booking_id == booking_id).order_by(col(Session.start_utc))
    ).all()
    with_rooms = set(
        db.exec(
            select(Participation.session_id)
            .join(Session, col(Session.id) == col(Participation.session_id))
            .where(Session.booking_id == booking_id)
        ).all()
    )
    overrides: list[OverrideSpec] = []
    candidates = [s for s in rows if s.recurrence_id is not None]
    if candidates:
        low = min(s.recurrence_id for s in candidates if s.recurrence_id is not None)
        high = max(s.recurrence_id for s in candidates if s.recurrence_id is not None)
        plain = {
            o.recurrence_id: o
            for o in expand_checked(master, low, high + timedelta(seconds=1), 1_000_000)
            if o.recurrence_id >= low
        }
        for s in candidates:
            expected = plain.get(s.recurrence_id)  # type: ignore[arg-type]
            skipped = s.id not in with_rooms
            if expected is None or (skipped and not include_skipped):
                continue
            cancelled = s.state == lifecycle.CANCELLED
            if (s.start_utc, s.end_utc, s.title, cancelled) == (
                expected.start,
                expected.end,
                None,
                False,
            ):
                continue
            start_local = recurrence.to_wall(s.start_utc, booking.timezone)
            if booking.all_day:
                end_local = recurrence.to_wall(s.end_utc, booking.timezone)
                duration = timedelta(days=max(1, (end_local.date() - start_local.date()).days))
            else:
                duration = s.end_utc - s.start_utc
            overrides.append(
                OverrideSpec(
                    recurrence_id=expected.start_local,
                    start_local=start_local,
                    duration=duration,
                    status=CANCELLED if cancelled else CONFIRMED,
                    title=s.title,
                )
            )
    return dataclasses.replace(
        master, overrides=tuple(overrides), rooms=booking_room_ids(db, booking_id)
    )


# --- writing ----------------------------------------------------------------------------


def check_rooms(room_ids: Sequence[str]) -> None:
    if not room_ids:
        raise DomainError("too-few-rooms", "a booking holds at least one room")
    if len(set(room_ids)) != len(room_ids):
        raise DomainError("duplicate", "a room is listed twice")


def check_title(title: str) -> str:
    """A booking's title: one line of 1 to ``MAX_NAME`` characters (``inputs.one_line``:
    a line break would start a new header in the invitation's mail), ``invalid-name``."""
    return one_line(title, code="invalid-name", what="a booking's title")


def check_spec(spec: SeriesSpec) -> None:
    """The series every command books: its title, a wall-clock start and an end within
    the range every computation holds (``inputs``), a zone, RRULEs we expand."""
    check_title(spec.title)
    if spec.start_local.tzinfo is not None:
        raise DomainError("invalid-time", "a series starts at a wall-clock time (naive)")
    if spec.duration <= timedelta(0):
        raise DomainError("invalid-time", "a booking ends after it starts")
    check_wall_time(spec.start_local, "the start")
    if spec.duration > LATEST - EARLIEST:
        raise DomainError("invalid-time", "a booking ends within the range of times")
    check_wall_time(spec.start_local + spec.duration, "the end")
    try:
        recurrence.zone_info(spec.timezone)
        for rule in spec.rrules:
            recurrence.validate_rrule(rule)
    except ValueError as exc:
        raise recurrence_error(exc) from None


def write_master(booking: Booking, spec: SeriesSpec, now: datetime) -> None:
    try:
        start = recurrence.localize(spec.start_local, spec.timezone)
        if spec.all_day:
            end = recurrence.localize(spec.start_local + spec.duration, spec.timezone)
        else:
            end = start + spec.duration
    except ValueError as exc:
        raise recurrence_error(exc) from None
    booking.title = spec.title.strip()
    booking.timezone = spec.timezone
    booking.start_utc, booking.end_utc = start, end
    booking.start_local = spec.start_local
    booking.end_local = (
        spec.start_local + spec.duration if spec.all_day else recurrence.to_wall(end, spec.timezone)
    )
    booking.rrule = "\n".join(spec.rrules) or None
    booking.rdates = _dump_walls(spec.rdates)
    booking.exdates = _dump_walls(spec.exdates)
    booking.status = spec.status
    booking.transparent = spec.transparent
    booking.all_day = spec.all_day
    booking.organiser = spec.organiser
    booking.updated_at = now


def occurrences_ahead(
    spec: SeriesSpec, now: datetime, until: datetime, settings: BookingSettings
) -> list[Occurrence]:
    """The occurrences that must have a session: those overlapping ``[now, until)``, and
    those named by a (single) override later than ``until``."""
    found = expand_checked(spec, now, until, settings.max_occurrences)
    seen = {o.recurrence_id for o in found}
    for override in spec.overrides:
        if override.this_and_future:
            continue
        try:
            rid = recurrence.localize(override.recurrence_id, spec.timezone)
            start = recurrence.localize(override.start_local, spec.timezone)
        except ValueError:
            continue
        if rid in seen or max(rid, start) < until:
            continue
        window = expand_checked(
            spec, min(rid, start), max(rid, start) + override.duration + timedelta(days=1), 1000
        )
        found += [o for o in window if o.recurrence_id == rid and o.end > now]
        seen.add(rid)
    return found


def check_ahead(spec: SeriesSpec, now: datetime) -> None:
    """A new booking books something still to come: ``past`` when every occurrence of
    the series has ended (whatever door it comes by, a calendar's history included)."""
    if not expand_checked(spec, now, now + FAR, 1):
        raise DomainError("past", "every meeting of this booking has ended")


def check_policy(
    occurrences: Sequence[Occurrence], rooms: Sequence[RoomPolicy], now: datetime
) -> None:
    blocking = [o for o in occurrences if o.blocks and o.end > now]
    try:
        for o in blocking:
            policy.check_duration(o.end - o.start, rooms)
        if blocking:
            policy.check_advance(min(o.start for o in blocking), rooms, now)
    except PolicyError as exc:
        raise policy_error(exc) from None


def _first_ahead(spec: SeriesSpec, now: datetime, after: datetime) -> list[Occurrence]:
    """The first occurrence starting beyond the horizon, to test a request that has none
    inside it against the booking windows."""
    return [o for o in expand_checked(spec, after, after + FAR, 1) if o.blocks][:1]


def materialise(
    db: DbSession,
    booking: Booking,
    spec: SeriesSpec,
    rooms: Sequence[RoomPolicy],
    *,
    on_conflict: OnConflict,
    now: datetime,
    settings: BookingSettings,
    cancel_missing: bool,
) -> BookingResult:
    until = horizon_end(db, now, settings)
    occurrences = [
        session_occurrence(o, booking.title) for o in occurrences_ahead(spec, now, until, settings)
    ]
    check_policy(occurrences or _first_ahead(spec, now, until), rooms, now)
    return apply_occurrences(
        db,
        booking.id,
        occurrences,
        rooms,
        lead_seconds=booking.lead_seconds,
        on_conflict=on_conflict,
        now=now,
        cancel_missing=cancel_missing,
    )


def series_before(booking: Booking, split: datetime) -> SeriesSpec | None:
    """The booking's series cut just before ``split``; None if nothing is left before it."""
    master = master_spec(booking)
    earlier = [
        o
        for o in expand_checked(master, master_start(master) - timedelta(days=1), split, 1)
        if o.start < split
    ]
    if not earlier:
        return None
    return dataclasses.replace(
        master,
        rrules=tuple(
            truncate_rule(r, split, all_day=booking.all_day, zone=booking.timezone)
            for r in master.rrules
        ),
        rdates=tuple(d for d in master.rdates if recurrence.localize(d, booking.timezone) < split),
        exdates=tuple(
            d for d in master.exdates if recurrence.localize(d, booking.timezone) < split
        ),
    )


def master_start(spec: SeriesSpec) -> datetime:
    return recurrence.localize(spec.start_local, spec.timezone)
