"""The booking store: series kept as calendars describe them, sessions for their occurrences.

A booking row is a series master (RFC 5545 terms: UID, SEQUENCE, DTSTART as wall
clock in its zone, RRULEs, RDATEs, EXDATEs, STATUS, TRANSP). Every occurrence that
starts inside the horizon (``policy.horizon``) has a session, and so does every
occurrence an override names explicitly, wherever it falls; the horizon rolls
forward with time (``horizon.roll_horizon``). An occurrence changed on its
own is its session: moved times, a title of its own, or ``cancelled`` while its
rooms stay listed; ``series_spec`` reads them back as overrides.

Edits (``update_series``):

- ``all``: the master changes; every session that has not begun follows (moved,
  cancelled, or new), and is tested for conflicts again;
- ``this``: one occurrence, named by its recurrence id, takes the spec's start,
  duration, title and status;
- ``this-and-following``: the series is split, as Google Calendar and Outlook do
  rather than RANGE=THISANDFUTURE, which few clients understand: the old booking
  ends with an UNTIL just before the split occurrence (its SEQUENCE goes up), and
  the rest becomes a new booking with a new UID, starting on the split
  occurrence's date at the spec's time of day (a COUNT left unchanged counts only
  what remains).

What has begun or ended (a session past ``scheduled``, or whose start is past) is
history and is never changed by an edit or a cancellation, except that cancelling
a booking stops its live session. A local booking's SEQUENCE goes up with every
change (invitations need it); an imported one keeps the SEQUENCE its source gave.

Every session a command cancels on purpose records who did (``cancelled_by``): the
caller says ``by`` (``organiser``: a person here; ``calendar``: the calendar the
booking came from), or else the booking's source says it (a booking made here,
its organiser; one from a calendar, that calendar). An occurrence skipped for a
conflict has no room and records nothing: that is its reason.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Final, Literal

import sqlalchemy as sa
from sqlmodel import col, select

from orchestrator import lifecycle
from orchestrator.booking import policy, recurrence
from orchestrator.booking.busy import busy, room_policies
from orchestrator.booking.horizon import release_no_shows, roll_horizon
from orchestrator.booking.policy import BookingSettings, PolicyError
from orchestrator.booking.series import (
    FAR,
    LOCAL,
    booking_or_fail,
    check_ahead,
    check_policy,
    check_rooms,
    check_spec,
    count_of,
    expand_checked,
    find_booking,
    horizon_end,
    master_spec,
    master_start,
    materialise,
    policy_error,
    series_before,
    series_spec,
    session_occurrence,
    with_count,
    write_master,
)
from orchestrator.booking.store import (
    BookingConflict,
    BookingResult,
    OnConflict,
    apply_occurrences,
    booking_room_ids,
    cancel_session,
    set_rooms,
)
from orchestrator.booking.values import CANCELLED, Occurrence, OverrideSpec, SeriesSpec
from orchestrator.db import DbSession
from orchestrator.errors import DomainError
from orchestrator.models import Booking, Participation, Session, new_id

__all__ = [
    "CALENDAR",
    "LOCAL",
    "ORGANISER",
    "BookingConflict",
    "BookingResult",
    "CancelledBy",
    "Scope",
    "busy",
    "cancel_series",
    "create_series",
    "find_booking",
    "horizon_end",
    "release_no_shows",
    "roll_horizon",
    "series_spec",
    "update_series",
]

Scope = Literal["all", "this", "this-and-following"]
CancelledBy = Literal["organiser", "calendar"]
ORGANISER: Final = "organiser"
CALENDAR: Final = "calendar"


def _record_cancellations(db: DbSession, booking: Booking, by: CancelledBy | None) -> None:
    """Record who cancelled the booking's sessions cancelled on purpose that say nothing
    yet: the ones this command cancelled (see the module doc)."""
    who = by or (ORGANISER if booking.source == LOCAL else CALENDAR)
    db.flush()
    db.connection().execute(
        sa.update(Session)
        .where(
            col(Session.booking_id) == booking.id,
            col(Session.state) == lifecycle.CANCELLED,
            col(Session.cancelled_by).is_(None),
            sa.exists().where(col(Participation.session_id) == col(Session.id)),
        )
        .values(cancelled_by=who)
    )


def create_series(
    db: DbSession,
    spec: SeriesSpec,
    room_ids: Sequence[str],
    *,
    lead_seconds: int = 60,
    connect_mode: str = policy.AUTOMATIC,
    on_conflict: OnConflict = "reject",
    source: str = LOCAL,
    now: datetime,
    settings: BookingSettings | None = None,
    by: CancelledBy | None = None,
) -> BookingResult:
    """Book ``room_ids`` (or ``spec.rooms``) for the series, all or nothing.

    Sessions are written for the occurrences inside the horizon (see the module
    doc); a conflicting occurrence makes the whole request fail with
    ``BookingConflict`` (``reject``) or is left out and reported in
    ``BookingResult.skipped`` (``skip``). A booking may hold one room (a calendar
    reserving a single room); all-day series are reserve-only. A series that has
    nothing left to come is refused (``past``); each room's maximum duration and
    booking window apply (``series.check_policy``), as does its existence
    (``unknown-room``).
    """
    settings = settings or BookingSettings()
    rooms_asked = list(room_ids) or list(spec.rooms)
    check_rooms(rooms_asked)
    check_spec(spec)
    if spec.status == CANCELLED:
        raise DomainError("cancelled", "a cancelled event books nothing")
    check_ahead(spec, now)
    try:
        mode = policy.connect_mode(connect_mode, all_day=spec.all_day)
        lead = policy.check_lead(lead_seconds)
    except PolicyError as exc:
        raise policy_error(exc) from None
    rooms = room_policies(db, rooms_asked)
    if find_booking(db, source, spec.uid) is not None:
        raise DomainError("duplicate", f"{source} already has a booking with UID {spec.uid!r}")
    booking = Booking(
        title=spec.title.strip(),
        start_utc=now,
        end_utc=now,
        start_local=spec.start_local,
        end_local=spec.start_local,
        timezone=spec.timezone,
        lead_seconds=lead,
        connect_mode=mode,
        uid=spec.uid,
        source=source,
        sequence=spec.sequence,
        created_at=now,
    )
    write_master(booking, spec, now)
    db.add(booking)
    db.flush()
    set_rooms(db, booking.id, rooms_asked)
    result = materialise(
        db,
        booking,
        spec,
        rooms,
        on_conflict=on_conflict,
        now=now,
        settings=settings,
        cancel_missing=False,
    )
    _record_cancellations(db, booking, by)  # occurrences the calendar says are cancelled
    return result


def _bump(booking: Booking, given: int | None = None) -> None:
    if booking.source == LOCAL:
        booking.sequence = max(booking.sequence + 1, given or 0)
    elif given is not None:
        booking.sequence = given


def _session_at(db: DbSession, booking_id: str, recurrence_id: datetime) -> Session | None:
    return db.exec(
        select(Session).where(
            Session.booking_id == booking_id, Session.recurrence_id == recurrence_id
        )
    ).first()


def _occurrence_of(
    spec: SeriesSpec, recurrence_id: datetime, settings: BookingSettings
) -> Occurrence | None:
    """The occurrence ``spec`` gives the recurrence id (moved or not), if any."""
    for override in spec.overrides:
        if recurrence.localize(override.recurrence_id, spec.timezone) == recurrence_id:
            start = recurrence.localize(override.start_local, spec.timezone)
            low = min(start, recurrence_id)
            break
    else:
        low = recurrence_id
    window = expand_checked(spec, low - timedelta(days=1), low + FAR / 10, settings.max_occurrences)
    return next((o for o in window if o.recurrence_id == recurrence_id), None)


def update_series(
    db: DbSession,
    booking_id: str,
    spec: SeriesSpec,
    *,
    scope: Scope = "all",
    recurrence_id: datetime | None = None,
    room_ids: Sequence[str] | None = None,
    on_conflict: OnConflict = "reject",
    now: datetime,
    settings: BookingSettings | None = None,
    by: CancelledBy | None = None,
) -> BookingResult:
    """Change a booking (see the module doc for the scopes); all or nothing.

    ``recurrence_id`` (aware) names the occurrence for ``this`` and the split point
    for ``this-and-following``; ``room_ids`` (or ``spec.rooms``) changes the rooms
    for ``all``. For ``this-and-following`` the result names the new booking.
    """
    settings = settings or BookingSettings()
    booking = booking_or_fail(db, booking_id)
    check_spec(spec)
    if scope == "all":
        result = _update_all(db, booking, spec, room_ids, on_conflict, now, settings, by)
    elif recurrence_id is None:
        raise DomainError("invalid-scope", f"scope {scope!r} needs the occurrence's recurrence id")
    elif scope == "this":
        rid = recurrence_id.astimezone(UTC)
        result = _update_one(db, booking, spec, rid, on_conflict, now, settings)
    elif scope == "this-and-following":
        rid = recurrence_id.astimezone(UTC)
        result = _split(db, booking, spec, rid, on_conflict, now, settings, by)
    else:
        raise DomainError("invalid-scope", "scope is all, this or this-and-following")
    _record_cancellations(db, booking, by)
    return result


def _update_all(
    db: DbSession,
    booking: Booking,
    spec: SeriesSpec,
    room_ids: Sequence[str] | None,
    on_conflict: OnConflict,
    now: datetime,
    settings: BookingSettings,
    by: CancelledBy | None,
) -> BookingResult:
    if spec.status == CANCELLED:
        cancel_series(db, booking.id, now=now, by=by)
        return BookingResult(booking.id, ())
    rooms_asked = list(room_ids or spec.rooms or booking_room_ids(db, booking.id))
    check_rooms(rooms_asked)
    rooms = room_policies(db, rooms_asked)
    write_master(booking, spec, now)
    if booking.all_day:
        booking.connect_mode = policy.RESERVE_ONLY
    _bump(booking, spec.sequence)
    db.add(booking)
    db.flush()
    if set(rooms_asked) != set(booking_room_ids(db, booking.id)):
        set_rooms(db, booking.id, rooms_asked)
    return materialise(
        db,
        booking,
        spec,
        rooms,
        on_conflict=on_conflict,
        now=now,
        settings=settings,
        cancel_missing=True,
    )


def _update_one(
    db: DbSession,
    booking: Booking,
    spec: SeriesSpec,
    recurrence_id: datetime,
    on_conflict: OnConflict,
    now: datetime,
    settings: BookingSettings,
) -> BookingResult:
    current = series_spec(db, booking.id)
    session = _session_at(db, booking.id, recurrence_id)
    if session is not None and (
        session.start_utc <= now or session.state not in (lifecycle.SCHEDULED, lifecycle.CANCELLED)
    ):
        raise DomainError("begun", "an occurrence that has begun or ended cannot be changed")
    if session is None and _occurrence_of(current, recurrence_id, settings) is None:
        raise DomainError(
            "not-found", f"the series has no occurrence at {recurrence_id.isoformat()}"
        )
    rid_local = recurrence.to_wall(recurrence_id, booking.timezone)
    override = OverrideSpec(
        recurrence_id=rid_local,
        start_local=spec.start_local,
        duration=spec.duration,
        status=spec.status,
        title=spec.title if spec.title.strip() != booking.title else None,
    )
    others = tuple(o for o in current.overrides if o.recurrence_id != rid_local)
    changed = dataclasses.replace(current, overrides=(*others, override))
    occurrence = _occurrence_of(changed, recurrence_id, settings)
    if occurrence is None:
        raise DomainError(
            "not-found", f"the series has no occurrence at {recurrence_id.isoformat()}"
        )
    rooms = room_policies(db, booking_room_ids(db, booking.id))
    check_policy([occurrence], rooms, now)
    _bump(booking)
    booking.updated_at = now
    db.add(booking)
    db.flush()
    return apply_occurrences(
        db,
        booking.id,
        [session_occurrence(occurrence, booking.title)],
        rooms,
        lead_seconds=booking.lead_seconds,
        on_conflict=on_conflict,
        now=now,
    )


def _cancel_from(
    db: DbSession, booking_id: str, split: datetime | None, now: datetime
) -> list[str]:
    """Cancel the booking's sessions (from ``split`` on, if given) that have not ended."""
    query = select(Session.id).where(
        Session.booking_id == booking_id,
        Session.end_utc > now,
        col(Session.state).not_in(lifecycle.TERMINAL_STATES),
    )
    if split is not None:
        query = query.where(col(Session.recurrence_id) >= split)
    return [
        sid
        for sid in db.exec(query.order_by(col(Session.start_utc))).all()
        if cancel_session(db, sid, now)
    ]


def _split(
    db: DbSession,
    booking: Booking,
    spec: SeriesSpec,
    split: datetime,
    on_conflict: OnConflict,
    now: datetime,
    settings: BookingSettings,
    by: CancelledBy | None,
) -> BookingResult:
    session = _session_at(db, booking.id, split)
    if session is not None and (
        session.start_utc <= now or session.state not in (lifecycle.SCHEDULED, lifecycle.CANCELLED)
    ):
        raise DomainError("begun", "an occurrence that has begun or ended cannot be changed")
    before = series_before(booking, split)
    if before is None:  # the split is the first occurrence: that is the whole series
        return _update_all(db, booking, spec, None, on_conflict, now, settings, by)
    old_rules = master_spec(booking).rrules
    count_before = len(
        [
            o
            for o in expand_checked(
                master_spec(booking),
                master_start(before) - timedelta(days=1),
                split,
                settings.max_occurrences,
            )
            if o.start < split
        ]
    )
    write_master(booking, dataclasses.replace(before, sequence=booking.sequence), now)
    _bump(booking)
    db.add(booking)
    db.flush()
    _cancel_from(db, booking.id, split, now)
    split_local = recurrence.to_wall(split, booking.timezone)
    start_local = spec.start_local
    if start_local.date() < split_local.date():
        start_local = datetime.combine(split_local.date(), start_local.time())
    rules = spec.rrules
    if rules == old_rules and len(rules) == 1 and count_of(rules[0]) is not None:
        remaining = (count_of(rules[0]) or 0) - count_before
        if remaining <= 0:
            return BookingResult(booking.id, ())
        rules = (with_count(rules[0], remaining),)
    following = dataclasses.replace(
        spec,
        uid=f"{new_id()}@telecentre",
        start_local=start_local,
        rrules=rules,
        rdates=tuple(d for d in spec.rdates if d >= start_local),
        exdates=tuple(d for d in spec.exdates if d >= start_local),
        overrides=tuple(o for o in spec.overrides if o.recurrence_id >= start_local),
        sequence=0,
    )
    return create_series(
        db,
        following,
        booking_room_ids(db, booking.id),
        lead_seconds=booking.lead_seconds,
        connect_mode=booking.connect_mode,
        on_conflict=on_conflict,
        source=LOCAL,
        now=now,
        settings=settings,
        by=by,
    )


def cancel_series(
    db: DbSession,
    booking_id: str,
    *,
    recurrence_id: datetime | None = None,
    this_and_following: bool = False,
    now: datetime,
    by: CancelledBy | None = None,
) -> list[str]:
    """Cancel the booking, one occurrence of it, or it from one occurrence on; returns
    the sessions cancelled (each gets a ``cancelled`` transition and frees its rooms)
    and records who cancelled them (``by``, see the module doc).

    Sessions that ended are history and stay as they are. Cancelling one occurrence
    that has no session yet (beyond the horizon) writes it as a cancelled session,
    so the series reads it as a cancelled override.
    """
    booking = booking_or_fail(db, booking_id)
    cancelled = _cancel(db, booking, recurrence_id, this_and_following, now)
    _record_cancellations(db, booking, by)
    return cancelled


def _cancel(
    db: DbSession,
    booking: Booking,
    recurrence_id: datetime | None,
    this_and_following: bool,
    now: datetime,
) -> list[str]:
    booking_id = booking.id
    if recurrence_id is None:
        booking.status = CANCELLED
        _bump(booking)
        booking.updated_at = now
        db.add(booking)
        db.flush()
        return _cancel_from(db, booking_id, None, now)
    recurrence_id = recurrence_id.astimezone(UTC)
    if this_and_following:
        before = series_before(booking, recurrence_id)
        if before is None:
            return _cancel(db, booking, None, False, now)
        write_master(booking, dataclasses.replace(before, sequence=booking.sequence), now)
        _bump(booking)
        db.add(booking)
        db.flush()
        return _cancel_from(db, booking_id, recurrence_id, now)
    session = _session_at(db, booking_id, recurrence_id)
    if session is not None and (
        session.end_utc <= now or session.state in lifecycle.TERMINAL_STATES
    ):
        if session.state == lifecycle.CANCELLED:
            return []
        raise DomainError("past", "an occurrence that has ended cannot be cancelled")
    _bump(booking)
    booking.updated_at = now
    db.add(booking)
    db.flush()
    if session is not None:
        return [session.id] if cancel_session(db, session.id, now) else []
    occurrence = _occurrence_of(series_spec(db, booking_id), recurrence_id, BookingSettings())
    if occurrence is None:
        raise DomainError(
            "not-found", f"the series has no occurrence at {recurrence_id.isoformat()}"
        )
    cancelled = dataclasses.replace(session_occurrence(occurrence, booking.title), status=CANCELLED)
    apply_occurrences(
        db,
        booking_id,
        [cancelled],
        room_policies(db, booking_room_ids(db, booking_id)),
        lead_seconds=booking.lead_seconds,
        on_conflict="reject",
        now=now,
    )
    return []
