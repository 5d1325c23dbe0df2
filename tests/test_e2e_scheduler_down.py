"""Acceptance 6: with the scheduler stopped before T (signalling up), rooms still connect
on time from their cached schedules; and an agent restarted with no network loads its
cached schedule and joins once the network is back.

The service runs in this process, on an event loop of its own thread, so the test can
stop the scheduler and leave signalling running: its task is cancelled and it no
longer pushes a schedule to a room that comes online, as if the orchestrator had
crashed. Its session records then stay ``scheduled`` (no lifecycle transition is
written), which proves nobody but the agents acted. The rooms and the bookings are
made with the CLI, as in the other end-to-end tests; the agents are real processes.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import threading
import time
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from aiohttp import web

from room_agents.schedule import ScheduleCache
from signalling import protocol as p
from tests.e2e_support import (
    Agent,
    Network,
    clock_behind,
    file_clock,
    free_port,
    wait_until,
)
from tests.test_e2e_autostart import CENTRES, _keep_logs, assert_clean_logs, online, ts
from tests.test_e2e_resilience import frames_after
from web.app import create_app
from web.keys import SERVICES
from web.settings import Settings

ROOMS = ["fontainebleau", "amsterdam"]
LEAD = 5
R = TypeVar("R")


class ServiceThread:
    """``create_app`` on the Network's port, served by an event loop in a thread."""

    def __init__(self, settings: Settings, log_path: Path) -> None:
        self.settings = settings
        self.log_path = log_path
        self._loop: asyncio.AbstractEventLoop | None = None
        self._app: web.Application | None = None
        self._runner: web.AppRunner | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="service", daemon=True)
        self._level = logging.NOTSET
        self._log = logging.FileHandler(log_path)
        self._log.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))

    def start(self) -> None:
        root = logging.getLogger()
        self._level = root.level
        root.setLevel(logging.INFO)
        root.addHandler(self._log)
        self._thread.start()
        if not self._ready.wait(30) or self._failure is not None:
            raise AssertionError(f"the service did not start: {self._failure!r}")

    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported to the test thread
            self._failure = exc
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._app = create_app(self.settings)
        self._runner = web.AppRunner(self._app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.settings.port).start()
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await self._runner.cleanup()

    def call(self, coro: Coroutine[Any, Any, R]) -> R:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(15)

    def stop_scheduler(self) -> None:
        self.call(self._stop_scheduler())

    async def _stop_scheduler(self) -> None:
        assert self._app is not None
        tasks = [t for t in asyncio.all_tasks() if t.get_name() == "scheduler"]
        assert len(tasks) == 1, tasks
        tasks[0].cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

        async def gone(room_id: str) -> None:
            logging.getLogger(__name__).info("scheduler down: no schedule for %s", room_id)

        # The scheduler also pushes a schedule to a room that comes online: no more.
        self._app[SERVICES].scheduler.room_connected = gone  # type: ignore[method-assign]

    def listen(self, port: int) -> None:
        """Serve on one more port too (a network path that comes back)."""
        self.call(self._listen(port))

    async def _listen(self, port: int) -> None:
        assert self._runner is not None
        await web.TCPSite(self._runner, "127.0.0.1", port).start()

    def close(self) -> None:
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(30)
        root = logging.getLogger()
        root.removeHandler(self._log)
        root.setLevel(self._level)
        self._log.close()


@pytest.fixture
def world(
    tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[tuple[Network, ServiceThread]]:
    net = Network.create(tmp_path, [(r, *CENTRES[r]) for r in ROOMS])
    service = ServiceThread(
        Settings(data_dir=net.cli.data_dir, port=net.serve.port), net.serve.log_path
    )
    service.start()
    try:
        yield net, service
    finally:
        for agent in net.agents.values():
            agent.stop()
        service.close()
        _keep_logs(net, request.node.name)


def in_schedule(net: Network, room: str, session_id: str) -> bool:
    return session_id in net.agents[room].status()["schedule"]


def states(net: Network, session_id: str) -> list[str]:
    return [t["state"] for t in net.session(session_id)["transitions"]]


def first_camera(net: Network, room: str, sender: str) -> float | None:
    totals = net.agents[room].status()["peers"].get(f"room:{net.rooms[sender]}") or {}
    at = totals.get("first_camera_at")
    return float(at) if at is not None else None


# --- the cache itself ---------------------------------------------------------------------


def entry(session_id: str, state: str = "scheduled") -> p.ScheduleEntry:
    return p.ScheduleEntry(
        session_id=session_id,
        booking_id="b1",
        title="t",
        start=1000.0,
        end=2000.0,
        lead=60.0,
        state=state,
        ticket="x",
        rooms=[],
        connect_mode="automatic",
    )


def test_the_cache_keeps_the_schedule_its_changes_and_the_clock_offset(tmp_path: Path) -> None:
    cache = ScheduleCache(tmp_path / "schedule.json")
    assert cache.load() == [] and cache.load_offset() is None
    cache.save_entries([entry("s1")])  # nothing received yet: nothing to amend
    assert not (tmp_path / "schedule.json").exists()
    cache.save(p.Schedule(room_id="r1", generated_at=5.0, sessions=[entry("s1")]))
    cache.save_entries([entry("s1", "live")])
    cache.save_offset(-29.75)
    again = ScheduleCache(tmp_path / "schedule.json")
    assert again.load() == [entry("s1", "live")]
    assert again.schedule is not None and again.schedule.room_id == "r1"
    assert again.load_offset() == -29.75
    for name in ("schedule.json", "clock.json"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o600
    (tmp_path / "clock.json").write_text("{not json")
    assert again.load_offset() is None  # a damaged cache is no worse than none
    assert ScheduleCache(None).load_offset() is None


# --- end to end ----------------------------------------------------------------------------


@pytest.mark.e2e
def test_rooms_join_on_time_from_their_cached_schedules_with_the_scheduler_stopped(
    world: tuple[Network, ServiceThread],
) -> None:
    net, service = world
    for room in ROOMS:
        net.agent(room).start()
    online(net, *ROOMS)
    start = time.time() + 15
    end = start + 8
    session_id = net.book(start, end, ROOMS, lead=LEAD)
    for room in ROOMS:
        wait_until(
            f"{room} to get its schedule", lambda r=room: in_schedule(net, r, session_id), 10
        )
    service.stop_scheduler()
    stopped_at = time.time()
    assert stopped_at < start - LEAD, "the scheduler must stop before the rooms join"

    # Joined before T (the server records the join without the scheduler) ...
    def joined() -> dict[str, float] | None:
        rooms = {r["room_id"]: ts(r["joined_at"]) for r in net.session(session_id)["rooms"]}
        at = {room: rooms[net.rooms[room]] for room in ROOMS}
        return at if all(at.values()) else None  # type: ignore[return-value]

    joined_at = wait_until("both rooms to join", joined, start - time.time() + 5, interval=0.2)
    for room, at in joined_at.items():
        assert at < start, (room, at, start)
    # ... and each receives the other's camera within a second of T.
    for room, sender in ((ROOMS[0], ROOMS[1]), (ROOMS[1], ROOMS[0])):
        camera = wait_until(
            f"{room} to see {sender}'s camera",
            lambda r=room, s=sender: first_camera(net, r, s),
            start - time.time() + 5,
            interval=0.1,
        )
        assert start <= camera <= start + 1.0, (room, camera - start)
    # Nobody but the agents acted: the session never left "scheduled".
    assert states(net, session_id) == ["scheduled"]
    # They also leave at the end by themselves.
    wait_until(
        "both rooms to leave at the end",
        lambda: all(not net.agents[r].status()["sessions"] for r in ROOMS),
        end - time.time() + 3,
        interval=0.2,
    )
    assert time.time() >= end - 0.5
    assert_clean_logs(net)


@pytest.mark.e2e
def test_an_agent_restarted_without_network_joins_from_its_cache_when_it_is_back(
    world: tuple[Network, ServiceThread],
) -> None:
    """The restarted agent's clock runs 30 s late (libfaketime, when installed): the
    cached clock offset keeps it on the server's time while it cannot measure it."""
    net, service = world
    skew = clock_behind(30) if shutil.which("faketime") else []
    late, other = ROOMS
    net.agent(late, prefix=skew).start()
    net.agent(other).start()
    online(net, *ROOMS)
    wait_until(
        "the clock offset measured",
        lambda: abs(net.agents[late].status()["server_now"] - time.time()) < 1.5,
        10,
    )
    start = time.time() + 20
    session_id = net.book(start, start + 20, ROOMS, lead=LEAD)
    for room in ROOMS:
        wait_until(
            f"{room} to get its schedule", lambda r=room: in_schedule(net, r, session_id), 10
        )
    service.stop_scheduler()

    # The room PC restarts, and its network is gone: nothing listens where it connects.
    net.agents[late].stop()
    away_port = free_port()
    restarted = Agent.make(
        net.work / "agents", late, f"http://127.0.0.1:{away_port}", net.key_files[late], skew
    )
    net.agents[late] = restarted
    # The stopped agent's last status said "connected": only the new one's counts.
    restarted.status_path.unlink(missing_ok=True)
    restarted_at = file_clock(net.work)
    restarted.start()
    offline = wait_until(
        "the restarted agent's status", lambda: restarted.fresh_status(restarted_at), 20
    )
    assert not offline["connected"]
    assert session_id in offline["schedule"], "the cached schedule is loaded"
    assert offline["server_now"] == pytest.approx(time.time(), abs=1.5), "the cached offset"
    # At T - lead it wants to be in the call, and cannot be.
    wait_until(
        "the join time to pass while offline",
        lambda: (
            time.time() > start - LEAD + 1
            and session_id in restarted.status()["sessions"]
            and not restarted.status()["connected"]
        ),
        start - time.time() + 5,
        interval=0.1,
    )
    assert restarted.status()["sessions"][session_id] == []

    service.listen(away_port)
    back_at = time.time()
    wait_until(
        "the restarted room to join",
        lambda: restarted.status()["sessions"].get(session_id) == [f"room:{net.rooms[other]}"],
        15,
        interval=0.1,
    )
    frames_after(net, late, other, back_at, 10)
    frames_after(net, other, late, back_at, 10)
    joined_in = time.time() - back_at
    print(
        f"\nthe restarted room joined and had media {joined_in:.2f} s after the network came back"
    )
    assert joined_in < 10.0
    assert states(net, session_id) == ["scheduled"]
    assert_clean_logs(net)
