"""The service's commands, one parser: each subject's module adds its own, in the
order ``telecentre --help`` lists them; ``agent`` is the room PC's (room_agents/cli.py)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from room_agents.cli import add_agent_parser
from web.cli import bookings, calendars, people, places, serve, sessions
from web.cli.base import CliError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="telecentre", description="TelePresence room orchestration"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    serve.add_serve_parser(sub)
    places.add_centre_parser(sub)
    places.add_room_parser(sub)
    people.add_user_parser(sub)
    bookings.add_book_parser(sub)
    calendars.add_calendar_parser(sub)
    calendars.add_feed_parser(sub)
    calendars.add_caldav_parser(sub)
    bookings.add_booking_parser(sub)
    sessions.add_session_parser(sub)
    people.add_token_parser(sub)
    add_agent_parser(sub)  # run, devices, config: room_agents/cli.py
    serve.add_demo_parser(sub)
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
