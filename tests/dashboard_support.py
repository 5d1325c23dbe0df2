"""Shared by the dashboard and usage tests: a small network of two centres with
people of each role, and a login that opens a real login session (the cookie the
login form would set) without depending on the form's markup."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from aiohttp import ClientSession

from orchestrator import transitions
from orchestrator.booking import one_off
from orchestrator.centres import add_centre, add_room, list_centres, list_rooms
from orchestrator.db import DbSession
from orchestrator.people import accounts
from tests.ui_support import PASSWORD, RunningApp


@dataclass(frozen=True, slots=True)
class Network:
    paris: str
    amsterdam: str
    salle_bleue: str
    salle_bleue_key: str
    smart_work_room: str
    smart_work_room_key: str
    studio: str


ADMIN = "admin@example.org"
PARIS_ORGANISER = "olga@fontainebleau.example"
AMSTERDAM_STAFF = "sanne@amsterdam.example"


def make_network(s: DbSession) -> Network:
    """Fontainebleau (Paris) with one room and Amsterdam with two; an administrator, an
    organiser of Fontainebleau and staff of Amsterdam."""
    paris = add_centre(s, "Fontainebleau", "Europe/Paris")
    adam = add_centre(s, "Amsterdam Bright City", "Europe/Amsterdam")
    bleue, bleue_key = add_room(s, paris.id, "Salle Bleue")
    swr, swr_key = add_room(s, adam.id, "Smart Work Room")
    studio, _ = add_room(s, adam.id, "Studio")
    accounts.create_user(s, ADMIN, "Ada Admin", PASSWORD, "admin")
    accounts.create_user(s, PARIS_ORGANISER, "Olga", PASSWORD, "organiser", paris.id)
    accounts.create_user(s, AMSTERDAM_STAFF, "Sanne", PASSWORD, "staff", adam.id)
    return Network(paris.id, adam.id, bleue.id, bleue_key, swr.id, swr_key, studio.id)


async def login_token(app: RunningApp, email: str) -> str:
    """The login session cookie's value for ``email`` (opened at the app's clock)."""
    now = datetime.fromtimestamp(app.services.clock.now(), UTC)
    token: str = await app.services.db.run(
        lambda s: accounts.login(s, email, PASSWORD, "test", now)[1]
    )
    return token


async def logged_in(app: RunningApp, email: str) -> ClientSession:
    return ClientSession(cookies={"tc_session": await login_token(app, email)})


def seed_usage_year(s: DbSession, year: int) -> None:
    """A year of sessions in three centres (a varied pattern, for the usage charts):
    each month some sessions went live and ended; the rooms' reports say when the
    Paris room joined and left."""
    from datetime import timedelta

    from orchestrator.sessions import participation

    centres = {c.name: c for c in list_centres(s)}
    if "Strasbourg" not in centres:
        centres["Strasbourg"] = add_centre(s, "Strasbourg", "Europe/Paris")
        add_room(s, centres["Strasbourg"].id, "EcoCentre Salle 1")
    rooms = {r.name: r for r in list_rooms(s)}
    pairs = [
        ("Salle Bleue", "Smart Work Room"),
        ("Salle Bleue", "EcoCentre Salle 1"),
        ("Smart Work Room", "Studio"),
    ]
    for month in range(1, 13):
        for n in range((month * 7) % 5 + 1):
            a, b = pairs[(month + n) % len(pairs)]
            start = datetime(year, month, 3 + 2 * n, 8 + n, 0, tzinfo=UTC)
            minutes = 30 + 15 * ((month + n) % 4)
            _, sess = one_off.book(
                s,
                f"Meeting {month}-{n}",
                start,
                start + timedelta(minutes=minutes),
                [rooms[a].id, rooms[b].id],
            )
            transitions.record_transition(s, sess, "live", start)
            transitions.record_transition(s, sess, "ended", start + timedelta(minutes=minutes))
            if a == "Salle Bleue":
                joined, left = start - timedelta(seconds=50), start + timedelta(minutes=minutes - 5)
                participation.record_joined(s, sess.id, rooms[a].id, joined.timestamp())
                participation.record_left(s, sess.id, rooms[a].id, left.timestamp())
