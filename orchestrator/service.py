"""Domain commands and queries over one transaction (a ``DbSession``).

Each function is synchronous, so the CLI calls it through ``Database.run_sync`` and
async callers through ``Database.run``. Refusals raise ``DomainError`` with a stable
code that the API and the CLI show as is.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlalchemy as sa
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import col, select

from orchestrator import lifecycle
from orchestrator.credentials import (
    hash_api_token,
    hash_room_key,
    new_api_token,
    new_room_key,
    verify_api_token,
)
from orchestrator.db import DbSession
from orchestrator.errors import DomainError as DomainError
from orchestrator.inputs import check_instant, one_line
from orchestrator.models import (
    ApiToken,
    Booking,
    Centre,
    Participation,
    Room,
    Session,
    SessionTransitionRecord,
    utcnow,
)

MIN_ROOMS = 2
"""A telepresence booking links at least two rooms."""
MAX_LEAD_SECONDS = 3600
MAX_DURATION_SECONDS = 366 * 86400
"""The longest a room's maximum booking duration may be set to."""
CONNECT_MODES = frozenset({"automatic", "one-button", "reserve-only", "manual"})
"""Accepted connect modes (``orchestrator.policy``; ``manual`` is ``one-button``)."""


# --- pure validation ------------------------------------------------------------------


def zone(name: str) -> ZoneInfo:
    """The IANA zone called ``name``, or ``DomainError("unknown-timezone")``."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: "Europe" is a directory
        raise DomainError("unknown-timezone", f"unknown time zone {name[:60]!r}") from None


def _name(value: str, what: str) -> str:
    """A centre's, a room's or a booking's name: one line (``inputs.one_line``)."""
    return one_line(value, code="invalid-name", what=f"a {what}'s name")


def check_times(start: datetime, end: datetime) -> None:
    """Aware instants within the range every computation holds (``inputs``), the end
    after the start."""
    check_instant(start, "the start")
    check_instant(end, "the end")
    if end <= start:
        raise DomainError("invalid-time", "a booking ends after it starts")


def _check_room_ids(room_ids: Sequence[str]) -> None:
    if len(set(room_ids)) != len(room_ids):
        raise DomainError("duplicate", "a room is listed twice")
    if len(room_ids) < MIN_ROOMS:
        raise DomainError("too-few-rooms", f"a booking links at least {MIN_ROOMS} rooms")


def _wall_clock(instant: datetime, tz: ZoneInfo) -> datetime:
    return instant.astimezone(tz).replace(tzinfo=None)


# --- centres and rooms ----------------------------------------------------------------


def _insert(db: DbSession, row: Centre | Room, duplicate: str) -> None:
    """Add ``row``; a unique constraint hit by a concurrent writer is a ``duplicate``."""
    db.add(row)
    try:
        db.flush()
    except sa.exc.IntegrityError:
        raise DomainError("duplicate", duplicate) from None


M = TypeVar("M", Centre, Room, Booking, Session)


def _get(db: DbSession, model: type[M], id_: str) -> M:
    found = db.get(model, id_)
    if found is None:
        raise DomainError("not-found", f"no {model.__name__.lower()} {id_!r}")
    return found


def set_room_policy(
    db: DbSession,
    room_id: str,
    *,
    buffer_seconds: int | None = None,
    max_duration_seconds: int | None = None,
    max_advance_days: int | None = None,
    aliases: Sequence[str] | None = None,
) -> Room:
    """Change a room's booking policy; the values apply to bookings made from now on.
    Aliases (the names calendars use for the room) are one line each (``invalid-alias``)."""
    room = _get(db, Room, room_id)
    if buffer_seconds is not None:
        if not 0 <= buffer_seconds <= 4 * 3600:
            raise DomainError("invalid-policy", "a buffer is between 0 and 4 hours")
        room.buffer_seconds = buffer_seconds
    if max_duration_seconds is not None:
        if not 300 <= max_duration_seconds <= MAX_DURATION_SECONDS:
            raise DomainError(
                "invalid-policy", "a maximum duration is between 5 minutes and 366 days"
            )
        room.max_duration_seconds = max_duration_seconds
    if max_advance_days is not None:
        if not 1 <= max_advance_days <= 3 * 365:
            raise DomainError("invalid-policy", "rooms are booked 1 to 1095 days ahead")
        room.max_advance_days = max_advance_days
    if aliases is not None:
        kept = [one_line(a, code="invalid-alias", what="an alias") for a in aliases if a.strip()]
        room.aliases = json.dumps(kept)
    db.add(room)
    db.flush()
    return room


def room_zone(db: DbSession, room_id: str) -> str:
    """The IANA zone of the room's centre."""
    room = _get(db, Room, room_id)
    return _get(db, Centre, room.centre_id).timezone


def get_room(db: DbSession, room_id: str) -> Room:
    """The room, or DomainError("not-found")."""
    return _get(db, Room, room_id)


def add_centre(db: DbSession, name: str, timezone: str) -> Centre:
    name = _name(name, "centre")
    zone(timezone)
    if db.exec(select(Centre).where(Centre.name == name)).first() is not None:
        raise DomainError("duplicate", f"a centre called {name!r} exists")
    centre = Centre(name=name, timezone=timezone)
    _insert(db, centre, f"a centre called {name!r} exists")
    return centre


def add_room(db: DbSession, centre_id: str, name: str) -> tuple[Room, str]:
    """A new room and its key; the key is shown once and only its hash is kept."""
    name = _name(name, "room")
    _get(db, Centre, centre_id)
    clash = select(Room).where(Room.centre_id == centre_id, Room.name == name)
    if db.exec(clash).first() is not None:
        raise DomainError("duplicate", f"the centre has a room called {name!r}")
    key = new_room_key()
    room = Room(centre_id=centre_id, name=name, key_hash=hash_room_key(key), key_generation=1)
    _insert(db, room, f"the centre has a room called {name!r}")
    return room, key


def rotate_room_key(db: DbSession, room_id: str) -> str:
    """A new key for the room; its generation goes up, which revokes the old key."""
    room = _get(db, Room, room_id)
    key = new_room_key()
    room.key_hash = hash_room_key(key)
    room.key_generation += 1
    db.add(room)
    db.flush()
    return key


def list_centres(db: DbSession) -> list[Centre]:
    return list(db.exec(select(Centre).order_by(col(Centre.name))))


def list_rooms(db: DbSession, centre_id: str | None = None) -> list[Room]:
    query = select(Room).order_by(col(Room.centre_id), col(Room.name))
    if centre_id is not None:
        query = query.where(Room.centre_id == centre_id)
    return list(db.exec(query))


# --- bookings and sessions ------------------------------------------------------------


def book(
    db: DbSession,
    title: str,
    start: datetime,
    end: datetime,
    room_ids: Sequence[str],
    lead_seconds: int = 60,
    timezone: str | None = None,
    connect_mode: str = "automatic",
) -> tuple[Booking, Session]:
    """Book rooms (of any centres) together for one meeting; the session exists at once,
    ``scheduled``, and holds the rooms (``bookings.BookingConflict`` if one is taken).

    ``timezone`` is the zone the wall-clock times are kept in; by default the first
    room's centre's. The instants are kept exactly as given (an ambiguous autumn wall
    time is not re-read). Series, the booking window and an injected clock are
    ``orchestrator.bookings.create_series``'s; this one-off command has no ``now`` and
    so checks no booking window.
    """
    from orchestrator import booking_busy, booking_store, policy
    from orchestrator.series import Occurrence

    title = _name(title, "booking")
    check_times(start, end)
    if not 0 <= lead_seconds <= MAX_LEAD_SECONDS:
        raise DomainError("invalid-lead", f"lead is between 0 and {MAX_LEAD_SECONDS} s")
    try:
        mode = policy.connect_mode(connect_mode)
    except policy.PolicyError as exc:
        raise DomainError("invalid-connect-mode", exc.message) from None
    _check_room_ids(room_ids)
    rooms = [_get(db, Room, room_id) for room_id in room_ids]
    if timezone is None:
        timezone = _get(db, Centre, rooms[0].centre_id).timezone
    tz = zone(timezone)
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    policies = booking_busy.room_policies(db, room_ids)
    try:
        policy.check_duration(end - start, policies)
    except policy.PolicyError as exc:
        raise DomainError(exc.code, exc.message) from None
    now = utcnow()
    booking = Booking(
        title=title,
        start_utc=start,
        end_utc=end,
        start_local=_wall_clock(start, tz),
        end_local=_wall_clock(end, tz),
        timezone=timezone,
        lead_seconds=lead_seconds,
        connect_mode=mode,
        created_at=now,
        updated_at=now,
    )
    db.add(booking)
    db.flush()  # parents first: no relationships tell the unit of work the order
    booking_store.set_rooms(db, booking.id, room_ids)
    occurrence = Occurrence(
        recurrence_id=start,
        start=start,
        end=end,
        start_local=booking.start_local,
        end_local=booking.end_local,
    )
    result = booking_store.apply_occurrences(
        db,
        booking.id,
        [occurrence],
        policies,
        lead_seconds=lead_seconds,
        on_conflict="reject",
        now=now,
    )
    session = _get(db, Session, result.session_ids[0])
    return booking, session


def cancel_booking(db: DbSession, booking_id: str) -> list[Session]:
    """Cancel every session of the booking that has not finished, and free its rooms;
    the scheduler tells signalling and revokes the tickets it minted for them."""
    from orchestrator.booking_store import cancel_session

    booking = _get(db, Booking, booking_id)
    booking.status = "cancelled"
    db.add(booking)
    query = select(Session).where(Session.booking_id == booking_id).with_for_update()
    cancelled = []
    now = utcnow()
    for session in db.exec(query).all():
        if session.state in lifecycle.TERMINAL_STATES:
            continue
        if cancel_session(db, session.id, now):
            cancelled.append(session)
    return cancelled


def record_transition(
    db: DbSession, session: Session, state: str, at: datetime, *, now: datetime | None = None
) -> bool:
    """Move ``session`` to ``state`` and append its transition record, unless another
    transaction changed the session since it was read (then nothing is written and
    the answer is False). ``state`` may repeat the current one (a second warning)."""
    changed_at = now if now is not None else utcnow()
    moved = db.connection().execute(
        sa.update(Session)
        .where(col(Session.id) == session.id, col(Session.revision) == session.revision)
        .values(state=state, revision=session.revision + 1, updated_at=changed_at)
    )
    if moved.rowcount != 1:
        return False
    last = db.exec(
        select(sa.func.max(SessionTransitionRecord.seq)).where(
            SessionTransitionRecord.session_id == session.id
        )
    ).one()
    db.add(SessionTransitionRecord(session_id=session.id, seq=(last or 0) + 1, state=state, at=at))
    # The row is written; keep the loaded object in step without a second UPDATE.
    set_committed_value(session, "state", state)
    set_committed_value(session, "revision", session.revision + 1)
    set_committed_value(session, "updated_at", changed_at)
    db.flush()
    return True


def list_bookings(
    db: DbSession, since: datetime | None = None, until: datetime | None = None
) -> list[Booking]:
    """Bookings overlapping ``[since, until)``, by start."""
    query = select(Booking).order_by(col(Booking.start_utc), col(Booking.id))
    if since is not None:
        query = query.where(Booking.end_utc > since)
    if until is not None:
        query = query.where(Booking.start_utc < until)
    return list(db.exec(query))


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
    session = _get(db, Session, session_id)
    booking = _get(db, Booking, session.booking_id)
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


# --- admin API tokens -----------------------------------------------------------------


def create_api_token(db: DbSession, name: str) -> str:
    """A new admin bearer token, shown once; only its hash is kept."""
    token = new_api_token()
    db.add(ApiToken(name=_name(name, "token"), token_hash=hash_api_token(token)))
    db.flush()
    return token


def check_api_token(db: DbSession, token: str) -> bool:
    hashes = db.exec(select(ApiToken.token_hash)).all()
    return verify_api_token(token, hashes)
