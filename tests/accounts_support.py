"""People for the page tests: a small network (two centres, a room each), one person
per role, and an HTTP client that logs in through the real login form."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from aiohttp import ClientSession, CookieJar

from orchestrator.centres import add_centre, add_room
from orchestrator.db import Database, DbSession
from orchestrator.people import accounts
from tests.ui_support import PASSWORD, csrf_of


@dataclass(frozen=True, slots=True)
class Network:
    paris: str
    amsterdam: str
    paris_room: str
    amsterdam_room: str


ADMIN = "admin@example.org"
PARIS_STAFF = "staff.paris@example.org"
AMSTERDAM_STAFF = "staff.amsterdam@example.org"
PARIS_ORGANISER = "organiser.paris@example.org"


async def add_network(db: Database) -> Network:
    """Fontainebleau (Paris time) and Amsterdam, a room each, and four people."""

    def setup(s: DbSession) -> Network:
        paris = add_centre(s, "Fontainebleau", "Europe/Paris")
        amsterdam = add_centre(s, "Amsterdam Bright City", "Europe/Amsterdam")
        paris_room, _ = add_room(s, paris.id, "Salle Bleue")
        amsterdam_room, _ = add_room(s, amsterdam.id, "Smart Work Room")
        accounts.create_user(s, ADMIN, "Ada Admin", PASSWORD, "admin")
        accounts.create_user(s, PARIS_STAFF, "Paul Staff", PASSWORD, "staff", paris.id)
        accounts.create_user(s, AMSTERDAM_STAFF, "Anouk Staff", PASSWORD, "staff", amsterdam.id)
        accounts.create_user(s, PARIS_ORGANISER, "Olga Organiser", PASSWORD, "organiser", paris.id)
        return Network(paris.id, amsterdam.id, paris_room.id, amsterdam_room.id)

    return await db.run(setup)


@asynccontextmanager
async def browser_like(**headers: str) -> AsyncIterator[ClientSession]:
    """A client that keeps cookies for 127.0.0.1 (aiohttp's default jar refuses
    cookies from IP addresses) and does not follow redirects by itself."""
    jar = CookieJar(unsafe=True)
    async with ClientSession(cookie_jar=jar, headers=headers) as http:
        yield http


async def log_in(
    http: ClientSession, url: str, email: str, password: str = PASSWORD, next_: str = "/"
) -> int:
    """Post the login form as a browser would; returns the HTTP status (303 = in)."""
    token = await csrf_of(http, f"{url}/login")
    async with http.post(
        f"{url}/login",
        data={"csrf_token": token, "email": email, "password": password, "next": next_},
        allow_redirects=False,
    ) as response:
        await response.read()
        return response.status


async def post_form(
    http: ClientSession, url: str, path: str, data: dict[str, str], *, page: str | None = None
) -> tuple[int, str, str]:
    """Post a form with the CSRF token of ``page`` (default: ``path``); returns
    (status, body, Location)."""
    token = await csrf_of(http, url + (page or path))
    async with http.post(
        url + path, data={"csrf_token": token, **data}, allow_redirects=False
    ) as response:
        return response.status, await response.text(), response.headers.get("Location", "")
