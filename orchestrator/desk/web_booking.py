"""Booking from the web application: what the availability finder and the booking form
read, and the booking itself written in one transaction with what it sets off.

``book`` runs in one transaction (``Database.run``): the series
(``commands.create_series``), its owner, an approval request per room whose centre
asks for it (``access.needs_approval``) mailed to that centre's staff, a personal
link per guest, and the invitations (METHOD:REQUEST) to the organiser and to each
guest with an address. A refused booking (a conflict, a policy) rolls all of it
back, so nobody is invited to a meeting that does not exist.

The mail texts come from the caller (``BookingMessages``): the web layer owns the
languages.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Protocol

import sqlalchemy as sa
from sqlmodel import col, select

from orchestrator import outbox
from orchestrator.booking import commands, recurrence
from orchestrator.booking.availability import (
    DEFAULT_LIMIT,
    STEP,
    Hold,
    RoomSite,
    Slot,
    WorkingHours,
    common_free_slots,
)
from orchestrator.booking.busy import busy
from orchestrator.booking.conflicts import Conflict
from orchestrator.booking.policy import RESERVE_ONLY, BookingSettings
from orchestrator.booking.series import check_title
from orchestrator.booking.store import OnConflict
from orchestrator.booking.values import SeriesSpec
from orchestrator.calendars.ical_out.export import invitation_ics
from orchestrator.calendars.ical_out.load import load_booking
from orchestrator.calendars.ical_out.model import BookingInfo, RoomInfo
from orchestrator.centres import zone
from orchestrator.db import DbSession
from orchestrator.errors import DomainError
from orchestrator.inputs import check_date, check_wall_time
from orchestrator.models import Approval, Booking, BookingRoom, Centre, Room, User, new_id
from orchestrator.people import access
from orchestrator.people.accounts import Principal
from orchestrator.sessions.guests import add_guest, check_guest

MAX_GUESTS = 20
ALTERNATIVE_DAYS = 14
FREQUENCIES = ("daily", "weekly", "monthly")


# --- what the pages read -----------------------------------------------------------------


def load_sites(db: DbSession, room_ids: Sequence[str] | None = None) -> list[RoomSite]:
    """Rooms with their centre, by centre name then room name (all rooms when
    ``room_ids`` is None; unknown ids are left out)."""
    query = select(Room, Centre).join(Centre, col(Centre.id) == col(Room.centre_id))
    if room_ids is not None:
        query = query.where(col(Room.id).in_(list(room_ids)))
    rows = sorted(db.exec(query), key=lambda rc: (rc[1].name, rc[0].name, rc[0].id))
    return [
        RoomSite(
            room.id,
            room.name,
            centre.id,
            centre.name,
            centre.timezone,
            timedelta(seconds=room.buffer_seconds),
            room.requires_approval,
        )
        for room, centre in rows
    ]


def centre_zone(db: DbSession, centre_id: str | None) -> str | None:
    if centre_id is None:
        return None
    centre = db.get(Centre, centre_id)
    return centre.timezone if centre is not None else None


def _owners(
    db: DbSession, booking_ids: Iterable[str]
) -> dict[str, tuple[str | None, str | None, tuple[str, ...]]]:
    """Booking id -> (owner, owner's centre, centres of the booking's rooms)."""
    ids = sorted(set(booking_ids))
    if not ids:
        return {}
    centres: dict[str, set[str]] = defaultdict(set)
    for booking_id, centre_id in db.connection().execute(
        sa.select(col(BookingRoom.booking_id), col(Room.centre_id))
        .join(Room, col(Room.id) == col(BookingRoom.room_id))
        .where(col(BookingRoom.booking_id).in_(ids))
    ):
        centres[booking_id].add(centre_id)
    found: dict[str, tuple[str | None, str | None, tuple[str, ...]]] = {}
    for booking_id, owner_id, owner_centre_id in db.connection().execute(
        sa.select(col(Booking.id), col(Booking.owner_id), col(Booking.owner_centre_id)).where(
            col(Booking.id).in_(ids)
        )
    ):
        found[booking_id] = (owner_id, owner_centre_id, tuple(sorted(centres[booking_id])))
    return found


def load_holds(
    db: DbSession, rooms: Sequence[RoomSite], since: datetime, until: datetime
) -> list[Hold]:
    """What holds the rooms over ``[since, until)`` widened by each room's buffer (so a
    hold just outside still shows as buffer), with what the privacy rule needs."""
    if not rooms:
        return []
    widest = max((r.buffer for r in rooms), default=timedelta(0))
    found = busy(db, [r.room_id for r in rooms], since - widest, until + widest)
    entries = [b for room_id in found for b in found[room_id]]
    owners = _owners(db, (b.booking_id for b in entries if b.booking_id))
    holds: list[Hold] = []
    for b in entries:
        owner_id, owner_centre_id, centre_ids = owners.get(b.booking_id or "", (None, None, ()))
        holds.append(
            Hold(
                b.room_id,
                b.start,
                b.end,
                b.booking_id,
                b.title,
                owner_id,
                owner_centre_id,
                centre_ids,
            )
        )
    return holds


# --- the request -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GuestRequest:
    name: str
    email: str | None = None


@dataclass(frozen=True, slots=True)
class BookingRequest:
    """What the booking form asks for: wall-clock times in the organiser's ``timezone``."""

    title: str
    room_ids: tuple[str, ...]
    timezone: str
    start_local: datetime
    end_local: datetime
    rrule: str | None = None
    connect_mode: str = "automatic"
    lead_seconds: int = 60
    guests: tuple[GuestRequest, ...] = ()
    on_conflict: OnConflict = "reject"
    uid: str | None = None

    @property
    def start(self) -> datetime:
        return recurrence.localize(self.start_local, self.timezone)

    @property
    def end(self) -> datetime:
        return recurrence.localize(self.end_local, self.timezone)


def rrule_for(
    frequency: str | None,
    *,
    count: int | None = None,
    until: date | None = None,
    timezone: str = "UTC",
) -> str | None:
    """The RRULE value of the form's recurrence: ``None`` for a one-off; ``until`` is a
    last local date in ``timezone``, written as the UTC instant that day ends (RFC 5545
    §3.3.10: UNTIL is UTC when DTSTART has a TZID)."""
    if frequency in (None, "", "none"):
        return None
    if frequency not in FREQUENCIES:
        raise DomainError("bad-recurrence", "repeat daily, weekly or monthly")
    rule = f"FREQ={frequency.upper()}"
    if count is not None and until is not None:
        raise DomainError("bad-recurrence", "give a number of meetings or a last date, not both")
    if count is not None:
        if not 1 <= count <= 366:
            raise DomainError("bad-recurrence", "a series has 1 to 366 meetings")
        return f"{rule};COUNT={count}"
    if until is not None:
        check_date(until, "the last date")
        last = recurrence.localize(datetime.combine(until + timedelta(days=1), time()), timezone)
        last -= timedelta(seconds=1)
        return f"{rule};UNTIL={last.strftime('%Y%m%dT%H%M%SZ')}"
    raise DomainError(
        "bad-recurrence", "a repeating booking needs a number of meetings or a last date"
    )


def check_request(request: BookingRequest, now: datetime) -> None:
    """The form's own rules, before the booking core's (whose title and time rules,
    ``booking.series.check_title`` and ``inputs.check_wall_time``, come first here
    too: the times are read in the zone before the core sees them)."""
    zone(request.timezone)
    check_title(request.title)
    if not request.room_ids:
        raise DomainError("too-few-rooms", "choose at least one room")
    check_wall_time(request.start_local, "the start")
    check_wall_time(request.end_local, "the end")
    if request.end <= request.start:
        raise DomainError("invalid-time", "a booking ends after it starts")
    if request.end <= now:
        raise DomainError("past", "this time has passed")
    if len(request.guests) > MAX_GUESTS:
        raise DomainError("too-many-guests", f"at most {MAX_GUESTS} guests")
    if request.guests and request.connect_mode == RESERVE_ONLY:
        raise DomainError(
            "guests-need-call", "guests join a call; a reserve-only booking sets up none"
        )
    for guest in request.guests:
        if not guest.name.strip():
            raise DomainError("bad-guest", "each guest has a name")
        check_guest(guest.name, guest.email or None)


# --- mail ----------------------------------------------------------------------------------


class BookingLinks(Protocol):
    """The addresses a booking's mail carries; the web layer owns its URLs
    (``web.links.Links``)."""

    def booking(self, booking_id: str) -> str: ...

    def guest(self, token: str) -> str: ...

    def approvals(self) -> str: ...


class BookingMessages(Protocol):
    """Subjects and bodies of the mail a booking sends, in the recipient's language."""

    def invitation(
        self,
        locale: str | None,
        booking: BookingInfo,
        *,
        organiser: str,
        booking_url: str | None,
        guest_name: str | None,
        guest_link: str | None,
    ) -> tuple[str, str]: ...

    def approval_request(
        self,
        locale: str | None,
        booking: BookingInfo,
        rooms: Sequence[RoomInfo],
        *,
        organiser: str,
        approvals_url: str,
    ) -> tuple[str, str]: ...


@dataclass(frozen=True, slots=True)
class GuestLink:
    guest_id: str
    name: str
    email: str | None
    url: str


@dataclass(frozen=True, slots=True)
class WebBookingResult:
    """A booking written: the guests' links (shown once), the rooms waiting for their
    centre's approval, and the occurrences left out (``on_conflict="skip"``)."""

    booking_id: str
    title: str
    guest_links: tuple[GuestLink, ...] = ()
    pending_room_ids: tuple[str, ...] = ()
    skipped: tuple[datetime, ...] = ()
    mails: int = 0
    session_ids: tuple[str, ...] = field(default=())


def approvers(db: DbSession, centre_id: str) -> list[User]:
    """Who is asked to approve for a centre: its staff, or the administrators when it
    has none (a request nobody reads would hold the rooms for good)."""
    active = select(User).where(col(User.disabled).is_(False)).order_by(col(User.email))
    staff = list(db.exec(active.where(col(User.role) == "staff", col(User.centre_id) == centre_id)))
    return staff or list(db.exec(active.where(col(User.role) == "admin")))


def book(
    db: DbSession,
    request: BookingRequest,
    user: Principal,
    *,
    now: datetime,
    links: BookingLinks,
    messages: BookingMessages,
    locale: str | None = None,
    settings: BookingSettings | None = None,
) -> WebBookingResult:
    """Book ``request`` for ``user`` with everything it sets off (see the module doc);
    ``BookingConflict`` (code ``conflict``) names what holds the rooms."""
    if not access.can_book(user):
        raise DomainError("forbidden", "you may not book rooms")
    check_request(request, now)
    duration = request.end - request.start
    spec = SeriesSpec(
        uid=request.uid or new_id() + "@telecentre",
        title=request.title.strip(),
        timezone=request.timezone,
        start_local=request.start_local,
        duration=duration,
        rrules=(request.rrule,) if request.rrule else (),
        organiser=f"mailto:{user.email}",
    )
    result = commands.create_series(
        db,
        spec,
        request.room_ids,
        lead_seconds=request.lead_seconds,
        connect_mode=request.connect_mode,
        on_conflict=request.on_conflict,
        now=now,
        settings=settings,
    )
    booking = db.get(Booking, result.booking_id)
    assert booking is not None
    booking.owner_id = user.id
    booking.owner_centre_id = user.centre_id
    booking.organiser = f"mailto:{user.email}"
    db.add(booking)
    db.flush()
    info = load_booking(db, booking.id)
    organiser = f"{user.name} <{user.email}>"
    mails = 0

    pending: list[str] = []
    waiting: dict[str, list[RoomInfo]] = defaultdict(list)
    room_infos = {r.id: r for r in info.rooms}
    for room in db.exec(select(Room).where(col(Room.id).in_(list(request.room_ids)))):
        if access.needs_approval(room.requires_approval, room.centre_id, user.centre_id):
            db.add(Approval(booking_id=booking.id, room_id=room.id, requested_at=now))
            pending.append(room.id)
            waiting[room.centre_id].append(room_infos[room.id])
    for centre_id, rooms in sorted(waiting.items()):
        for staff in approvers(db, centre_id):
            subject, body = messages.approval_request(
                staff.locale, info, rooms, organiser=organiser, approvals_url=links.approvals()
            )
            outbox.enqueue(db, staff.email, subject, body, now=now, kind="approval-request")
            mails += 1

    guest_links: list[GuestLink] = []
    for wanted in request.guests:
        guest, token = add_guest(db, booking.id, wanted.name, wanted.email, now=now)
        guest_links.append(GuestLink(guest.id, guest.name, guest.email, links.guest(token)))

    subject, body = messages.invitation(
        locale,
        info,
        organiser=organiser,
        booking_url=links.booking(booking.id),
        guest_name=None,
        guest_link=None,
    )
    ics = invitation_ics(info, stamp=now, organiser=f"mailto:{user.email}").decode()
    outbox.enqueue(
        db, user.email, subject, body, now=now, ics=ics, ics_method="REQUEST", kind="invitation"
    )
    mails += 1
    for link in guest_links:
        if link.email is None:
            continue
        subject, body = messages.invitation(
            locale,
            info,
            organiser=organiser,
            booking_url=None,
            guest_name=link.name,
            guest_link=link.url,
        )
        guest_ics = invitation_ics(
            info, stamp=now, organiser=f"mailto:{user.email}", join_url=link.url
        ).decode()
        outbox.enqueue(
            db,
            link.email,
            subject,
            body,
            now=now,
            ics=guest_ics,
            ics_method="REQUEST",
            kind="invitation",
        )
        mails += 1
    return WebBookingResult(
        booking.id,
        booking.title,
        tuple(guest_links),
        tuple(pending),
        tuple(sorted({c.occurrence.start for c in result.skipped})),
        mails,
        tuple(result.session_ids),
    )


# --- after a refusal -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConflictView:
    """One conflict as the organiser reads it: the room (with its site), the requested
    meeting, what holds the room and when, and its title as the organiser may see it
    (``access.BUSY`` otherwise; None for another meeting of the same request)."""

    room: RoomSite
    requested: Slot
    held: Slot
    label: str | None
    booking_id: str | None


def explain_conflicts(
    db: DbSession, conflicts: Sequence[Conflict], viewer: Principal | None
) -> list[ConflictView]:
    sites = {s.room_id: s for s in load_sites(db, sorted({c.room_id for c in conflicts}))}
    owners = _owners(db, (c.busy.booking_id for c in conflicts if c.busy.booking_id))
    views: list[ConflictView] = []
    for c in conflicts:
        site = sites.get(c.room_id)
        if site is None:
            continue
        label: str | None = None
        booking_id: str | None = None
        if c.busy.booking_id is not None:
            owner_id, owner_centre, centre_ids = owners.get(c.busy.booking_id, (None, None, ()))
            if c.busy.title and access.can_see_booking(viewer, owner_id, owner_centre, centre_ids):
                label, booking_id = c.busy.title, c.busy.booking_id
            else:
                label = access.BUSY
        views.append(
            ConflictView(
                site,
                Slot(c.occurrence.start, c.occurrence.end),
                Slot(c.busy.start, c.busy.end),
                label,
                booking_id,
            )
        )
    views.sort(key=lambda v: (v.requested.start, v.room.centre, v.room.name, v.held.start))
    return views


def alternatives(
    db: DbSession,
    room_ids: Sequence[str],
    zone: str,
    day: date,
    duration: timedelta,
    *,
    now: datetime,
    hours: Mapping[str, WorkingHours] | None = None,
    days: int = ALTERNATIVE_DAYS,
    step: timedelta = STEP,
    limit: int = DEFAULT_LIMIT,
) -> list[Slot]:
    """The first common free slots of the rooms from ``day`` (in ``zone``) on, within
    ``days`` days and every site's working hours, none before ``now``."""
    rooms = load_sites(db, room_ids)
    if not rooms:
        return []
    since = recurrence.localize(datetime.combine(day, time()), zone)
    until = recurrence.localize(datetime.combine(day + timedelta(days=days), time()), zone)
    holds = load_holds(db, rooms, since, until + duration)
    return common_free_slots(
        rooms, holds, since, until, duration, hours=hours, step=step, now=now, limit=limit
    )


def load_invitation(
    db: DbSession, booking_id: str, viewer: Principal | None, *, now: datetime
) -> tuple[BookingInfo, bytes] | None:
    """The booking's invitation (METHOD:REQUEST) for someone who may see the booking;
    None for anyone else; ``DomainError("not-found")`` for no such booking."""
    booking = db.get(Booking, booking_id)
    if booking is None:
        raise DomainError("not-found", f"no booking {booking_id!r}")
    owner_id, owner_centre, centre_ids = _owners(db, [booking_id])[booking_id]
    if not access.can_see_booking(viewer, owner_id, owner_centre, centre_ids):
        return None
    info = load_booking(db, booking_id)
    return info, invitation_ics(info, stamp=now)
