"""No-show release (issue 3, acceptance 7), driven by explicit instants: nothing sleeps.

A room that has not joined its live session ``no_show_seconds`` (10 minutes) after
the start is released: its participation records when, its slot ends there, it
leaves the session's room schedules, and its slot can be booked by someone else.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlmodel import col, select

from orchestrator import centres, transitions
from orchestrator.booking import commands
from orchestrator.booking.busy import busy
from orchestrator.booking.horizon import release_no_shows
from orchestrator.booking.policy import BookingSettings
from orchestrator.booking.store import BookingConflict
from orchestrator.booking.values import SeriesSpec
from orchestrator.clock import FakeClock
from orchestrator.db import Database, DbSession
from orchestrator.models import Approval, Participation, Room, RoomSlot, Session
from orchestrator.ports import RoomSchedule
from orchestrator.sessions import participation
from orchestrator.sessions.tickets import TicketSigner
from tests.test_scheduler import FakeControl

T = datetime(2027, 1, 5, 8, 0, tzinfo=UTC)  # 09:00 in Paris
NOW = T - timedelta(days=1)
SETTINGS = BookingSettings()
MIN = timedelta(minutes=1)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database.for_data_dir(tmp_path)
    database.migrate()
    yield database
    database.close_sync()


@pytest.fixture
def rooms(db: Database) -> list[str]:
    def setup(s: DbSession) -> list[str]:
        centre = centres.add_centre(s, "Paris", "Europe/Paris")
        return [centres.add_room(s, centre.id, name)[0].id for name in ("A", "B", "C")]

    return db.run_sync(setup)


def meeting(uid: str, start_local: datetime, hours: float = 1.0, **kw: object) -> SeriesSpec:
    spec = SeriesSpec(
        uid=uid,
        title=uid,
        timezone="Europe/Paris",
        start_local=start_local,
        duration=timedelta(hours=hours),
    )
    return dataclasses.replace(spec, **kw)  # type: ignore[arg-type]


def book(db: Database, spec: SeriesSpec, room_ids: list[str], **kw: object) -> str:
    result = db.run_sync(
        lambda s: commands.create_series(s, spec, room_ids, now=NOW, **kw)  # type: ignore[arg-type]
    )
    return result.session_ids[0]


def go_live(db: Database, session_id: str) -> None:
    def step(s: DbSession) -> None:
        session = s.get(Session, session_id)
        assert session is not None
        for state in ("preparing", "live"):
            assert transitions.record_transition(s, session, state, T, now=T)

    db.run_sync(step)


def release(db: Database, at: datetime) -> list[tuple[str, str]]:
    return db.run_sync(lambda s: release_no_shows(s, at, SETTINGS))


def test_a_room_that_never_joins_is_released_at_t_plus_10_minutes(
    db: Database, rooms: list[str]
) -> None:
    a, b, c = rooms
    session_id = book(db, meeting("Weekly", datetime(2027, 1, 5, 9, 0), hours=2), [a, b])
    go_live(db, session_id)
    db.run_sync(lambda s: participation.record_joined(s, session_id, a, (T - MIN).timestamp()))

    assert release(db, T + 10 * MIN - timedelta(seconds=1)) == []
    assert release(db, T + 10 * MIN) == [(session_id, b)]
    assert release(db, T + 11 * MIN) == []  # once

    parts = {
        p.room_id: p
        for p in db.run_sync(
            lambda s: s.exec(
                select(Participation).where(Participation.session_id == session_id)
            ).all()
        )
    }
    assert parts[b].released_at == T + 10 * MIN and parts[a].released_at is None
    slots = {
        s.room_id: (s.start_utc, s.end_utc)
        for s in db.run_sync(lambda s: s.exec(select(RoomSlot)).all())
    }
    assert slots[b] == (T, T + 10 * MIN)
    assert slots[a] == (T, T + 2 * 60 * MIN)
    held = db.run_sync(lambda s: busy(s, [a, b], T, T + 3 * 60 * MIN))
    assert [(x.start, x.end) for x in held[b]] == [(T, T + 10 * MIN)]

    # The freed slot can be booked; the room that came cannot.
    later = meeting("Walk-in", datetime(2027, 1, 5, 9, 15), hours=1)
    db.run_sync(lambda s: commands.create_series(s, later, [b, c], now=T + 12 * MIN))
    with pytest.raises(BookingConflict):
        db.run_sync(
            lambda s: commands.create_series(
                s, dataclasses.replace(later, uid="x"), [a], now=T + 12 * MIN
            )
        )


def test_a_room_still_waiting_for_approval_keeps_its_slot(db: Database, rooms: list[str]) -> None:
    """Cross-centre courtesy: the booking holds the slot until staff decide, so a room
    whose approval is pending is not a no-show; once approved, it is."""
    a, b, _ = rooms
    session_id = book(db, meeting("Courtesy", datetime(2027, 1, 5, 9, 0), hours=2), [a, b])
    booking_id = db.run_sync(lambda s: s.get(Session, session_id).booking_id)  # type: ignore[union-attr]
    db.run_sync(lambda s: s.add(Approval(booking_id=booking_id, room_id=b, state="pending")))
    go_live(db, session_id)
    db.run_sync(lambda s: participation.record_joined(s, session_id, a, (T - MIN).timestamp()))

    assert release(db, T + 10 * MIN) == []

    def approve(s: DbSession) -> None:
        row = s.get(Approval, (booking_id, b))
        assert row is not None
        row.state = "approved"
        s.add(row)

    db.run_sync(approve)
    assert release(db, T + 11 * MIN) == [(session_id, b)]


def test_no_release_for_reserve_only_all_day_or_sessions_not_live(
    db: Database, rooms: list[str]
) -> None:
    a, b, c = rooms
    reserved = book(
        db, meeting("Reserved", datetime(2027, 1, 5, 9, 0)), [a], connect_mode="reserve-only"
    )
    all_day = book(db, meeting("Day", datetime(2027, 1, 5), hours=24, all_day=True), [b])
    not_live = book(db, meeting("Late", datetime(2027, 1, 5, 9, 0)), [c])
    go_live(db, reserved)
    go_live(db, all_day)
    assert not_live  # never moved on: the scheduler did not run
    assert release(db, T + 30 * MIN) == []


def test_a_room_that_joined_and_left_is_not_a_no_show(db: Database, rooms: list[str]) -> None:
    a, b, _ = rooms
    session_id = book(
        db, meeting("Weekly", datetime(2027, 1, 5, 9, 0)), [a, b], connect_mode="manual"
    )
    go_live(db, session_id)
    for room in (a, b):
        db.run_sync(lambda s, r=room: participation.record_joined(s, session_id, r, T.timestamp()))  # type: ignore[misc]
    db.run_sync(lambda s: participation.record_left(s, session_id, b, (T + MIN).timestamp()))
    assert release(db, T + 20 * MIN) == []


def test_a_release_keeps_the_room_buffer_after_it(db: Database, rooms: list[str]) -> None:
    a, b, _ = rooms

    def buffer(s: DbSession) -> None:
        s.connection().execute(sa.update(Room).where(col(Room.id) == b).values(buffer_seconds=300))

    db.run_sync(buffer)
    session_id = book(db, meeting("Weekly", datetime(2027, 1, 5, 9, 0)), [a, b])
    go_live(db, session_id)
    assert sorted(release(db, T + 10 * MIN)) == sorted([(session_id, a), (session_id, b)])
    slot = db.run_sync(lambda s: s.exec(select(RoomSlot).where(RoomSlot.room_id == b)).one())
    assert slot.end_utc == T + 15 * MIN
    held = db.run_sync(lambda s: busy(s, [b], T, T + 60 * MIN, detail=False))
    assert [(x.start, x.end) for x in held[b]] == [(T, T + 10 * MIN)]


async def test_the_scheduler_releases_tells_the_hooks_and_drops_the_room_schedule(
    db: Database, rooms: list[str]
) -> None:
    from orchestrator.sessions.scheduler import Scheduler

    a, b, _ = rooms
    session_id = book(db, meeting("Weekly", datetime(2027, 1, 5, 9, 0)), [a, b], lead_seconds=5)
    clock = FakeClock(T.timestamp() - 60)
    control = FakeControl()
    scheduler = Scheduler(db, control, TicketSigner.generate(), clock, booking_settings=SETTINGS)
    heard: list[list[tuple[str, str]]] = []
    scheduler.release_hooks.append(heard.append)
    await scheduler.step()
    await clock.set(T.timestamp())
    await scheduler.step()  # preparing, live
    db.run_sync(lambda s: participation.record_joined(s, session_id, a, T.timestamp()))
    await clock.set((T + 10 * MIN).timestamp() - 1)
    await scheduler.step()
    assert heard == []
    control.take()
    await clock.set((T + 10 * MIN).timestamp())
    await scheduler.step()
    assert heard == [[(session_id, b)]]
    schedules = {s.room_id: s for s in control.of(RoomSchedule)}
    assert schedules[b].items == ()  # B left the session
    assert [i.session_id for i in schedules[a].items] == [session_id]
    assert {r.room_id for r in schedules[a].items[0].rooms} == {a}
