"""Loaders for the iCalendar export: rows of one transaction into its value objects.

Each reads what one document needs in a handful of queries (never one per
booking), so a centre's feed or the free/busy of 200 rooms stays cheap.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import col, or_, select

from orchestrator import lifecycle
from orchestrator.booking.values import CANCELLED, TENTATIVE
from orchestrator.calendars.ical_out.model import BookingInfo, BusyPeriod, RoomInfo, booking_info
from orchestrator.db import DbSession
from orchestrator.errors import DomainError
from orchestrator.models import Booking, BookingRoom, Centre, Participation, Room, Session


def room_infos(db: DbSession, room_ids: Sequence[str] | None = None) -> dict[str, RoomInfo]:
    """Rooms by id with their centre's name and zone (all rooms when ``room_ids`` is None)."""
    query = select(Room, Centre).join(Centre, col(Centre.id) == col(Room.centre_id))
    if room_ids is not None:
        query = query.where(col(Room.id).in_(list(room_ids)))
    return {
        room.id: RoomInfo(room.id, room.name, centre.name, centre.timezone)
        for room, centre in db.exec(query)
    }


def load_room(db: DbSession, room_id: str) -> RoomInfo:
    """The room, or ``DomainError("not-found")``."""
    found = room_infos(db, [room_id]).get(room_id)
    if found is None:
        raise DomainError("not-found", f"no room {room_id!r}")
    return found


def load_centre(db: DbSession, centre_id: str) -> tuple[Centre, list[RoomInfo]]:
    """The centre and its rooms by name, or ``DomainError("not-found")``."""
    centre = db.get(Centre, centre_id)
    if centre is None:
        raise DomainError("not-found", f"no centre {centre_id!r}")
    rooms = db.exec(select(Room).where(Room.centre_id == centre_id).order_by(col(Room.name)))
    return centre, [RoomInfo(r.id, r.name, centre.name, centre.timezone) for r in rooms]


def _room_order(room: RoomInfo) -> tuple[str, str, str]:
    return room.centre, room.name, room.id


def _infos(db: DbSession, bookings: Sequence[Booking]) -> list[BookingInfo]:
    ids = [b.id for b in bookings]
    if not ids:
        return []
    links = db.exec(select(BookingRoom).where(col(BookingRoom.booking_id).in_(ids))).all()
    rooms = room_infos(db, sorted({link.room_id for link in links}))
    rooms_of: dict[str, list[RoomInfo]] = defaultdict(list)
    for link in links:
        rooms_of[link.booking_id].append(rooms[link.room_id])
    sessions_of: dict[str, list[Session]] = defaultdict(list)
    for session in db.exec(select(Session).where(col(Session.booking_id).in_(ids))):
        sessions_of[session.booking_id].append(session)
    return [
        booking_info(b, sorted(rooms_of[b.id], key=_room_order), sessions_of[b.id])
        for b in bookings
    ]


def load_booking(db: DbSession, booking_id: str) -> BookingInfo:
    """The booking with its rooms and sessions, or ``DomainError("not-found")``."""
    booking = db.get(Booking, booking_id)
    if booking is None:
        raise DomainError("not-found", f"no booking {booking_id!r}")
    return _infos(db, [booking])[0]


def load_bookings(
    db: DbSession, room_ids: Sequence[str], *, since: datetime | None = None
) -> list[BookingInfo]:
    """The bookings holding any of the rooms, by first start then id.

    With ``since``, only those still relevant then: the booking's own end or one of
    its sessions' ends falls at or after it (a series has sessions up to its
    horizon, so a live series always qualifies).
    """
    if not room_ids:
        return []
    query = (
        select(Booking)
        .where(
            col(Booking.id).in_(
                select(BookingRoom.booking_id).where(col(BookingRoom.room_id).in_(list(room_ids)))
            )
        )
        .order_by(col(Booking.start_utc), col(Booking.id))
    )
    if since is not None:
        recent = select(Session.booking_id).where(col(Session.end_utc) >= since)
        query = query.where(or_(col(Booking.end_utc) >= since, col(Booking.id).in_(recent)))
    return _infos(db, list(db.exec(query)))


def load_busy(
    db: DbSession, room_ids: Sequence[str], since: datetime, until: datetime
) -> dict[str, list[BusyPeriod]]:
    """What holds each room in ``[since, until)``, unmerged and unclipped: sessions
    not cancelled, of bookings neither cancelled nor transparent, and a room released
    as a no-show only up to its release. One query for all the rooms."""
    busy: dict[str, list[BusyPeriod]] = {room_id: [] for room_id in room_ids}
    if not room_ids:
        return busy
    query = (
        sa.select(
            col(BookingRoom.room_id),
            col(Session.start_utc),
            col(Session.end_utc),
            col(Booking.status),
            col(Participation.released_at),
        )
        .join(Session, col(Session.booking_id) == col(BookingRoom.booking_id))
        .join(Booking, col(Booking.id) == col(BookingRoom.booking_id))
        .outerjoin(
            Participation,
            (col(Participation.session_id) == col(Session.id))
            & (col(Participation.room_id) == col(BookingRoom.room_id)),
        )
        .where(
            col(BookingRoom.room_id).in_(list(room_ids)),
            col(Session.end_utc) > since,
            col(Session.start_utc) < until,
            col(Session.state) != lifecycle.CANCELLED,
            col(Booking.status) != CANCELLED,
            col(Booking.transparent).is_(False),
        )
        .order_by(col(Session.start_utc))
    )
    for room_id, start, end, status, released_at in db.connection().execute(query):
        if released_at is not None:
            end = min(end, released_at)
        if end > start:
            busy[room_id].append(BusyPeriod(start, end, tentative=status == TENTATIVE))
    return busy
