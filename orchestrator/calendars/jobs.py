"""The calendar work the running service does by itself: poll feeds, sync CalDAV links.

Parsing and CalDAV calls are blocking, so they run in threads; database work goes
through ``Database``. Both loops are owned by the web application's lifecycle.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

from sqlmodel import select

from orchestrator.booking.policy import BookingSettings
from orchestrator.calendars.caldav.sync import CalDavSync, SyncReport
from orchestrator.calendars.feeds import FeedRow
from orchestrator.calendars.ical_in.importer import import_calendar
from orchestrator.calendars.ical_in.parse import UNTITLED, parse_calendar
from orchestrator.calendars.ical_in.plan import ImportReport, ImportSource
from orchestrator.clock import Clock, instant
from orchestrator.db import Database
from orchestrator.models import CalDavLink

log = logging.getLogger(__name__)


def feed_source(feed: FeedRow) -> ImportSource:
    """A feed is authoritative: what disappears from it is gone (future occurrences)."""
    return ImportSource(
        f"feed:{feed.id}", rooms=(feed.room_id,) if feed.room_id else (), authoritative=True
    )


class CalendarJobs:
    def __init__(self, db: Database, clock: Clock, settings: BookingSettings | None = None) -> None:
        self._db = db
        self._clock = clock
        self._settings = settings or BookingSettings()

    def _now(self) -> datetime:
        return instant(self._clock)

    async def import_feed(self, feed: FeedRow, body: bytes) -> ImportReport:
        parsed = await asyncio.to_thread(parse_calendar, body)  # raises CalendarError
        now = self._now()
        return await self._db.run(
            lambda s: import_calendar(
                s, parsed, feed_source(feed), now=now, settings=self._settings
            )
        )

    async def import_file(
        self, body: bytes, room_ids: tuple[str, ...], name: str, untitled: str = UNTITLED
    ) -> ImportReport:
        parsed = await asyncio.to_thread(lambda: parse_calendar(body, untitled=untitled))
        now = self._now()
        source = ImportSource(f"file:{name}", rooms=room_ids)
        return await self._db.run(
            lambda s: import_calendar(s, parsed, source, now=now, settings=self._settings)
        )

    async def sync_caldav(self, link_id: str) -> SyncReport:
        now = self._now()
        syncer = CalDavSync(link_id, self._db.run_sync, now=now, settings=self._settings)
        return await asyncio.to_thread(syncer.sync)

    async def run_caldav(self, interval: float = 60.0) -> None:
        """Sync every link, then wait ``interval``; an error on one link spares the rest."""
        while True:
            links = await self._db.run(lambda s: list(s.exec(select(CalDavLink.id)).all()))
            for link_id in links:
                try:
                    report = await self.sync_caldav(link_id)
                    if report.error:
                        log.warning("CalDAV link %s: %s", link_id, report.error)
                except Exception:
                    log.exception("CalDAV sync of %s failed", link_id)
            await self._clock.sleep(interval)
