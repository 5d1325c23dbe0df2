"""``telecentre calendar import`` (an .ics file), ``telecentre feed add`` (a
subscribed feed) and ``telecentre caldav add`` (a CalDAV calendar kept in sync)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from orchestrator.booking.policy import BookingSettings
from orchestrator.calendars.ical_in.importer import import_calendar
from orchestrator.calendars.ical_in.parse import CalendarError
from orchestrator.calendars.ical_in.plan import ImportSource
from orchestrator.centres import get_room
from orchestrator.clock import SystemClock, instant
from orchestrator.db import DbSession
from orchestrator.models import CalDavLink, Feed
from web.cli.base import CliError, data_opts, emit, run_db
from web.import_titles import environment_language, untitled


def cmd_calendar_import(args: argparse.Namespace) -> None:
    path = Path(args.file)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CliError("unreadable", f"cannot read {path}: {exc.strerror}") from None
    source = ImportSource(f"file:{path.name}", rooms=tuple(args.room or ()))
    now = instant(SystemClock())
    # An event that names nothing is titled "Busy" in the language of whoever imports.
    title = untitled(environment_language(os.environ))
    try:
        report = run_db(
            args,
            lambda s: import_calendar(
                s, data, source, now=now, settings=BookingSettings(), untitled=title
            ),
        )
    except CalendarError as exc:
        raise CliError(exc.code, exc.message) from None
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
    emit(args, data_out, "\n".join(lines))


def cmd_feed_add(args: argparse.Namespace) -> None:
    url = args.url
    if url.startswith("webcal://"):
        url = "https://" + url[len("webcal://") :]
    if not url.startswith(("http://", "https://")):
        raise CliError("bad-request", "a feed URL starts with http://, https:// or webcal://")
    if args.interval < 60:
        raise CliError("bad-request", "feeds are polled at most once a minute")

    def add(s: DbSession) -> Feed:
        if args.room:
            get_room(s, args.room)
        feed = Feed(url=url, room_id=args.room, interval_seconds=args.interval)
        s.add(feed)
        s.flush()
        return feed

    feed = run_db(args, add)
    emit(args, {"id": feed.id, "url": feed.url, "room_id": feed.room_id}, feed.id)


def cmd_caldav_add(args: argparse.Namespace) -> None:
    password = None
    if args.password_file:
        password = Path(args.password_file).read_text(encoding="utf-8").strip()

    def add(s: DbSession) -> CalDavLink:
        get_room(s, args.room)
        link = CalDavLink(
            room_id=args.room, calendar_url=args.url, username=args.username, password=password
        )
        s.add(link)
        s.flush()
        return link

    link = run_db(args, add)
    emit(args, {"id": link.id, "room_id": link.room_id, "calendar_url": link.calendar_url}, link.id)


def add_calendar_parser(sub: Any) -> None:
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


def add_feed_parser(sub: Any) -> None:
    feed = sub.add_parser("feed", help="subscribed iCalendar feeds").add_subparsers(
        dest="action", required=True
    )
    f_add = feed.add_parser("add", help="subscribe to a feed (polled by serve)")
    f_add.add_argument("url")
    f_add.add_argument("--room", help="room id the feed's events book")
    f_add.add_argument("--interval", type=int, default=300, help="seconds between polls")
    data_opts(f_add)
    f_add.set_defaults(func=cmd_feed_add)


def add_caldav_parser(sub: Any) -> None:
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
