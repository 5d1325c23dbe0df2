"""Calendar import through the CLI and the API, feeds polled by the running service,
and the room-local listing of occurrences."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from orchestrator.feeds import FeedPoller
from tests.e2e_support import ROOT, Cli, base_env
from tests.faketime_support import faked_env, ticking_from
from tests.test_web_api import Service, network, svc  # noqa: F401 (fixture)
from web.app import SERVICES

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


def test_the_cli_imports_a_file_and_lists_room_local_times(tmp_path: Path) -> None:
    cli = Cli(
        tmp_path / "data",
        prefix=ticking_from(IMPORTED_AT.strftime("%Y-%m-%d %H:%M:%S")),
        env=faked_env(),
    )
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
