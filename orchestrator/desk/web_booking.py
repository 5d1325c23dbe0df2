"""What the booking pages read: the rooms and their sites, what holds them (the
availability finder), each conflict of a refused booking as its organiser may see it,
free alternatives, and a booking's invitation.

The booking itself comes in by the one door, ``orchestrator.desk.door.book``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

import sqlalchemy as sa
from sqlmodel import col, select

from orchestrator.booking import recurrence
from orchestrator.booking.availability import (
    DEFAULT_LIMIT,
    STEP,
    Hold,
    RoomSite,
    Slot,
    WorkingHours,
    common_free_slots,
)
from orchestrator.booking.busy import busy
from orchestrator.booking.conflicts import Conflict
from orchestrator.calendars.ical_out.export import invitation_ics
from orchestrator.calendars.ical_out.load import load_booking
from orchestrator.calendars.ical_out.model import BookingInfo
from orchestrator.db import DbSession
from orchestrator.errors import DomainError
from orchestrator.models import Booking, BookingRoom, Centre, Room
from orchestrator.people import access
from orchestrator.people.accounts import Principal

ALTERNATIVE_DAYS = 14


# --- what the pages read -----------------------------------------------------------------


def load_sites(db: DbSession, room_ids: Sequence[str] | None = None) -> list[RoomSite]:
    """Rooms with their centre, by centre name then room name (all rooms when
    ``room_ids`` is None; unknown ids are left out)."""
    query = select(Room, Centre).join(Centre, col(Centre.id) == col(Room.centre_id))
    if room_ids is not None:
        query = query.where(col(Room.id).in_(list(room_ids)))
    rows = sorted(db.exec(query), key=lambda rc: (rc[1].name, rc[0].name, rc[0].id))
    return [
        RoomSite(
            room.id,
            room.name,
            centre.id,
            centre.name,
            centre.timezone,
            timedelta(seconds=room.buffer_seconds),
            room.requires_approval,
        )
        for room, centre in rows
    ]


def centre_zone(db: DbSession, centre_id: str | None) -> str | None:
    if centre_id is None:
        return None
    centre = db.get(Centre, centre_id)
    return centre.timezone if centre is not None else None


def _owners(
    db: DbSession, booking_ids: Iterable[str]
) -> dict[str, tuple[str | None, str | None, tuple[str, ...]]]:
    """Booking id -> (owner, owner's centre, centres of the booking's rooms)."""
    ids = sorted(set(booking_ids))
    if not ids:
        return {}
    centres: dict[str, set[str]] = defaultdict(set)
    for booking_id, centre_id in db.connection().execute(
        sa.select(col(BookingRoom.booking_id), col(Room.centre_id))
        .join(Room, col(Room.id) == col(BookingRoom.room_id))
        .where(col(BookingRoom.booking_id).in_(ids))
    ):
        centres[booking_id].add(centre_id)
    found: dict[str, tuple[str | None, str | None, tuple[str, ...]]] = {}
    for booking_id, owner_id, owner_centre_id in db.connection().execute(
        sa.select(col(Booking.id), col(Booking.owner_id), col(Booking.owner_centre_id)).where(
            col(Booking.id).in_(ids)
        )
    ):
        found[booking_id] = (owner_id, owner_centre_id, tuple(sorted(centres[booking_id])))
    return found


def load_holds(
    db: DbSession, rooms: Sequence[RoomSite], since: datetime, until: datetime
) -> list[Hold]:
    """What holds the rooms over ``[since, until)`` widened by each room's buffer (so a
    hold just outside still shows as buffer), with what the privacy rule needs."""
    if not rooms:
        return []
    widest = max((r.buffer for r in rooms), default=timedelta(0))
    found = busy(db, [r.room_id for r in rooms], since - widest, until + widest)
    entries = [b for room_id in found for b in found[room_id]]
    owners = _owners(db, (b.booking_id for b in entries if b.booking_id))
    holds: list[Hold] = []
    for b in entries:
        owner_id, owner_centre_id, centre_ids = owners.get(b.booking_id or "", (None, None, ()))
        holds.append(
            Hold(
                b.room_id,
                b.start,
                b.end,
                b.booking_id,
                b.title,
                owner_id,
                owner_centre_id,
                centre_ids,
            )
        )
    return holds


# --- after a refusal -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConflictView:
    """One conflict as the organiser reads it: the room (with its site), the requested
    meeting, what holds the room and when, and its title as the organiser may see it
    (``access.BUSY`` otherwise; None for another meeting of the same request)."""

    room: RoomSite
    requested: Slot
    held: Slot
    label: str | None
    booking_id: str | None


def explain_conflicts(
    db: DbSession, conflicts: Sequence[Conflict], viewer: Principal | None
) -> list[ConflictView]:
    sites = {s.room_id: s for s in load_sites(db, sorted({c.room_id for c in conflicts}))}
    owners = _owners(db, (c.busy.booking_id for c in conflicts if c.busy.booking_id))
    views: list[ConflictView] = []
    for c in conflicts:
        site = sites.get(c.room_id)
        if site is None:
            continue
        label: str | None = None
        booking_id: str | None = None
        if c.busy.booking_id is not None:
            owner_id, owner_centre, centre_ids = owners.get(c.busy.booking_id, (None, None, ()))
            if c.busy.title and access.can_see_booking(viewer, owner_id, owner_centre, centre_ids):
                label, booking_id = c.busy.title, c.busy.booking_id
            else:
                label = access.BUSY
        views.append(
            ConflictView(
                site,
                Slot(c.occurrence.start, c.occurrence.end),
                Slot(c.busy.start, c.busy.end),
                label,
                booking_id,
            )
        )
    views.sort(key=lambda v: (v.requested.start, v.room.centre, v.room.name, v.held.start))
    return views


def alternatives(
    db: DbSession,
    room_ids: Sequence[str],
    zone: str,
    day: date,
    duration: timedelta,
    *,
    now: datetime,
    hours: Mapping[str, WorkingHours] | None = None,
    days: int = ALTERNATIVE_DAYS,
    step: timedelta = STEP,
    limit: int = DEFAULT_LIMIT,
) -> list[Slot]:
    """The first common free slots of the rooms from ``day`` (in ``zone``) on, within
    ``days`` days and every site's working hours, none before ``now``."""
    rooms = load_sites(db, room_ids)
    if not rooms:
        return []
    since = recurrence.localize(datetime.combine(day, time()), zone)
    until = recurrence.localize(datetime.combine(day + timedelta(days=days), time()), zone)
    holds = load_holds(db, rooms, since, until + duration)
    return common_free_slots(
        rooms, holds, since, until, duration, hours=hours, step=step, now=now, limit=limit
    )


def load_invitation(
    db: DbSession, booking_id: str, viewer: Principal | None, *, now: datetime
) -> tuple[BookingInfo, bytes] | None:
    """The booking's invitation (METHOD:REQUEST) for someone who may see the booking;
    None for anyone else; ``DomainError("not-found")`` for no such booking."""
    booking = db.get(Booking, booking_id)
    if booking is None:
        raise DomainError("not-found", f"no booking {booking_id!r}")
    owner_id, owner_centre, centre_ids = _owners(db, [booking_id])[booking_id]
    if not access.can_see_booking(viewer, owner_id, owner_centre, centre_ids):
        return None
    info = load_booking(db, booking_id)
    return info, invitation_ics(info, stamp=now)
