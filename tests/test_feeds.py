"""Feed polling: conditional GETs against a real HTTP server on loopback, a fake clock."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from orchestrator.calendars.feeds import FeedPoller, FeedRow
from orchestrator.calendars.ical_in.plan import ImportReport
from orchestrator.clock import FakeClock
from orchestrator.db import Database
from orchestrator.models import Feed

pytestmark = pytest.mark.wall_clock

ICS = b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nEND:VCALENDAR\r\n"


@dataclass
class Origin:
    body: bytes = ICS
    etag: str = '"v1"'
    status: int = 200
    requests: list[dict[str, str]] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append(dict(request.headers))
        if self.status != 200:
            return web.Response(status=self.status)
        if request.headers.get("If-None-Match") == self.etag:
            return web.Response(status=304)
        return web.Response(
            body=self.body,
            content_type="text/calendar",
            headers={"ETag": self.etag, "Last-Modified": "Sat, 28 Nov 2026 10:00:00 GMT"},
        )


@dataclass
class Harness:
    db: Database
    origin: Origin
    url: str
    clock: FakeClock
    imported: list[bytes]
    poller: FeedPoller
    http: aiohttp.ClientSession


@pytest.fixture
async def h(tmp_path: Path) -> AsyncIterator[Harness]:
    db = Database(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    db.migrate()
    origin = Origin()
    app = web.Application()
    app.router.add_get("/room.ics", origin.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    url = str(server.make_url("/room.ics"))
    db.run_sync(lambda s: s.add(Feed(id="f1", url=url, interval_seconds=300)))
    imported: list[bytes] = []

    async def importer(feed: FeedRow, body: bytes) -> ImportReport:
        if b"BROKEN" in body:
            raise ValueError("not a calendar")
        imported.append(body)
        return ImportReport(created=1)

    clock = FakeClock(datetime(2026, 11, 28, 10, 0, tzinfo=UTC).timestamp())
    http = aiohttp.ClientSession()
    try:
        yield Harness(db, origin, url, clock, imported, FeedPoller(db, importer, clock), http)
    finally:
        await http.close()
        await server.close()
        await db.close()


def feed_row(h: Harness) -> Feed:
    row = h.db.run_sync(lambda s: s.get(Feed, "f1"))
    assert row is not None
    return row


async def test_a_feed_is_fetched_then_revalidated_with_its_etag(h: Harness) -> None:
    first = await h.poller.poll_once(h.http)
    assert first["f1"]["http"] == 200 and h.imported == [ICS]
    assert feed_row(h).etag == '"v1"'
    # Not due again before its interval.
    assert await h.poller.poll_once(h.http) == {}
    await h.clock.advance(300)
    second = await h.poller.poll_once(h.http)
    assert second["f1"] == {"ok": True, "http": 304, "unchanged": True}
    assert h.origin.requests[-1]["If-None-Match"] == '"v1"'
    assert "If-Modified-Since" in h.origin.requests[-1]
    assert h.imported == [ICS]


async def test_a_changed_feed_is_imported_again(h: Harness) -> None:
    await h.poller.poll_once(h.http)
    h.origin.body, h.origin.etag = ICS.replace(b"test", b"test2"), '"v2"'
    await h.clock.advance(300)
    await h.poller.poll_once(h.http)
    assert len(h.imported) == 2 and feed_row(h).etag == '"v2"'


async def test_errors_are_recorded_and_keep_the_last_good_validators(h: Harness) -> None:
    await h.poller.poll_once(h.http)
    h.origin.body, h.origin.etag = b"BROKEN", '"v3"'
    await h.clock.advance(300)
    result = await h.poller.poll_once(h.http)
    assert result["f1"]["ok"] is False and result["f1"]["error"] == "invalid"
    assert feed_row(h).etag == '"v1"'
    status = json.loads(feed_row(h).last_status or "{}")
    assert status["ok"] is False
    h.origin.status = 500
    await h.clock.advance(300)
    assert (await h.poller.poll_once(h.http))["f1"]["error"] == "http-error"


async def test_an_unreachable_feed_is_reported_not_raised(h: Harness) -> None:
    h.db.run_sync(lambda s: s.add(Feed(id="f2", url="http://127.0.0.1:9/x.ics")))
    result = await h.poller.poll_once(h.http)
    assert result["f2"]["error"] == "unreachable"
