"""Room panels: the tablet or touch panel beside a room's screen, opened by a secret URL.

A panel has no login: whoever holds its URL sees the room's next bookings and
drives the room (join, privacy, content, extend). So the token is a credential:

- ``tcp_`` and 256 random bits, shown once, kept as its SHA-256 only (like room keys
  and calendar tokens); a room may have several (a spare tablet), and revoking
  removes them all.
- A panel stands in the room, where anyone can read it. It shows a booking's title
  only when the booking is the room's own centre's: booked on behalf of this centre
  (``owner_centre_id``) or by one of its members; a booking with no owner (from a
  calendar, the CLI or the API) only when every room it uses is of this centre.
  Any other booking is shown as booked, without title or other sites, as
  cross-centre privacy asks (``orchestrator.people.access``).

What the panel shows of time is plain functions of the session's times and ``now``
(``session_timing``): the phase follows the lifecycle (preparing at start - lead,
live at start, the end warnings at 5 and 1 minutes before the end), so the panel
agrees with what the rooms are told.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.orm import aliased
from sqlmodel import col, select

from orchestrator import lifecycle
from orchestrator.booking import policy
from orchestrator.credentials import hash_secret, new_secret
from orchestrator.db import DbSession
from orchestrator.errors import DomainError
from orchestrator.models import (
    Booking,
    BookingRoom,
    Centre,
    PanelToken,
    Participation,
    Room,
    Session,
    User,
)
from orchestrator.sessions.calls import takes_call

PANEL_TOKEN_PREFIX = "tcp_"
PANEL_DAYS = 2
"""A panel lists the room's sessions of today and tomorrow, in the room's zone."""
HIDDEN_STATES = lifecycle.TERMINAL_STATES
FIRST_WARNING = int(lifecycle.FIRST_WARNING_SECONDS // 60)
FINAL_WARNING = int(lifecycle.FINAL_WARNING_SECONDS // 60)
ONE_BUTTON_MODES = frozenset({policy.ONE_BUTTON, policy.MANUAL})


# --- tokens -------------------------------------------------------------------------------


def new_panel_token() -> str:
    """``tcp_`` and 43 URL-safe base64 characters (256 bits): safe in a URL path."""
    return new_secret(PANEL_TOKEN_PREFIX)


def hash_panel_token(token: str) -> str:
    return hash_secret(token)


def create_panel_token(db: DbSession, room_id: str) -> str:
    """A new secret for the room's panel URL (shown once); ``not-found`` for an unknown
    room. Earlier tokens of the room keep working until revoked."""
    if db.get(Room, room_id) is None:
        raise DomainError("not-found", f"no room {room_id!r}")
    token = new_panel_token()
    db.add(PanelToken(token_hash=hash_panel_token(token), room_id=room_id))
    db.flush()
    return token


def resolve_panel(db: DbSession, token: str) -> Room:
    """The room a panel token opens, or ``DomainError("panel-link-invalid")`` for a token
    unknown, revoked or malformed. The lookup is by the hash's unique index: with a
    256-bit secret it reveals nothing a timing attack could use."""
    if not token.startswith(PANEL_TOKEN_PREFIX) or len(token) > 128:
        raise DomainError("panel-link-invalid", "this panel link is not valid")
    row = db.exec(
        select(PanelToken).where(col(PanelToken.token_hash) == hash_panel_token(token))
    ).first()
    room = db.get(Room, row.room_id) if row is not None else None
    if room is None:
        raise DomainError("panel-link-invalid", "this panel link is not valid")
    return room


def revoke_panel_tokens(db: DbSession, room_id: str) -> int:
    """Revoke every panel token of the room; how many there were."""
    rows = db.exec(select(PanelToken).where(col(PanelToken.room_id) == room_id)).all()
    for row in rows:
        db.delete(row)
    db.flush()
    return len(rows)


# --- pure rules ---------------------------------------------------------------------------


def title_visible(
    room_centre_id: str,
    owner_id: str | None,
    owner_centre_id: str | None,
    owner_member_centre_id: str | None,
    booking_room_centre_ids: Iterable[str],
) -> bool:
    """Whether a panel of a room of ``room_centre_id`` may show a booking's title (see
    the module doc): the owner's centres first; an unowned booking by its rooms."""
    if room_centre_id in (owner_centre_id, owner_member_centre_id):
        return True
    if owner_id is not None or owner_centre_id is not None:
        return False
    centres = set(booking_room_centre_ids)
    return centres == {room_centre_id}


@dataclass(frozen=True, slots=True)
class Timing:
    """A session as the panel sees it at ``now``.

    ``phase``: ``scheduled`` (before start - lead), ``preparing``, ``live``, ``ending``
    (from the first end warning) or ``ended``. ``warning``: 5 or 1 (minutes before
    the end) once the lifecycle's first or final warning is due, else None.
    ``joinable``: a one-button session's join button is enabled (start - lead to end).
    """

    phase: str
    starts_in: float
    ends_in: float
    warning: int | None
    joinable: bool


def session_timing(
    start: datetime, end: datetime, lead_seconds: int, connect_mode: str, now: datetime
) -> Timing:
    s, e, t = start.timestamp(), end.timestamp(), now.timestamp()
    planned = dict(lifecycle.planned_transitions(s, e, lead_seconds))
    phase = lifecycle.SCHEDULED
    for state in (lifecycle.PREPARING, lifecycle.LIVE, lifecycle.ENDING, lifecycle.ENDED):
        if t >= planned[state]:
            phase = state
    warning: int | None = None
    if phase == lifecycle.ENDING:
        last_minute = e - t <= lifecycle.FINAL_WARNING_SECONDS
        warning = FINAL_WARNING if last_minute else FIRST_WARNING
    in_window = planned[lifecycle.PREPARING] <= t < e
    return Timing(
        phase=phase,
        starts_in=max(0.0, s - t),
        ends_in=max(0.0, e - t),
        warning=warning,
        joinable=in_window and connect_mode in ONE_BUTTON_MODES,
    )


# --- what a panel shows -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Site:
    """Another room of the session, with the zone its local time is told in."""

    room_name: str
    centre_name: str
    timezone: str


@dataclass(frozen=True, slots=True)
class PanelSession:
    """One of the room's sessions; ``title`` is None where the panel may not show it,
    and then ``sites`` is empty too."""

    session_id: str
    booking_id: str
    title: str | None
    start: datetime
    end: datetime
    lead_seconds: int
    state: str
    connect_mode: str
    sites: tuple[Site, ...]


@dataclass(frozen=True, slots=True)
class PanelView:
    room_id: str
    room_name: str
    centre_id: str
    centre_name: str
    timezone: str
    sessions: tuple[PanelSession, ...]


def panel_window(now: datetime, timezone: str, days: int = PANEL_DAYS) -> datetime:
    """The end of what a panel lists: local midnight after the last day shown."""
    local = now.astimezone(ZoneInfo(timezone))
    midnight = datetime.combine(local.date() + timedelta(days=days), datetime.min.time())
    return midnight.replace(tzinfo=ZoneInfo(timezone))


def current_session(sessions: Sequence[PanelSession], now: datetime) -> PanelSession | None:
    """The session the room is in or preparing for: the first whose window
    (start - lead to end) holds ``now``."""
    for s in sessions:
        if s.start - timedelta(seconds=s.lead_seconds) <= now < s.end:
            return s
    return None


def next_session(
    sessions: Sequence[PanelSession], now: datetime, after: PanelSession | None = None
) -> PanelSession | None:
    """The first session still to start, other than ``after``."""
    for s in sessions:
        if s.start > now and (after is None or s.session_id != after.session_id):
            return s
    return None


def _sites(db: DbSession, booking_ids: set[str]) -> dict[str, list[tuple[Room, Centre]]]:
    rows = db.exec(
        select(BookingRoom, Room, Centre)
        .join(Room, col(Room.id) == col(BookingRoom.room_id))
        .join(Centre, col(Centre.id) == col(Room.centre_id))
        .where(col(BookingRoom.booking_id).in_(sorted(booking_ids)))
        .order_by(col(Centre.name), col(Room.name))
    ).all()
    out: dict[str, list[tuple[Room, Centre]]] = {}
    for link, room, centre in rows:
        out.setdefault(link.booking_id, []).append((room, centre))
    return out


def panel_view(db: DbSession, room_id: str, now: datetime, days: int = PANEL_DAYS) -> PanelView:
    """The room, its centre, and its sessions from ``now`` to the end of the last day
    shown: not cancelled, ended or failed, not released from this room, and calls of
    this room (``calls.takes_call``: a transparent booking's reminder leaves the room
    free, and the panel says so)."""
    room = db.get(Room, room_id)
    if room is None:
        raise DomainError("not-found", f"no room {room_id!r}")
    centre = db.get(Centre, room.centre_id)
    assert centre is not None  # a foreign key
    until = panel_window(now, centre.timezone, days)
    owner = aliased(User)
    rows = db.exec(
        select(Session, Booking, owner.centre_id)
        .join(Booking, col(Booking.id) == col(Session.booking_id))
        .join(
            BookingRoom,
            sa.and_(
                col(BookingRoom.booking_id) == col(Booking.id), col(BookingRoom.room_id) == room_id
            ),
        )
        .outerjoin(
            Participation,
            sa.and_(
                col(Participation.session_id) == col(Session.id),
                col(Participation.room_id) == room_id,
            ),
        )
        .outerjoin(owner, col(owner.id) == col(Booking.owner_id))
        .where(
            col(Session.end_utc) > now,
            col(Session.start_utc) < until,
            col(Session.state).not_in(sorted(HIDDEN_STATES)),
            col(Participation.released_at).is_(None),
            takes_call(room_id),
        )
        .order_by(col(Session.start_utc), col(Session.id))
    ).all()
    sites = _sites(db, {booking.id for _, booking, _ in rows})
    sessions = []
    for session, booking, member_centre in rows:
        rooms = sites.get(booking.id, [])
        visible = title_visible(
            room.centre_id,
            booking.owner_id,
            booking.owner_centre_id,
            member_centre,
            (c.id for _, c in rooms),
        )
        sessions.append(
            PanelSession(
                session_id=session.id,
                booking_id=booking.id,
                title=(session.title or booking.title) if visible else None,
                start=session.start_utc,
                end=session.end_utc,
                lead_seconds=session.lead_seconds,
                state=session.state,
                connect_mode=booking.connect_mode,
                sites=tuple(Site(r.name, c.name, c.timezone) for r, c in rooms if r.id != room_id)
                if visible
                else (),
            )
        )
    return PanelView(
        room_id=room.id,
        room_name=room.name,
        centre_id=centre.id,
        centre_name=centre.name,
        timezone=centre.timezone,
        sessions=tuple(sessions),
    )


def room_session(
    db: DbSession, room_id: str, session_id: str, now: datetime
) -> tuple[PanelSession, Timing]:
    """One of the sessions the room's panel shows now, with its timing; a session of
    another room, or one already over, is ``unknown-session``."""
    view = panel_view(db, room_id, now)
    for s in view.sessions:
        if s.session_id == session_id:
            return s, session_timing(s.start, s.end, s.lead_seconds, s.connect_mode, now)
    raise DomainError("unknown-session", "this session is not one of this room's current sessions")
