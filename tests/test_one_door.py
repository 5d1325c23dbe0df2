"""Issue 11, acceptance 5: one door for every booking. The same invalid booking (a
meeting that has passed, one longer than a room allows, an unknown room, a room
already taken) is refused with the same stable code by the CLI, the JSON API, the
booking form and an .ics import.

Every door runs on the same fixed instant (``booking_world.NOW``, Monday 23 March 2026,
08:00 in Paris): the service on a fake clock, the CLI under faketime. So the cases
hold at any hour of any day.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from aiohttp import ClientSession
from sqlmodel import select

from orchestrator import centres
from orchestrator.booking import commands
from orchestrator.booking.values import SeriesSpec
from orchestrator.db import DbSession
from orchestrator.models import Booking
from orchestrator.people import api_tokens
from tests.booking_world import NOW, World, logged_in, service_with_world
from tests.e2e_support import ROOT, base_env
from tests.faketime_support import faked_env, ticking_from
from tests.ui_support import RunningApp, csrf_of

pytestmark = pytest.mark.wall_clock

PARIS = ZoneInfo("Europe/Paris")
UNKNOWN = "no-such-room"
LONGEST = timedelta(hours=2)
"""Salle Bleue takes meetings of at most two hours."""
TAKEN = datetime(2026, 3, 24, 14, 0)
"""Salle Bleue and Salle Verte are booked on Tuesday 24 March, 14:00-15:00 in Paris."""


@dataclass(frozen=True)
class Case:
    """A booking the rules refuse, in Paris wall-clock time, and the code every door
    gives for it."""

    code: str
    start: datetime
    end: datetime
    unknown_room: bool = False

    def rooms(self, world: World) -> list[str]:
        return [world.paris_room, UNKNOWN if self.unknown_room else world.paris_other]


CASES = [
    Case("past", datetime(2026, 3, 20, 14, 0), datetime(2026, 3, 20, 15, 0)),
    Case("too-long", datetime(2026, 3, 25, 9, 0), datetime(2026, 3, 25, 13, 0)),
    Case("unknown-room", datetime(2026, 3, 25, 14, 0), datetime(2026, 3, 25, 15, 0), True),
    Case("conflict", TAKEN + timedelta(minutes=30), TAKEN + timedelta(minutes=90)),
]


def _iso(wall: datetime) -> str:
    return wall.replace(tzinfo=PARIS).isoformat()


def _prepare(world: World) -> Callable[[DbSession], str]:
    """Salle Bleue's two-hour limit, the meeting that holds both Paris rooms, and an
    administrator's API token."""

    def prepare(s: DbSession) -> str:
        centres.set_room_policy(
            s, world.paris_room, max_duration_seconds=int(LONGEST.total_seconds())
        )
        spec = SeriesSpec(
            uid="taken@test",
            title="Déjà là",
            timezone="Europe/Paris",
            start_local=TAKEN,
            duration=timedelta(hours=1),
        )
        commands.create_series(s, spec, [world.paris_room, world.paris_other], now=NOW)
        return api_tokens.create_api_token(s, "one-door")

    return prepare


# --- the four doors ------------------------------------------------------------------------


async def by_cli(app: RunningApp, world: World, token: str, case: Case) -> str:
    rooms = [arg for room in case.rooms(world) for arg in ("--room", room)]
    args = ["book", "--title", "Comité", "--start", _iso(case.start), "--end", _iso(case.end)]
    command = [
        *ticking_from(NOW.strftime("%Y-%m-%d %H:%M:%S")),
        sys.executable,
        "-m",
        "web.cli",
        *args,
        *rooms,
        "--data-dir",
        str(app.services.settings.data_dir),
        "--json",
    ]
    proc = await asyncio.to_thread(
        subprocess.run,
        command,
        cwd=ROOT,
        env=base_env(**faked_env()),
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    code: str = json.loads(proc.stdout)["error"]["code"]
    return code


async def by_api(app: RunningApp, world: World, token: str, case: Case) -> str:
    async with ClientSession() as http:
        response = await http.post(
            app.url + "/api/v1/bookings",
            json={
                "title": "Comité",
                "start": _iso(case.start),
                "end": _iso(case.end),
                "room_ids": case.rooms(world),
            },
            headers={"Authorization": f"Bearer {token}"},
        )
        body = await response.json()
    assert response.status >= 400, body
    code: str = body["error"]["code"]
    return code


async def by_form(app: RunningApp, world: World, token: str, case: Case) -> str:
    fields = [
        ("title", "Comité"),
        *[("room", room) for room in case.rooms(world)],
        ("date", case.start.date().isoformat()),
        ("start", case.start.strftime("%H:%M")),
        ("end", case.end.strftime("%H:%M")),
        ("zone", "Europe/Paris"),
        ("repeat", "none"),
        ("connect_mode", "automatic"),
        ("lead", "1"),
        ("on_conflict", "reject"),
    ]
    async with await logged_in(app, world.organiser) as http:
        csrf = await csrf_of(http, app.url + "/bookings/new")
        async with http.post(
            app.url + "/bookings", data=[("csrf_token", csrf), *fields], allow_redirects=False
        ) as response:
            page = await response.text()
    assert response.status in (400, 409), page[:2000]
    found = re.search(r'data-code="([a-z-]+)"', page)
    assert found is not None, page[:2000]
    return found.group(1)


def _ics(case: Case) -> bytes:
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//test//one door//EN",
        "BEGIN:VEVENT",
        f"UID:one-door-{case.code}",
        "DTSTAMP:20260301T000000Z",
        f"DTSTART;TZID=Europe/Paris:{case.start:%Y%m%dT%H%M%S}",
        f"DTEND;TZID=Europe/Paris:{case.end:%Y%m%dT%H%M%S}",
        "SUMMARY:Comité",
        "END:VEVENT",
        "END:VCALENDAR",
        "",
    ]
    return "\r\n".join(lines).encode()


async def by_ics_import(app: RunningApp, world: World, token: str, case: Case) -> str:
    """The API's import route, which goes through the one importer function: a file
    refused as a whole answers an error; an event refused is skipped with its code; a
    room taken is a conflict with its code."""
    async with ClientSession() as http:
        response = await http.post(
            app.url + "/api/v1/calendars/import",
            params=[("room_id", room) for room in case.rooms(world)],
            data=_ics(case),
            headers={"Authorization": f"Bearer {token}"},
        )
        body = await response.json()
    if response.status >= 400:
        code: str = body["error"]["code"]
        return code
    assert body["created"] == 0 or body["conflicts"], body
    codes = [s["code"] for s in body["skipped"]] + [c["code"] for c in body["conflicts"]]
    # One conflict per room taken: both Paris rooms here, with one code.
    (code,) = set(codes)
    return code


Door = Callable[[RunningApp, World, str, Case], Awaitable[str]]
DOORS: dict[str, Door] = {
    "cli": by_cli,
    "api": by_api,
    "form": by_form,
    "ics-import": by_ics_import,
}


@pytest.mark.parametrize("door", list(DOORS))
@pytest.mark.parametrize("case", CASES, ids=[c.code for c in CASES])
async def test_every_door_refuses_the_same_booking_with_the_same_code(
    tmp_path: Path, case: Case, door: str
) -> None:
    async with service_with_world(tmp_path) as (app, world, _clock):
        token = await app.services.db.run(_prepare(world))
        assert await DOORS[door](app, world, token, case) == case.code
        # Nothing of the refused booking stays behind (the import of a conflicting
        # event keeps its booking, without the occurrence, as every import does).
        titles = await app.services.db.run(_titles)
    expected = (
        {"Déjà là", "Comité"} if door == "ics-import" and case.code == "conflict" else {"Déjà là"}
    )
    assert titles == expected


def _titles(s: DbSession) -> set[str]:
    return set(s.exec(select(Booking.title)).all())
