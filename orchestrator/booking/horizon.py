"""What the passing of time does to bookings: the horizon rolls, no-shows are released.

Both are called by the scheduler (``orchestrator.sessions.scheduler``) with its clock's
``now``, each in a transaction of its own, and both are idempotent: calling them
twice, or from two processes, writes nothing twice.

- ``roll_horizon``: occurrences of recurring bookings that entered the horizon get
  their session, tested for conflicts like any booking. One that conflicts is
  skipped (kept as a skipped session, see ``store``) and logged: the
  series was accepted long ago, so refusing it now would refuse nothing.
- ``release_no_shows``: a room that has not joined a session (connect mode
  automatic or one-button, not all-day) ``no_show_seconds`` after its start is
  released for the rest of the occurrence: ``Participation.released_at`` is set,
  its slot now ends at the release (its buffer after it), so the room can be
  booked again, and it leaves the session's room schedules.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import col, select

from orchestrator import lifecycle
from orchestrator.booking import policy
from orchestrator.booking.busy import room_policies
from orchestrator.booking.conflicts import held
from orchestrator.booking.policy import BookingSettings
from orchestrator.booking.series import expand_checked, horizon_end, master_spec, session_occurrence
from orchestrator.booking.store import apply_occurrences, booking_room_ids
from orchestrator.booking.values import CANCELLED
from orchestrator.db import DbSession
from orchestrator.models import Approval, Booking, Participation, Room, RoomSlot, Session

log = logging.getLogger(__name__)

LIVE_STATES = (lifecycle.PREPARING, lifecycle.LIVE, lifecycle.ENDING)
SLOT_KEEP = timedelta(days=1)
"""Room slots are dropped this long after they end (the sessions stay: history)."""


def roll_horizon(
    db: DbSession, now: datetime, settings: BookingSettings, *, since: datetime | None = None
) -> int:
    """Write the sessions of recurring occurrences that start before the horizon's end
    and have none yet; returns how many were written. ``since`` (the horizon's end at
    the previous roll) limits the work to what entered since; without it the whole
    horizon is looked at (after a start, or a long stop)."""
    # Slots exist for the conflict test; one that ended a day ago can collide with
    # nothing one may still book, so it goes (free/busy stays an indexed range scan).
    db.connection().execute(sa.delete(RoomSlot).where(col(RoomSlot.end_utc) < now - SLOT_KEEP))
    until = horizon_end(db, now, settings)
    low = max(since, now) if since is not None else now
    if low >= until:
        return 0
    recurring = db.exec(
        select(Booking).where(
            Booking.status != CANCELLED,
            sa.or_(col(Booking.rrule).is_not(None), col(Booking.rdates) != "[]"),
        )
    ).all()
    created = 0
    for booking in recurring:
        occurrences = expand_checked(master_spec(booking), low, until, settings.max_occurrences)
        if not occurrences:
            continue
        result = apply_occurrences(
            db,
            booking.id,
            [session_occurrence(o, booking.title) for o in occurrences],
            room_policies(db, booking_room_ids(db, booking.id)),
            lead_seconds=booking.lead_seconds,
            on_conflict="skip",
            now=now,
            only_new=True,
        )
        created += len(result.session_ids)
        for conflict in result.skipped:
            log.warning(
                "booking %s: occurrence skipped as the horizon rolled: %s", booking.id, conflict
            )
    return created


def release_no_shows(
    db: DbSession, now: datetime, settings: BookingSettings
) -> list[tuple[str, str]]:
    """Release every room that missed its session's no-show deadline; returns the
    ``(session_id, room_id)`` pairs released now."""
    deadline = now - timedelta(seconds=settings.no_show_seconds)
    rows = (
        db.connection()
        .execute(
            sa.select(
                col(Participation.session_id),
                col(Participation.room_id),
                col(Session.start_utc),
                col(Room.buffer_seconds),
            )
            .join(Session, col(Session.id) == col(Participation.session_id))
            .join(Booking, col(Booking.id) == col(Session.booking_id))
            .join(Room, col(Room.id) == col(Participation.room_id))
            .where(
                col(Participation.joined_at).is_(None),
                col(Participation.released_at).is_(None),
                col(Session.state).in_(LIVE_STATES),
                col(Session.start_utc) <= deadline,
                col(Session.end_utc) > now,
                col(Booking.connect_mode).in_(sorted(policy.CALL_MODES | {policy.MANUAL})),
                col(Booking.all_day).is_(False),
                # A room still waiting for its centre's approval was never due to
                # join: it keeps holding its slot until staff decide.
                ~sa.exists().where(
                    col(Approval.booking_id) == col(Booking.id),
                    col(Approval.room_id) == col(Participation.room_id),
                    col(Approval.state) == "pending",
                ),
            )
            .order_by(col(Session.start_utc), col(Participation.room_id))
        )
        .all()
    )
    released: list[tuple[str, str]] = []
    for session_id, room_id, start, buffer_seconds in rows:
        done = db.connection().execute(
            sa.update(Participation)
            .where(
                col(Participation.session_id) == session_id,
                col(Participation.room_id) == room_id,
                col(Participation.released_at).is_(None),
                col(Participation.joined_at).is_(None),
            )
            .values(released_at=now)
        )
        if done.rowcount != 1:
            continue  # joined or released meanwhile
        _, slot_end = held(start, now, timedelta(seconds=buffer_seconds))
        db.connection().execute(
            sa.update(RoomSlot)
            .where(
                col(RoomSlot.session_id) == session_id,
                col(RoomSlot.room_id) == room_id,
                col(RoomSlot.end_utc) > slot_end,
            )
            .values(end_utc=slot_end)
        )
        released.append((session_id, room_id))
    return released
