"""Writing occurrences as sessions and room slots, with the conflict rule that cannot race.

A booking's occurrences inside the horizon each have a session (``scheduled``),
a participation row per room, and, when they block, a ``room_slot`` per room over
the conflict test's interval (``orchestrator.booking.conflicts``: the buffer included).

How two requests for one slot can never both win:

- SQLite: every write transaction starts with ``BEGIN IMMEDIATE`` (see
  ``orchestrator.db``), so the check (read the rooms' busy time) and the write
  happen with no other writer in between, whichever process the other is in.
- PostgreSQL: the check runs too, but two transactions can both pass it; the
  exclusion constraint ``ex_room_slot_no_overlap`` then refuses the second slot
  written (the insert waits for the first transaction and fails once it commits).
  The writes run in a SAVEPOINT: on that refusal (or a deadlock between two
  multi-room requests) they are rolled back and planned again against what is now
  committed, which names the winner in the ``BookingConflict``.

A skipped occurrence (``on_conflict="skip"``) keeps a session that went straight to
``cancelled`` with no room in it: it holds nothing, shows in lists as cancelled,
and the horizon never tries it again. That is also how it is told apart from an
occurrence cancelled on purpose, which keeps its rooms.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import sqlalchemy as sa
from sqlmodel import col

from orchestrator import lifecycle
from orchestrator.booking.busy import busy_rows
from orchestrator.booking.conflicts import Conflict, SlotRequest, conflicting, find_conflicts, held
from orchestrator.booking.policy import RoomPolicy
from orchestrator.booking.values import CANCELLED, Occurrence
from orchestrator.db import DbSession
from orchestrator.errors import DomainError
from orchestrator.models import (
    BookingRoom,
    Participation,
    RoomSlot,
    Session,
    SessionTransitionRecord,
    new_id,
)
from orchestrator.transitions import record_transition

log = logging.getLogger(__name__)

OnConflict = Literal["reject", "skip"]
NO_OVERLAP = "ex_room_slot_no_overlap"
_ATTEMPTS = 4
_DEADLOCK = "40P01"


class BookingConflict(DomainError):
    """Some requested occurrence collides with what holds a room (code ``conflict``)."""

    def __init__(self, conflicts: Sequence[Conflict], message: str | None = None) -> None:
        self.conflicts = tuple(conflicts)
        if message is None:
            shown = "; ".join(c.describe() for c in self.conflicts[:3])
            more = len(self.conflicts) - 3
            message = (shown or "the rooms were taken meanwhile") + (
                f"; and {more} more" if more > 0 else ""
            )
        super().__init__("conflict", message)


@dataclass(frozen=True, slots=True)
class BookingResult:
    """A booking written: its sessions that hold their rooms, and what was skipped."""

    booking_id: str
    session_ids: tuple[str, ...]
    skipped: tuple[Conflict, ...] = ()


def is_slot_overlap(exc: sa.exc.DBAPIError) -> bool:
    """The database refused a slot because the room is held (PostgreSQL's constraint)."""
    diag = getattr(exc.orig, "diag", None)
    return getattr(diag, "constraint_name", None) == NO_OVERLAP or NO_OVERLAP in str(exc.orig)


def _is_deadlock(exc: sa.exc.DBAPIError) -> bool:
    return getattr(exc.orig, "sqlstate", None) == _DEADLOCK


@dataclass(frozen=True, slots=True)
class _Existing:
    id: str
    recurrence_id: datetime
    start: datetime
    end: datetime
    state: str
    revision: int
    title: str | None
    lead_seconds: int
    has_rooms: bool

    def mutable(self, now: datetime) -> bool:
        """Not begun: a booking change may still move, cancel or bring it back."""
        return self.start > now and self.state in (lifecycle.SCHEDULED, lifecycle.CANCELLED)


def _existing(db: DbSession, booking_id: str) -> dict[datetime, _Existing]:
    with_rooms = (
        sa.select(sa.func.count())
        .where(col(Participation.session_id) == col(Session.id))
        .scalar_subquery()
    )
    rows = db.connection().execute(
        sa.select(
            col(Session.id),
            col(Session.recurrence_id),
            col(Session.start_utc),
            col(Session.end_utc),
            col(Session.state),
            col(Session.revision),
            col(Session.title),
            col(Session.lead_seconds),
            with_rooms,
        ).where(col(Session.booking_id) == booking_id)
    )
    found: dict[datetime, _Existing] = {}
    for sid, rid, start, end, state, revision, title, lead, rooms in rows:
        found[rid if rid is not None else start] = _Existing(
            sid, rid or start, start, end, state, revision, title, lead, rooms > 0
        )
    return found


# --- writing ---------------------------------------------------------------------------


def _insert_rows(db: DbSession, model: Any, rows: list[dict[str, Any]]) -> None:
    if rows:
        db.connection().execute(sa.insert(model), rows)


def _delete_where(db: DbSession, model: Any, column: Any, ids: Collection[str]) -> None:
    if ids:
        db.connection().execute(sa.delete(model).where(column.in_(list(ids))))


def _slot_rows(
    session_id: str, occurrence: Occurrence, rooms: Sequence[RoomPolicy]
) -> list[dict[str, Any]]:
    rows = []
    for room in rooms:
        start, end = held(occurrence.start, occurrence.end, room.buffer)
        rows.append(
            {"room_id": room.room_id, "session_id": session_id, "start_utc": start, "end_utc": end}
        )
    return rows


def cancel_session(db: DbSession, session_id: str, at: datetime) -> bool:
    """Cancel an open session (a ``cancelled`` transition) and free its rooms; False if
    it is already over (terminal)."""
    session = db.get(Session, session_id, populate_existing=True)
    if session is None or session.state in lifecycle.TERMINAL_STATES:
        return False
    if not record_transition(db, session, lifecycle.CANCELLED, at, now=at):
        raise DomainError("conflict", "the session changed meanwhile; try again")
    _delete_where(db, RoomSlot, col(RoomSlot.session_id), [session_id])
    return True


@dataclass
class _Writes:
    sessions: list[dict[str, Any]]
    transitions: list[dict[str, Any]]
    participations: list[dict[str, Any]]
    slots: list[dict[str, Any]]
    kept: list[str]


def _new_session(
    writes: _Writes,
    booking_id: str,
    occurrence: Occurrence,
    rooms: Sequence[RoomPolicy],
    *,
    lead_seconds: int,
    skipped: bool,
    now: datetime,
) -> None:
    sid = new_id()
    cancelled = skipped or occurrence.status == CANCELLED
    state = lifecycle.CANCELLED if cancelled else lifecycle.SCHEDULED
    writes.sessions.append(
        {
            "id": sid,
            "booking_id": booking_id,
            "start_utc": occurrence.start,
            "end_utc": occurrence.end,
            "lead_seconds": lead_seconds,
            "state": state,
            "revision": 1,
            "recurrence_id": occurrence.recurrence_id,
            "title": occurrence.title,
            "created_at": now,
            "updated_at": now,
        }
    )
    writes.transitions.append({"session_id": sid, "seq": 1, "state": state, "at": now})
    if skipped:
        return
    writes.participations += [
        {"session_id": sid, "room_id": r.room_id, "rejoins": 0} for r in rooms
    ]
    if occurrence.blocks:
        writes.slots += _slot_rows(sid, occurrence, rooms)
    if not cancelled:
        writes.kept.append(sid)


def _rewrite(
    db: DbSession,
    writes: _Writes,
    booking_id: str,
    old: _Existing,
    occurrence: Occurrence,
    rooms: Sequence[RoomPolicy],
    *,
    lead_seconds: int,
    skipped: bool,
    now: datetime,
) -> None:
    """Bring a session that has not begun in line with its occurrence. One that was
    cancelled (or skipped) and is wanted again is replaced by a new session: states
    never go back from ``cancelled``."""
    cancelled = skipped or occurrence.status == CANCELLED
    if old.state == lifecycle.CANCELLED:
        if cancelled and (old.has_rooms or skipped):
            return  # still cancelled (or still skipped): nothing to do
        if cancelled:  # was skipped, is now cancelled on purpose: keeps its rooms
            writes.participations += [
                {"session_id": old.id, "room_id": r.room_id, "rejoins": 0} for r in rooms
            ]
            return
        for model, column in (
            (SessionTransitionRecord, col(SessionTransitionRecord.session_id)),
            (Participation, col(Participation.session_id)),
            (RoomSlot, col(RoomSlot.session_id)),
            (Session, col(Session.id)),
        ):
            _delete_where(db, model, column, [old.id])
        _new_session(
            writes,
            booking_id,
            occurrence,
            rooms,
            lead_seconds=lead_seconds,
            skipped=skipped,
            now=now,
        )
        return
    _delete_where(db, Participation, col(Participation.session_id), [old.id])
    if cancelled:
        cancel_session(db, old.id, now)
        if not skipped:
            writes.participations += [
                {"session_id": old.id, "room_id": r.room_id, "rejoins": 0} for r in rooms
            ]
        return
    wanted = (occurrence.start, occurrence.end, occurrence.title, lead_seconds)
    if wanted != (old.start, old.end, old.title, old.lead_seconds):
        moved = db.connection().execute(
            sa.update(Session)
            .where(col(Session.id) == old.id, col(Session.revision) == old.revision)
            .values(
                start_utc=occurrence.start,
                end_utc=occurrence.end,
                title=occurrence.title,
                lead_seconds=lead_seconds,
                revision=old.revision + 1,
                updated_at=now,
            )
        )
        if moved.rowcount != 1:
            raise DomainError("conflict", "the session changed meanwhile; try again")
    writes.participations += [
        {"session_id": old.id, "room_id": r.room_id, "rejoins": 0} for r in rooms
    ]
    if occurrence.blocks:
        writes.slots += _slot_rows(old.id, occurrence, rooms)
    writes.kept.append(old.id)


def _apply_once(
    db: DbSession,
    booking_id: str,
    occurrences: Sequence[Occurrence],
    rooms: Sequence[RoomPolicy],
    *,
    lead_seconds: int,
    on_conflict: OnConflict,
    only_new: bool,
    cancel_missing: bool,
    now: datetime,
) -> BookingResult:
    existing = _existing(db, booking_id)
    targets: list[tuple[Occurrence, _Existing | None]] = []
    for occurrence in sorted(occurrences, key=lambda o: (o.start, o.recurrence_id)):
        old = existing.get(occurrence.recurrence_id)
        if old is None or (not only_new and old.mutable(now)):
            targets.append((occurrence, old))
    wanted = {o.recurrence_id for o in occurrences}
    dropped = [
        e
        for e in existing.values()
        if cancel_missing and e.mutable(now) and e.recurrence_id not in wanted
    ]
    # What is planned again lets go of its rooms first; it is tested like the rest.
    _delete_where(
        db,
        RoomSlot,
        col(RoomSlot.session_id),
        [e.id for _, e in targets if e] + [e.id for e in dropped],
    )
    requests = [SlotRequest(o, tuple(r.room_id for r in rooms)) for o, _ in targets if o.blocks]
    conflicts: list[Conflict] = []
    if requests:
        buffers = {r.room_id: r.buffer for r in rooms}
        widest = max(r.buffer for r in rooms)
        since = min(r.occurrence.start for r in requests) - widest
        until = max(r.occurrence.end for r in requests) + widest
        taken = busy_rows(db, [r.room_id for r in rooms], since, until)
        conflicts = find_conflicts(requests, taken, buffers)
    if conflicts and on_conflict == "reject":
        raise BookingConflict(conflicts)
    skip = conflicting(conflicts)
    writes = _Writes([], [], [], [], [])
    for occurrence, old in targets:
        skipped = occurrence.recurrence_id in skip
        if old is None:
            _new_session(
                writes,
                booking_id,
                occurrence,
                rooms,
                lead_seconds=lead_seconds,
                skipped=skipped,
                now=now,
            )
        else:
            _rewrite(
                db,
                writes,
                booking_id,
                old,
                occurrence,
                rooms,
                lead_seconds=lead_seconds,
                skipped=skipped,
                now=now,
            )
    for gone in dropped:
        cancel_session(db, gone.id, now)
    _insert_rows(db, Session, writes.sessions)
    _insert_rows(db, SessionTransitionRecord, writes.transitions)
    _insert_rows(db, Participation, writes.participations)
    # In one global order, so that two multi-room requests rarely wait on each other.
    writes.slots.sort(key=lambda s: (s["room_id"], s["start_utc"]))
    _insert_rows(db, RoomSlot, writes.slots)
    db.flush()
    return BookingResult(booking_id, tuple(writes.kept), tuple(conflicts))


def apply_occurrences(
    db: DbSession,
    booking_id: str,
    occurrences: Sequence[Occurrence],
    rooms: Sequence[RoomPolicy],
    *,
    lead_seconds: int,
    on_conflict: OnConflict,
    now: datetime,
    only_new: bool = False,
    cancel_missing: bool = False,
) -> BookingResult:
    """Make the booking's sessions match ``occurrences``, all or nothing.

    Each occurrence gets a session (new, or the existing one of its recurrence id
    brought in line if it has not begun); sessions that began, or ended, are never
    touched. ``only_new`` leaves existing sessions alone (the rolling horizon);
    ``cancel_missing`` cancels sessions not begun whose occurrence is gone. Blocking
    occurrences are tested against every other booking's slots and each other:
    ``reject`` raises ``BookingConflict`` with every conflict, ``skip`` keeps the
    conflicting occurrences as skipped sessions and reports them in the result.
    """
    last: sa.exc.DBAPIError | None = None
    for _ in range(_ATTEMPTS):
        try:
            with db.begin_nested():
                return _apply_once(
                    db,
                    booking_id,
                    occurrences,
                    rooms,
                    lead_seconds=lead_seconds,
                    on_conflict=on_conflict,
                    only_new=only_new,
                    cancel_missing=cancel_missing,
                    now=now,
                )
        except (sa.exc.IntegrityError, sa.exc.OperationalError) as exc:
            if not (is_slot_overlap(exc) or _is_deadlock(exc)):
                raise
            log.info("booking %s lost a race for a room; planning again", booking_id)
            last = exc
    raise BookingConflict((), f"the rooms were taken meanwhile ({last.orig if last else ''})")


def set_rooms(db: DbSession, booking_id: str, room_ids: Iterable[str]) -> None:
    """The booking's rooms become ``room_ids``; each session's participation follows in
    ``apply_occurrences``."""
    wanted = list(dict.fromkeys(room_ids))
    db.connection().execute(sa.delete(BookingRoom).where(col(BookingRoom.booking_id) == booking_id))
    _insert_rows(db, BookingRoom, [{"booking_id": booking_id, "room_id": r} for r in wanted])


def booking_room_ids(db: DbSession, booking_id: str) -> tuple[str, ...]:
    rows = db.connection().execute(
        sa.select(col(BookingRoom.room_id))
        .where(col(BookingRoom.booking_id) == booking_id)
        .order_by(col(BookingRoom.room_id))
    )
    return tuple(r for (r,) in rows)
