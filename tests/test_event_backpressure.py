"""Signalling events on their way to the database (issue 9, items 4 and 8): a flood of
media stats is coalesced, bounded and written last, so joins, leaves, milestones and
the scheduler's transitions never wait behind it; the media summary counts every
report once and only about the session's real peers.

Real SQLite files throughout; the order in which jobs reach the database thread is
read from ``RecordingDatabase``, the real ``Database`` noting the priority of each
job as it starts.
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest

from orchestrator import centres
from orchestrator.booking import one_off
from orchestrator.clock import FakeClock
from orchestrator.db import Database, DatabaseBusy, DbSession, Priority
from orchestrator.models import Participation
from orchestrator.sessions import guests, participation
from orchestrator.sessions.detail import session_detail
from orchestrator.sessions.participation import MediaBatch, merge_batch, summarise_media
from orchestrator.sessions.scheduler import Scheduler
from orchestrator.sessions.tickets import TicketSigner
from signalling import protocol as p
from signalling.ports import (
    MediaMilestone,
    MediaReport,
    PeerJoinedSession,
    PeerLeftSession,
    RoomReadiness,
)
from tests.signalling_fixtures import eventually
from tests.test_scheduler import FakeControl
from web.adapters import OrchestratorEvents
from web.event_queue import ATTEMPTS, EventQueue, EventWriter

START = datetime(2030, 6, 3, 9, 0, tzinfo=UTC)
T0 = START.timestamp()
T = TypeVar("T")


class RecordingDatabase(Database):
    """The real database; ``started`` lists each job's priority as it starts running."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.started: list[Priority] = []

    async def run(
        self, fn: Callable[[DbSession], T], *, priority: Priority = Priority.REQUEST
    ) -> T:
        def noted(s: DbSession) -> T:
            self.started.append(priority)
            return fn(s)

        return await super().run(noted, priority=priority)


@dataclass
class World:
    db: RecordingDatabase
    session_id: str
    booking_id: str
    rooms: list[str]
    guest_peer: str

    def peer(self, index: int) -> str:
        return f"room:{self.rooms[index]}"


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    db = RecordingDatabase(f"sqlite:///{tmp_path / 'telecentre.sqlite3'}")
    db.migrate()

    def setup(s: DbSession) -> World:
        paris = centres.add_centre(s, "Paris", "Europe/Paris")
        rooms = [centres.add_room(s, paris.id, f"Salle {i}")[0].id for i in range(3)]
        booking, session = one_off.book(
            s, "Weekly", START, START + timedelta(hours=1), rooms, lead_seconds=60
        )
        guest, _ = guests.add_guest(s, booking.id, "Ada", None, now=START)
        return World(db, session.id, booking.id, rooms, f"guest:{guest.id}")

    yield db.run_sync(setup)
    db.close_sync()


@asynccontextmanager
async def holding(db: Database) -> AsyncIterator[None]:
    """Keep the database thread busy (a long transaction of our own) until the block
    ends, so that what is handed in meanwhile waits and its order can be read."""
    entered, release = threading.Event(), threading.Event()

    def hold(_: DbSession) -> None:
        entered.set()
        release.wait(30)

    task = asyncio.ensure_future(db.run(hold, priority=Priority.SCHEDULER))
    assert await asyncio.to_thread(entered.wait, 10)
    try:
        yield
    finally:
        release.set()
        await task


def media(peer: str, fps: float, freezes: int = 0, **more: Any) -> p.MediaStats:
    return p.MediaStats(peer_id=peer, fps=fps, freezes=freezes, **more)


def summary_of(db: Database, session_id: str, room_id: str) -> dict[str, Any]:
    row = db.run_sync(lambda s: s.get(Participation, (session_id, room_id)))
    assert row is not None
    return json.loads(row.media_summary) if row.media_summary else {}


async def no_room_online(room_id: str) -> None:
    return None


# --- the database threads: priority ----------------------------------------------------


async def test_the_scheduler_goes_before_requests_events_and_stats(world: World) -> None:
    db = world.db

    def noop(_: DbSession) -> None:
        return None

    async with holding(db):
        db.started.clear()
        waiting = [db.run(noop, priority=Priority.STATS) for _ in range(300)]
        waiting += [db.run(noop, priority=Priority.EVENTS) for _ in range(30)]
        waiting += [db.run(noop), db.run(noop, priority=Priority.SCHEDULER)]
        tasks = [asyncio.ensure_future(w) for w in waiting]
        await eventually(lambda: db.waiting == len(tasks), "every job handed in", 10)
    await asyncio.gather(*tasks)
    order = db.started
    assert order[:2] == [Priority.SCHEDULER, Priority.REQUEST]
    assert order[2:32] == [Priority.EVENTS] * 30
    assert order[32:] == [Priority.STATS] * 300


# --- the event queue: coalescing, bounds, shedding -------------------------------------


def _queue(limit: int = 100, interval: float = 1.0) -> EventQueue:
    def write_media(key: tuple[str, str], batch: MediaBatch) -> Any:
        async def job() -> tuple[str, tuple[str, str], MediaBatch]:
            return ("media", key, batch)

        return job

    def write_readiness(event: RoomReadiness) -> Any:
        async def job() -> tuple[str, RoomReadiness]:
            return ("readiness", event)

        return job

    return EventQueue(
        limit=limit, interval=interval, write_media=write_media, write_readiness=write_readiness
    )


def _report(at: float, peer: str = "room:b") -> Callable[[MediaBatch], None]:
    return lambda batch: batch.add(T0 + at, [{"peer_id": peer, "fps": 30.0, "freezes": 1}])


def _readiness(room: str, checked_at: float, ok: bool = True) -> RoomReadiness:
    return RoomReadiness(1, room, None, ok, (), checked_at=T0 + checked_at, at=T0 + checked_at)


async def _precious() -> None:
    return None


def test_a_key_is_written_at_most_once_per_interval_and_reports_merge_meanwhile() -> None:
    queue = _queue(interval=1.0)
    assert queue.put_media(("s", "a"), _report(0.0), now=0.0)
    first = queue.take(0.0)
    assert first is not None and first.kind == "media"
    for i in range(1, 50):
        assert queue.put_media(("s", "a"), _report(i * 0.01), now=0.0 + i * 0.01)
    assert len(queue) == 1  # one waiting batch, however many reports
    assert queue.counters.merged == 48
    assert queue.take(0.5) is None  # written 0.5 s ago
    assert queue.next_due() == 1.0
    second = queue.take(1.0)
    assert second is not None and second.kind == "media"
    assert len(queue) == 0


def test_the_queue_is_bounded_and_sheds_stats_first_never_precious_events() -> None:
    queue = _queue(limit=4)
    for room in ("a", "b", "c"):
        assert queue.put_media(("s", room), _report(0.0), now=0.0)
    assert queue.put_readiness(_readiness("a", 0.0), now=0.0)
    # Full: a new key is shed, a known one still merges.
    assert not queue.put_media(("s", "d"), _report(0.0), now=0.0)
    assert not queue.put_readiness(_readiness("b", 0.0), now=0.0)
    assert queue.put_media(("s", "a"), _report(0.1), now=0.0)
    assert (queue.counters.shed_media, queue.counters.shed_readiness) == (1, 1)
    # Precious events make room: media batches go first, then readiness.
    for _ in range(4):
        assert queue.put_precious(_precious)
    assert queue.waiting == {"precious": 4, "media": 0, "readiness": 0}
    assert (queue.counters.shed_media, queue.counters.shed_readiness) == (4, 2)
    # Only when nothing but precious events waits is one dropped (and said so).
    assert not queue.put_precious(_precious)
    assert queue.counters.dropped == 1
    assert len(queue) == 4


def test_precious_events_go_first_and_a_room_online_waits_once() -> None:
    queue = _queue()
    queue.put_media(("s", "a"), _report(0.0), now=0.0)
    queue.put_readiness(_readiness("a", 0.0), now=0.0)
    for _ in range(3):
        queue.put_precious(_precious, ("online", "a"))
    queue.put_precious(_precious)
    kinds = []
    while (taken := queue.take(0.0)) is not None:
        kinds.append(taken.kind)
    assert kinds == ["precious", "precious", "media", "readiness"]


async def test_readiness_keeps_the_latest_check_of_a_room() -> None:
    queue = _queue()
    queue.put_readiness(_readiness("a", 5.0, ok=False), now=0.0)
    queue.put_readiness(_readiness("a", 3.0, ok=True), now=0.0)  # older: ignored
    queue.put_readiness(_readiness("a", float("nan")), now=0.0)  # no time: ignored
    taken = queue.take(0.0)
    assert taken is not None
    result = await taken.run()
    assert isinstance(result, tuple)
    event = result[1]
    assert isinstance(event, RoomReadiness)
    assert (event.checked_at, event.ok) == (T0 + 5.0, False)


async def test_a_busy_database_is_retried_for_precious_events_only() -> None:
    queue = _queue()
    writer = EventWriter(queue)
    tries: list[str] = []

    def busy(kind: str, times: int) -> Callable[[], Any]:
        async def job() -> None:
            tries.append(kind)
            if tries.count(kind) <= times:
                raise DatabaseBusy("busy", "database is locked")

        return job

    queue.put_precious(busy("join", ATTEMPTS - 1))
    queue.put_precious(busy("leave", ATTEMPTS + 5))
    writer.start()
    writer.notify()
    await asyncio.wait_for(writer.wait_idle(), 10)
    await writer.stop()
    assert tries.count("join") == ATTEMPTS  # refused twice, then written
    assert tries.count("leave") == ATTEMPTS  # refused every time: given up
    assert queue.counters.written == 1
    assert queue.counters.dropped == 1


# --- the media summary: exact under coalescing, real peers only -------------------------


def _random_report(rng: random.Random, peer: str) -> dict[str, Any]:
    def maybe(value: float) -> float | None:
        return None if rng.random() < 0.2 else value

    return {
        "peer_id": peer,
        "fps": maybe(rng.uniform(5, 30)),
        "latency_p50_ms": maybe(rng.uniform(50, 400)),
        "freezes": rng.randint(0, 3),
        "bitrate_in_kbps": maybe(rng.uniform(100, 2000)),
        "bitrate_out_kbps": maybe(rng.uniform(100, 2000)),
        "rtt_ms": maybe(rng.uniform(1, 200)),
        "jitter_ms": maybe(rng.uniform(0, 30)),
        "packets_lost": rng.choice([None, 0, 1, 7]),
        "loss_fraction": maybe(rng.uniform(0, 0.2)),
    }


@pytest.mark.parametrize("seed", range(5))
def test_merging_a_batch_counts_every_report_as_folding_them_one_by_one(seed: int) -> None:
    rng = random.Random(seed)
    peers = ["room:b", "room:c", "guest:g"]
    earlier = [(T0 + i, _random_report(rng, rng.choice(peers))) for i in range(20)]
    later = [(T0 + 100 + i * 0.5, _random_report(rng, rng.choice(peers))) for i in range(60)]
    stored: dict[str, Any] = {}
    for at, report in earlier:
        stored = summarise_media(stored, report, at) or stored
    one_by_one = stored
    for at, report in later:
        one_by_one = summarise_media(one_by_one, report, at) or one_by_one
    batch = MediaBatch()
    for at, report in later:
        batch.add(at, [report])
    merged = merge_batch(stored, batch)
    assert merged is not None
    assert merged.keys() == one_by_one.keys()
    for key, value in one_by_one.items():
        assert merged[key] == (pytest.approx(value) if isinstance(value, float) else value), key
    # A batch already counted (a redelivery) changes nothing.
    assert merge_batch(merged, batch) is None


def test_the_summary_holds_only_the_sessions_real_peers(world: World) -> None:
    db, sid, room = world.db, world.session_id, world.rooms[0]
    invented = [f"room:invented-{i}" for i in range(500)] + ["guest:nobody", "", "room:"]
    batch = MediaBatch()
    batch.add(T0, [{"peer_id": peer, "fps": 30.0, "freezes": 1} for peer in invented])
    db.run_sync(lambda s: participation.record_batch(s, sid, room, batch))
    assert summary_of(db, sid, room) == {}  # nothing about anybody real
    real = [world.peer(1), world.peer(2), world.guest_peer]
    batch = MediaBatch()
    batch.add(T0 + 1, [{"peer_id": peer, "fps": 20.0, "freezes": 1} for peer in real + invented])
    db.run_sync(lambda s: participation.record_batch(s, sid, room, batch))
    summary = summary_of(db, sid, room)
    assert set(summary["last_at"]) == set(real)
    assert summary["reports"] == len(real) and summary["freezes_total"] == len(real)


def test_a_summary_written_before_the_rule_forgets_invented_peers(world: World) -> None:
    db, sid, room = world.db, world.session_id, world.rooms[0]
    legacy = {"reports": 3, "last_at": {"room:invented": T0, world.peer(1): T0}}

    def write_legacy(s: DbSession) -> None:
        row = s.get(Participation, (sid, room))
        assert row is not None
        row.media_summary = json.dumps(legacy)
        s.add(row)

    db.run_sync(write_legacy)
    db.run_sync(
        lambda s: participation.record_media(
            s, sid, room, {"peer_id": world.peer(2), "fps": 25.0}, at=T0 + 1
        )
    )
    assert set(summary_of(db, sid, room)["last_at"]) == {world.peer(1), world.peer(2)}


# --- through OrchestratorEvents, on the real database ----------------------------------


async def test_joins_leaves_and_milestones_are_written_before_thousands_of_waiting_stats(
    world: World,
) -> None:
    db, sid = world.db, world.session_id
    events = OrchestratorEvents(db, no_room_online, interval=0.0)
    reports = 3000
    try:
        async with holding(db):
            for i in range(reports):
                for sender, others in ((0, (1, 2)), (1, (0, 2))):
                    room = world.rooms[sender]
                    entries = tuple(media(world.peer(o), fps=30.0 - o, freezes=1) for o in others)
                    await events.media_report(
                        MediaReport(
                            i, sid, world.peer(sender), room, at=T0 + i * 0.01, media=entries
                        )
                    )
                if i == reports // 2:
                    await events.room_readiness(
                        RoomReadiness(i, world.rooms[0], sid, False, (), T0 + i, T0 + i)
                    )
            await events.peer_joined(PeerJoinedSession(1, sid, world.peer(2), world.rooms[2], T0))
            await events.media_milestone(
                MediaMilestone(2, sid, world.peer(2), world.rooms[2], "live", T0 + 1)
            )
            await events.peer_left(
                PeerLeftSession(3, sid, world.peer(2), world.rooms[2], T0 + 9, "leave")
            )
            # Six thousand reports wait as two batches, next to three precious events.
            assert events.queue.waiting == {"precious": 3, "media": 2, "readiness": 1}
            db.started.clear()
            events.start()
        await asyncio.wait_for(events.writer.wait_idle(), 30)
    finally:
        await events.stop()
    order = db.started
    assert order == [Priority.EVENTS] * 3 + [Priority.STATS] * 3
    row = db.run_sync(lambda s: s.get(Participation, (sid, world.rooms[2])))
    assert row is not None and row.joined_at is not None and row.live_at is not None
    assert row.left_at is not None
    # Every report counted once: two peers per report, a freeze each.
    for room in world.rooms[:2]:
        summary = summary_of(db, sid, room)
        assert summary["reports"] == 2 * reports
        assert summary["freezes_total"] == 2 * reports
    assert events.queue.counters.shed_media == 0


async def test_a_join_is_written_promptly_behind_a_stats_flood(world: World) -> None:
    """Before: each report was its own transaction, folding every entry (and invented
    peer ids grew the summary each of them rewrote), so ten reports of 250 entries
    kept a join waiting 5.6 s and a few thousand for minutes."""
    db, sid, sender = world.db, world.session_id, world.rooms[0]
    events = OrchestratorEvents(db, no_room_online, interval=0.0)
    events.start()
    entries = (media(world.peer(1), 30.0), *(media(f"x{j}", 30.0) for j in range(249)))
    try:
        for i in range(2000):
            await events.media_report(
                MediaReport(i, sid, world.peer(0), sender, at=T0 + i * 0.025, media=entries)
            )
        asked = time.perf_counter()
        await events.peer_joined(PeerJoinedSession(1, sid, world.peer(1), world.rooms[1], T0))

        def joined() -> bool:
            row = db.run_sync(lambda s: s.get(Participation, (sid, world.rooms[1])))
            return row is not None and row.joined_at is not None

        while not joined():
            assert time.perf_counter() - asked < 10, "the join was not written within 10 s"
            await asyncio.sleep(0.01)
        waited = time.perf_counter() - asked
    finally:
        await events.stop()
    print(f"join written {waited * 1000:.0f} ms after it was reported, behind 2000 reports")
    assert waited < 2.0  # generous: one small stats transaction at most, on a loaded machine
    assert len(summary_of(db, sid, sender)["last_at"]) == 1  # the invented peers kept out


async def test_transitions_are_taken_promptly_while_a_room_floods_stats(world: World) -> None:
    db, sid = world.db, world.session_id
    clock = FakeClock(T0 - 120)
    control = FakeControl()
    scheduler = Scheduler(db, control, TicketSigner.generate(), clock, poll_interval=0.5)
    events = OrchestratorEvents(db, no_room_online, interval=0.0)
    events.start()
    entries = (media(world.peer(1), 30.0), *(media(f"x{j}", 30.0) for j in range(249)))
    stop = asyncio.Event()

    async def flood() -> None:
        i = 0
        while not stop.is_set():
            i += 1
            await events.media_report(
                MediaReport(i, sid, world.peer(0), world.rooms[0], at=T0 + i * 0.001, media=entries)
            )
            # About a thousand reports a second, each of 250 entries: far more than
            # signalling lets through (one per peer and session a second), without
            # this generator itself taking the whole event loop.
            await asyncio.sleep(0.001)

    flooding = asyncio.create_task(flood())
    durations = []
    try:
        await scheduler.step()
        for t in (T0 - 60, T0, T0 + 1800):
            written = events.queue.counters.written
            await eventually(
                lambda w=written: events.queue.counters.written >= w + 3,  # type: ignore[misc]
                "the flood being written",
                10,
            )
            await clock.set(t)
            began = time.perf_counter()
            await scheduler.step()
            durations.append(time.perf_counter() - began)
    finally:
        stop.set()
        await flooding
        await events.stop()
    print("scheduler steps during the flood took", [f"{d * 1000:.0f} ms" for d in durations])
    detail = db.run_sync(lambda s: session_detail(s, sid))
    assert [(t.state, t.at.timestamp()) for t in detail.transitions[1:]] == [
        ("preparing", T0 - 60),
        ("live", T0),
    ]
    assert max(durations) < 1.0  # generous; stats wait behind the scheduler, not before it
    assert events.queue.counters.written > 3  # the flood was being written all along
