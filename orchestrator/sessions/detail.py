"""A session in full, read back for the API and the CLI: its transitions and its per-room
record (the CDR), and the sessions over a window."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import col, select

from orchestrator.centres import get_row
from orchestrator.db import DbSession
from orchestrator.models import Booking, Participation, Room, Session, SessionTransitionRecord


def list_sessions(
    db: DbSession, since: datetime | None = None, until: datetime | None = None
) -> list[Session]:
    """Sessions overlapping ``[since, until)``, by start."""
    query = select(Session).order_by(col(Session.start_utc), col(Session.id))
    if since is not None:
        query = query.where(Session.end_utc > since)
    if until is not None:
        query = query.where(Session.start_utc < until)
    return list(db.exec(query))


@dataclass(frozen=True, slots=True)
class TransitionView:
    seq: int
    state: str
    at: datetime


@dataclass(frozen=True, slots=True)
class ParticipationView:
    room_id: str
    room_name: str
    centre_id: str
    joined_at: datetime | None
    first_frame_at: datetime | None
    live_at: datetime | None
    left_at: datetime | None
    rejoins: int
    media: dict[str, Any]
    released_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class SessionDetail:
    """A session with its history and per-room record (the CDR)."""

    id: str
    booking_id: str
    title: str
    start: datetime
    end: datetime
    lead_seconds: int
    state: str
    revision: int
    connect_mode: str
    transitions: tuple[TransitionView, ...]
    participations: tuple[ParticipationView, ...]
    session_title: str | None = None
    """The occurrence's own title, when it was retitled alone (else the booking's)."""
    timezone: str = "UTC"
    """The booking's zone (its organiser's)."""


def session_detail(db: DbSession, session_id: str) -> SessionDetail:
    session = get_row(db, Session, session_id)
    booking = get_row(db, Booking, session.booking_id)
    transitions = db.exec(
        select(SessionTransitionRecord)
        .where(SessionTransitionRecord.session_id == session_id)
        .order_by(col(SessionTransitionRecord.seq))
    ).all()
    rows = db.exec(
        select(Participation, Room)
        .join(Room, col(Room.id) == col(Participation.room_id))
        .where(Participation.session_id == session_id)
        .order_by(col(Room.name), col(Room.id))
    ).all()
    return SessionDetail(
        id=session.id,
        booking_id=booking.id,
        title=booking.title,
        start=session.start_utc,
        end=session.end_utc,
        lead_seconds=session.lead_seconds,
        state=session.state,
        revision=session.revision,
        connect_mode=booking.connect_mode,
        transitions=tuple(TransitionView(t.seq, t.state, t.at) for t in transitions),
        participations=tuple(
            ParticipationView(
                room_id=room.id,
                room_name=room.name,
                centre_id=room.centre_id,
                joined_at=p.joined_at,
                first_frame_at=p.first_frame_at,
                live_at=p.live_at,
                left_at=p.left_at,
                rejoins=p.rejoins,
                media=json.loads(p.media_summary) if p.media_summary else {},
                released_at=p.released_at,
            )
            for p, room in rows
        ),
        session_title=session.title,
        timezone=booking.timezone,
    )
