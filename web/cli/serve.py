"""``telecentre serve`` (the service) and ``telecentre demo`` (the service with a demo
network whose booking goes live by itself)."""

from __future__ import annotations

import argparse
from typing import Any

from orchestrator.db import DatabaseFault
from web.app import serve
from web.cli.base import data_opts, database_fault, run, settings_from, setup_logging
from web.demo import run_demo


def cmd_serve(args: argparse.Namespace) -> None:
    """Serve until signalled. A database that cannot be used at start (damaged, not a
    database, locked beyond the wait) stops it here with one message and exit
    status 2, before it listens: serving would only answer 503s."""
    settings = settings_from(args)
    setup_logging(settings.log_level)
    try:
        run(serve(settings))
    except DatabaseFault as fault:
        raise database_fault(settings, fault) from None


def cmd_demo(args: argparse.Namespace) -> None:
    setup_logging(args.log_level)
    run(run_demo(args))


def add_serve_parser(sub: Any) -> None:
    serve_ = sub.add_parser("serve", help="run the service")
    serve_.add_argument("--host")
    serve_.add_argument("--port", type=int)
    serve_.add_argument("--tls-cert", help="PEM certificate chain: serve HTTPS")
    serve_.add_argument("--tls-key", help="PEM private key of that certificate")
    data_opts(serve_, json_flag=False)
    serve_.set_defaults(func=cmd_serve)


def add_demo_parser(sub: Any) -> None:
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
