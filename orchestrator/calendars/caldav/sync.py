"""Two-way sync of a room's calendar with a CalDAV server.

Each pass pulls what changed on the server (sync token, or a full listing when
the token is gone) and applies it, then pushes the room's bookings that changed
here, each with a conditional PUT (If-Match, or If-None-Match: * for a new one).

Rule when both sides changed the same event since the last sync (a PUT answered
412, or a pulled change to an event edited here too): the higher SEQUENCE wins,
and on equal SEQUENCE telecentre wins, because the room's own booking system is
the authority on what the room does; the losing version is overwritten and the
conflict is reported. An edit on one side only always propagates.

Network calls are synchronous (the caldav library); the caller runs a pass in a
thread. Database work happens in the transactions the caller provides.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from sqlmodel import select

from orchestrator.booking import commands
from orchestrator.booking.policy import BookingSettings
from orchestrator.booking.values import CANCELLED
from orchestrator.calendars.caldav.transport import (
    CalDavAccount,
    CalDavError,
    CalDavTransport,
    RemoteItem,
)
from orchestrator.calendars.ical_in.importer import import_calendar
from orchestrator.calendars.ical_in.parse import CalendarError, ParsedCalendar, parse_calendar
from orchestrator.calendars.ical_in.plan import ImportReport, ImportSource, Skip
from orchestrator.calendars.ical_out.export import FeedScope, feed_ics, load_booking
from orchestrator.db import DbSession
from orchestrator.models import Booking, BookingRoom, CalDavItem, CalDavLink, Centre, Room

log = logging.getLogger(__name__)
T = TypeVar("T")
# Runs a function inside one database transaction (Database.run_sync, or a test's).
Transaction = Callable[[Callable[[DbSession], Any]], Any]


def source_key(link_id: str) -> str:
    return f"caldav:{link_id}"


@dataclass(slots=True)
class SyncReport:
    pulled: int = 0
    pushed: int = 0
    deleted: int = 0
    conflicts: list[str] = field(default_factory=list)
    imported: ImportReport = field(default_factory=ImportReport)
    error: str | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "pulled": self.pulled,
            "pushed": self.pushed,
            "deleted": self.deleted,
            "conflicts": self.conflicts,
            "imported": self.imported.as_dict(),
            "error": self.error,
        }


@dataclass(frozen=True, slots=True)
class LinkRow:
    id: str
    room_id: str
    account: CalDavAccount
    sync_token: str | None


def load_link(db: DbSession, link_id: str) -> LinkRow:
    link = db.get(CalDavLink, link_id)
    if link is None:
        raise ValueError(f"no CalDAV link {link_id}")
    account = CalDavAccount(
        url=link.calendar_url,
        username=link.username,
        password=link.password,
        calendar_url=link.calendar_url,
    )
    return LinkRow(link.id, link.room_id, account, link.sync_token)


def _items(db: DbSession, link_id: str) -> dict[str, CalDavItem]:
    rows = db.exec(select(CalDavItem).where(CalDavItem.link_id == link_id)).all()
    return {row.href: row for row in rows}


def _remote_sequence(data: bytes) -> int | None:
    try:
        parsed = parse_calendar(data)
    except CalendarError:
        return None
    return max((e.spec.sequence for e in parsed.events), default=None)


class CalDavSync:
    def __init__(
        self,
        link_id: str,
        transaction: Transaction,
        *,
        now: datetime,
        settings: BookingSettings | None = None,
        transport: Callable[[CalDavAccount], CalDavTransport] = CalDavTransport,
    ) -> None:
        self.link_id = link_id
        self._tx = transaction
        self._now = now
        self._settings = settings or BookingSettings()
        self._transport_factory = transport

    def _run(self, fn: Callable[[DbSession], T]) -> T:
        result: T = self._tx(fn)
        return result

    def sync(self) -> SyncReport:
        report = SyncReport()
        link = self._run(lambda db: load_link(db, self.link_id))
        try:
            with self._transport_factory(link.account) as transport:
                token = self._pull(link, transport, report)
                self._push(link, transport, report)
        except CalDavError as exc:
            report.error = exc.code
            log.warning("CalDAV sync of %s failed: %s", self.link_id, exc)
            token = link.sync_token
        self._run(lambda db: self._record(db, token, report))
        return report

    # --- pull ---------------------------------------------------------------------

    def _pull(self, link: LinkRow, transport: CalDavTransport, report: SyncReport) -> str | None:
        result = transport.pull(link.sync_token)
        known = self._run(lambda db: {h: (i.etag, i.uid) for h, i in _items(db, link.id).items()})
        changed = [
            i
            for i in result.items
            if i.data is not None and known.get(i.href, (None,))[0] != i.etag
        ]
        deleted = [i.href for i in result.items if i.data is None and i.href in known]
        if result.full:
            listed = {i.href for i in result.items if i.data is not None}
            deleted += [h for h in known if h not in listed and h not in deleted]
        for item in changed:
            self._run(lambda db, item=item: self._apply_remote(db, link, item, report))  # type: ignore[misc]
            report.pulled += 1
        for href in deleted:
            self._run(lambda db, href=href: self._apply_deleted(db, link, href, report))  # type: ignore[misc]
            report.deleted += 1
        return result.sync_token

    def _apply_remote(
        self, db: DbSession, link: LinkRow, item: RemoteItem, report: SyncReport
    ) -> None:
        assert item.data is not None
        try:
            parsed = parse_calendar(item.data)
        except CalendarError as exc:
            report.imported.skipped.append(Skip(None, exc.code, f"{item.href}: {exc.message}"))
            return
        row = db.get(CalDavItem, (link.id, item.href))
        booking = db.get(Booking, row.booking_id) if row and row.booking_id else None
        if booking is not None:
            # A known event changed over there (made on either side).
            self._apply_remote_edit(db, booking, row, parsed, item, report)
            return
        outcome = import_calendar(
            db,
            parsed,
            ImportSource(source_key(link.id), rooms=(link.room_id,)),
            now=self._now,
            settings=self._settings,
        )
        report.imported.merge(outcome)
        uid = parsed.events[0].spec.uid if parsed.events else (row.uid if row else "")
        found = commands.find_booking(db, source_key(link.id), uid) if uid else None
        self._remember(db, link.id, item.href, uid, item.etag, found)

    def _apply_remote_edit(
        self,
        db: DbSession,
        booking: Booking,
        row: CalDavItem | None,
        parsed: object,
        item: RemoteItem,
        report: SyncReport,
    ) -> None:
        assert isinstance(parsed, ParsedCalendar) and row is not None
        spec = next((e.spec for e in parsed.events if e.spec.uid == booking.uid), None)
        if spec is None:
            return
        local_changed = booking.sequence > row.synced_sequence
        if local_changed and spec.sequence <= booking.sequence:
            report.conflicts.append(f"{booking.uid}: both sides changed; telecentre's version kept")
            row.etag = item.etag  # so the push overwrites the server's copy
            db.add(row)
            return
        if spec.status == CANCELLED:
            commands.cancel_series(db, booking.id, now=self._now)
        else:
            rooms = tuple(
                db.exec(select(BookingRoom.room_id).where(BookingRoom.booking_id == booking.id))
            )
            commands.update_series(
                db,
                booking.id,
                spec,
                room_ids=rooms,
                on_conflict="skip",
                now=self._now,
                settings=self._settings,
            )
        if local_changed:
            report.conflicts.append(f"{booking.uid}: both sides changed; the higher SEQUENCE won")
        report.imported.updated += 1
        self._remember(
            db, row.link_id, item.href, booking.uid, item.etag, db.get(Booking, booking.id)
        )

    def _apply_deleted(self, db: DbSession, link: LinkRow, href: str, report: SyncReport) -> None:
        row = db.get(CalDavItem, (link.id, href))
        if row is None:
            return
        if row.booking_id is not None:
            booking = db.get(Booking, row.booking_id)
            if booking is not None and booking.status != CANCELLED:
                commands.cancel_series(db, booking.id, now=self._now)
                report.imported.cancelled += 1
        db.delete(row)

    # --- push ---------------------------------------------------------------------

    def _push(self, link: LinkRow, transport: CalDavTransport, report: SyncReport) -> None:
        for booking_id, href, etag, uid, body, sequence in self._run(
            lambda db: self._outgoing(db, link)
        ):
            try:
                new_href, new_etag = transport.put(href, uid, body, etag)
            except CalDavError as exc:
                if exc.code != "precondition-failed" or href is None:
                    raise
                # Changed on the server since we last saw it: decide by SEQUENCE.
                fresh = transport.get(href)
                remote = _remote_sequence(fresh.data) if fresh.data else None
                if remote is not None and remote > sequence:
                    self._run(
                        lambda db, fresh=fresh: self._apply_remote(db, link, fresh, report)  # type: ignore[misc]
                    )
                    continue
                report.conflicts.append(f"{uid}: both sides changed; telecentre's version kept")
                new_href, new_etag = transport.put(href, uid, body, fresh.etag)
            self._run(
                lambda db, b=booking_id, h=new_href, e=new_etag, u=uid: self._remember(  # type: ignore[misc]
                    db, link.id, h, u, e, db.get(Booking, b)
                )
            )
            report.pushed += 1

    def _outgoing(
        self, db: DbSession, link: LinkRow
    ) -> list[tuple[str, str | None, str | None, str, bytes, int]]:
        """The room's bookings that the calendar lacks, or holds in an older version."""
        room = db.get(Room, link.room_id)
        assert room is not None
        centre = db.get(Centre, room.centre_id)
        assert centre is not None
        items = {i.booking_id: i for i in _items(db, link.id).values() if i.booking_id}
        out = []
        query = (
            select(Booking)
            .join(BookingRoom, BookingRoom.booking_id == Booking.id)  # type: ignore[arg-type]
            .where(BookingRoom.room_id == link.room_id)
        )
        for booking in db.exec(query).all():
            item = items.get(booking.id)
            if item is not None and item.synced_sequence >= booking.sequence:
                continue
            if item is None and booking.status == CANCELLED:
                continue
            body = feed_ics(FeedScope(room.name, centre.timezone), [load_booking(db, booking.id)])
            out.append(
                (
                    booking.id,
                    item.href if item else None,
                    item.etag if item else None,
                    booking.uid,
                    body,
                    booking.sequence,
                )
            )
        return out

    # --- bookkeeping --------------------------------------------------------------

    def _remember(
        self,
        db: DbSession,
        link_id: str,
        href: str,
        uid: str,
        etag: str | None,
        booking: Booking | None,
    ) -> None:
        row = db.get(CalDavItem, (link_id, href)) or CalDavItem(link_id=link_id, href=href, uid=uid)
        row.uid = uid
        row.etag = etag
        row.booking_id = booking.id if booking else None
        row.synced_sequence = booking.sequence if booking else 0
        row.synced_at = self._now
        db.add(row)

    def _record(self, db: DbSession, token: str | None, report: SyncReport) -> None:
        link = db.get(CalDavLink, self.link_id)
        if link is None:
            return
        if report.error is None:
            link.sync_token = token
        link.last_synced_at = self._now
        link.last_status = json.dumps(report.as_dict(), default=str)
        db.add(link)
