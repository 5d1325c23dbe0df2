"""Calendar import through the CLI and the API, feeds polled by the running service,
and the room-local listing of occurrences.

The CLI runs as a subprocess (about a second each), its clock at ``IMPORTED_AT``
under faketime; the tests of issue 10 share one data directory with one room
(``paris_cli``), each importing a file of its own."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from orchestrator.calendars.feeds import FeedPoller
from tests.e2e_support import ROOT, Cli, base_env
from tests.faketime_support import faked_env, ticking_from
from tests.test_web_api import Service, network, svc  # noqa: F401 (fixture)
from web.keys import SERVICES

FIXTURES = Path(__file__).parent / "fixtures" / "ics"

FUTURE_WEEKLY = b"""BEGIN:VCALENDAR\r
VERSION:2.0\r
PRODID:-//test//EN\r
BEGIN:VEVENT\r
UID:cli-weekly\r
DTSTAMP:20261101T000000Z\r
DTSTART;TZID=Europe/Paris:20270301T090000\r
DTEND;TZID=Europe/Paris:20270301T100000\r
RRULE:FREQ=WEEKLY;COUNT=6\r
SUMMARY:Point hebdomadaire\r
ATTENDEE;CUTYPE=ROOM;CN=Salle Bleue:mailto:salle-bleue@example.org\r
ATTENDEE;CUTYPE=ROOM;CN=Smart Work Room:mailto:swr@example.org\r
END:VEVENT\r
END:VCALENDAR\r
"""

# An import keeps only the occurrences still ahead (within the 180-day horizon): the CLI
# and the service read their clock at this instant, not at the real now, for which the
# series above is partly past from March 2027 (a run under faketime on 28 March found it).
IMPORTED_AT = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)


def cli_at_import_time(data_dir: Path) -> Cli:
    return Cli(
        data_dir, prefix=ticking_from(IMPORTED_AT.strftime("%Y-%m-%d %H:%M:%S")), env=faked_env()
    )


def call(
    cli: Cli, *args: str, as_json: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``telecentre ARGS [--json]`` with its exit status and both outputs."""
    flags = ["--data-dir", str(cli.data_dir), *(["--json"] if as_json else [])]
    return subprocess.run(
        [*cli.prefix, sys.executable, "-m", "web.cli", *args, *flags],
        cwd=ROOT,
        env=base_env(**cli.env, **(env or {})),
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


@dataclass(frozen=True)
class CliRoom:
    cli: Cli
    room: str
    files: Path


@pytest.fixture(scope="module")
def paris_cli(tmp_path_factory: pytest.TempPathFactory) -> CliRoom:
    base = tmp_path_factory.mktemp("paris-cli")
    cli = cli_at_import_time(base / "data")
    paris = cli.run("centre", "add", "Fontainebleau", "--timezone", "Europe/Paris")["id"]
    room = cli.run("room", "add", "--centre", paris, "Salle Fontainebleau")["id"]
    return CliRoom(cli, room, base)


def test_the_cli_imports_a_file_and_lists_room_local_times(tmp_path: Path) -> None:
    cli = cli_at_import_time(tmp_path / "data")
    paris = cli.run("centre", "add", "Fontainebleau", "--timezone", "Europe/Paris")["id"]
    montreal = cli.run("centre", "add", "Montréal", "--timezone", "America/Toronto")["id"]
    a = cli.run("room", "add", "--centre", paris, "Salle Bleue")["id"]
    b = cli.run("room", "add", "--centre", montreal, "Smart Work Room")["id"]
    ics = tmp_path / "weekly.ics"
    ics.write_bytes(FUTURE_WEEKLY)
    report = cli.run("calendar", "import", str(ics))
    assert report["created"] == 1 and report["skipped"] == []
    again = cli.run("calendar", "import", str(ics))
    assert again["created"] == 0 and again["unchanged"] == 1
    window = ("--from", "2027-02-25T00:00Z", "--to", "2027-05-01T00:00Z")
    paris_rows = cli.run("booking", "list", "--room", a, *window)["occurrences"]
    montreal_rows = cli.run("booking", "list", "--room", b, *window)["occurrences"]
    # One weekly booking across DST changes, seen from each site: Paris stays at 09:00;
    # Montreal moves with the two continents' different change dates.
    assert [r["start_local"][11:16] for r in paris_rows] == ["09:00"] * 6
    assert {r["timezone"] for r in paris_rows} == {"Europe/Paris"}
    assert [r["start_local"][11:16] for r in montreal_rows] == [
        "03:00",
        "03:00",
        "04:00",
        "04:00",
        "03:00",
        "03:00",
    ]
    assert [r["start"][11:16] for r in montreal_rows] == [
        "08:00",
        "08:00",
        "08:00",
        "08:00",
        "07:00",
        "07:00",
    ]
    # Bad input: a clear error code, nothing written.
    junk = tmp_path / "junk.ics"
    junk.write_bytes((FIXTURES / "binary_junk.ics").read_bytes())
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "web.cli",
            "calendar",
            "import",
            str(junk),
            "--data-dir",
            str(tmp_path / "data"),
            "--json",
        ],
        cwd=ROOT,
        env=base_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert json.loads(proc.stdout)["error"]["code"] in ("not-icalendar", "malformed")


@pytest.mark.parametrize("svc", [IMPORTED_AT], indirect=True)
async def test_the_api_imports_a_calendar_and_refuses_junk(svc: Service) -> None:  # noqa: F811
    room_a, _, _, _ = await network(svc)
    r = await svc.client.post("/api/v1/calendars/import", data=FUTURE_WEEKLY, headers=svc.auth)
    report = await r.json()
    assert r.status == 200 and report["created"] == 1, report
    r = await svc.client.post(
        "/api/v1/calendars/import",
        params={"room_id": room_a},
        data=(FIXTURES / "binary_junk.ics").read_bytes(),
        headers=svc.auth,
    )
    assert r.status == 400 and (await r.json())["error"]["code"] in ("not-icalendar", "malformed")
    r = await svc.client.post(
        "/api/v1/calendars/import", data=b"B" * (10 * 1024 * 1024 + 10), headers=svc.auth
    )
    assert r.status == 413 and (await r.json())["error"]["code"] == "too-large"
    assert len((await svc.get("/bookings"))["bookings"]) == 1


@pytest.mark.parametrize("svc", [IMPORTED_AT], indirect=True)
async def test_a_subscribed_feed_is_polled_and_imported_by_the_service(svc: Service) -> None:  # noqa: F811
    room_a, _, _, _ = await network(svc)
    origin = web.Application()

    async def serve_ics(request: web.Request) -> web.Response:
        return web.Response(
            body=FUTURE_WEEKLY, content_type="text/calendar", headers={"ETag": '"1"'}
        )

    origin.router.add_get("/room.ics", serve_ics)
    server = TestServer(origin, host="127.0.0.1")
    await server.start_server()
    try:
        feed = await svc.post(
            "/feeds", {"url": str(server.make_url("/room.ics")), "room_id": room_a}
        )
        assert feed["room_id"] == room_a
        app_services = svc.client.app[SERVICES]  # type: ignore[index]
        poller = FeedPoller(app_services.db, app_services.calendars.import_feed, app_services.clock)
        async with aiohttp.ClientSession() as http:
            results = await poller.poll_once(http)
        assert results[feed["id"]]["ok"] is True
        listed = (await svc.get("/feeds"))["feeds"]
        assert listed[0]["last_status"]["report"]["created"] == 1
        bookings = (await svc.get("/bookings"))["bookings"]
        assert [b["title"] for b in bookings] == ["Point hebdomadaire"]
    finally:
        await server.close()
    bad = await svc.post("/feeds", {"url": "file:///etc/passwd"}, 400)
    assert bad["error"]["code"] == "bad-request"


# --- issue 10: lenient imports, refusals up front ---------------------------------------------


def test_the_cli_refuses_an_unknown_room_up_front(paris_cli: CliRoom) -> None:
    proc = call(
        paris_cli.cli, "calendar", "import", str(FIXTURES / "google_export.ics"), "--room", "nope"
    )
    assert proc.returncode == 2, proc.stdout
    # The JSON stays on standard output for programs; the person reads standard error.
    assert json.loads(proc.stdout)["error"] == {"code": "unknown-room", "message": "no room 'nope'"}
    assert proc.stderr.strip() == "error: no room 'nope' (unknown-room)"
    both = ("--room", paris_cli.room, "--room", "nope")
    text = call(
        paris_cli.cli,
        "calendar",
        "import",
        str(FIXTURES / "google_export.ics"),
        *both,
        as_json=False,
    )
    assert (text.returncode, text.stdout) == (2, "")
    assert text.stderr.strip() == "error: no room 'nope' (unknown-room)"


def test_the_cli_titles_an_event_without_summary_in_its_locale(paris_cli: CliRoom) -> None:
    cli = paris_cli.cli
    ics = str(FIXTURES / "google_no_summary.ics")
    french = {"LC_ALL": "fr_FR.UTF-8"}
    proc = call(cli, "calendar", "import", ics, "--room", paris_cli.room, env=french)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert (report["created"], report["skipped"]) == (6, [])
    assert [w["code"] for w in report["warnings"]] == ["made-up-title"] * 5
    assert "titled 'Occupé'" in report["warnings"][3]["message"]
    window = ("--from", "2027-04-15T00:00", "--to", "2027-04-16T00:00")
    (listed,) = cli.run("booking", "list", "--room", paris_cli.room, *window)["occurrences"]
    assert listed["title"] == "Occupé"


@pytest.mark.parametrize("svc", [IMPORTED_AT], indirect=True)
async def test_the_api_titles_in_the_requests_language_and_refuses_unknown_rooms(
    svc: Service,  # noqa: F811
) -> None:
    room_a, _, _, _ = await network(svc)
    data = (FIXTURES / "google_no_summary.ics").read_bytes()
    r = await svc.client.post(
        "/api/v1/calendars/import",
        params=[("room_id", room_a), ("room_id", "nope")],
        data=data,
        headers=svc.auth,
    )
    assert r.status == 404
    assert (await r.json())["error"] == {"code": "unknown-room", "message": "no room 'nope'"}
    assert (await svc.get("/bookings"))["bookings"] == []
    dutch = {**svc.auth, "Accept-Language": "nl-BE,nl;q=0.9,en;q=0.5"}
    r = await svc.client.post(
        "/api/v1/calendars/import", params={"room_id": room_a}, data=data, headers=dutch
    )
    report = await r.json()
    assert r.status == 200 and report["created"] == 6, report
    assert {w["code"] for w in report["warnings"]} == {"made-up-title"}
    titles = {b["title"] for b in (await svc.get("/bookings"))["bookings"]}
    assert "Bezet" in titles and "Jeanne Dupont" in titles


@pytest.mark.parametrize("svc", [IMPORTED_AT], indirect=True)
async def test_the_api_import_names_each_conflict_by_room_booking_and_interval(
    svc: Service,  # noqa: F811
) -> None:
    room_a, _, _, _ = await network(svc)
    r = await svc.client.post("/api/v1/calendars/import", data=FUTURE_WEEKLY, headers=svc.auth)
    assert r.status == 200 and (await r.json())["created"] == 1
    (weekly,) = (await svc.get("/bookings"))["bookings"]
    overlapping = (
        FUTURE_WEEKLY.replace(b"UID:cli-weekly", b"UID:cli-overlap")
        .replace(b"RRULE:FREQ=WEEKLY;COUNT=6\r\n", b"")
        .replace(b"20270301T090000", b"20270308T093000")
        .replace(b"20270301T100000", b"20270308T103000")
    )
    r = await svc.client.post(
        "/api/v1/calendars/import",
        params={"room_id": room_a, "name": "other"},
        data=overlapping,
        headers=svc.auth,
    )
    report = await r.json()
    assert r.status == 200 and report["created"] == 1, report
    (conflict,) = report["conflicts"]
    assert conflict["session_id"]
    assert conflict == {
        "uid": "cli-overlap",
        "code": "conflict",
        "room_id": room_a,
        "booking_id": weekly["id"],
        "session_id": conflict["session_id"],
        "recurrence_id": "2027-03-08T08:30:00+00:00",
        "start": "2027-03-08T08:30:00+00:00",
        "end": "2027-03-08T09:30:00+00:00",
    }
