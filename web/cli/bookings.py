"""``telecentre book`` (rooms booked together), ``telecentre booking list`` (a room's
occurrences in UTC and in the room's own time) and ``telecentre booking guest`` (a
guest's personal link, as the booking page's form makes it)."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from orchestrator.booking.views import RoomOccurrence, room_occurrences
from orchestrator.clock import SystemClock, instant
from orchestrator.db import DbSession
from orchestrator.desk import door
from orchestrator.models import Centre, Room
from orchestrator.sessions import guests
from web.cli.base import CliError, data_opts, emit, run_db, settings_from
from web.links import Links


def parse_cli_instant(text: str, zone: str) -> datetime:
    """ISO 8601; a time without offset is read in ``zone`` (the first room's centre)."""
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise CliError("invalid-time", f"not an ISO 8601 time: {text!r}") from None
    return value if value.tzinfo is not None else value.replace(tzinfo=ZoneInfo(zone))


def _room_zone(s: DbSession, room_id: str) -> str:
    """The zone of the room's centre (UTC for a room that does not exist: the rule
    that refuses it speaks later, with its own code)."""
    room = s.get(Room, room_id)
    centre = s.get(Centre, room.centre_id) if room is not None else None
    return centre.timezone if centre is not None else "UTC"


def cmd_book(args: argparse.Namespace) -> None:
    """Book through the one door (``orchestrator.desk.door``) on the system clock, the
    clock the CLI injects: the same rules and codes as the API and the booking form."""
    now = instant(SystemClock())

    def book(s: DbSession) -> tuple[str, str | None]:
        zone = door.zone_for(s, args.room)
        start = parse_cli_instant(args.start, zone)
        end = parse_cli_instant(args.end, zone)
        request = door.at_instants(args.title, args.room, start, end, zone, lead_seconds=args.lead)
        result = door.book(s, request, None, now=now)
        return result.booking_id, result.session_ids[0] if result.session_ids else None

    booking_id, session_id = run_db(args, book)
    emit(
        args,
        {"booking_id": booking_id, "session_id": session_id},
        f"booking {booking_id}\nsession {session_id}",
    )


def cmd_booking_guest(args: argparse.Namespace) -> None:
    """Invite a guest through ``guests.add_guest`` (the rule the booking page's form
    applies: invitations open only while a call is ahead or under way); the link is
    shown once, under the service's public address."""
    now = instant(SystemClock())
    settings = settings_from(args)

    def invite(s: DbSession) -> tuple[str, str]:
        guest, token = guests.add_guest(s, args.booking_id, args.name, args.email, now=now)
        return guest.id, token

    guest_id, token = run_db(args, invite)
    base = settings.public_url or (
        f"{'https' if settings.tls_cert else 'http'}://{settings.host}:{settings.port}"
    )
    url = Links(base).guest(token)
    emit(
        args,
        {"booking_id": args.booking_id, "guest_id": guest_id, "url": url},
        f"{url}\n(shown only this once; send it to the guest)",
    )


def cmd_booking_list(args: argparse.Namespace) -> None:
    def load(s: DbSession) -> list[RoomOccurrence]:
        zone = _room_zone(s, args.room)
        since = parse_cli_instant(args.since, zone) if args.since else datetime.now(UTC)
        until = parse_cli_instant(args.until, zone) if args.until else since + timedelta(days=7)
        return room_occurrences(s, args.room, since, until)

    found = run_db(args, load)
    items = [
        {
            "session_id": o.session_id,
            "booking_id": o.booking_id,
            "title": o.title,
            "start": o.start.isoformat(),
            "end": o.end.isoformat(),
            "start_local": o.start_local.isoformat(),
            "end_local": o.end_local.isoformat(),
            "timezone": o.room_timezone,
            "state": o.state,
            "source": o.source,
            "connect_mode": o.connect_mode,
            "recurring": o.recurring,
            "released_at": o.released_at.isoformat() if o.released_at else None,
            "uid": o.uid,
            "recurrence_id": o.recurrence_id.isoformat() if o.recurrence_id else None,
            "all_day": o.all_day,
            "transparent": o.transparent,
            "cancel_reason": o.cancel_reason,
        }
        for o in found
    ]
    lines = [occurrence_line(o) for o in found]
    emit(args, {"room_id": args.room, "occurrences": items}, "\n".join(lines) or "(none)")


def _span(start: datetime, end: datetime, suffix: str = "") -> str:
    """``2027-01-04 09:00-10:00``, with the end's date when it is another day."""
    until = f"{end:%H:%M}" if end.date() == start.date() else f"{end:%Y-%m-%d %H:%M}"
    return f"{start:%Y-%m-%d %H:%M}{suffix}-{until}{suffix}"


def _room_local(o: RoomOccurrence) -> str:
    """An occurrence's room-local dates and times: ``all day`` for an all-day one that
    runs midnight to midnight in the room's zone (a room elsewhere sees its hours)."""
    if o.all_day and o.start_local.time() == o.end_local.time() == time():
        last = o.end_local - timedelta(days=1)
        days = f"{o.start_local:%Y-%m-%d}" + (
            f" to {last:%Y-%m-%d}" if last.date() > o.start_local.date() else ""
        )
        return f"{days} all day {o.room_timezone}"
    text = f"{_span(o.start_local, o.end_local)} {o.room_timezone}"
    return text + (f" (all day in {o.booking_timezone})" if o.all_day else "")


def occurrence_line(o: RoomOccurrence) -> str:
    """One line of ``booking list``: UTC, room-local, state, source, title, flags, id."""
    flags = "  (transparent)" if o.transparent else ""
    if o.cancel_reason == "no-show":
        flags += "  (released: no-show)"
    elif o.cancel_reason:
        flags += f"  (cancelled: {o.cancel_reason})"
    return (
        f"{_span(o.start, o.end, 'Z')}  {_room_local(o)}  {o.state:<9} "
        f"{o.source:<10} {o.title}{flags}  [{o.session_id}]"
    )


def add_book_parser(sub: Any) -> None:
    book = sub.add_parser("book", help="book rooms together; prints the booking and session ids")
    book.add_argument("--title", required=True)
    book.add_argument(
        "--start", required=True, help="ISO 8601 (without offset: the first room's local time)"
    )
    book.add_argument("--end", required=True)
    book.add_argument("--room", action="append", required=True, help="room id (repeat)")
    book.add_argument("--lead", type=int, default=60, help="seconds of pre-roll before the start")
    data_opts(book)
    book.set_defaults(func=cmd_book)


def add_booking_parser(sub: Any) -> None:
    booking = sub.add_parser("booking", help="bookings").add_subparsers(
        dest="action", required=True
    )
    b_list = booking.add_parser(
        "list", help="a room's occurrences, with UTC and room-local times, state and source"
    )
    b_list.add_argument("--room", required=True, help="room id")
    b_list.add_argument(
        "--from", dest="since", help="ISO 8601 (without offset: room-local); default now"
    )
    b_list.add_argument("--to", dest="until", help="ISO 8601; default 7 days after --from")
    data_opts(b_list)
    b_list.set_defaults(func=cmd_booking_list)
    b_guest = booking.add_parser(
        "guest", help="invite a guest to a booking's calls; prints their link (shown once)"
    )
    b_guest.add_argument("booking_id")
    b_guest.add_argument("name")
    b_guest.add_argument("--email", help="where the invitation goes (optional)")
    data_opts(b_guest)
    b_guest.set_defaults(func=cmd_booking_guest)
