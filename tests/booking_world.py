"""A small network for the booking pages' tests: Fontainebleau (Paris) and Montréal
(whose room asks for approval), people of each centre, the service on loopback with a
fake clock, and HTTP clients logged in as each person."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

from aiohttp import ClientSession, CookieJar
from yarl import URL

from orchestrator.centres import add_centre, add_room
from orchestrator.clock import FakeClock
from orchestrator.db import SQLITE_FILENAME, Database, DbSession
from orchestrator.people import accounts
from tests.ui_support import PASSWORD, RunningApp, running_app
from web.settings import Settings

NOW = datetime(2026, 3, 23, 7, 0, tzinfo=UTC)  # Monday 08:00 in Paris, 03:00 in Montreal


@dataclass(frozen=True, slots=True)
class World:
    paris_centre: str
    montreal_centre: str
    paris_room: str  # "Salle Bleue"
    paris_other: str  # "Salle Verte"
    montreal_room: str  # "Salle du Fleuve", approval for other centres
    organiser: str  # emails
    montreal_organiser: str
    montreal_staff: str
    admin: str


def make_world(db: Database) -> World:
    def setup(s: DbSession) -> World:
        paris = add_centre(s, "Fontainebleau", "Europe/Paris")
        montreal = add_centre(s, "Montréal", "America/Montreal")
        blue = add_room(s, paris.id, "Salle Bleue")[0]
        green = add_room(s, paris.id, "Salle Verte")[0]
        river = add_room(s, montreal.id, "Salle du Fleuve")[0]
        river.requires_approval = True
        s.add(river)
        people = [
            ("org@fontainebleau.fr", "Odile Organisatrice", "organiser", paris.id, None),
            ("org@montreal.ca", "Marc Organisateur", "organiser", montreal.id, "fr"),
            ("staff@montreal.ca", "Sophie Accueil", "staff", montreal.id, "fr"),
            ("admin@telecentre.example", "Ada Admin", "admin", None, "en"),
        ]
        for email, name, role, centre, locale in people:
            accounts.create_user(s, email, name, PASSWORD, role, centre, locale=locale)
        return World(
            paris.id,
            montreal.id,
            blue.id,
            green.id,
            river.id,
            "org@fontainebleau.fr",
            "org@montreal.ca",
            "staff@montreal.ca",
            "admin@telecentre.example",
        )

    return db.run_sync(setup)


@cache
def _template(folder: Path) -> World:
    db = Database.for_data_dir(folder)
    db.migrate()
    world = make_world(db)
    db.close_sync()
    return world


def world_in(tmp_path: Path) -> World:
    """The world's database in ``tmp_path``: made once per test run (the password
    hashes are slow on purpose), copied for each test."""
    folder = Path(tempfile.gettempdir()) / f"telecentre-booking-world-{os.getpid()}"
    if not (folder / SQLITE_FILENAME).exists():
        shutil.rmtree(folder, ignore_errors=True)
        _template.cache_clear()
        atexit.register(shutil.rmtree, folder, True)
    world = _template(folder)
    tmp_path.mkdir(parents=True, exist_ok=True)
    shutil.copy(folder / SQLITE_FILENAME, tmp_path / SQLITE_FILENAME)
    return world


@asynccontextmanager
async def service_with_world(
    tmp_path: Path, **settings: object
) -> AsyncIterator[tuple[RunningApp, World, FakeClock]]:
    world = world_in(tmp_path)
    clock = FakeClock(NOW.timestamp())
    config = Settings(data_dir=tmp_path, poll_interval=0.1, **settings)  # type: ignore[arg-type]
    async with running_app(config, clock=clock) as app:
        yield app, world, clock


async def logged_in(app: RunningApp, email: str, *, lang: str | None = None) -> ClientSession:
    """An HTTP client with a login session of ``email``, opened by
    ``accounts.login`` on the service's own database (the cookie the login form sets)."""
    now = datetime.fromtimestamp(app.services.clock.now(), UTC)
    _, token = await app.services.db.run(
        lambda s: accounts.login(s, email, PASSWORD, "test-client", now)
    )
    http = ClientSession(cookie_jar=CookieJar(unsafe=True))
    cookies = {"tc_session": token}
    if lang:
        cookies["tc_lang"] = lang
    http.cookie_jar.update_cookies(cookies, URL(app.url))
    return http
