"""The ``telecentre`` command. Imports are lazy, so ``telecentre agent`` on a room PC
loads no server code (and needs none of the server's packages installed)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from orchestrator.booking.views import RoomOccurrence
    from orchestrator.db import Database
    from web.settings import Settings


class CliError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _emit(args: argparse.Namespace, data: dict[str, Any], text: str) -> None:
    print(json.dumps(data, default=str) if getattr(args, "json", False) else text)


def _settings(args: argparse.Namespace) -> Settings:
    from web.settings import Settings

    return Settings.from_env(
        data_dir=Path(args.data_dir) if getattr(args, "data_dir", None) else None,
        host=getattr(args, "host", None),
        port=getattr(args, "port", None),
        tls_cert=Path(args.tls_cert) if getattr(args, "tls_cert", None) else None,
        tls_key=Path(args.tls_key) if getattr(args, "tls_key", None) else None,
    )


def _database_fault(settings: Settings, fault: Any) -> CliError:
    """A database fault as the command line says it: what, where, and where to read
    what to do (``fault`` is an ``orchestrator.db.DatabaseFault``)."""
    where = (
        "the database named by TELECENTRE_DATABASE_URL"
        if settings.database_url
        else f"the database file {settings.effective_database_url.removeprefix('sqlite:///')}"
    )
    detail = fault.detail or fault.message
    if fault.code == "database-busy":
        return CliError(
            fault.code,
            f"{where} is locked by another process ({detail}); try again when it is done",
        )
    return CliError(
        fault.code,
        f"{where} cannot be used ({detail}); see 'A damaged or unreadable database' "
        "in docs/deploy.md",
    )


def _database(args: argparse.Namespace) -> Database:
    from orchestrator.db import Database, DatabaseFault

    settings = _settings(args)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.effective_database_url, busy_wait=settings.database_busy_wait)
    try:
        db.migrate()
    except DatabaseFault as fault:
        db.close_sync()
        raise _database_fault(settings, fault) from None
    return db


def _run_db(args: argparse.Namespace, fn: Callable[[Any], Any]) -> Any:
    from orchestrator.db import DatabaseFault
    from orchestrator.errors import DomainError

    db = _database(args)
    try:
        return db.run_sync(fn)
    except DomainError as exc:
        raise CliError(exc.code, exc.message) from None
    except DatabaseFault as fault:
        raise _database_fault(_settings(args), fault) from None
    finally:
        db.close_sync()


# --- commands ---------------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> None:
    """Serve until signalled. A database that cannot be used at start (damaged, not a
    database, locked beyond the wait) stops it here with one message and exit
    status 2, before it listens: serving would only answer 503s."""
    from orchestrator.db import DatabaseFault
    from web.app import serve

    settings = _settings(args)
    _logging(settings.log_level)
    try:
        _run(serve(settings))
    except DatabaseFault as fault:
        raise _database_fault(settings, fault) from None


def cmd_centre_add(args: argparse.Namespace) -> None:
    from orchestrator.centres import (
        add_centre,
    )

    centre = _run_db(args, lambda s: add_centre(s, args.name, args.timezone))
    _emit(args, {"id": centre.id, "name": centre.name, "timezone": centre.timezone}, centre.id)


def cmd_room_add(args: argparse.Namespace) -> None:
    from orchestrator.centres import (
        add_room,
    )

    room, key = _run_db(args, lambda s: add_room(s, args.centre, args.name))
    _emit(
        args,
        {"id": room.id, "name": room.name, "centre_id": room.centre_id, "key": key},
        f"room {room.id}\nkey  {key}\n(the key is shown only this once; give it to the room's agent)",
    )


def cmd_room_rotate(args: argparse.Namespace) -> None:
    from orchestrator.centres import (
        rotate_room_key,
    )

    key = _run_db(args, lambda s: rotate_room_key(s, args.room_id))
    _emit(
        args,
        {"room_id": args.room_id, "key": key},
        f"key  {key}\n(the old key stopped working; the key is shown only this once)",
    )


def parse_cli_instant(text: str, zone: str) -> Any:
    """ISO 8601; a time without offset is read in ``zone`` (the first room's centre)."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise CliError("invalid-time", f"not an ISO 8601 time: {text!r}") from None
    return value if value.tzinfo is not None else value.replace(tzinfo=ZoneInfo(zone))


def cmd_book(args: argparse.Namespace) -> None:
    from orchestrator.booking import one_off
    from orchestrator.models import Centre, Room

    def book(s: Any) -> Any:
        room = s.get(Room, args.room[0])
        centre = s.get(Centre, room.centre_id) if room is not None else None
        zone = centre.timezone if centre is not None else "UTC"
        start = parse_cli_instant(args.start, zone)
        end = parse_cli_instant(args.end, zone)
        return one_off.book(s, args.title, start, end, args.room, lead_seconds=args.lead)

    booking, session = _run_db(args, book)
    _emit(
        args,
        {"booking_id": booking.id, "session_id": session.id},
        f"booking {booking.id}\nsession {session.id}",
    )


def cmd_room_set(args: argparse.Namespace) -> None:
    from orchestrator.centres import (
        set_room_policy,
    )

    room = _run_db(
        args,
        lambda s: set_room_policy(
            s,
            args.room_id,
            buffer_seconds=args.buffer,
            max_duration_seconds=args.max_duration,
            max_advance_days=args.max_advance_days,
            aliases=args.alias,
        ),
    )
    data = {
        "id": room.id,
        "buffer_seconds": room.buffer_seconds,
        "max_duration_seconds": room.max_duration_seconds,
        "max_advance_days": room.max_advance_days,
        "aliases": json.loads(room.aliases),
    }
    _emit(args, data, "\n".join(f"{k}: {v}" for k, v in data.items()))


def cmd_calendar_import(args: argparse.Namespace) -> None:
    import os
    from datetime import UTC, datetime

    from orchestrator.booking.policy import BookingSettings
    from orchestrator.calendars.ical_in.importer import apply
    from orchestrator.calendars.ical_in.parse import CalendarError, parse_calendar
    from orchestrator.calendars.ical_in.plan import ImportSource
    from web.import_titles import environment_language, untitled

    path = Path(args.file)
    try:
        data = path.read_bytes()
        # An event that names nothing is titled "Busy" in the language of whoever imports.
        parsed = parse_calendar(data, untitled=untitled(environment_language(os.environ)))
    except OSError as exc:
        raise CliError("unreadable", f"cannot read {path}: {exc.strerror}") from None
    except CalendarError as exc:
        raise CliError(exc.code, exc.message) from None
    source = ImportSource(f"file:{path.name}", rooms=tuple(args.room or ()))
    now = datetime.now(UTC)
    report = _run_db(args, lambda s: apply(s, parsed, source, now=now, settings=BookingSettings()))
    data_out = report.as_dict()
    lines = [
        f"created {report.created}, updated {report.updated}, unchanged {report.unchanged}, "
        f"cancelled {report.cancelled}, skipped {len(report.skipped)}, conflicts {len(report.conflicts)}"
    ]
    lines += [f"  skipped {s.uid or '-'}: {s.code}: {s.reason}" for s in report.skipped]
    lines += [f"  warning {w.uid or '-'}: {w.code}: {w.message}" for w in report.warnings]
    lines += [f"  conflict {c.describe()}" for c in report.conflicts]
    if report.held_back is not None:
        lines.append(f"  held back: {report.held_back.reason}")
    _emit(args, data_out, "\n".join(lines))


def cmd_feed_add(args: argparse.Namespace) -> None:
    from orchestrator.centres import (
        get_room,
    )
    from orchestrator.models import Feed

    url = args.url
    if url.startswith("webcal://"):
        url = "https://" + url[len("webcal://") :]
    if not url.startswith(("http://", "https://")):
        raise CliError("bad-request", "a feed URL starts with http://, https:// or webcal://")
    if args.interval < 60:
        raise CliError("bad-request", "feeds are polled at most once a minute")

    def add(s: Any) -> Feed:
        if args.room:
            get_room(s, args.room)
        feed = Feed(url=url, room_id=args.room, interval_seconds=args.interval)
        s.add(feed)
        s.flush()
        return feed

    feed = _run_db(args, add)
    _emit(args, {"id": feed.id, "url": feed.url, "room_id": feed.room_id}, feed.id)


def cmd_caldav_add(args: argparse.Namespace) -> None:
    from orchestrator.centres import (
        get_room,
    )
    from orchestrator.models import CalDavLink

    password = None
    if args.password_file:
        password = Path(args.password_file).read_text(encoding="utf-8").strip()

    def add(s: Any) -> CalDavLink:
        get_room(s, args.room)
        link = CalDavLink(
            room_id=args.room, calendar_url=args.url, username=args.username, password=password
        )
        s.add(link)
        s.flush()
        return link

    link = _run_db(args, add)
    _emit(
        args, {"id": link.id, "room_id": link.room_id, "calendar_url": link.calendar_url}, link.id
    )


def cmd_booking_list(args: argparse.Namespace) -> None:
    from datetime import UTC, datetime, timedelta

    from orchestrator.booking.views import room_occurrences
    from orchestrator.models import Centre, Room

    def load(s: Any) -> Any:
        room = s.get(Room, args.room)
        centre = s.get(Centre, room.centre_id) if room is not None else None
        zone = centre.timezone if centre is not None else "UTC"
        since = parse_cli_instant(args.since, zone) if args.since else datetime.now(UTC)
        until = parse_cli_instant(args.until, zone) if args.until else since + timedelta(days=7)
        return room_occurrences(s, args.room, since, until)

    found = _run_db(args, load)
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
    _emit(args, {"room_id": args.room, "occurrences": items}, "\n".join(lines) or "(none)")


def _span(start: Any, end: Any, suffix: str = "") -> str:
    """``2027-01-04 09:00-10:00``, with the end's date when it is another day."""
    until = f"{end:%H:%M}" if end.date() == start.date() else f"{end:%Y-%m-%d %H:%M}"
    return f"{start:%Y-%m-%d %H:%M}{suffix}-{until}{suffix}"


def _room_local(o: RoomOccurrence) -> str:
    """An occurrence's room-local dates and times: ``all day`` for an all-day one that
    runs midnight to midnight in the room's zone (a room elsewhere sees its hours)."""
    from datetime import time, timedelta

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


def cmd_session_show(args: argparse.Namespace) -> None:
    from orchestrator.sessions import readiness
    from orchestrator.sessions.detail import session_detail
    from web.api import session_detail_json

    detail, ready = _run_db(
        args,
        lambda s: (
            session_detail(s, args.session_id),
            readiness.for_session(s, args.session_id),
        ),
    )
    data = session_detail_json(detail, ready)
    lines = [f"{data['title']}  [{data['state']}]  {data['start']} -> {data['end']}"]
    lines += [f"  {t['seq']:>2} {t['state']:<10} {t['at']}" for t in data["transitions"]]
    for r in data["rooms"]:
        check = r.get("readiness")
        ready_text = (
            "not checked"
            if not check
            else "ready"
            if check["ok"]
            else "failing " + ",".join(check.get("failing", []))
        )
        lines.append(
            f"  {r['name']}: joined {r['joined_at']} first frame {r['first_frame_at']} "
            f"live {r['live_at']} left {r['left_at']} readiness {ready_text}"
        )
    _emit(args, data, "\n".join(lines))


def cmd_token_create(args: argparse.Namespace) -> None:
    from orchestrator.people import api_tokens

    token = _run_db(args, lambda s: api_tokens.create_api_token(s, args.name))
    _emit(
        args,
        {"token": token},
        f"{token}\n(shown only this once; send it as 'Authorization: Bearer ...')",
    )


def _password_from_stdin() -> str:
    """The first line of standard input (a pipe or a prompt-less terminal read)."""
    line = sys.stdin.readline()
    password = line.rstrip("\r\n")
    if not password:
        raise CliError("weak-password", "no password on standard input")
    return password


def cmd_user_add(args: argparse.Namespace) -> None:
    import secrets

    from orchestrator.people import accounts

    generated = not args.password_stdin
    password = secrets.token_urlsafe(12) if generated else _password_from_stdin()
    user = _run_db(
        args,
        lambda s: accounts.create_user(s, args.email, args.name, password, args.role, args.centre),
    )
    data: dict[str, Any] = {
        "id": user.id,
        "email": user.email,
        "name": user.name,
        "role": user.role,
        "centre_id": user.centre_id,
    }
    text = f"user {user.id} {user.email} ({user.role})"
    if generated:
        data["password"] = password
        text += f"\npassword  {password}\n(shown only this once; they can change it on /account)"
    _emit(args, data, text)


def cmd_user_list(args: argparse.Namespace) -> None:
    from orchestrator.people import accounts

    users = _run_db(args, accounts.list_users)
    items = [
        {
            "id": u.id,
            "email": u.email,
            "name": u.name,
            "role": u.role,
            "centre_id": u.centre_id,
            "locale": u.locale,
            "timezone": u.timezone,
            "disabled": u.disabled,
        }
        for u in users
    ]
    lines = [
        f"{u.email:<32} {u.role:<9} {u.centre_id or '-':<32} {u.name}"
        f"{'  (disabled)' if u.disabled else ''}"
        for u in users
    ]
    _emit(args, {"users": items}, "\n".join(lines) or "(none)")


def cmd_user_set_password(args: argparse.Namespace) -> None:
    from orchestrator.people import accounts

    if not args.password_stdin:
        raise CliError("bad-request", "give the password on standard input (--password-stdin)")
    password = _password_from_stdin()

    def change(s: Any) -> Any:
        user = accounts.user_by_email(s, args.email)
        accounts.set_password(s, user.id, password)
        return user

    user = _run_db(args, change)
    _emit(
        args,
        {"id": user.id, "email": user.email},
        f"password of {user.email} changed (their open logins ended)",
    )


def cmd_room_panel_link(args: argparse.Namespace) -> None:
    from orchestrator.sessions.panels import create_panel_token

    settings = _settings(args)
    token = _run_db(args, lambda s: create_panel_token(s, args.room_id))
    base = settings.public_url or (
        f"{'https' if settings.tls_cert else 'http'}://{settings.host}:{settings.port}"
    )
    url = f"{base.rstrip('/')}/panel/{token}"
    _emit(
        args,
        {"room_id": args.room_id, "url": url},
        f"{url}\n(shown only this once; open it on the room's tablet or touch panel)",
    )


def cmd_demo(args: argparse.Namespace) -> None:
    from web.demo import run_demo

    _logging(args.log_level)
    _run(run_demo(args))


# --- plumbing ---------------------------------------------------------------------------


def _logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    for noisy in ("aioice", "aiortc"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _run(coro: Any) -> None:
    """Run until done or until SIGTERM/SIGINT, then let cleanup run (one helper for
    the agent and the service)."""
    from room_agents.cli import run_until_signalled

    run_until_signalled(coro)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="telecentre", description="TelePresence room orchestration"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def data_opts(p: argparse.ArgumentParser, json_flag: bool = True) -> None:
        p.add_argument("--data-dir", help="data directory (default: ./data or TELECENTRE_DATA_DIR)")
        if json_flag:
            p.add_argument("--json", action="store_true", help="print JSON")

    serve = sub.add_parser("serve", help="run the service")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--tls-cert", help="PEM certificate chain: serve HTTPS")
    serve.add_argument("--tls-key", help="PEM private key of that certificate")
    data_opts(serve, json_flag=False)
    serve.set_defaults(func=cmd_serve)

    centre = sub.add_parser("centre", help="centres").add_subparsers(dest="action", required=True)
    c_add = centre.add_parser("add", help="declare a centre; prints its id")
    c_add.add_argument("name")
    c_add.add_argument("--timezone", required=True, help="IANA zone, e.g. Europe/Paris")
    data_opts(c_add)
    c_add.set_defaults(func=cmd_centre_add)

    room = sub.add_parser("room", help="rooms").add_subparsers(dest="action", required=True)
    r_add = room.add_parser("add", help="declare a room; prints its id and key (once)")
    r_add.add_argument("--centre", required=True, help="centre id")
    r_add.add_argument("name")
    data_opts(r_add)
    r_add.set_defaults(func=cmd_room_add)
    r_set = room.add_parser("set", help="a room's booking policy and aliases")
    r_set.add_argument("room_id")
    r_set.add_argument("--buffer", type=int, help="seconds kept free around each booking")
    r_set.add_argument("--max-duration", type=int, help="longest booking, seconds")
    r_set.add_argument("--max-advance-days", type=int, help="how far ahead it may be booked")
    r_set.add_argument(
        "--alias", action="append", help="another name calendars use for it (repeat)"
    )
    data_opts(r_set)
    r_set.set_defaults(func=cmd_room_set)
    r_rot = room.add_parser("rotate-key", help="give a room a new key; the old one stops working")
    r_rot.add_argument("room_id")
    data_opts(r_rot)
    r_rot.set_defaults(func=cmd_room_rotate)

    r_panel = room.add_parser(
        "panel-link", help="a new URL for the room's tablet or touch panel (shown once)"
    )
    r_panel.add_argument("room_id")
    data_opts(r_panel)
    r_panel.set_defaults(func=cmd_room_panel_link)

    user = sub.add_parser("user", help="people who log in").add_subparsers(
        dest="action", required=True
    )
    u_add = user.add_parser(
        "add",
        help="add a person; without --password-stdin a password is generated and printed once",
    )
    u_add.add_argument("email")
    u_add.add_argument("--name", required=True)
    u_add.add_argument("--role", required=True, choices=("admin", "staff", "organiser"))
    u_add.add_argument("--centre", help="centre id (staff and organisers belong to one)")
    u_add.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    data_opts(u_add)
    u_add.set_defaults(func=cmd_user_add)
    u_list = user.add_parser("list", help="everyone who may log in")
    data_opts(u_list)
    u_list.set_defaults(func=cmd_user_list)
    u_pw = user.add_parser("set-password", help="a new password; their open logins end")
    u_pw.add_argument("email")
    u_pw.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    data_opts(u_pw)
    u_pw.set_defaults(func=cmd_user_set_password)

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

    calendar = sub.add_parser("calendar", help="iCalendar files").add_subparsers(
        dest="action", required=True
    )
    c_imp = calendar.add_parser("import", help="import an .ics file; prints the report")
    c_imp.add_argument("file")
    c_imp.add_argument(
        "--room", action="append", help="room id (repeat); default: the rooms the events name"
    )
    data_opts(c_imp)
    c_imp.set_defaults(func=cmd_calendar_import)

    feed = sub.add_parser("feed", help="subscribed iCalendar feeds").add_subparsers(
        dest="action", required=True
    )
    f_add = feed.add_parser("add", help="subscribe to a feed (polled by serve)")
    f_add.add_argument("url")
    f_add.add_argument("--room", help="room id the feed's events book")
    f_add.add_argument("--interval", type=int, default=300, help="seconds between polls")
    data_opts(f_add)
    f_add.set_defaults(func=cmd_feed_add)

    caldav = sub.add_parser("caldav", help="CalDAV calendars kept in sync").add_subparsers(
        dest="action", required=True
    )
    d_add = caldav.add_parser("add", help="sync a room with a CalDAV calendar (by serve)")
    d_add.add_argument("--room", required=True, help="room id")
    d_add.add_argument("--url", required=True, help="the calendar collection URL")
    d_add.add_argument("--username")
    d_add.add_argument("--password-file", help="file holding the password")
    data_opts(d_add)
    d_add.set_defaults(func=cmd_caldav_add)

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

    session = sub.add_parser("session", help="sessions").add_subparsers(
        dest="action", required=True
    )
    s_show = session.add_parser("show", help="a session with its transitions and rooms")
    s_show.add_argument("session_id")
    data_opts(s_show)
    s_show.set_defaults(func=cmd_session_show)

    token = sub.add_parser("token", help="admin API tokens").add_subparsers(
        dest="action", required=True
    )
    t_create = token.add_parser("create", help="create an admin bearer token (shown once)")
    t_create.add_argument("--name", default="admin")
    data_opts(t_create)
    t_create.set_defaults(func=cmd_token_create)

    from room_agents.cli import add_agent_parser

    add_agent_parser(sub)  # run, devices, config: room_agents/cli.py

    demo = sub.add_parser("demo", help="serve a demo network whose booking goes live by itself")
    demo.add_argument(
        "--start-in", type=float, default=60.0, help="seconds until the demo booking starts"
    )
    demo.add_argument(
        "--duration", type=float, default=600.0, help="length of the demo booking, seconds"
    )
    demo.add_argument("--lead", type=int, default=20, help="pre-roll of the demo booking, seconds")
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--port", type=int, default=8077)
    demo.add_argument(
        "--data-dir", help="where to keep the demo's data (default: a new temporary dir)"
    )
    demo.add_argument("--log-level", default="INFO")
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except CliError as exc:
        if getattr(args, "json", False):
            print(json.dumps({"error": {"code": exc.code, "message": exc.message}}))
        # A person reads standard error even when a program reads the JSON.
        print(f"error: {exc.message} ({exc.code})", file=sys.stderr)
        return 2
    except ValueError as exc:  # settings and configuration errors
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
