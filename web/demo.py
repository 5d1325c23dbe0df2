"""``telecentre demo``: the service, a demo network, simulated room agents, and a
booking that goes live by itself a little later, for a newcomer to watch."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
import tempfile
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from orchestrator.centres import add_centre, add_room
from orchestrator.clock import Clock, SystemClock, instant
from orchestrator.db import Database, DbSession
from orchestrator.desk import door
from orchestrator.models import Session
from orchestrator.people import accounts, api_tokens
from web.app import serve
from web.demo_watch import watch_session
from web.settings import Settings

log = logging.getLogger(__name__)

# (centre, IANA zone, rooms): three European centres and one across the Atlantic.
NETWORK: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("Fontainebleau", "Europe/Paris", ("Salle Bleue",)),
    ("Amsterdam Bright City", "Europe/Amsterdam", ("Smart Work Room",)),
    ("Strasbourg", "Europe/Paris", ("EcoCentre Salle 1",)),
    ("Montréal", "America/Toronto", ("Salle du Vieux-Port",)),
)
BOOKED_ROOMS = 3  # the first three rooms confer; Montréal stays idle and online
DEMO_PASSWORD = "telecentre-demo"
# (email, name, role, index of the centre in NETWORK or None): one person per role.
# Tests and the README rely on these exact values.
PEOPLE: tuple[tuple[str, str, str, int | None], ...] = (
    ("admin@telecentre.demo", "Demo Administrator", "admin", None),
    ("staff@telecentre.demo", "Demo Staff (Fontainebleau)", "staff", 0),
    ("organiser@telecentre.demo", "Demo Organiser (Amsterdam)", "organiser", 1),
)


@dataclass(frozen=True, slots=True)
class DemoRoom:
    room_id: str
    name: str
    key_file: Path


def create_network(db: Database, keys_dir: Path) -> list[DemoRoom]:
    keys_dir.mkdir(parents=True, exist_ok=True, mode=0o700)

    def create(s: DbSession) -> list[tuple[str, str, str]]:
        out = []
        centre_ids = []
        for centre_name, zone, rooms in NETWORK:
            centre = add_centre(s, centre_name, zone)
            centre_ids.append(centre.id)
            for room_name in rooms:
                room, key = add_room(s, centre.id, room_name)
                out.append((room.id, room_name, key))
        for email, name, role, centre_index in PEOPLE:
            centre_id = None if centre_index is None else centre_ids[centre_index]
            accounts.create_user(s, email, name, DEMO_PASSWORD, role, centre_id)
        return out

    rooms = []
    for room_id, name, key in db.run_sync(create):
        path = keys_dir / f"{room_id}.key"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(key + "\n")
        rooms.append(DemoRoom(room_id, name, path))
    return rooms


DEMO_TITLE = "Delegation Amsterdam – Seine-et-Marne"


def book_demo(
    db: Database,
    rooms: list[DemoRoom],
    start_in: float,
    duration: float,
    lead: int,
    clock: Clock,
) -> tuple[str, datetime]:
    """Book the demo's meeting through the one door (``orchestrator.desk.door``) on
    ``clock``; its session's id and booked start. It starts ``start_in`` seconds from
    now: well inside every room's booking window, and not past."""
    now = instant(clock)
    start = now + timedelta(seconds=start_in)
    end = start + timedelta(seconds=duration)
    ids = [r.room_id for r in rooms[:BOOKED_ROOMS]]

    def book(s: DbSession) -> tuple[str, datetime]:
        request = door.at_instants(
            DEMO_TITLE, ids, start, end, door.zone_for(s, ids), lead_seconds=lead
        )
        result = door.book(s, request, None, now=now)
        session = s.get(Session, result.session_ids[0])
        assert session is not None
        return session.id, session.start_utc

    return db.run_sync(book)


async def run_demo(args: argparse.Namespace) -> None:
    data_dir = (
        Path(args.data_dir) if args.data_dir else Path(tempfile.mkdtemp(prefix="telecentre-demo-"))
    )
    data_dir.mkdir(parents=True, exist_ok=True)
    settings = Settings.from_env(data_dir=data_dir, host=args.host, port=args.port)
    db = Database(settings.effective_database_url)
    db.migrate()
    rooms = create_network(db, data_dir / "keys")
    session_id, start = book_demo(db, rooms, args.start_in, args.duration, args.lead, SystemClock())
    token = db.run_sync(lambda s: api_tokens.create_api_token(s, "demo"))

    ready = asyncio.Event()
    server = asyncio.create_task(serve(settings, ready=ready))
    await asyncio.wait_for(ready.wait(), 30)
    url = f"http://{settings.host}:{settings.port}/"
    agents = [await _spawn_agent(url, room, data_dir) for room in rooms]
    print(f"telecentre demo: open {url} in a browser", flush=True)
    print(f"  data dir   {data_dir} (kept after the demo stops)", flush=True)
    print(f"  session    {session_id} starts in {args.start_in:.0f} s", flush=True)
    print(f"  API token  written to {data_dir / 'api-token'}", flush=True)
    for email, _, role, _ in PEOPLE:
        print(f"  log in     {email:<27} password {DEMO_PASSWORD}  ({role})", flush=True)
    print("  stop       Ctrl+C", flush=True)
    (data_dir / "api-token").write_text(token + "\n")
    os.chmod(data_dir / "api-token", 0o600)
    watcher = asyncio.create_task(
        watch_session(db, session_id, DEMO_TITLE, start, lambda line: print(line, flush=True))
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        waiter = asyncio.create_task(stop.wait())
        await asyncio.wait({server, waiter}, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
        await db.close()
        for proc in agents:
            if proc.returncode is None:
                proc.terminate()
        for proc in agents:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(proc.wait(), 10)
            if proc.returncode is None:
                proc.kill()
        server.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await server


async def _spawn_agent(url: str, room: DemoRoom, data_dir: Path) -> asyncio.subprocess.Process:
    agent_dir = data_dir / "agents" / room.room_id
    agent_dir.mkdir(parents=True, exist_ok=True)
    log_file = open(agent_dir / "agent.log", "ab")  # noqa: ASYNC230 - a local file, once per agent
    try:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "web.cli",
            "agent",
            "--server",
            url,
            "--key-file",
            str(room.key_file),
            "--cache-dir",
            str(agent_dir),
            "--status-file",
            str(agent_dir / "status.json"),
            "--label",
            room.name,
            stdout=log_file,
            stderr=log_file,
            stdin=asyncio.subprocess.DEVNULL,
        )
    finally:
        log_file.close()
