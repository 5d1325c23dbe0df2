"""Cross-centre courtesy: a room's centre staff approve or decline bookings made by
people of other centres (``access.needs_approval``; the request is written with the
booking, ``orchestrator.desk.web_booking``).

Rules:

- While a room's approval is **pending** the booking holds its slot (nobody else
  can take it), but the room takes no part: its schedule does not carry the
  session, so its agent does not join, and the other rooms do not wait for it
  (``orchestrator.sessions.schedules``).
- **Approved**: the room takes part from the scheduler's next step on.
- **Declined**: the room leaves the booking: its ``booking_room`` row goes, its slots
  of sessions that have not ended are freed, and its part in the sessions that have
  not begun is removed (what has begun or ended is history and stays). A booking
  left with a single room becomes reserve-only (a call needs two sites); one left
  with none is cancelled. A local booking's SEQUENCE goes up (its rooms changed).
- Either way the organiser (the booking's owner) is told by email, in their
  language, in the same transaction (``orchestrator.outbox``). The texts come
  from the caller (``DecisionMessages``): the web layer owns the languages.
- Only staff of the room's centre (or an administrator) decide
  (``access.can_approve``); a decision is final.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final, Protocol

import sqlalchemy as sa
from sqlmodel import col, select

from orchestrator import lifecycle, outbox
from orchestrator.booking import commands, policy
from orchestrator.booking.series import LOCAL, booking_or_fail
from orchestrator.booking.store import booking_room_ids
from orchestrator.db import DbSession
from orchestrator.errors import DomainError
from orchestrator.models import (
    Approval,
    Booking,
    BookingRoom,
    Centre,
    Participation,
    Room,
    RoomSlot,
    Session,
    User,
)
from orchestrator.people import access
from orchestrator.people.accounts import Principal

PENDING: Final = "pending"
APPROVED: Final = "approved"
DECLINED: Final = "declined"
STATES: Final = (PENDING, APPROVED, DECLINED)
MAX_NOTE: Final = 500


@dataclass(frozen=True, slots=True)
class PendingApproval:
    """A request waiting for a room's centre: what staff need to decide on it."""

    booking_id: str
    room_id: str
    room_name: str
    centre_id: str
    centre_name: str
    centre_timezone: str
    title: str
    start: datetime
    end: datetime
    timezone: str
    recurring: bool
    organiser_name: str | None
    organiser_email: str | None
    organiser_centre: str | None
    requested_at: datetime


@dataclass(frozen=True, slots=True)
class Decision:
    """What a decision did: the approval as decided, and what it changed."""

    booking_id: str
    room_id: str
    state: str
    reserve_only: bool = False
    cancelled: bool = False
    notified: str | None = None  # the organiser's address, when mailed


@dataclass(frozen=True, slots=True)
class DecisionNotice:
    """What the organiser's mail says."""

    title: str
    room_name: str
    centre_name: str
    approved: bool
    note: str | None
    reserve_only: bool
    cancelled: bool
    booking_url: str | None


class DecisionMessages(Protocol):
    """Subject and body of the organiser's mail, in the organiser's language."""

    def approval_decision(self, locale: str | None, notice: DecisionNotice) -> tuple[str, str]: ...


class PlainMessages:
    """English texts, for callers without languages (the CLI, tests)."""

    def approval_decision(self, locale: str | None, notice: DecisionNotice) -> tuple[str, str]:
        del locale
        verb = "approved" if notice.approved else "declined"
        subject = f"{notice.room_name} ({notice.centre_name}) {verb} “{notice.title}”"
        lines = [f"{notice.centre_name} {verb} room {notice.room_name} for “{notice.title}”."]
        if notice.note:
            lines.append(f"Note: {notice.note}")
        if notice.cancelled:
            lines.append("No room is left, so the booking is cancelled.")
        elif notice.reserve_only:
            lines.append("One room is left: the booking now only reserves it (no call).")
        if notice.booking_url:
            lines.append(notice.booking_url)
        return subject, "\n\n".join(lines) + "\n"


# --- reading ---------------------------------------------------------------------------


def booking_approval_states(db: DbSession, booking_id: str) -> dict[str, str]:
    """Room id -> ``pending``, ``approved`` or ``declined`` for every room of the
    booking that needed its centre's approval (declined rooms included, though they
    left the booking)."""
    rows = db.connection().execute(
        sa.select(col(Approval.room_id), col(Approval.state)).where(
            col(Approval.booking_id) == booking_id
        )
    )
    return {room_id: state for room_id, state in rows}


def pending_for(db: DbSession, principal: Principal) -> list[PendingApproval]:
    """The requests waiting for rooms of the person's centre (every centre's for an
    administrator; none for an organiser), oldest first; cancelled bookings drop out."""
    if not principal.is_admin and (principal.role != "staff" or principal.centre_id is None):
        return []
    centre_names = {
        cid: name
        for cid, name in db.connection().execute(sa.select(col(Centre.id), col(Centre.name)))
    }
    query = (
        sa.select(
            col(Approval.booking_id),
            col(Approval.room_id),
            col(Room.name),
            col(Centre.id),
            col(Centre.name),
            col(Centre.timezone),
            col(Booking.title),
            col(Booking.start_utc),
            col(Booking.end_utc),
            col(Booking.timezone),
            col(Booking.rrule),
            col(Booking.rdates),
            col(User.name),
            col(User.email),
            col(Booking.owner_centre_id),
            col(Approval.requested_at),
        )
        .join(Room, col(Room.id) == col(Approval.room_id))
        .join(Centre, col(Centre.id) == col(Room.centre_id))
        .join(Booking, col(Booking.id) == col(Approval.booking_id))
        .outerjoin(User, col(User.id) == col(Booking.owner_id))
        .where(col(Approval.state) == PENDING, col(Booking.status) != "cancelled")
        .order_by(col(Approval.requested_at), col(Booking.start_utc), col(Room.name))
    )
    if not principal.is_admin:
        query = query.where(col(Room.centre_id) == principal.centre_id)
    return [
        PendingApproval(
            booking_id=bid,
            room_id=rid,
            room_name=rname,
            centre_id=cid,
            centre_name=cname,
            centre_timezone=ctz,
            title=title,
            start=start,
            end=end,
            timezone=tz,
            recurring=bool(rrule) or rdates not in ("", "[]"),
            organiser_name=oname,
            organiser_email=oemail,
            organiser_centre=centre_names.get(ocentre) if ocentre else None,
            requested_at=requested,
        )
        for (
            bid,
            rid,
            rname,
            cid,
            cname,
            ctz,
            title,
            start,
            end,
            tz,
            rrule,
            rdates,
            oname,
            oemail,
            ocentre,
            requested,
        ) in db.connection().execute(query)
    ]


# --- deciding --------------------------------------------------------------------------


def _check_note(note: str | None) -> str | None:
    text = (note or "").strip()
    if len(text) > MAX_NOTE:
        raise DomainError("invalid-note", f"a note has at most {MAX_NOTE} characters")
    return text or None


def _leave(db: DbSession, booking_id: str, room_id: str, now: datetime) -> None:
    """The room leaves the booking; history (what has begun or ended) stays."""
    db.connection().execute(
        sa.delete(BookingRoom).where(
            col(BookingRoom.booking_id) == booking_id, col(BookingRoom.room_id) == room_id
        )
    )
    sessions = sa.select(col(Session.id)).where(col(Session.booking_id) == booking_id)
    db.connection().execute(
        sa.delete(RoomSlot).where(
            col(RoomSlot.room_id) == room_id,
            col(RoomSlot.session_id).in_(sessions.where(col(Session.end_utc) > now)),
        )
    )
    not_begun = sessions.where(
        col(Session.start_utc) > now,
        col(Session.state).in_((lifecycle.SCHEDULED, lifecycle.CANCELLED)),
    )
    db.connection().execute(
        sa.delete(Participation).where(
            col(Participation.room_id) == room_id,
            col(Participation.session_id).in_(not_begun),
        )
    )


def decide(
    db: DbSession,
    booking_id: str,
    room_id: str,
    approve: bool,
    principal: Principal,
    now: datetime,
    note: str | None = None,
    *,
    messages: DecisionMessages | None = None,
    booking_url: str | None = None,
) -> Decision:
    """Approve or decline the room for the booking (see the module doc).

    Refusals: ``not-found`` (no such request), ``forbidden`` (not staff of the
    room's centre), ``decided`` (already decided), ``invalid-note``.
    """
    approval = db.get(Approval, (booking_id, room_id), populate_existing=True)
    room = db.get(Room, room_id)
    if approval is None or room is None:
        raise DomainError("not-found", "no approval is asked of this room for this booking")
    if not access.can_approve(principal, room.centre_id):
        raise DomainError("forbidden", "only staff of the room's centre decide on it")
    if approval.state != PENDING:
        raise DomainError("decided", f"this request was already {approval.state}")
    text = _check_note(note)
    booking = booking_or_fail(db, booking_id)
    moved = db.connection().execute(
        sa.update(Approval)
        .where(
            col(Approval.booking_id) == booking_id,
            col(Approval.room_id) == room_id,
            col(Approval.state) == PENDING,
        )
        .values(
            state=APPROVED if approve else DECLINED,
            decided_at=now,
            decided_by=principal.id,
            note=text,
        )
    )
    if moved.rowcount != 1:
        raise DomainError("decided", "this request was decided meanwhile")
    reserve_only = cancelled = False
    if not approve:
        _leave(db, booking_id, room_id, now)
        left = booking_room_ids(db, booking_id)
        if not left:
            commands.cancel_series(db, booking_id, now=now)
            cancelled = True
        else:
            if len(left) == 1 and booking.connect_mode != policy.RESERVE_ONLY:
                booking.connect_mode = policy.RESERVE_ONLY
                reserve_only = True
            if booking.source == LOCAL:
                booking.sequence += 1
            booking.updated_at = now
            db.add(booking)
    notified = None
    owner = db.get(User, booking.owner_id) if booking.owner_id else None
    if owner is not None and not owner.disabled:
        centre = db.get(Centre, room.centre_id)
        notice = DecisionNotice(
            title=booking.title,
            room_name=room.name,
            centre_name=centre.name if centre else "",
            approved=approve,
            note=text,
            reserve_only=reserve_only,
            cancelled=cancelled,
            booking_url=booking_url,
        )
        subject, body = (messages or PlainMessages()).approval_decision(owner.locale, notice)
        outbox.enqueue(db, owner.email, subject, body, now=now, kind="approval-decision")
        notified = owner.email
    db.flush()
    return Decision(
        booking_id,
        room_id,
        APPROVED if approve else DECLINED,
        reserve_only=reserve_only,
        cancelled=cancelled,
        notified=notified,
    )


def pending_rooms(db: DbSession, booking_ids: list[str]) -> dict[str, list[str]]:
    """Booking id -> its rooms still waiting for approval (for lists)."""
    if not booking_ids:
        return {}
    found: dict[str, list[str]] = {}
    for bid, rid in db.exec(
        select(Approval.booking_id, Approval.room_id).where(
            col(Approval.booking_id).in_(booking_ids), col(Approval.state) == PENDING
        )
    ):
        found.setdefault(bid, []).append(rid)
    return found
