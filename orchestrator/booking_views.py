"""Read-only views of bookings: a room's occurrences with UTC and room-local times."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import col

from orchestrator import recurrence
from orchestrator.db import DbSession
from orchestrator.models import Booking, BookingRoom, Centre, Participation, Room, Session
from orchestrator.service import DomainError


@dataclass(frozen=True, slots=True)
class RoomOccurrence:
    """One occurrence a room is booked into. ``start``/``end`` are aware UTC;
    ``start_local``/``end_local`` are naive wall-clock times in ``room_timezone``."""

    session_id: str
    booking_id: str
    title: str
    start: datetime
    end: datetime
    start_local: datetime
    end_local: datetime
    room_timezone: str
    state: str
    source: str
    connect_mode: str
    recurring: bool
    released_at: datetime | None


def room_occurrences(
    db: DbSession, room_id: str, since: datetime, until: datetime
) -> list[RoomOccurrence]:
    """The room's occurrences overlapping ``[since, until)``, whatever their state, by
    start; ``not-found`` for an unknown room."""
    found = (
        db.connection()
        .execute(
            sa.select(col(Centre.timezone))
            .join(Room, col(Room.centre_id) == col(Centre.id))
            .where(col(Room.id) == room_id)
        )
        .first()
    )
    if found is None:
        raise DomainError("not-found", f"no room {room_id!r}")
    zone = found[0]
    rows = db.connection().execute(
        sa.select(
            col(Session.id),
            col(Session.booking_id),
            sa.func.coalesce(col(Session.title), col(Booking.title)),
            col(Session.start_utc),
            col(Session.end_utc),
            col(Session.state),
            col(Booking.source),
            col(Booking.connect_mode),
            col(Booking.rrule),
            col(Booking.rdates),
            col(Participation.released_at),
        )
        .join(Booking, col(Booking.id) == col(Session.booking_id))
        .join(
            BookingRoom,
            sa.and_(
                col(BookingRoom.booking_id) == col(Session.booking_id),
                col(BookingRoom.room_id) == room_id,
            ),
        )
        .outerjoin(
            Participation,
            sa.and_(
                col(Participation.session_id) == col(Session.id),
                col(Participation.room_id) == room_id,
            ),
        )
        .where(col(Session.end_utc) > since, col(Session.start_utc) < until)
        .order_by(col(Session.start_utc), col(Session.id))
    )
    return [
        RoomOccurrence(
            session_id=sid,
            booking_id=bid,
            title=title,
            start=start,
            end=end,
            start_local=recurrence.to_wall(start, zone),
            end_local=recurrence.to_wall(end, zone),
            room_timezone=zone,
            state=state,
            source=source,
            connect_mode=mode,
            recurring=bool(rrule) or rdates not in ("", "[]"),
            released_at=released,
        )
        for sid, bid, title, start, end, state, source, mode, rrule, rdates, released in rows
    ]
