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
from orchestrator.db import Database, DatabaseFault
from orchestrator.log_limit import DEFAULT_INTERVAL, LogLimiter
from orchestrator.models import CalDavLink

log = logging.getLogger(__name__)


def feed_source(feed: FeedRow) -> ImportSource:
    """A feed is authoritative: what disappears from it is gone (future occurrences)."""
    return ImportSource(
        f"feed:{feed.id}", rooms=(feed.room_id,) if feed.room_id else (), authoritative=True
    )


class CalendarJobs:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        settings: BookingSettings | None = None,
        fault_log_interval: float = DEFAULT_INTERVAL,
    ) -> None:
        self._db = db
        self._clock = clock
        self._settings = settings or BookingSettings()
        self._faults = LogLimiter(log, fault_log_interval)

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
        """Sync every link, then wait ``interval``, for as long as the service runs.

        An error on one link spares the rest; a database that is busy or damaged
        costs this pass (one line per fault and interval, no traceback), never the loop."""
        while True:
            try:
                await self.sync_caldav_links()
            except DatabaseFault as fault:
                self._faults.log(logging.WARNING, fault.code, "CalDAV pass failed: %s", fault)
            except Exception:
                log.exception("CalDAV pass failed; retrying in %s s", interval)
            await self._clock.sleep(interval)

    async def sync_caldav_links(self) -> None:
        """One pass over every CalDAV link."""
        links = await self._db.run(lambda s: list(s.exec(select(CalDavLink.id)).all()))
        for link_id in links:
            try:
                report = await self.sync_caldav(link_id)
                if report.error:
                    log.warning("CalDAV link %s: %s", link_id, report.error)
            except DatabaseFault as fault:
                self._faults.log(
                    logging.WARNING, fault.code, "CalDAV sync of %s failed: %s", link_id, fault
                )
            except Exception:
                log.exception("CalDAV sync of %s failed", link_id)
