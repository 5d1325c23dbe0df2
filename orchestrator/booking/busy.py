"""Free/busy: what holds each room over a window, read from ``room_slot`` in one query.

``room_slot`` holds, per room, the interval each blocking occurrence holds it for in
the conflict test (``orchestrator.booking.conflicts``: the occurrence widened by the room's
buffer). Cancelled, transparent and skipped occurrences have no slot; a room
released for a no-show has its slot cut at the release. So reading the slots is
reading free/busy, and the same read feeds the conflict test of a new booking.

Slots are dropped a day after they end (``horizon``), so the range scan on
``(room_id, start_utc)`` never walks the years of history.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import col

from orchestrator.booking.conflicts import Busy
from orchestrator.booking.policy import RoomPolicy
from orchestrator.db import DbSession
from orchestrator.errors import DomainError
from orchestrator.models import Booking, Room, RoomSlot, Session


def room_policies(db: DbSession, room_ids: Sequence[str]) -> list[RoomPolicy]:
    """The rooms' policies, in the order given; ``unknown-room`` for an unknown room
    (the code every door and the calendar importer give)."""
    rows = {
        r.id: r
        for r in db.connection().execute(
            sa.select(
                col(Room.id),
                col(Room.buffer_seconds),
                col(Room.max_duration_seconds),
                col(Room.max_advance_days),
            ).where(col(Room.id).in_(list(room_ids)))
        )
    }
    missing = [r for r in room_ids if r not in rows]
    if missing:
        raise DomainError("unknown-room", f"no room {missing[0][:64]!r}")
    return [RoomPolicy(*rows[r]) for r in room_ids]


class _InstantReader:
    """Reads instants of a large result fast. SQLite keeps them as naive UTC text, which
    ``datetime.fromisoformat`` turns into an aware UTC datetime in one C call; other
    databases go through the column's own type (``UTCDateTime``)."""

    def __init__(self, raw: bool) -> None:
        self.raw = raw

    def column(self, column: Any) -> Any:
        return sa.type_coerce(column, sa.String()) if self.raw else column

    def read(self, value: Any) -> datetime:
        if self.raw:
            return datetime.fromisoformat(value + "+00:00")
        return value  # type: ignore[no-any-return]


def _instant_reader(db: DbSession) -> _InstantReader:
    return _InstantReader(db.get_bind().dialect.name == "sqlite")


def _buffers(db: DbSession, room_ids: Collection[str]) -> dict[str, timedelta]:
    rows = db.connection().execute(
        sa.select(col(Room.id), col(Room.buffer_seconds)).where(col(Room.id).in_(list(room_ids)))
    )
    return {room_id: timedelta(seconds=seconds) for room_id, seconds in rows}


def busy_rows(
    db: DbSession,
    room_ids: Collection[str],
    since: datetime,
    until: datetime,
    *,
    detail: bool = True,
) -> dict[str, list[Busy]]:
    """Room id -> the occurrences whose *slot* (buffer included) meets ``[since, until)``,
    by start. See ``busy``."""
    if not room_ids:
        return {}
    buffers = _buffers(db, room_ids)
    slot = RoomSlot
    instant = _instant_reader(db)
    where = (
        col(slot.room_id).in_(list(room_ids)),
        col(slot.start_utc) < until,
        col(slot.end_utc) > since,
    )
    found: dict[str, list[Busy]] = defaultdict(list)
    if not detail:
        rows = db.connection().execute(
            sa.select(
                col(slot.room_id),
                instant.column(col(slot.start_utc)),
                instant.column(col(slot.end_utc)),
                col(slot.session_id),
            ).where(*where)
        )
        read = instant.read
        for room_id, start, end, session_id in rows.all():
            found[room_id].append(
                Busy(room_id, read(start), read(end) - buffers[room_id], session_id)
            )
    else:
        rows = db.connection().execute(
            sa.select(
                col(slot.room_id),
                instant.column(col(slot.end_utc)),
                instant.column(col(Session.start_utc)),
                instant.column(col(Session.end_utc)),
                col(slot.session_id),
                col(Session.booking_id),
                sa.func.coalesce(col(Session.title), col(Booking.title)),
            )
            .join(Session, col(Session.id) == col(slot.session_id))
            .join(Booking, col(Booking.id) == col(Session.booking_id))
            .where(*where)
        )
        read = instant.read
        for room_id, slot_end, start, end, session_id, booking_id, title in rows.all():
            # A released room's slot ends at its release (plus the buffer).
            until_ = min(read(end), read(slot_end) - buffers[room_id])
            found[room_id].append(Busy(room_id, read(start), until_, session_id, booking_id, title))
    for entries in found.values():
        entries.sort(key=lambda b: (b.start, b.end))
    return found


def busy(
    db: DbSession,
    room_ids: Collection[str],
    since: datetime,
    until: datetime,
    *,
    detail: bool = True,
) -> dict[str, list[Busy]]:
    """Free/busy: room id -> the occurrences holding it within ``[since, until)``, by
    start, with their own times (no buffer), and every room asked for present (maybe
    empty). Cancelled, transparent and skipped occurrences hold no slot, so they never
    show; a room released for a no-show shows until its release.

    One query over ``room_slot`` (index on ``(room_id, start_utc)``). ``detail`` adds
    each occurrence's booking and title (a join); without it, as a VFREEBUSY needs, an
    occurrence's end is read from its slot less the room's present buffer.
    """
    found = busy_rows(db, room_ids, since, until, detail=detail)
    return {
        room_id: [b for b in found.get(room_id, ()) if b.start < until and b.end > since]
        for room_id in room_ids
    }
