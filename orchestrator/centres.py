"""Centres and their rooms: adding, listing, room keys, a room's booking, ICE and
topology policies, the IANA zone a centre keeps its wall-clock times in.

Each function is synchronous over one transaction (a ``DbSession``), so the CLI calls it
through ``Database.run_sync`` and async callers through ``Database.run``. Refusals raise
``DomainError`` with a stable code that the API and the CLI show as is.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlalchemy as sa
from sqlmodel import col, select

from common.turn import ICE_POLICIES
from orchestrator.credentials import hash_room_key, new_room_key
from orchestrator.db import DbSession
from orchestrator.errors import DomainError
from orchestrator.inputs import one_line
from orchestrator.models import Booking, Centre, Room, Session

MAX_DURATION_SECONDS = 366 * 86400
"""The longest a room's maximum booking duration may be set to."""


# --- pure validation ------------------------------------------------------------------


def zone(name: str) -> ZoneInfo:
    """The IANA zone called ``name``, or ``DomainError("unknown-timezone")``."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: "Europe" is a directory
        raise DomainError("unknown-timezone", f"unknown time zone {name[:60]!r}") from None


def check_name(value: str, what: str) -> str:
    """A centre's, a room's or a booking's name: one line (``inputs.one_line``)."""
    return one_line(value, code="invalid-name", what=f"a {what}'s name")


# --- centres and rooms ----------------------------------------------------------------


def _insert(db: DbSession, row: Centre | Room, duplicate: str) -> None:
    """Add ``row``; a unique constraint hit by a concurrent writer is a ``duplicate``."""
    db.add(row)
    try:
        db.flush()
    except sa.exc.IntegrityError:
        raise DomainError("duplicate", duplicate) from None


M = TypeVar("M", Centre, Room, Booking, Session)


def get_row(db: DbSession, model: type[M], id_: str) -> M:
    """The row of ``model`` with id ``id_``, or ``DomainError("not-found")``."""
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
    ice_policy: str | None = None,
    small_uplink: bool | None = None,
) -> Room:
    """Change a room's booking policy; the values apply to bookings made from now on.
    Aliases (the names calendars use for the room) are one line each (``invalid-alias``).
    ``ice_policy`` (``all`` or ``relay``, else ``invalid-ice-policy``) reaches the room's
    agent with its next welcome. ``small_uplink``: the room's sessions run on the SFU
    (``sessions.topology``), from the next transition the scheduler sends."""
    room = get_row(db, Room, room_id)
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
    if ice_policy is not None:
        if ice_policy not in ICE_POLICIES:
            raise DomainError("invalid-ice-policy", "a room's ICE policy is all or relay")
        room.ice_policy = ice_policy
    if small_uplink is not None:
        room.small_uplink = small_uplink
    db.add(room)
    db.flush()
    return room


def room_zone(db: DbSession, room_id: str) -> str:
    """The IANA zone of the room's centre."""
    room = get_row(db, Room, room_id)
    return get_row(db, Centre, room.centre_id).timezone


def get_room(db: DbSession, room_id: str) -> Room:
    """The room, or DomainError("not-found")."""
    return get_row(db, Room, room_id)


def add_centre(db: DbSession, name: str, timezone: str) -> Centre:
    name = check_name(name, "centre")
    zone(timezone)
    if db.exec(select(Centre).where(Centre.name == name)).first() is not None:
        raise DomainError("duplicate", f"a centre called {name!r} exists")
    centre = Centre(name=name, timezone=timezone)
    _insert(db, centre, f"a centre called {name!r} exists")
    return centre


def add_room(db: DbSession, centre_id: str, name: str) -> tuple[Room, str]:
    """A new room and its key; the key is shown once and only its hash is kept."""
    name = check_name(name, "room")
    get_row(db, Centre, centre_id)
    clash = select(Room).where(Room.centre_id == centre_id, Room.name == name)
    if db.exec(clash).first() is not None:
        raise DomainError("duplicate", f"the centre has a room called {name!r}")
    key = new_room_key()
    room = Room(centre_id=centre_id, name=name, key_hash=hash_room_key(key), key_generation=1)
    _insert(db, room, f"the centre has a room called {name!r}")
    return room, key


def rotate_room_key(db: DbSession, room_id: str) -> str:
    """A new key for the room; its generation goes up, which revokes the old key."""
    room = get_row(db, Room, room_id)
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
