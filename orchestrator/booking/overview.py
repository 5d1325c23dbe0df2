"""Read models of bookings for people: the list a person may see, and one booking in
full (rooms with their centres and approvals, sessions, guests), each read in one
transaction. Who may see what is ``orchestrator.people.access``'s; the lists here only
ever hold what that rule lets the person see.

- An **organiser** lists the bookings they own; **staff** also those of their
  centre (booked by one of its people or using one of its rooms); an
  **administrator** every booking.
- **Upcoming** bookings have a session that is not over (not ended, cancelled or
  failed, and ending after now); the others are **past**.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal

import sqlalchemy as sa
from sqlmodel import col, select

from orchestrator import lifecycle
from orchestrator.booking.series import booking_or_fail
from orchestrator.db import DbSession
from orchestrator.models import (
    Approval,
    Booking,
    BookingRoom,
    Centre,
    Guest,
    Room,
    Session,
    User,
)
from orchestrator.people import access
from orchestrator.people.accounts import Principal

When = Literal["upcoming", "past"]
LIST_LIMIT: Final = 200
UPCOMING_SESSIONS: Final = 20
PAST_SESSIONS: Final = 10
OPEN_STATES: Final = tuple(s for s in lifecycle.STATES if s not in lifecycle.TERMINAL_STATES)


@dataclass(frozen=True, slots=True)
class RoomLine:
    """A room of the booking (or one that left it, declined by its centre)."""

    room_id: str
    name: str
    centre_id: str
    centre_name: str
    timezone: str
    approval: str | None  # None: no approval needed; pending, approved or declined
    note: str | None = None
    in_booking: bool = True


@dataclass(frozen=True, slots=True)
class SessionLine:
    id: str
    start: datetime
    end: datetime
    state: str
    title: str | None
    recurrence_id: datetime | None

    def is_over(self, now: datetime) -> bool:
        return self.state in lifecycle.TERMINAL_STATES or self.end <= now

    def has_begun(self, now: datetime) -> bool:
        return self.start <= now or self.state != lifecycle.SCHEDULED


@dataclass(frozen=True, slots=True)
class GuestLine:
    id: str
    name: str
    email: str | None
    revoked_at: datetime | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class BookingOverview:
    id: str
    title: str
    timezone: str
    connect_mode: str
    status: str
    source: str
    rrule: str | None
    recurring: bool
    owner_id: str | None
    owner_name: str | None
    owner_email: str | None
    owner_centre_id: str | None
    owner_centre_name: str | None
    organiser: str | None  # a calendar's ORGANIZER, for bookings from calendars
    rooms: tuple[RoomLine, ...]
    upcoming: tuple[SessionLine, ...]  # not over, by start (the first few)
    past: tuple[SessionLine, ...]  # over, latest first (the last few)
    more_upcoming: int
    more_past: int
    guests: tuple[GuestLine, ...]

    @property
    def room_centre_ids(self) -> tuple[str, ...]:
        """The centres of the rooms in the booking (what the privacy rule reads)."""
        return tuple(sorted({r.centre_id for r in self.rooms if r.in_booking}))

    @property
    def current(self) -> SessionLine | None:
        """The session under way or coming next."""
        return self.upcoming[0] if self.upcoming else None

    @property
    def frequency(self) -> str | None:
        """``daily``, ``weekly``, ``monthly``, ``yearly`` (or another FREQ, lower case)."""
        if not self.rrule:
            return None
        for part in self.rrule.splitlines()[0].split(";"):
            key, _, value = part.partition("=")
            if key.upper() == "FREQ":
                return value.lower()
        return None

    def visible_to(self, user: Principal | None) -> bool:
        return access.can_see_booking(
            user, self.owner_id, self.owner_centre_id, self.room_centre_ids
        )

    def manageable_by(self, user: Principal | None) -> bool:
        return access.can_manage_booking(user, self.owner_id, self.room_centre_ids)


@dataclass(frozen=True, slots=True)
class BookingLine:
    """A booking in a list: its next (or last) session and where it happens."""

    id: str
    title: str
    status: str
    connect_mode: str
    recurring: bool
    owner_name: str | None
    session_id: str | None
    start: datetime | None
    end: datetime | None
    state: str | None
    rooms: tuple[tuple[str, str], ...]  # (room name, centre name)
    pending: int  # rooms still waiting for their centre's approval


# --- one booking ---------------------------------------------------------------------------


def _rooms(db: DbSession, booking_id: str) -> tuple[RoomLine, ...]:
    approvals = {
        a.room_id: a
        for a in db.exec(select(Approval).where(col(Approval.booking_id) == booking_id)).all()
    }
    members = set(
        db.exec(select(BookingRoom.room_id).where(col(BookingRoom.booking_id) == booking_id)).all()
    )
    ids = sorted(members | set(approvals))
    rows = db.exec(
        select(Room, Centre)
        .join(Centre, col(Centre.id) == col(Room.centre_id))
        .where(col(Room.id).in_(ids))
    ).all()
    lines = []
    for room, centre in rows:
        approval = approvals.get(room.id)
        lines.append(
            RoomLine(
                room_id=room.id,
                name=room.name,
                centre_id=centre.id,
                centre_name=centre.name,
                timezone=centre.timezone,
                approval=approval.state if approval else None,
                note=approval.note if approval else None,
                in_booking=room.id in members,
            )
        )
    return tuple(sorted(lines, key=lambda r: (not r.in_booking, r.centre_name, r.name)))


def _session_line(s: Session) -> SessionLine:
    return SessionLine(s.id, s.start_utc, s.end_utc, s.state, s.title, s.recurrence_id)


def booking_overview(db: DbSession, booking_id: str, now: datetime) -> BookingOverview:
    """The booking in full; ``not-found`` if there is none."""
    booking = booking_or_fail(db, booking_id)
    not_over = sa.and_(col(Session.state).in_(OPEN_STATES), col(Session.end_utc) > now)
    base = select(Session).where(col(Session.booking_id) == booking_id)
    upcoming = db.exec(
        base.where(not_over).order_by(col(Session.start_utc)).limit(UPCOMING_SESSIONS + 1)
    ).all()
    past = db.exec(
        base.where(sa.not_(not_over))
        .order_by(col(Session.start_utc).desc())
        .limit(PAST_SESSIONS + 1)
    ).all()
    kind = sa.case((not_over, "upcoming"), else_="past")
    counts: dict[str, int] = {
        k: n
        for k, n in db.connection().execute(
            sa.select(kind, sa.func.count())
            .where(col(Session.booking_id) == booking_id)
            .group_by(kind)
        )
    }
    owner = db.get(User, booking.owner_id) if booking.owner_id else None
    owner_centre = db.get(Centre, booking.owner_centre_id) if booking.owner_centre_id else None
    guests = db.exec(
        select(Guest).where(col(Guest.booking_id) == booking_id).order_by(col(Guest.created_at))
    ).all()
    return BookingOverview(
        id=booking.id,
        title=booking.title,
        timezone=booking.timezone,
        connect_mode=booking.connect_mode,
        status=booking.status,
        source=booking.source,
        rrule=booking.rrule,
        recurring=bool(booking.rrule) or booking.rdates not in ("", "[]"),
        owner_id=booking.owner_id,
        owner_name=owner.name if owner else None,
        owner_email=owner.email if owner else None,
        owner_centre_id=booking.owner_centre_id,
        owner_centre_name=owner_centre.name if owner_centre else None,
        organiser=booking.organiser,
        rooms=_rooms(db, booking_id),
        upcoming=tuple(_session_line(s) for s in upcoming[:UPCOMING_SESSIONS]),
        past=tuple(_session_line(s) for s in past[:PAST_SESSIONS]),
        more_upcoming=max(0, counts.get("upcoming", 0) - UPCOMING_SESSIONS),
        more_past=max(0, counts.get("past", 0) - PAST_SESSIONS),
        guests=tuple(GuestLine(g.id, g.name, g.email, g.revoked_at, g.created_at) for g in guests),
    )


def booking_of_session(db: DbSession, session_id: str) -> str | None:
    session = db.get(Session, session_id)
    return session.booking_id if session is not None else None


def guest_booking(db: DbSession, guest_id: str) -> str | None:
    guest = db.get(Guest, guest_id)
    return guest.booking_id if guest is not None else None


# --- lists ---------------------------------------------------------------------------------


def _visible_ids(user: Principal) -> sa.Select[str] | sa.CompoundSelect[str] | None:
    """The bookings the person lists (None: every booking, for an administrator)."""
    if user.is_admin:
        return None
    mine = sa.select(col(Booking.id)).where(col(Booking.owner_id) == user.id)
    if user.role != "staff" or user.centre_id is None:
        return mine
    centre_rooms = (
        sa.select(col(BookingRoom.booking_id))
        .join(Room, col(Room.id) == col(BookingRoom.room_id))
        .where(col(Room.centre_id) == user.centre_id)
    )
    booked_here = sa.select(col(Booking.id)).where(col(Booking.owner_centre_id) == user.centre_id)
    return sa.union(mine, centre_rooms, booked_here)


def list_bookings_for(
    db: DbSession, user: Principal, now: datetime, when: When = "upcoming", limit: int = LIST_LIMIT
) -> list[BookingLine]:
    """The person's bookings (see the module doc): upcoming ones by their next session,
    past ones latest first."""
    not_over = sa.and_(col(Session.state).in_(OPEN_STATES), col(Session.end_utc) > now)
    upcoming_ids = sa.select(col(Session.booking_id)).where(not_over)
    query = select(Booking)
    visible = _visible_ids(user)
    if visible is not None:
        query = query.where(col(Booking.id).in_(visible))
    if when == "upcoming":
        query = query.where(col(Booking.id).in_(upcoming_ids))
    else:
        query = query.where(col(Booking.id).not_in(upcoming_ids))
    found = db.exec(query).all()
    if not found:
        return []
    ids = [b.id for b in found]
    sessions_q = select(Session).where(col(Session.booking_id).in_(ids))
    if when == "upcoming":
        sessions_q = sessions_q.where(not_over)
    chosen: dict[str, Session] = {}
    for s in db.exec(sessions_q).all():
        best = chosen.get(s.booking_id)
        # Upcoming: the next session; past: the last one.
        if best is None or (s.start_utc < best.start_utc) == (when == "upcoming"):
            chosen[s.booking_id] = s
    rooms: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for bid, rname, cname in db.connection().execute(
        sa.select(col(BookingRoom.booking_id), col(Room.name), col(Centre.name))
        .join(Room, col(Room.id) == col(BookingRoom.room_id))
        .join(Centre, col(Centre.id) == col(Room.centre_id))
        .where(col(BookingRoom.booking_id).in_(ids))
        .order_by(col(Centre.name), col(Room.name))
    ):
        rooms[bid].append((rname, cname))
    pending: dict[str, int] = {
        bid: count
        for bid, count in db.connection().execute(
            sa.select(col(Approval.booking_id), sa.func.count())
            .where(col(Approval.booking_id).in_(ids), col(Approval.state) == "pending")
            .group_by(col(Approval.booking_id))
        )
    }
    owners = {
        u.id: u.name
        for u in db.exec(
            select(User).where(col(User.id).in_([b.owner_id for b in found if b.owner_id]))
        ).all()
    }
    lines = []
    for b in found:
        next_or_last = chosen.get(b.id)
        lines.append(
            BookingLine(
                id=b.id,
                title=b.title,
                status=b.status,
                connect_mode=b.connect_mode,
                recurring=bool(b.rrule) or b.rdates not in ("", "[]"),
                owner_name=owners.get(b.owner_id) if b.owner_id else None,
                session_id=next_or_last.id if next_or_last else None,
                start=next_or_last.start_utc if next_or_last else b.start_utc,
                end=next_or_last.end_utc if next_or_last else b.end_utc,
                state=next_or_last.state if next_or_last else None,
                rooms=tuple(rooms[b.id]),
                pending=pending.get(b.id, 0),
            )
        )
    lines.sort(key=lambda x: x.start or now, reverse=when == "past")
    return lines[:limit]
