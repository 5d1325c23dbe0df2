"""A room's schedule: the open sessions it is booked into over the next day, each
with a join ticket minted for that room, so its agent can join by itself at
``start - lead`` even when the scheduler is down at that moment.

``schedule_entries`` reads the tables (one query) into the schedule entries every plane
shares (common/schedule.py), not yet made out to a room (``NO_TICKET``), so equal
entries mean an unchanged schedule; ``room_schedule`` assembles the message, giving
each entry its room's ticket, without touching anything but the ticket function. The other
readers here serve the scheduler's step: the rooms' credentials, the members of the
sessions it moves (``members_of_sessions``: rooms, guests, a small uplink), and the
present state of sessions that dropped out of every schedule.

A room waiting for its centre's approval of a booking (``orchestrator.booking.approvals``)
holds its slot but takes no part: the session is not in its schedule (no ticket,
so it cannot join) and it is not among the session's rooms in the others'
schedules or transitions (nobody waits for it). A declined room has left the
booking altogether.

A room's schedule holds a session only while the room takes it as a call
(``orchestrator.sessions.calls.takes_call``): it holds the session's slot over the whole
session, and the session is no reminder (a transparent booking's session that has
not begun). So no room is ever given tickets for two overlapping sessions.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import col, select

from common.peers import room_peer_id
from common.schedule import NO_TICKET, RoomRecord, ScheduleEntry, ScheduleRoom
from common.sessions import OPEN_STATES
from common.tickets import ROOM_ROLE
from orchestrator.db import DbSession
from orchestrator.models import (
    Approval,
    Booking,
    BookingRoom,
    Centre,
    Guest,
    Participation,
    Room,
    Session,
    SessionTransitionRecord,
)
from orchestrator.ports import RoomSchedule
from orchestrator.sessions.calls import takes_call
from orchestrator.sessions.tickets import TicketSigner, ticket_window

SCHEDULE_HORIZON = 24 * 3600.0
"""A room's schedule holds the sessions that start within this many seconds."""
APPROVED = "approved"
# A room takes part in its booking's sessions unless it waits for (or was refused)
# its centre's approval: no approval asked, or approved.
TAKES_PART = sa.or_(col(Approval.state).is_(None), col(Approval.state) == APPROVED)


def _approval_of(booking_id: Any, room_id: Any) -> sa.ColumnElement[bool]:
    return sa.and_(col(Approval.booking_id) == booking_id, col(Approval.room_id) == room_id)


def _dt(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


def _ts(d: datetime) -> float:
    return d.timestamp()


@dataclass(frozen=True, slots=True)
class Departed:
    """A session that left every schedule (cancelled, ended, moved away), as it is now."""

    state: str
    at: float
    start: float
    end: float
    room_ids: tuple[str, ...]


def schedule_entries(
    db: DbSession, now: float, horizon: float = SCHEDULE_HORIZON, room_id: str | None = None
) -> dict[str, tuple[ScheduleEntry, ...]]:
    """Room id -> the open sessions it takes part in as calls that end after ``now`` and
    start before ``now + horizon``, by start. Only ``room_id``'s (maybe empty) if given."""
    query = (
        sa.select(
            col(Session.id),
            col(Session.booking_id),
            col(Booking.title),
            col(Session.start_utc),
            col(Session.end_utc),
            col(Session.lead_seconds),
            col(Session.state),
            col(Booking.connect_mode),
            col(Room.id),
            col(Room.name),
            col(Centre.name),
        )
        .join(Booking, col(Booking.id) == col(Session.booking_id))
        .join(BookingRoom, col(BookingRoom.booking_id) == col(Session.booking_id))
        .join(Room, col(Room.id) == col(BookingRoom.room_id))
        .join(Centre, col(Centre.id) == col(Room.centre_id))
        .outerjoin(
            Participation,
            sa.and_(
                col(Participation.session_id) == col(Session.id),
                col(Participation.room_id) == col(Room.id),
            ),
        )
        .outerjoin(Approval, _approval_of(col(Session.booking_id), col(Room.id)))
        .where(
            # A room released for a no-show has left the session's schedules.
            col(Participation.released_at).is_(None),
            TAKES_PART,
            takes_call(col(Room.id)),
            col(Session.state).in_(OPEN_STATES),
            col(Session.end_utc) > _dt(now),
            col(Session.start_utc) < _dt(now + horizon),
        )
        .order_by(col(Session.start_utc), col(Session.id), col(Room.name), col(Room.id))
    )
    if room_id is not None:
        query = query.where(
            col(Session.booking_id).in_(
                sa.select(col(BookingRoom.booking_id)).where(col(BookingRoom.room_id) == room_id)
            )
        )
    members: dict[str, list[ScheduleRoom]] = defaultdict(list)
    sessions: dict[str, tuple[Any, ...]] = {}
    for row in db.connection().execute(query):
        sid, bid, title, start, end, lead, state, mode, rid, rname, cname = row
        members[sid].append(ScheduleRoom(room_id=rid, name=rname, centre=cname))
        sessions[sid] = (bid, title, start.timestamp(), end.timestamp(), float(lead), state, mode)
    result: dict[str, list[ScheduleEntry]] = defaultdict(list)
    for sid, (bid, title, start, end, lead, state, mode) in sessions.items():
        rooms = members[sid]
        entry = ScheduleEntry(
            session_id=sid,
            booking_id=bid,
            title=title,
            start=start,
            end=end,
            lead=lead,
            state=state,
            ticket=NO_TICKET,
            rooms=rooms,
            connect_mode=mode,
        )
        for room in rooms:
            result[room.room_id].append(entry)
    if room_id is not None:
        return {room_id: tuple(result.get(room_id, ()))}
    return {k: tuple(v) for k, v in result.items()}


@dataclass(frozen=True, slots=True)
class Members:
    """Who takes part in a session, as its topology is planned (``sessions.topology``):
    its rooms (those waiting for approval left out), how many of its booking's guests
    are not revoked, and whether one of its rooms declares a small uplink."""

    room_ids: tuple[str, ...]
    guests: int = 0
    small_uplink: bool = False


def members_of_sessions(db: DbSession, session_ids: set[str]) -> dict[str, Members]:
    """Session id -> its ``Members``, in one query; a session without a room taking
    part is absent."""
    guests = (
        sa.select(sa.func.count(col(Guest.id)))
        .where(col(Guest.booking_id) == col(Session.booking_id), col(Guest.revoked_at).is_(None))
        .scalar_subquery()
    )
    rows = db.connection().execute(
        sa.select(col(Session.id), col(BookingRoom.room_id), col(Room.small_uplink), guests)
        .join(BookingRoom, col(BookingRoom.booking_id) == col(Session.booking_id))
        .join(Room, col(Room.id) == col(BookingRoom.room_id))
        .outerjoin(Approval, _approval_of(col(BookingRoom.booking_id), col(BookingRoom.room_id)))
        .where(col(Session.id).in_(session_ids), TAKES_PART)
        .order_by(col(BookingRoom.room_id))
    )
    rooms: dict[str, list[str]] = defaultdict(list)
    small: set[str] = set()
    guest_counts: dict[str, int] = {}
    for session_id, room_id, small_uplink, guest_count in rows:
        rooms[session_id].append(room_id)
        if small_uplink:
            small.add(session_id)
        guest_counts[session_id] = int(guest_count)
    return {sid: Members(tuple(ids), guest_counts[sid], sid in small) for sid, ids in rooms.items()}


def room_ids_of_sessions(db: DbSession, session_ids: set[str]) -> dict[str, tuple[str, ...]]:
    """Session id -> the rooms taking part (those waiting for approval left out)."""
    return {sid: members.room_ids for sid, members in members_of_sessions(db, session_ids).items()}


def load_rooms(db: DbSession) -> list[RoomRecord]:
    """Every room's credential record, as the credential store keeps it."""
    rows = db.connection().execute(
        sa.select(
            col(Room.id),
            col(Room.name),
            col(Centre.name),
            col(Room.key_hash),
            col(Room.key_generation),
            col(Room.ice_policy),
        )
        .join(Centre, col(Centre.id) == col(Room.centre_id))
        .order_by(col(Room.id))
    )
    return [RoomRecord(*row) for row in rows]


def load_departed(db: DbSession, session_ids: set[str]) -> dict[str, Departed]:
    """The present state of sessions that left the schedules; deleted ones are absent."""
    found: dict[str, Departed] = {}
    if not session_ids:
        return found
    sessions = db.exec(select(Session).where(col(Session.id).in_(session_ids))).all()
    rooms = room_ids_of_sessions(db, session_ids)
    last_at = dict(
        db.connection()
        .execute(
            sa.select(
                col(SessionTransitionRecord.session_id),
                sa.func.max(col(SessionTransitionRecord.at)),
            )
            .where(col(SessionTransitionRecord.session_id).in_(session_ids))
            .group_by(col(SessionTransitionRecord.session_id))
        )
        .all()
    )
    for s in sessions:
        at = last_at.get(s.id)
        found[s.id] = Departed(
            state=s.state,
            at=_ts(at) if at is not None else _ts(s.updated_at),
            start=_ts(s.start_utc),
            end=_ts(s.end_utc),
            room_ids=rooms.get(s.id, ()),
        )
    return found


def room_schedule(
    room_id: str,
    entries: Sequence[ScheduleEntry],
    ticket: Callable[[str, ScheduleEntry], str],
    *,
    seq: int,
    now: float,
) -> RoomSchedule:
    """The message for one room; ``ticket(room_id, entry)`` gives each item's ticket."""
    items = tuple(replace(e, ticket=ticket(room_id, e)) for e in entries)
    return RoomSchedule(seq=seq, room_id=room_id, generated_at=now, items=items)


def mint_room_ticket(
    signer: TicketSigner, room_id: str, entry: ScheduleEntry, now: float
) -> tuple[str, str, int, int]:
    """A room's ticket for a session over ``ticket_window``: ``(token, jti, nbf, exp)``."""
    nbf, exp = ticket_window(entry.start, entry.end, entry.lead)
    token, jti = signer.mint(
        room_peer_id(room_id), entry.session_id, ROOM_ROLE, nbf, exp, issued_at=now
    )
    return token, jti, nbf, exp


def build_room_schedule(
    db: DbSession,
    room_id: str,
    signer: TicketSigner,
    *,
    now: float,
    seq: int,
    horizon: float = SCHEDULE_HORIZON,
) -> RoomSchedule:
    """A room's schedule straight from the tables, with freshly minted tickets."""
    entries = schedule_entries(db, now, horizon, room_id=room_id)[room_id]
    return room_schedule(
        room_id, entries, lambda r, e: mint_room_ticket(signer, r, e, now)[0], seq=seq, now=now
    )
