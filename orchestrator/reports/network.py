"""What the network dashboard reads from the database in one transaction: centres,
rooms, and the sessions of a window (plus every session under way, whenever it
started) with their booking's privacy fields and each room's CDR line.

Read-only, and raw: who may see a title is decided by ``orchestrator.people.access`` where
the view is built, never here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import col

from orchestrator.db import DbSession
from orchestrator.lifecycle import ENDING, LIVE, PREPARING
from orchestrator.models import Booking, Centre, Guest, Participation, Room, Session

UNDER_WAY = (PREPARING, LIVE, ENDING)


@dataclass(frozen=True, slots=True)
class CentreRow:
    id: str
    name: str
    timezone: str


@dataclass(frozen=True, slots=True)
class RoomRow:
    id: str
    name: str
    centre_id: str


@dataclass(frozen=True, slots=True)
class SiteRow:
    """A room's part in a session (its CDR line so far)."""

    room_id: str
    joined_at: datetime | None
    first_frame_at: datetime | None
    live_at: datetime | None
    left_at: datetime | None
    released_at: datetime | None
    rejoins: int


@dataclass(frozen=True, slots=True)
class SessionRow:
    id: str
    booking_id: str
    title: str
    organiser: str | None
    owner_id: str | None
    owner_centre_id: str | None
    timezone: str
    """The booking's zone: the organiser's."""
    start: datetime
    end: datetime
    lead_seconds: int
    state: str
    connect_mode: str
    sites: tuple[SiteRow, ...]
    guests: tuple[tuple[str, str], ...]
    """(guest id, name) of the booking's guests."""


@dataclass(frozen=True, slots=True)
class NetworkSnapshot:
    centres: tuple[CentreRow, ...]
    rooms: tuple[RoomRow, ...]
    sessions: tuple[SessionRow, ...]


def network_snapshot(db: DbSession, since: datetime, until: datetime) -> NetworkSnapshot:
    """Centres and rooms by name; sessions overlapping ``[since, until)`` or under way,
    by start."""
    conn = db.connection()
    centres = tuple(
        CentreRow(i, n, tz)
        for i, n, tz in conn.execute(
            sa.select(col(Centre.id), col(Centre.name), col(Centre.timezone)).order_by(
                col(Centre.name), col(Centre.id)
            )
        )
    )
    rooms = tuple(
        RoomRow(i, n, c)
        for i, n, c in conn.execute(
            sa.select(col(Room.id), col(Room.name), col(Room.centre_id)).order_by(
                col(Room.name), col(Room.id)
            )
        )
    )
    in_window = sa.and_(col(Session.end_utc) > since, col(Session.start_utc) < until)
    session_rows = conn.execute(
        sa.select(
            col(Session.id),
            col(Session.booking_id),
            sa.func.coalesce(col(Session.title), col(Booking.title)),
            col(Booking.organiser),
            col(Booking.owner_id),
            col(Booking.owner_centre_id),
            col(Booking.timezone),
            col(Session.start_utc),
            col(Session.end_utc),
            col(Session.lead_seconds),
            col(Session.state),
            col(Booking.connect_mode),
        )
        .join(Booking, col(Booking.id) == col(Session.booking_id))
        .where(sa.or_(in_window, col(Session.state).in_(UNDER_WAY)))
        .order_by(col(Session.start_utc), col(Session.id))
    ).all()
    ids = [row[0] for row in session_rows]
    sites: dict[str, list[SiteRow]] = {i: [] for i in ids}
    guests: dict[str, list[tuple[str, str]]] = {}
    if ids:
        for sid, room_id, joined, first_frame, live, left, released, rejoins in conn.execute(
            sa.select(
                col(Participation.session_id),
                col(Participation.room_id),
                col(Participation.joined_at),
                col(Participation.first_frame_at),
                col(Participation.live_at),
                col(Participation.left_at),
                col(Participation.released_at),
                col(Participation.rejoins),
            )
            .join(Room, col(Room.id) == col(Participation.room_id))
            .where(col(Participation.session_id).in_(ids))
            .order_by(col(Room.name), col(Room.id))
        ):
            sites[sid].append(SiteRow(room_id, joined, first_frame, live, left, released, rejoins))
        booking_ids = sorted({row[1] for row in session_rows})
        for booking_id, guest_id, name in conn.execute(
            sa.select(col(Guest.booking_id), col(Guest.id), col(Guest.name))
            .where(col(Guest.booking_id).in_(booking_ids))
            .order_by(col(Guest.created_at))
        ):
            guests.setdefault(booking_id, []).append((guest_id, name))
    sessions = tuple(
        SessionRow(
            id=sid,
            booking_id=bid,
            title=title,
            organiser=organiser,
            owner_id=owner_id,
            owner_centre_id=owner_centre_id,
            timezone=tz,
            start=start,
            end=end,
            lead_seconds=lead,
            state=state,
            connect_mode=mode,
            sites=tuple(sites[sid]),
            guests=tuple(guests.get(bid, ())),
        )
        for (
            sid,
            bid,
            title,
            organiser,
            owner_id,
            owner_centre_id,
            tz,
            start,
            end,
            lead,
            state,
            mode,
        ) in session_rows
    )
    return NetworkSnapshot(centres, rooms, sessions)
