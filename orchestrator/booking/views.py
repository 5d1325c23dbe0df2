"""Read-only views of bookings: a room's occurrences with UTC and room-local times,
each told apart (its booking's UID, its recurrence id, all-day and transparency
flags) and, when it no longer holds the room, why (``cancel_reason``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import col

from orchestrator import lifecycle
from orchestrator.booking import recurrence
from orchestrator.booking.commands import CALENDAR, ORGANISER
from orchestrator.booking.series import LOCAL
from orchestrator.db import DbSession
from orchestrator.errors import DomainError
from orchestrator.models import Booking, BookingRoom, Centre, Participation, Room, Session

CONFLICT = "conflict"
NO_SHOW = "no-show"


def cancel_reason(
    state: str, in_session: bool, released: bool, source: str, cancelled_by: str | None = None
) -> str | None:
    """Why an occurrence no longer holds a room, or None while it does:

    - ``conflict``: it was left out because a room was taken when it was booked,
      imported or entered the horizon (``store``: a session cancelled at
      birth with no room in it);
    - ``organiser``: cancelled by a person here (``orchestrator.sessions.actions``);
    - ``calendar``: cancelled by the calendar it came from (STATUS:CANCELLED, gone
      from a feed or a CalDAV calendar);
    - ``no-show``: the room never joined and was released (``horizon``).

    Who cancelled is what the session recorded (``commands``); a session that
    recorded nothing (cancelled outside ``commands``) goes by its booking's source.
    """
    if state == lifecycle.CANCELLED:
        if not in_session:
            return CONFLICT
        return cancelled_by or (ORGANISER if source == LOCAL else CALENDAR)
    return NO_SHOW if released else None


@dataclass(frozen=True, slots=True)
class RoomOccurrence:
    """One occurrence a room is booked into. ``start``/``end`` are aware UTC;
    ``start_local``/``end_local`` are naive wall-clock times in ``room_timezone``;
    ``recurrence_id`` (aware UTC) names the occurrence in its series (``uid``)."""

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
    uid: str
    recurrence_id: datetime | None
    all_day: bool
    transparent: bool
    booking_timezone: str
    cancel_reason: str | None


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
            col(Booking.uid),
            col(Session.recurrence_id),
            col(Booking.all_day),
            col(Booking.transparent),
            col(Booking.timezone),
            col(Participation.room_id),
            col(Session.cancelled_by),
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
    return [_occurrence(tuple(row), zone) for row in rows]


def _occurrence(row: tuple[Any, ...], zone: str) -> RoomOccurrence:
    (
        sid,
        bid,
        title,
        start,
        end,
        state,
        source,
        mode,
        rrule,
        rdates,
        released,
        uid,
        recurrence_id,
        all_day,
        transparent,
        booking_zone,
        member,
        cancelled_by,
    ) = row
    return RoomOccurrence(
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
        uid=uid,
        recurrence_id=recurrence_id,
        all_day=bool(all_day),
        transparent=bool(transparent),
        booking_timezone=booking_zone,
        # No participation row for the room: the occurrence was skipped for a conflict.
        cancel_reason=cancel_reason(
            state, member is not None, released is not None, source, cancelled_by
        ),
    )
