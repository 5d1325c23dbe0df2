"""Importing a calendar: parse, plan, apply, in one transaction, with a report
(``import_calendar``, the one entry point).

Parsing is pure and runs wherever the caller puts it (a thread, off the event
loop); the plan is pure (orchestrator/calendars/ical_in/plan.py); applying it happens inside
one database transaction, so an import is applied whole or not at all.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime

from sqlmodel import col, select

from orchestrator.booking import commands
from orchestrator.booking.policy import AUTOMATIC, RESERVE_ONLY, BookingSettings
from orchestrator.booking.values import SeriesSpec
from orchestrator.calendars.ical_in.parse import UNTITLED, ParsedCalendar, parse_calendar
from orchestrator.calendars.ical_in.plan import (
    CANCEL,
    CREATE,
    UPDATE,
    Action,
    Existing,
    ImportConflict,
    ImportPlan,
    ImportReport,
    ImportSource,
    Incoming,
    Note,
    RoomNames,
    Skip,
    plan_import,
    spec_hash,
)
from orchestrator.db import DbSession
from orchestrator.errors import DomainError
from orchestrator.lifecycle import TERMINAL_STATES
from orchestrator.models import Booking, BookingRoom, Centre, Room, Session

ALL_DAY_MODE = RESERVE_ONLY  # all-day events reserve the room and never auto-connect


def load_rooms(db: DbSession) -> list[RoomNames]:
    out = []
    for room in db.exec(select(Room)).all():
        aliases = json.loads(room.aliases or "[]")
        out.append(RoomNames(room.id, (room.name, *[str(a) for a in aliases])))
    return out


def load_existing(db: DbSession, source: str, now: datetime) -> dict[str, Existing]:
    found: dict[str, Existing] = {}
    for booking in db.exec(select(Booking).where(Booking.source == source)).all():
        room_ids = tuple(
            db.exec(select(BookingRoom.room_id).where(BookingRoom.booking_id == booking.id)).all()
        )
        future = db.exec(
            select(Session.id)
            .where(Session.booking_id == booking.id, Session.end_utc > now)
            .where(col(Session.state).not_in(TERMINAL_STATES))
            .limit(1)
        ).first()
        found[booking.uid] = Existing(
            booking.id,
            commands.series_spec(db, booking.id),
            room_ids,
            future is not None,
            booking.import_hash,
        )
    return found


def check_source_rooms(db: DbSession, source: ImportSource) -> None:
    """The rooms a source books all exist; ``unknown-room`` otherwise, before anything is
    planned (each event would only be skipped for want of a room that is not there)."""
    for room_id in source.rooms:
        if db.get(Room, room_id) is None:
            raise DomainError("unknown-room", f"no room {room_id[:64]!r}")


def _source_zone(db: DbSession, source: ImportSource) -> str | None:
    if not source.rooms:
        return None
    room = db.get(Room, source.rooms[0])
    centre = db.get(Centre, room.centre_id) if room is not None else None
    return centre.timezone if centre is not None else None


def plan(db: DbSession, parsed: ParsedCalendar, source: ImportSource, now: datetime) -> ImportPlan:
    zone = _source_zone(db, source)
    incoming = [
        Incoming(
            # Floating times mean "wherever you are": the room's local time.
            replace(event.spec, timezone=zone) if event.floating and zone else event.spec,
            tuple(event.rooms.names),
        )
        for event in parsed.events
    ]
    return plan_import(source, incoming, load_existing(db, source.key, now), load_rooms(db))


def import_calendar(
    db: DbSession,
    calendar: bytes | ParsedCalendar,
    source: ImportSource,
    *,
    now: datetime,
    settings: BookingSettings,
    untitled: str = UNTITLED,
    lead_seconds: int = 60,
) -> ImportReport:
    """Import a calendar: the one importer function, which the CLI, the API, feeds and
    CalDAV all call. The caller's transaction makes it all or nothing; ``unknown-room``
    when the source names a room that does not exist.

    ``calendar`` is the file (parsed here, its untitled events called ``untitled``),
    or the file already parsed by a caller that keeps parsing off the event loop and
    out of the transaction (``parse.parse_calendar``). Each new event is booked by
    ``commands.create_series``, the booking core every door reaches, so an event is
    skipped with the code any door gives for the same request (``past``,
    ``too-long``, ``too-far-ahead``); a room taken makes a conflict (code
    ``conflict``)."""
    parsed = (
        calendar
        if isinstance(calendar, ParsedCalendar)
        else parse_calendar(calendar, untitled=untitled)
    )
    check_source_rooms(db, source)
    decided = plan(db, parsed, source, now)
    report = ImportReport(
        unchanged=decided.unchanged,
        skipped=[Skip(s.uid, s.reason_code, s.reason) for s in parsed.skipped]
        + list(decided.skipped),
        held_back=decided.held_back,
        warnings=[Note(w.uid, w.code, w.message) for w in parsed.warnings],
    )
    for action in decided.actions:
        # Each action in a savepoint: one the rules refuse (too far ahead, too long) is
        # skipped with its reason and leaves nothing behind; the others still apply.
        try:
            with db.begin_nested():
                _apply_action(db, action, source, report, now, settings, lead_seconds)
        except DomainError as exc:
            report.skipped.append(Skip(action.uid, exc.code, exc.message))
    return report


def _apply_action(
    db: DbSession,
    action: Action,
    source: ImportSource,
    report: ImportReport,
    now: datetime,
    settings: BookingSettings,
    lead_seconds: int,
) -> None:
    if action.kind == CREATE and action.spec is not None:
        result = commands.create_series(
            db,
            action.spec,
            action.room_ids,
            lead_seconds=lead_seconds,
            connect_mode=ALL_DAY_MODE if action.spec.all_day else AUTOMATIC,
            on_conflict="skip",
            source=source.key,
            now=now,
            settings=settings,
            by=commands.CALENDAR,
        )
        _fingerprint(db, result.booking_id, action.spec)
        report.created += 1
        report.conflicts.extend(ImportConflict.of(action.uid, c) for c in result.skipped)
    elif action.kind == UPDATE and action.spec is not None and action.booking_id:
        result = commands.update_series(
            db,
            action.booking_id,
            action.spec,
            room_ids=action.room_ids,
            scope="all",
            on_conflict="skip",
            now=now,
            settings=settings,
            by=commands.CALENDAR,
        )
        _fingerprint(db, action.booking_id, action.spec)
        report.updated += 1
        report.conflicts.extend(ImportConflict.of(action.uid, c) for c in result.skipped)
    elif action.kind == CANCEL and action.booking_id:
        # Gone from its source: its future goes, its history and a meeting already
        # under way stay.
        first = db.exec(
            select(Session)
            .where(Session.booking_id == action.booking_id, Session.start_utc > now)
            .where(col(Session.state).not_in(TERMINAL_STATES))
            .order_by(col(Session.start_utc))
            .limit(1)
        ).first()
        if first is not None and first.recurrence_id is not None:
            commands.cancel_series(
                db,
                action.booking_id,
                recurrence_id=first.recurrence_id,
                this_and_following=True,
                now=now,
                by=commands.CALENDAR,
            )
            report.cancelled += 1


def _fingerprint(db: DbSession, booking_id: str, spec: SeriesSpec) -> None:
    booking = db.get(Booking, booking_id)
    if booking is not None:
        booking.import_hash = spec_hash(spec)
        db.add(booking)
