"""Subscribed iCalendar feeds, polled with conditional GETs (ETag, If-Modified-Since).

Each feed is fetched when its interval has passed; a 304 costs the server and us
nearly nothing. A body is imported off the event loop (parsing in a thread, the
database in its own), and the outcome is kept on the feed row for staff to see.
A feed that fails keeps its last good import: nothing is cancelled on an error.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

import aiohttp
from sqlmodel import select

from orchestrator.calendars.ical_in.plan import ImportReport
from orchestrator.clock import Clock, instant
from orchestrator.db import Database, DbSession
from orchestrator.models import Feed

log = logging.getLogger(__name__)

MAX_FEED_BYTES = 10 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class FeedRow:
    id: str
    url: str
    room_id: str | None
    etag: str | None
    last_modified: str | None


@dataclass(frozen=True, slots=True)
class Fetched:
    status: int
    body: bytes | None
    etag: str | None
    last_modified: str | None


def due(last_polled: datetime | None, interval: int, now: datetime) -> bool:
    return last_polled is None or (now - last_polled).total_seconds() >= interval


def _due_feeds(db: DbSession, now: datetime) -> list[FeedRow]:
    rows = db.exec(select(Feed)).all()
    return [
        FeedRow(f.id, f.url, f.room_id, f.etag, f.last_modified)
        for f in rows
        if due(f.last_polled_at, f.interval_seconds, now)
    ]


def _record(
    db: DbSession, feed_id: str, now: datetime, fetched: Fetched | None, status: dict[str, object]
) -> None:
    feed = db.get(Feed, feed_id)
    if feed is None:
        return
    feed.last_polled_at = now
    feed.last_status = json.dumps(status, default=str)
    if fetched is not None and fetched.status == 200:
        feed.etag = fetched.etag
        feed.last_modified = fetched.last_modified
    db.add(feed)


async def fetch(
    http: aiohttp.ClientSession, feed: FeedRow, max_bytes: int = MAX_FEED_BYTES
) -> Fetched:
    """A conditional GET; the size cap is enforced while reading, before parsing."""
    headers = {"Accept": "text/calendar"}
    if feed.etag:
        headers["If-None-Match"] = feed.etag
    if feed.last_modified:
        headers["If-Modified-Since"] = feed.last_modified
    async with http.get(feed.url, headers=headers, timeout=aiohttp.ClientTimeout(total=30)) as r:
        if r.status == 304:
            return Fetched(304, None, feed.etag, feed.last_modified)
        if r.status != 200:
            return Fetched(r.status, None, None, None)
        body = bytearray()
        async for chunk in r.content.iter_chunked(65536):
            body.extend(chunk)
            if len(body) > max_bytes:
                raise ValueError(f"feed larger than {max_bytes} bytes")
        return Fetched(200, bytes(body), r.headers.get("ETag"), r.headers.get("Last-Modified"))


Importer = Callable[[FeedRow, bytes], Awaitable[ImportReport]]


class FeedPoller:
    """Polls every due feed each ``tick`` seconds; owned by whoever runs ``run()``."""

    def __init__(self, db: Database, importer: Importer, clock: Clock, tick: float = 5.0) -> None:
        self._db = db
        self._importer = importer
        self._clock = clock
        self._tick = tick

    async def run(self) -> None:
        async with aiohttp.ClientSession() as http:
            while True:
                try:
                    await self.poll_once(http)
                except Exception:
                    log.exception("feed polling failed; retrying")
                await self._clock.sleep(self._tick)

    async def poll_once(self, http: aiohttp.ClientSession) -> dict[str, dict[str, object]]:
        now = instant(self._clock)
        feeds = await self._db.run(lambda s: _due_feeds(s, now))
        results: dict[str, dict[str, object]] = {}
        for feed in feeds:
            results[feed.id] = await self._poll(http, feed, now)
        return results

    async def _poll(
        self, http: aiohttp.ClientSession, feed: FeedRow, now: datetime
    ) -> dict[str, object]:
        fetched: Fetched | None = None
        try:
            fetched = await fetch(http, feed)
            if fetched.status == 304:
                status: dict[str, object] = {"ok": True, "http": 304, "unchanged": True}
            elif fetched.body is None:
                status = {"ok": False, "http": fetched.status, "error": "http-error"}
            else:
                report = await self._importer(feed, fetched.body)
                status = {"ok": True, "http": 200, "report": report.as_dict()}
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            fetched = None
            status = {"ok": False, "error": "unreachable", "message": exc.__class__.__name__}
        except ValueError as exc:  # too large, or the importer refused the calendar
            # Keep the old validators: the next poll fetches the body again.
            fetched = None
            status = {"ok": False, "error": getattr(exc, "code", "invalid"), "message": str(exc)}
        await self._db.run(lambda s: _record(s, feed.id, now, fetched, status))
        log.info("feed %s polled: %s", feed.id, status.get("http", status.get("error")))
        return status
