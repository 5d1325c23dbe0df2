"""What every service command shares: settings from the flags, the database opened
and migrated, a job run on it with domain and database faults said as a command-line
error, the output as text or JSON, logging, and running a service until signalled."""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

from orchestrator.db import Database, DatabaseFault, DbSession
from orchestrator.errors import DomainError
from room_agents.cli import run_until_signalled
from web.settings import Settings

T = TypeVar("T")


class CliError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def emit(args: argparse.Namespace, data: dict[str, Any], text: str) -> None:
    print(json.dumps(data, default=str) if getattr(args, "json", False) else text)


def data_opts(p: argparse.ArgumentParser, json_flag: bool = True) -> None:
    p.add_argument("--data-dir", help="data directory (default: ./data or TELECENTRE_DATA_DIR)")
    if json_flag:
        p.add_argument("--json", action="store_true", help="print JSON")


def settings_from(args: argparse.Namespace) -> Settings:
    return Settings.from_env(
        data_dir=Path(args.data_dir) if getattr(args, "data_dir", None) else None,
        host=getattr(args, "host", None),
        port=getattr(args, "port", None),
        tls_cert=Path(args.tls_cert) if getattr(args, "tls_cert", None) else None,
        tls_key=Path(args.tls_key) if getattr(args, "tls_key", None) else None,
    )


def database_fault(settings: Settings, fault: DatabaseFault) -> CliError:
    """A database fault as the command line says it: what, where, and where to read
    what to do."""
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


def open_database(args: argparse.Namespace) -> Database:
    settings = settings_from(args)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.effective_database_url, busy_wait=settings.database_busy_wait)
    try:
        db.migrate()
    except DatabaseFault as fault:
        db.close_sync()
        raise database_fault(settings, fault) from None
    return db


def run_db(args: argparse.Namespace, fn: Callable[[DbSession], T]) -> T:
    """Run ``fn`` in one transaction on the database the flags name; a rule's refusal
    or a database fault becomes a ``CliError`` (exit status 2)."""
    db = open_database(args)
    try:
        return db.run_sync(fn)
    except DomainError as exc:
        raise CliError(exc.code, exc.message) from None
    except DatabaseFault as fault:
        raise database_fault(settings_from(args), fault) from None
    finally:
        db.close_sync()


def setup_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    for noisy in ("aioice", "aiortc"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def run(coro: Coroutine[Any, Any, None]) -> None:
    """Run until done or until SIGTERM/SIGINT, then let cleanup run (one helper for
    the agent and the service)."""
    run_until_signalled(coro)
