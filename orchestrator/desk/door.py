"""The one door every booking comes in by: the booking form, the JSON API, the CLI and
the demo all call ``book``, on the clock their caller injects (``now``).

``book`` runs in the caller's transaction (``Database.run``) and applies, in order:

- the request's own rules (``check_request``): a title, a zone, at least one room
  that exists (``unknown-room``), an end after the start, a first meeting that has
  not ended (``past``: the booking form's rule, the strictest of the doors before
  issue 11, now every door's), at most ``MAX_GUESTS`` guests, and guests only where
  a call is set up;
- the booking core's (``commands.create_series``): the connect mode and lead, each
  room's maximum duration (``too-long``) and booking window (``too-far-ahead``),
  and the rooms free at that time (``BookingConflict``, code ``conflict``);
- what the booking sets off: its owner, an approval request per room whose centre
  asks for it (``access.needs_approval``: a booking with no organiser, from the API
  or the CLI, comes from no centre and so asks too), mailed to that centre's staff,
  a personal link per guest, and the invitations (METHOD:REQUEST) to the organiser
  and to each guest with an address.

A refused booking rolls all of it back, so nobody is invited to a meeting that does
not exist. A calendar import books through ``commands.create_series`` too (a wing
below this one), so the core's rules and codes are the same there.

The mail texts and the addresses come from the caller (``BookingMail``): the web
layer owns the languages and the URLs. Without it nothing is mailed (the CLI).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Protocol

from sqlmodel import col, select

from orchestrator import outbox
from orchestrator.booking import commands, recurrence
from orchestrator.booking.conflicts import Conflict
from orchestrator.booking.policy import AUTOMATIC, RESERVE_ONLY, BookingSettings
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
from orchestrator.models import Approval, Booking, Centre, Room, User, new_id
from orchestrator.people import access
from orchestrator.people.accounts import Principal
from orchestrator.sessions.guests import add_guest, check_guest

MAX_GUESTS = 20
FREQUENCIES = ("daily", "weekly", "monthly")
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
    connect_mode: str = AUTOMATIC
    lead_seconds: int = 60
    guests: tuple[GuestRequest, ...] = ()
    on_conflict: OnConflict = "reject"
    uid: str | None = None
    start_at: datetime | None = None
    """The exact instants, when the request gave instants (the API, the CLI, the demo):
    in an autumn night one wall time names two instants, and the one given wins."""
    end_at: datetime | None = None

    @property
    def start(self) -> datetime:
        if self.start_at is not None:
            return self.start_at
        return recurrence.localize(self.start_local, self.timezone)

    @property
    def end(self) -> datetime:
        if self.end_at is not None:
            return self.end_at
        return recurrence.localize(self.end_local, self.timezone)


def at_instants(
    title: str,
    room_ids: Sequence[str],
    start: datetime,
    end: datetime,
    timezone: str,
    *,
    rrule: str | None = None,
    connect_mode: str = AUTOMATIC,
    lead_seconds: int = 60,
    on_conflict: OnConflict = "reject",
) -> BookingRequest:
    """A request given as instants (the API, the CLI, the demo), kept as wall-clock
    times in ``timezone`` (see ``zone_for``) and as the instants themselves, so the
    duration is exact across a change of offset.

    A series is kept in wall-clock time, and a wall time of the autumn night's repeated
    hour reads as its first instant (RFC 5545). A one-off meeting that starts at the
    second one is kept in UTC instead, so that it starts at the instant given."""
    zone(timezone)
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    if (
        rrule is None
        and recurrence.localize(recurrence.to_wall(start, timezone), timezone) != start
    ):
        timezone = "UTC"
    return BookingRequest(
        title=title,
        room_ids=tuple(room_ids),
        timezone=timezone,
        start_local=recurrence.to_wall(start, timezone),
        end_local=recurrence.to_wall(end, timezone),
        rrule=rrule,
        connect_mode=connect_mode,
        lead_seconds=lead_seconds,
        on_conflict=on_conflict,
        start_at=start,
        end_at=end,
    )


def zone_for(db: DbSession, room_ids: Sequence[str], timezone: str | None = None) -> str:
    """The zone a request's wall-clock times are kept in: the one asked for, or else the
    first room's centre's (``unknown-room`` when that room does not exist)."""
    if timezone is not None:
        zone(timezone)
        return timezone
    if not room_ids:
        return "UTC"
    room = db.get(Room, room_ids[0])
    if room is None:
        raise DomainError("unknown-room", f"no room {room_ids[0][:64]!r}")
    centre = db.get(Centre, room.centre_id)
    return centre.timezone if centre is not None else "UTC"


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
class BookingOutcome:
    """A booking written: the guests' links (shown once), the rooms waiting for their
    centre's approval, and the occurrences left out (``on_conflict="skip"``, their
    starts in ``skipped``)."""

    booking_id: str
    title: str
    guest_links: tuple[GuestLink, ...] = ()
    pending_room_ids: tuple[str, ...] = ()
    skipped: tuple[datetime, ...] = ()
    mails: int = 0
    session_ids: tuple[str, ...] = field(default=())
    conflicts: tuple[Conflict, ...] = field(default=())
    """What each left-out occurrence ran into (the API lists them)."""


def approvers(db: DbSession, centre_id: str) -> list[User]:
    """Who is asked to approve for a centre: its staff, or the administrators when it
    has none (a request nobody reads would hold the rooms for good)."""
    active = select(User).where(col(User.disabled).is_(False)).order_by(col(User.email))
    staff = list(db.exec(active.where(col(User.role) == "staff", col(User.centre_id) == centre_id)))
    return staff or list(db.exec(active.where(col(User.role) == "admin")))


@dataclass(frozen=True, slots=True)
class BookingMail:
    """What a booking's mail needs from the web layer: the addresses, the texts, and
    the organiser's language."""

    links: BookingLinks
    messages: BookingMessages
    locale: str | None = None


def check_rooms_exist(db: DbSession, room_ids: Sequence[str]) -> None:
    """``unknown-room`` for the first room asked for that does not exist (the calendar
    importer's code for the same refusal)."""
    known = set(db.exec(select(Room.id).where(col(Room.id).in_(list(room_ids)))).all())
    for room_id in room_ids:
        if room_id not in known:
            raise DomainError("unknown-room", f"no room {room_id[:64]!r}")


def _request_approvals(
    db: DbSession,
    booking_id: str,
    room_ids: Sequence[str],
    booker_centre_id: str | None,
    info: BookingInfo,
    organiser: str,
    mail: BookingMail | None,
    now: datetime,
) -> tuple[list[str], int]:
    """An approval request per room whose centre asks for it, mailed to its approvers;
    the rooms now pending and the mails sent."""
    pending: list[str] = []
    waiting: dict[str, list[RoomInfo]] = defaultdict(list)
    room_infos = {r.id: r for r in info.rooms}
    for room in db.exec(select(Room).where(col(Room.id).in_(list(room_ids)))):
        if access.needs_approval(room.requires_approval, room.centre_id, booker_centre_id):
            db.add(Approval(booking_id=booking_id, room_id=room.id, requested_at=now))
            pending.append(room.id)
            waiting[room.centre_id].append(room_infos[room.id])
    mails = 0
    if mail is None:
        return pending, mails
    for centre_id, rooms in sorted(waiting.items()):
        for staff in approvers(db, centre_id):
            subject, body = mail.messages.approval_request(
                staff.locale, info, rooms, organiser=organiser, approvals_url=mail.links.approvals()
            )
            outbox.enqueue(db, staff.email, subject, body, now=now, kind="approval-request")
            mails += 1
    return pending, mails


def book(
    db: DbSession,
    request: BookingRequest,
    user: Principal | None,
    *,
    now: datetime,
    settings: BookingSettings | None = None,
    mail: BookingMail | None = None,
) -> BookingOutcome:
    """Book ``request`` for ``user`` (None: the service's own administrator, from the
    API, the CLI or the demo) with everything it sets off (see the module doc);
    ``BookingConflict`` (code ``conflict``) names what holds the rooms."""
    if user is not None and not access.can_book(user):
        raise DomainError("forbidden", "you may not book rooms")
    check_request(request, now)
    check_rooms_exist(db, request.room_ids)
    if request.guests and (user is None or mail is None):
        raise DomainError("bad-guest", "guests are invited by an organiser, by mail")
    duration = request.end - request.start
    organiser_uri = f"mailto:{user.email}" if user is not None else None
    spec = SeriesSpec(
        uid=request.uid or new_id() + "@telecentre",
        title=request.title.strip(),
        timezone=request.timezone,
        start_local=request.start_local,
        duration=duration,
        rrules=(request.rrule,) if request.rrule else (),
        organiser=organiser_uri,
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
    if user is not None:
        booking.owner_id = user.id
        booking.owner_centre_id = user.centre_id
        booking.organiser = organiser_uri
        db.add(booking)
    db.flush()
    info = load_booking(db, booking.id)
    organiser = f"{user.name} <{user.email}>" if user is not None else ""
    pending, mails = _request_approvals(
        db,
        booking.id,
        request.room_ids,
        user.centre_id if user is not None else None,
        info,
        organiser,
        mail,
        now,
    )
    guest_links: list[GuestLink] = []
    if user is not None and mail is not None:
        for wanted in request.guests:
            guest, token = add_guest(db, booking.id, wanted.name, wanted.email, now=now)
            guest_links.append(
                GuestLink(guest.id, guest.name, guest.email, mail.links.guest(token))
            )
        mails += _invite(db, info, user, guest_links, mail, now)
    return BookingOutcome(
        booking.id,
        booking.title,
        tuple(guest_links),
        tuple(pending),
        tuple(sorted({c.occurrence.start for c in result.skipped})),
        mails,
        tuple(result.session_ids),
        tuple(result.skipped),
    )


def _invite(
    db: DbSession,
    info: BookingInfo,
    user: Principal,
    guest_links: Sequence[GuestLink],
    mail: BookingMail,
    now: datetime,
) -> int:
    """The invitations (METHOD:REQUEST) to the organiser and to each guest with an
    address; how many were mailed."""
    organiser = f"{user.name} <{user.email}>"
    subject, body = mail.messages.invitation(
        mail.locale,
        info,
        organiser=organiser,
        booking_url=mail.links.booking(info.id),
        guest_name=None,
        guest_link=None,
    )
    ics = invitation_ics(info, stamp=now, organiser=f"mailto:{user.email}").decode()
    outbox.enqueue(
        db, user.email, subject, body, now=now, ics=ics, ics_method="REQUEST", kind="invitation"
    )
    mails = 1
    for link in guest_links:
        if link.email is None:
            continue
        subject, body = mail.messages.invitation(
            mail.locale,
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
    return mails
