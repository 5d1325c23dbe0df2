"""Calendar subscription tokens: the secret in a room's or a centre's feed URL.

Like room keys and admin tokens (orchestrator/credentials.py) a token carries 256
random bits, is shown once and is kept only as its SHA-256, so the table leaks
nothing. A token names exactly one scope, a room or a centre; whoever holds it
reads that feed and nothing else. Resolving looks the hash up by its unique
index: with a 256-bit secret the lookup reveals nothing a timing attack could use.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import select

from orchestrator.credentials import hash_secret, new_secret
from orchestrator.db import DbSession
from orchestrator.errors import DomainError
from orchestrator.models import CalendarToken, Centre, Room

CALENDAR_TOKEN_PREFIX = "tcc_"


@dataclass(frozen=True, slots=True)
class CalendarScope:
    """What a token opens: exactly one of a room and a centre."""

    room_id: str | None = None
    centre_id: str | None = None


@dataclass(frozen=True, slots=True)
class IssuedCalendarToken:
    """A new token: ``token`` is the secret, shown this once; ``id`` names it later."""

    id: str
    token: str
    scope: CalendarScope


def new_calendar_token() -> str:
    """``tcc_`` and 43 URL-safe base64 characters (256 bits): safe in a URL path."""
    return new_secret(CALENDAR_TOKEN_PREFIX)


def hash_calendar_token(token: str) -> str:
    return hash_secret(token)


def _issue(db: DbSession, scope: CalendarScope) -> IssuedCalendarToken:
    token = new_calendar_token()
    row = CalendarToken(
        token_hash=hash_calendar_token(token), room_id=scope.room_id, centre_id=scope.centre_id
    )
    db.add(row)
    db.flush()
    return IssuedCalendarToken(row.id, token, scope)


def create_room_token(db: DbSession, room_id: str) -> IssuedCalendarToken:
    """A subscription token for the room's feed and free/busy;
    ``DomainError("not-found")`` for an unknown room."""
    if db.get(Room, room_id) is None:
        raise DomainError("not-found", f"no room {room_id!r}")
    return _issue(db, CalendarScope(room_id=room_id))


def create_centre_token(db: DbSession, centre_id: str) -> IssuedCalendarToken:
    """A subscription token for the feed of every room of the centre."""
    if db.get(Centre, centre_id) is None:
        raise DomainError("not-found", f"no centre {centre_id!r}")
    return _issue(db, CalendarScope(centre_id=centre_id))


def resolve(db: DbSession, token: str) -> CalendarScope | None:
    """The scope the token opens, or None for a token unknown, revoked or malformed."""
    if not token.startswith(CALENDAR_TOKEN_PREFIX) or len(token) > 128:
        return None
    row = db.exec(
        select(CalendarToken).where(CalendarToken.token_hash == hash_calendar_token(token))
    ).first()
    if row is None:
        return None
    return CalendarScope(room_id=row.room_id, centre_id=row.centre_id)


def revoke(db: DbSession, token: str) -> bool:
    """Revoke a token by its secret; whether there was one to revoke."""
    row = db.exec(
        select(CalendarToken).where(CalendarToken.token_hash == hash_calendar_token(token))
    ).first()
    if row is None:
        return False
    db.delete(row)
    db.flush()
    return True


def revoke_id(db: DbSession, token_id: str) -> bool:
    """Revoke a token by its id (as ``IssuedCalendarToken.id`` gave it)."""
    row = db.get(CalendarToken, token_id)
    if row is None:
        return False
    db.delete(row)
    db.flush()
    return True
