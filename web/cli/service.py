"""The service's commands, one parser: each subject's module adds its own, in the
order ``telecentre --help`` lists them; ``agent`` is the room PC's (room_agents/cli.py)."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Sequence
from typing import Final

from web.cli.base import CliError

# Each command, in the order ``telecentre --help`` lists them: the module that declares
# it and the function that adds its parser. A command loads only its own module, so
# ``telecentre user list`` does not pay for the web application that ``serve`` imports
# (about 2 s on a small machine); only ``--help`` and a mistyped command load them all.
COMMANDS: Final[tuple[tuple[str, str, str], ...]] = (
    ("serve", "web.cli.serve", "add_serve_parser"),
    ("centre", "web.cli.places", "add_centre_parser"),
    ("room", "web.cli.places", "add_room_parser"),
    ("user", "web.cli.people", "add_user_parser"),
    ("book", "web.cli.bookings", "add_book_parser"),
    ("calendar", "web.cli.calendars", "add_calendar_parser"),
    ("feed", "web.cli.calendars", "add_feed_parser"),
    ("caldav", "web.cli.calendars", "add_caldav_parser"),
    ("booking", "web.cli.bookings", "add_booking_parser"),
    ("session", "web.cli.sessions", "add_session_parser"),
    ("token", "web.cli.people", "add_token_parser"),
    ("agent", "room_agents.cli", "add_agent_parser"),  # run, devices, config
    ("demo", "web.cli.serve", "add_demo_parser"),
)


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole parser, or (``only``) the top level with that one command."""
    parser = argparse.ArgumentParser(
        prog="telecentre", description="TelePresence room orchestration"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name, module, adder in COMMANDS:
        if only is None or name == only:
            getattr(importlib.import_module(module), adder)(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    known = {name for name, _, _ in COMMANDS}
    only = words[0] if words and words[0] in known else None
    args = build_parser(only).parse_args(words)
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
