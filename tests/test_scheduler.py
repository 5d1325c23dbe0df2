"""The scheduler against a real SQLite file, a fake clock and a fake SessionControl."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import jwt
import pytest
import sqlalchemy as sa
from sqlmodel import col

from orchestrator import centres
from orchestrator.booking import one_off
from orchestrator.clock import FakeClock, SystemClock
from orchestrator.db import Database, DbSession
from orchestrator.models import RoomSlot, Session
from orchestrator.ports import (
    RoomCredential,
    RoomSchedule,
    SessionTransition,
    TicketRevocation,
)
from orchestrator.sessions.detail import session_detail
from orchestrator.sessions.scheduler import Scheduler
from orchestrator.sessions.schedules import build_room_schedule
from orchestrator.sessions.tickets import TicketSigner

pytestmark = pytest.mark.wall_clock

T0 = 1_800_000_000.0
M = TypeVar("M")


@dataclass
class FakeControl:
    """Records every command, in order; ``fail`` names commands that raise."""

    calls: list[object] = field(default_factory=list)
    fail: set[str] = field(default_factory=set)

    def _record(self, name: str, message: object) -> None:
        if name in self.fail:
            raise ConnectionError(f"{name} refused")
        self.calls.append(message)

    async def push_schedule(self, schedule: RoomSchedule) -> None:
        self._record("push_schedule", schedule)

    async def session_transition(self, transition: SessionTransition) -> None:
        self._record("session_transition", transition)

    async def set_room_credential(self, credential: RoomCredential) -> None:
        self._record("set_room_credential", credential)

    async def revoke_tickets(self, revocation: TicketRevocation) -> None:
        self._record("revoke_tickets", revocation)

    def of(self, kind: type[M]) -> list[M]:
        return [c for c in self.calls if isinstance(c, kind)]

    def take(self) -> list[object]:
        calls, self.calls = self.calls, []
        return calls


@dataclass
class Rig:
    db: Database
    clock: FakeClock
    control: FakeControl
    signer: TicketSigner
    rooms: list[str]
    data_dir: Path

    def scheduler(self, poll_interval: float = 0.5, db: Database | None = None) -> Scheduler:
        return Scheduler(db or self.db, self.control, self.signer, self.clock, poll_interval)

    def book(
        self, start_in: float, length: float, lead: int = 5, db: Database | None = None
    ) -> str:
        start = datetime.fromtimestamp(self.clock.now() + start_in, UTC)
        end = start + timedelta(seconds=length)
        _, session = (db or self.db).run_sync(
            lambda s: one_off.book(s, "Weekly", start, end, self.rooms, lead_seconds=lead)
        )
        return session.id


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    db = Database.for_data_dir(tmp_path)
    db.migrate()

    def setup(s: DbSession) -> list[str]:
        madrid = centres.add_centre(s, "Madrid", "Europe/Madrid")
        mvd = centres.add_centre(s, "Montevideo", "America/Montevideo")
        return [centres.add_room(s, madrid.id, "A")[0].id, centres.add_room(s, mvd.id, "B")[0].id]

    rooms = db.run_sync(setup)
    yield Rig(db, FakeClock(T0), FakeControl(), TicketSigner.generate(), rooms, tmp_path)
    db.close_sync()


@pytest.fixture
async def other_db(rig: Rig) -> AsyncIterator[Database]:
    """A second engine on the same file: what the CLI process would open."""
    db = Database.for_data_dir(rig.data_dir)
    yield db
    await db.close()


async def _run_to(clock: FakeClock, scheduler: Scheduler, t: float) -> None:
    """Move the fake clock to ``t`` stopping at every wake-up the scheduler asked for."""
    await scheduler.wait_idle()
    while (deadline := clock.next_deadline) is not None and deadline <= t:
        await clock.set(deadline)
        await scheduler.wait_idle()
    await clock.set(t)
    await scheduler.wait_idle()


def _transitions(db: Database, session_id: str) -> list[tuple[str, float]]:
    detail = db.run_sync(lambda s: session_detail(s, session_id))
    return [(t.state, t.at.timestamp()) for t in detail.transitions]


def _decode(signer: TicketSigner, token: str) -> dict[str, object]:
    return jwt.decode(
        token,
        signer.public_key_pem(),
        algorithms=["EdDSA"],
        options={"verify_exp": False, "verify_nbf": False, "verify_iat": False},
    )


async def test_session_walks_its_lifecycle_on_time(rig: Rig) -> None:
    session_id = rig.book(start_in=15, length=400, lead=5)
    start, end = T0 + 15, T0 + 415
    # A long poll: the scheduler must still wake exactly when a step is due.
    scheduler = rig.scheduler(poll_interval=5.0)
    task = asyncio.create_task(scheduler.run())
    try:
        await _run_to(rig.clock, scheduler, end + 30)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    sent = [(t.state, t.at) for t in rig.control.of(SessionTransition)]
    expected = [
        ("preparing", start - 5),
        ("live", start),
        ("ending", end - 300),
        ("ending", end - 60),
        ("ended", end),
    ]
    assert sent == expected
    assert _transitions(rig.db, session_id)[1:] == expected
    assert _transitions(rig.db, session_id)[0][0] == "scheduled"
    transition = rig.control.of(SessionTransition)[0]
    assert transition.session_id == session_id
    assert (transition.start, transition.end) == (start, end)
    assert set(transition.room_ids) == set(rig.rooms)

    # Each room heard of every state change (not of the repeated warning), then of
    # an empty schedule once the session ended.
    for room_id in rig.rooms:
        schedules = [s for s in rig.control.of(RoomSchedule) if s.room_id == room_id]
        states = [s.items[0].state if s.items else None for s in schedules]
        assert states == ["scheduled", "preparing", "live", "ending", None]
    seqs = [c.seq for c in rig.control.calls]  # type: ignore[attr-defined]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    detail = rig.db.run_sync(lambda s: session_detail(s, session_id))
    assert detail.state == "ended" and detail.revision == 6


async def test_first_step_pushes_credentials_and_schedules_with_tickets(rig: Rig) -> None:
    session_id = rig.book(start_in=3600, length=1800, lead=60)
    scheduler = rig.scheduler()
    await scheduler.step()

    credentials = rig.control.of(RoomCredential)
    assert {c.room_id for c in credentials} == set(rig.rooms)
    assert all(c.generation == 1 and len(c.key_hash) == 64 for c in credentials)
    assert {c.centre for c in credentials} == {"Madrid", "Montevideo"}
    schedules = {s.room_id: s for s in rig.control.of(RoomSchedule)}
    assert set(schedules) == set(rig.rooms)
    for room_id, schedule in schedules.items():
        (item,) = schedule.items
        assert item.session_id == session_id
        assert (item.start, item.end, item.lead) == (T0 + 3600, T0 + 5400, 60.0)
        assert {r.room_id for r in item.rooms} == set(rig.rooms)
        claims = _decode(rig.signer, item.ticket)
        assert claims["sub"] == f"room:{room_id}"
        assert claims["sid"] == session_id
        assert claims["role"] == "room"
        assert (claims["nbf"], claims["exp"]) == (int(T0) + 3600 - 360, int(T0) + 5400 + 300)
    # Credentials reach signalling before the schedules that rooms will join with.
    kinds = [type(c) for c in rig.control.calls]
    assert kinds == [RoomCredential] * 2 + [RoomSchedule] * 2

    # Nothing changed: nothing is sent again.
    rig.control.take()
    await rig.clock.advance(0.5)
    await scheduler.step()
    assert rig.control.calls == []


async def test_room_connected_pushes_its_schedule_at_once(rig: Rig) -> None:
    rig.book(start_in=600, length=600)
    scheduler = rig.scheduler()
    await scheduler.step()
    first = {s.room_id: s for s in rig.control.of(RoomSchedule)}
    rig.control.take()
    await scheduler.room_connected(rig.rooms[1])
    (schedule,) = rig.control.take()
    assert isinstance(schedule, RoomSchedule)
    assert schedule.room_id == rig.rooms[1]
    assert schedule.seq > first[rig.rooms[1]].seq
    # The same ticket as before: re-pushing a schedule changes nothing for the room.
    assert schedule.items == first[rig.rooms[1]].items


async def test_schedule_builder_reads_one_room(rig: Rig) -> None:
    session_id = rig.book(start_in=600, length=600)
    rig.book(start_in=2 * 86400, length=600)  # beyond the horizon
    schedule = rig.db.run_sync(
        lambda s: build_room_schedule(s, rig.rooms[0], rig.signer, now=T0, seq=7)
    )
    assert schedule.seq == 7 and schedule.room_id == rig.rooms[0]
    assert [i.session_id for i in schedule.items] == [session_id]
    empty = rig.db.run_sync(lambda s: build_room_schedule(s, "nobody", rig.signer, now=T0, seq=8))
    assert empty.items == ()


async def test_restart_resumes_a_session_that_should_be_live(rig: Rig, other_db: Database) -> None:
    session_id = rig.book(start_in=15, length=400, lead=5)
    first = rig.scheduler()
    await first.step()  # then the process dies before T - lead
    rig.control.take()

    await rig.clock.set(T0 + 15 + 50)  # back up 50 s after the start
    second = rig.scheduler(db=other_db)  # a new process: a new engine, empty memory
    await second.step()
    sent = [(t.state, t.at) for t in rig.control.of(SessionTransition)]
    assert sent == [("preparing", T0 + 65), ("live", T0 + 65)]  # late: recorded when taken
    assert _transitions(rig.db, session_id)[1:] == sent
    assert {c.room_id for c in rig.control.of(RoomCredential)} == set(rig.rooms)
    assert [s.items[0].state for s in rig.control.of(RoomSchedule)] == ["live", "live"]

    # Yet another restart while live: nothing to redo, everything re-pushed.
    rig.control.take()
    await rig.clock.advance(10)
    third = rig.scheduler()
    await third.step()
    assert rig.control.of(SessionTransition) == []
    assert len(rig.control.of(RoomCredential)) == 2
    assert [s.items[0].state for s in rig.control.of(RoomSchedule)] == ["live", "live"]


async def test_restart_after_the_end_only_ends(rig: Rig) -> None:
    session_id = rig.book(start_in=15, length=60, lead=5)
    await rig.clock.set(T0 + 3600)
    await rig.scheduler().step()
    assert [(t.state, t.at) for t in rig.control.of(SessionTransition)] == [("ended", T0 + 3600)]
    assert [s for s, _ in _transitions(rig.db, session_id)] == ["scheduled", "ended"]


async def test_booking_from_another_process_reaches_rooms_within_one_poll(
    rig: Rig, other_db: Database
) -> None:
    scheduler = rig.scheduler()
    task = asyncio.create_task(scheduler.run())
    try:
        await scheduler.wait_idle()
        assert [s.items for s in rig.control.of(RoomSchedule)] == [(), ()]
        rig.control.take()

        session_id = await asyncio.to_thread(rig.book, 3600, 1800, 60, other_db)
        await rig.clock.advance(scheduler.poll_interval)
        await scheduler.wait_idle()
        schedules = rig.control.of(RoomSchedule)
        assert {s.room_id for s in schedules} == set(rig.rooms)
        assert all([i.session_id for i in s.items] == [session_id] for s in schedules)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_booking_from_another_process_reaches_rooms_on_the_real_clock(
    rig: Rig, other_db: Database
) -> None:
    scheduler = Scheduler(rig.db, rig.control, rig.signer, SystemClock(), poll_interval=0.5)
    task = asyncio.create_task(scheduler.run())
    try:
        await scheduler.wait_idle()
        rig.control.take()
        booked = time.monotonic()
        start = datetime.now(UTC) + timedelta(hours=1)
        await asyncio.to_thread(
            other_db.run_sync,
            lambda s: one_off.book(s, "Live", start, start + timedelta(hours=1), rig.rooms),
        )
        while len(rig.control.of(RoomSchedule)) < 2:
            assert time.monotonic() - booked < 1.0, "no schedule pushed within a second"
            await asyncio.sleep(0.02)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_key_rotation_pushes_a_newer_credential(rig: Rig, other_db: Database) -> None:
    scheduler = rig.scheduler()
    await scheduler.step()
    rig.control.take()
    await asyncio.to_thread(other_db.run_sync, lambda s: centres.rotate_room_key(s, rig.rooms[1]))
    await rig.clock.advance(0.5)
    await scheduler.step()
    (credential,) = rig.control.take()
    assert isinstance(credential, RoomCredential)
    assert credential.room_id == rig.rooms[1]
    assert credential.generation == 2


async def test_new_room_gets_its_credential_and_an_empty_schedule(rig: Rig) -> None:
    scheduler = rig.scheduler()
    await scheduler.step()
    rig.control.take()
    centre_id = rig.db.run_sync(lambda s: centres.list_centres(s)[0].id)
    room, _ = rig.db.run_sync(lambda s: centres.add_room(s, centre_id, "C"))
    await scheduler.step()
    credential, schedule = rig.control.take()
    assert isinstance(credential, RoomCredential) and credential.room_id == room.id
    assert isinstance(schedule, RoomSchedule) and schedule.items == ()


async def test_cancellation_is_sent_on_and_its_tickets_revoked(rig: Rig) -> None:
    session_id = rig.book(start_in=600, length=600)
    scheduler = rig.scheduler()
    await scheduler.step()
    jtis = {_decode(rig.signer, s.items[0].ticket)["jti"] for s in rig.control.of(RoomSchedule)}
    rig.control.take()

    booking_id = rig.db.run_sync(lambda s: session_detail(s, session_id).booking_id)
    rig.db.run_sync(lambda s: one_off.cancel_booking(s, booking_id))
    await rig.clock.advance(0.5)
    await scheduler.step()
    (cancelled,) = rig.control.of(SessionTransition)
    assert (cancelled.session_id, cancelled.state) == (session_id, "cancelled")
    assert [s.items for s in rig.control.of(RoomSchedule)] == [(), ()]
    (revocation,) = rig.control.of(TicketRevocation)
    assert set(revocation.ticket_ids) == jtis
    assert revocation.until == int(T0) + 1200 + 300

    rig.control.take()
    await scheduler.step()
    assert rig.control.calls == []


async def test_moving_a_session_re_mints_and_revokes_the_old_ticket(rig: Rig) -> None:
    session_id = rig.book(start_in=600, length=600)
    scheduler = rig.scheduler()
    await scheduler.step()
    old = {_decode(rig.signer, s.items[0].ticket)["jti"] for s in rig.control.of(RoomSchedule)}
    rig.control.take()

    def move(s: DbSession) -> None:  # as a calendar sync would: the session and its slots
        later = datetime.fromtimestamp(T0 + 1200, UTC)
        s.connection().execute(
            sa.update(Session)
            .where(col(Session.id) == session_id)
            .values(start_utc=later, end_utc=later + timedelta(minutes=10), revision=2)
        )
        s.connection().execute(
            sa.update(RoomSlot)
            .where(col(RoomSlot.session_id) == session_id)
            .values(start_utc=later, end_utc=later + timedelta(minutes=10))
        )

    rig.db.run_sync(move)
    await scheduler.step()
    schedules = rig.control.of(RoomSchedule)
    assert [s.items[0].start for s in schedules] == [T0 + 1200, T0 + 1200]
    new = {_decode(rig.signer, s.items[0].ticket)["jti"] for s in schedules}
    assert not new & old
    (revocation,) = rig.control.of(TicketRevocation)
    assert set(revocation.ticket_ids) == old


async def test_failed_sends_are_retried_next_step(rig: Rig) -> None:
    rig.book(start_in=10, length=600, lead=5)
    rig.control.fail = {"push_schedule", "session_transition"}
    scheduler = rig.scheduler()
    await rig.clock.set(T0 + 5)
    await scheduler.step()  # preparing persisted, but signalling is unreachable
    assert rig.control.of(SessionTransition) == []
    assert rig.control.of(RoomSchedule) == []

    rig.control.fail = set()
    await rig.clock.advance(0.5)
    await scheduler.step()
    assert [t.state for t in rig.control.of(SessionTransition)] == ["preparing"]
    assert len(rig.control.of(RoomSchedule)) == 2


async def test_fake_clock_wakes_sleepers_in_order() -> None:
    clock = FakeClock(100.0)
    woke: list[tuple[str, float]] = []

    async def sleeper(name: str, seconds: float) -> None:
        await clock.sleep(seconds)
        woke.append((name, clock.now()))

    tasks = [asyncio.create_task(sleeper(n, s)) for n, s in (("b", 2.0), ("a", 1.0))]
    await asyncio.sleep(0)
    assert clock.sleepers == 2 and clock.next_deadline == 101.0
    await clock.advance(0.5)
    assert woke == []
    await clock.advance(0.5)
    assert woke == [("a", 101.0)]
    await clock.set(200.0)
    assert woke == [("a", 101.0), ("b", 200.0)]
    await asyncio.gather(*tasks)
    with pytest.raises(ValueError):
        await clock.advance(-1)


async def test_a_session_with_impossible_times_fails_alone(rig: Rig) -> None:
    good = rig.book(start_in=10, length=600, lead=5)
    bad = rig.book(start_in=610, length=600, lead=5)  # the rooms are taken until then

    def corrupt(s: DbSession) -> None:  # no command writes this; a bad manual edit might
        s.connection().execute(
            sa.update(Session)
            .where(col(Session.id) == bad)
            .values(end_utc=datetime.fromtimestamp(T0, UTC))
        )

    rig.db.run_sync(corrupt)
    await rig.clock.set(T0 + 5)
    scheduler = rig.scheduler()
    await scheduler.step()
    sent = {(t.session_id, t.state) for t in rig.control.of(SessionTransition)}
    assert sent == {(good, "preparing"), (bad, "failed")}
    await rig.clock.advance(0.5)
    rig.control.take()
    await scheduler.step()
    assert rig.control.calls == []
