"""Guests: named people who join a booking's calls from a browser by a personal link.
The link's secret is shown once and kept as SHA-256; a link works only inside a
session's window and can be revoked.

A guest is added only while the booking has a call ahead or under way
(``invitations.check_invitations_open``, applied by ``add_guest`` itself, whichever
door asks). A link of a booking whose sessions ahead never connect a room (reminders,
``calls.is_reminder``; a reserve-only booking) resolves to ``guest-link-no-call``,
never to a join page with nobody to meet."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import col, select

from orchestrator.booking.policy import joins_call
from orchestrator.credentials import hash_secret, new_secret
from orchestrator.db import DbSession
from orchestrator.errors import DomainError
from orchestrator.inputs import one_line
from orchestrator.models import Booking, Guest, Session
from orchestrator.people.accounts import normalise_email
from orchestrator.sessions.calls import is_reminder
from orchestrator.sessions.invitations import check_invitations_open

GUEST_TOKEN_PREFIX = "tcg_"
MAX_GUEST_NAME = 100
EARLY = timedelta(minutes=15)
"""A guest may open the link this long before the start, to check camera and
microphone; joining the session itself follows the session's own lead."""
REVOCATION_MEMORY = timedelta(days=7)
"""How long signalling refuses a revoked guest's tickets: longer than any ticket
minted for it can live (a session's end plus five minutes)."""
OPEN_STATES = frozenset({"scheduled", "preparing", "live", "ending"})
NO_CALL = "guest-link-no-call"
"""A link whose booking has sessions ahead, none of which connects a room."""


class GuestLinkClosed(DomainError):
    """``guest-link-outside-window``, with when the link opens next (None: it will not,
    the booking was cancelled or has no session to come), so a page can say when."""

    def __init__(self, message: str, opens: datetime | None = None) -> None:
        super().__init__("guest-link-outside-window", message)
        self.opens = opens


@dataclass(frozen=True, slots=True)
class GuestAccess:
    guest_id: str
    name: str
    booking_id: str
    title: str
    session_id: str
    start: datetime
    end: datetime
    lead_seconds: int
    state: str


def hash_guest_token(token: str) -> str:
    return hash_secret(token)


def link_window(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    """When a guest link opens a session: from 15 minutes before its start to its end."""
    return start - EARLY, end


def check_guest(name: str, email: str | None) -> tuple[str, str | None]:
    """A guest as kept: a name of one line, 1 to ``MAX_GUEST_NAME`` characters
    (``bad-guest``), and an address or None (``accounts.normalise_email``,
    ``invalid-email``: the invitation is mailed to it)."""
    name = one_line(name, code="bad-guest", what="a guest's name", max_length=MAX_GUEST_NAME)
    address = (email or "").strip()
    return name, normalise_email(address) if address else None


def add_guest(
    db: DbSession, booking_id: str, name: str, email: str | None = None, *, now: datetime
) -> tuple[Guest, str]:
    """A guest (``check_guest``) and the secret of their personal link (shown once);
    refused while the booking has no call ahead or under way at ``now``
    (``invitations.check_invitations_open``: ``invitations-closed``,
    ``guests-need-call``)."""
    name, address = check_guest(name, email)
    check_invitations_open(db, booking_id, now)
    token = new_secret(GUEST_TOKEN_PREFIX)
    guest = Guest(
        booking_id=booking_id,
        name=name,
        email=address,
        token_hash=hash_guest_token(token),
    )
    db.add(guest)
    db.flush()
    return guest, token


def list_guests(db: DbSession, booking_id: str) -> list[Guest]:
    rows = db.exec(
        select(Guest).where(col(Guest.booking_id) == booking_id).order_by(col(Guest.created_at))
    )
    return list(rows.all())


def revoke_guest(db: DbSession, guest_id: str, now: datetime) -> Guest:
    guest = db.get(Guest, guest_id)
    if guest is None:
        raise DomainError("not-found", f"no guest {guest_id}")
    if guest.revoked_at is None:
        guest.revoked_at = now
        db.add(guest)
    return guest


def resolve_link(db: DbSession, token: str, now: datetime) -> GuestAccess:
    """The session a guest link opens now, or a refusal with a stable code:
    ``guest-link-invalid``, ``guest-link-revoked``, ``guest-link-outside-window``,
    ``guest-link-no-call`` (sessions ahead, none of them a call)."""
    guest = db.exec(select(Guest).where(col(Guest.token_hash) == hash_guest_token(token))).first()
    if guest is None:
        raise DomainError("guest-link-invalid", "this link is not valid")
    if guest.revoked_at is not None:
        raise DomainError("guest-link-revoked", "this link was withdrawn by the organiser")
    booking = db.get(Booking, guest.booking_id)
    if booking is None or booking.status == "cancelled":
        raise GuestLinkClosed("this booking was cancelled")
    ahead = db.exec(
        select(Session)
        .where(col(Session.booking_id) == guest.booking_id)
        .where(col(Session.state).in_(OPEN_STATES))
        .where(col(Session.end_utc) > now)
        .order_by(col(Session.start_utc))
    ).all()
    calling = joins_call(booking.connect_mode)
    sessions = [s for s in ahead if calling and not is_reminder(booking.transparent, s.state)]
    if ahead and not sessions:
        raise DomainError(NO_CALL, "this meeting sets up no call: no room connects to it")
    for session in sessions:
        opens, closes = link_window(session.start_utc, session.end_utc)
        if opens <= now < closes:
            return GuestAccess(
                guest_id=guest.id,
                name=guest.name,
                booking_id=booking.id,
                title=session.title or booking.title,
                session_id=session.id,
                start=session.start_utc,
                end=session.end_utc,
                lead_seconds=session.lead_seconds,
                state=session.state,
            )
    if sessions:
        opens, _ = link_window(sessions[0].start_utc, sessions[0].end_utc)
        raise GuestLinkClosed(
            f"this link opens at {opens.isoformat(timespec='minutes')} (UTC)", opens
        )
    raise GuestLinkClosed("this booking has no session to come")


def recently_revoked(db: DbSession, now: datetime) -> list[str]:
    """Guests revoked within ``REVOCATION_MEMORY``: signalling is told again at start."""
    rows = db.exec(select(Guest.id).where(col(Guest.revoked_at) > now - REVOCATION_MEMORY))
    return list(rows.all())
