"""The room agent's timeline (room_agents/timeline.py) on a fake clock, acting on a
fake room (the RoomActions it asks of room_control), and the connection's pure parts."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from pathlib import Path

from room_agents.agent import write_status
from room_agents.config import AgentConfig
from room_agents.connection import Connection, LinkState, ServerClock, backoff_delay
from room_agents.schedule import ScheduleCache
from room_agents.timeline import Timeline
from signalling import protocol as p
from signalling.client import ConnectionLost, SignallingError

T = 1_800_000_000.0


class FakeClock:
    def __init__(self, now: float) -> None:
        self.t = now

    def now(self) -> float:
        return self.t


class FakeRoom:
    """Records what the timeline asks; joins succeed unless ``refuse`` is set."""

    def __init__(self) -> None:
        self.sessions: dict[str, object] = {}
        self.live = False
        self.log: list[str] = []
        self.refuse: SignallingError | None = None
        self.acted = asyncio.Event()  # set on every entry in the log

    def note(self, what: str) -> None:
        self.log.append(what)
        self.acted.set()

    async def until(self, predicate: Callable[[], bool]) -> None:
        while not predicate():
            self.acted.clear()
            await self.acted.wait()

    async def ensure_joined(self, entry: p.ScheduleEntry) -> SignallingError | None:
        self.sessions.setdefault(entry.session_id, object())
        if self.refuse is not None:
            self.note(f"refused {entry.session_id}")
            return self.refuse
        self.note(f"join {entry.session_id}")
        return None

    async def forget_unjoined(self, session_id: str) -> None:
        self.sessions.pop(session_id, None)
        self.note(f"forget {session_id}")

    async def leave(self, session_id: str) -> None:
        self.sessions.pop(session_id, None)
        self.note(f"leave {session_id}")

    def set_live(self, live: bool, now: float) -> None:
        self.live = live

    async def publish_state(self) -> None:
        self.note("state")


def entry(
    session_id: str, start: float, end: float, connect_mode: str = "automatic"
) -> p.ScheduleEntry:
    return p.ScheduleEntry(
        session_id=session_id,
        booking_id="b-" + session_id,
        title="Board",
        start=start,
        end=end,
        lead=60.0,
        state="scheduled",
        ticket="t",
        rooms=[],
        connect_mode=connect_mode,
    )


def timeline_with(*entries: p.ScheduleEntry) -> tuple[Timeline, FakeRoom, FakeClock]:
    clock, room = FakeClock(T), FakeRoom()
    timeline = Timeline(clock, ScheduleCache(None), room)
    timeline.on_schedule(p.Schedule(room_id="r", generated_at=T, sessions=list(entries)))
    return timeline, room, clock


async def test_the_timeline_joins_at_the_lead_goes_live_at_the_start_and_leaves_at_the_end() -> (
    None
):
    timeline, room, clock = timeline_with(entry("s1", T + 100, T + 200))
    await timeline.reconcile(clock.now())
    assert room.sessions == {} and not room.live
    clock.t = T + 40  # T - lead
    await timeline.reconcile(clock.now())
    assert "s1" in room.sessions and not room.live
    clock.t = T + 100
    await timeline.reconcile(clock.now())
    assert room.live
    clock.t = T + 200
    await timeline.reconcile(clock.now())
    assert room.sessions == {} and not room.live
    assert [x for x in room.log if x != "state"] == ["join s1", "join s1", "leave s1"]


async def test_a_session_dropped_from_the_schedule_is_left_and_its_command_forgotten() -> None:
    timeline, room, clock = timeline_with(entry("s1", T - 10, T + 200))
    await timeline.reconcile(clock.now())
    assert "s1" in room.sessions
    timeline.commands["s1"] = "join"
    timeline.on_schedule(p.Schedule(room_id="r", generated_at=T, sessions=[]))
    await timeline.reconcile(clock.now())
    assert room.sessions == {} and timeline.commands == {}
    assert room.log[-2:] == ["leave s1", "state"]


async def test_a_leave_command_holds_against_the_timeline_and_a_join_command_undoes_it() -> None:
    timeline, room, clock = timeline_with(entry("s1", T - 10, T + 200))
    await timeline.reconcile(clock.now())
    assert await timeline.leave_on_command("s1") == (True, None, None)
    await timeline.reconcile(clock.now())
    assert "s1" not in room.sessions
    missing = await timeline.leave_on_command("s1")
    assert missing[:2] == (False, p.ErrorCode.NOT_IN_SESSION)
    assert await timeline.join_on_command("s1") == (True, None, None)
    assert "s1" in room.sessions and room.live and timeline.commands["s1"] == "join"


async def test_a_refused_join_command_restores_the_previous_word_and_forgets_the_calls() -> None:
    timeline, room, clock = timeline_with(entry("s1", T - 10, T + 200, connect_mode="one-button"))
    await timeline.reconcile(clock.now())
    assert room.sessions == {}  # one-button: nobody joins by itself
    room.refuse = ConnectionLost("not connected")
    ok, code, _ = await timeline.join_on_command("s1")
    assert not ok and code == ConnectionLost("x").code
    assert timeline.commands == {} and room.sessions == {}
    assert room.log[-1] == "forget s1"
    ok, code, _ = await timeline.join_on_command("s2")
    assert (ok, code) == (False, p.ErrorCode.NOT_JOINABLE)


async def test_a_schedule_or_a_session_state_wakes_the_loop_at_once() -> None:
    timeline, room, _ = timeline_with()
    runner = asyncio.create_task(timeline.run())
    try:
        await asyncio.wait_for(room.until(lambda: "state" in room.log), 0.5)  # the first pass
        timeline.on_schedule(
            p.Schedule(room_id="r", generated_at=T, sessions=[entry("s1", T - 10, T + 200)])
        )
        # Well before the second the loop would otherwise sleep.
        await asyncio.wait_for(room.until(lambda: "join s1" in room.log), 0.5)
        timeline.on_session_state(
            p.SessionState(session_id="s1", state="cancelled", at=T, start=T - 10, end=T + 200)
        )
        await asyncio.wait_for(room.until(lambda: "leave s1" in room.log), 0.5)
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)


def test_backoff_grows_with_the_attempts_up_to_the_cap_with_jitter() -> None:
    rng = random.Random(1)
    for attempt in range(12):
        delay = backoff_delay(attempt, 1.0, 30.0, rng)
        assert 0.5 <= delay <= min(30.0, 2**attempt)


def test_only_a_welcomed_link_hands_out_its_client() -> None:
    link = Connection(AgentConfig(server_url="ws://127.0.0.1:1/ws", key="k"), ServerClock())
    assert link.state is LinkState.OFFLINE and link.client is None
    assert not link.connected.is_set()


def test_the_server_clock_adds_the_measured_offset() -> None:
    clock = ServerClock(lambda: 100.0)
    clock.offset = -30.5
    assert clock.now() == 69.5


def test_the_status_file_is_replaced_whole(tmp_path: Path) -> None:
    path = tmp_path / "status.json"
    write_status(path, '{"a": 1}')
    write_status(path, '{"a": 2}')
    assert path.read_text(encoding="utf-8") == '{"a": 2}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["status.json"]
