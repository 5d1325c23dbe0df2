"""The readiness runner inside a real agent, against an in-process signalling server:
a camera that is missing and then appears fails and then passes (the server sees the
recovery); configured TURN servers are probed; guests may not send readiness."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path

import numpy as np

from room_agents.agent import RoomAgent
from room_agents.config import AgentConfig
from room_agents.ice import unpin_host_addresses
from signalling import protocol as p
from signalling.ports import RoomReadiness
from tests.signalling_fixtures import Harness, eventually, signalling_harness
from tests.test_readiness import stun_servers
from tests.test_signalling import recv_type
from web.services import LiveView
from web.ui.dashboard import room_readiness

WIDTH, HEIGHT = 160, 96


def write_y4m(path: Path, frames: int = 15) -> None:
    """A short camera recording (YUV4MPEG2, which FFmpeg reads without a codec)."""
    header = f"YUV4MPEG2 W{WIDTH} H{HEIGHT} F15:1 Ip A1:1 C420jpeg\n".encode()
    tmp = path.with_suffix(".part")
    with open(tmp, "wb") as f:
        f.write(header)
        for i in range(frames):
            f.write(b"FRAME\n")
            f.write(np.full(WIDTH * HEIGHT, 16 + 10 * i, np.uint8).tobytes())
            f.write(np.full(WIDTH * HEIGHT // 2, 128, np.uint8).tobytes())
    tmp.rename(path)  # appears whole


@asynccontextmanager
async def agent_for(h: Harness, room_id: str, **config: object) -> AsyncIterator[RoomAgent]:
    base = AgentConfig(
        server_url=h.url, key=h.keys[room_id], width=320, height=180, fps=15, label=room_id
    )
    agent = RoomAgent(replace(base, **config))  # type: ignore[arg-type]
    task = asyncio.create_task(agent.run())
    try:
        await asyncio.wait_for(agent.connected.wait(), 10)
        yield agent
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        unpin_host_addresses()


def readiness_events(h: Harness, session_id: str | None = None) -> list[RoomReadiness]:
    return [
        e
        for e in h.events.events
        if isinstance(e, RoomReadiness) and (session_id is None or e.session_id == session_id)
    ]


async def test_a_camera_that_appears_turns_a_failing_check_into_a_passing_one(
    tmp_path: Path,
) -> None:
    camera = tmp_path / "camera.y4m"
    async with signalling_harness() as h:
        h.add_room("a")
        h.add_room("b")
        async with agent_for(h, "a", camera=f"file:{camera}", device_retry=0.2) as agent:
            agent.readiness.recheck_failing = 0.5
            # Before any session: the check at connection, for the room alone.
            await eventually(lambda: readiness_events(h), "the check at connection")
            (first,) = readiness_events(h)
            assert (first.room_id, first.session_id, first.ok) == ("a", None, False)
            camera_check = next(c for c in first.checks if c.name == "camera")
            assert not camera_check.ok and "camera.y4m" in camera_check.detail
            assert [c.name for c in first.checks if not c.ok] == ["camera"]
            assert abs(first.checked_at - time.time()) < 2

            now = time.time()
            h.push_session("s1", ["a", "b"], start=now + 60, end=now + 120, lead=5)
            await eventually(lambda: readiness_events(h, "s1"), "the check for the session")
            assert not readiness_events(h, "s1")[0].ok

            write_y4m(camera)
            await eventually(
                lambda: any(e.ok for e in readiness_events(h, "s1")), "a passing check", 15
            )
            passed = next(e for e in readiness_events(h, "s1") if e.ok)
            camera_check = next(c for c in passed.checks if c.name == "camera")
            assert camera_check.ok and "delivering" in camera_check.detail
            status = agent.status()["readiness"]
            assert status["ok"] is True and status["session_id"] == "s1"
            # Passing now: checked again only after RECHECK_PASSING, so no flood.
            count = len(readiness_events(h, "s1"))
            await agent.readiness.step()
            assert len(readiness_events(h, "s1")) == count


async def test_configured_turn_servers_are_probed() -> None:
    async with stun_servers() as (udp, _tcp):
        # No credential: a binding request (with one, an allocation: tests/test_turn_coturn.py).
        ice = (p.IceServer(urls=[f"turn:127.0.0.1:{udp}"]),)
        async with signalling_harness(ice_servers=ice) as h:
            h.add_room("a")
            async with agent_for(h, "a"):
                await eventually(lambda: readiness_events(h), "the check at connection")
    (event,) = readiness_events(h)
    turn = next(c for c in event.checks if c.name == "turn")
    assert turn.ok and turn.detail == f"reachable: turn:127.0.0.1:{udp}"
    assert event.ok


async def test_an_unreachable_turn_server_leaves_the_room_degraded_not_failing() -> None:
    ice = (p.IceServer(urls=["turn:127.0.0.1:9?transport=tcp"]),)
    async with signalling_harness(ice_servers=ice) as h:
        h.add_room("a")
        async with agent_for(h, "a"):
            await eventually(lambda: readiness_events(h), "the check at connection", 15)
    (event,) = readiness_events(h)
    assert not event.ok and [c.name for c in event.checks if not c.ok] == ["turn"]
    live = LiveView()
    live.listen(event)
    ready = room_readiness(live.readiness)["a"]
    assert (ready.value, ready.detail) == ("degraded", "turn")


async def test_only_rooms_send_readiness() -> None:
    async with signalling_harness() as h:
        h.add_room("a")
        now = time.time()
        guest = await h.guest(
            h.minter.mint("guest:g1", "s1", role="guest", name="Gina", exp=now + 600)
        )
        await guest.send(
            p.Readiness(ok=True, checks=[p.ReadinessCheck("camera", True)], at=now, id="r1")
        )
        error = await recv_type(guest, p.Error)
        assert (error.code, error.ref) == (p.ErrorCode.BAD_MESSAGE, "r1")
        room = await h.client("a")
        await room.send(p.Readiness(ok=True, checks=[], at=now, id="r2"))
        error = await recv_type(room, p.Error)
        assert (error.code, error.ref) == (p.ErrorCode.BAD_MESSAGE, "r2")
        await asyncio.gather(guest.close(), room.close())
    assert readiness_events(h) == []


async def test_a_lead_of_zero_checks_no_session() -> None:
    async with signalling_harness() as h:
        h.add_room("a")
        async with agent_for(h, "a", readiness_lead=0.0) as agent:
            now = time.time()
            h.push_session("s1", ["a"], start=now + 30, end=now + 60)
            await eventually(lambda: agent.entries, "the schedule")
            await eventually(lambda: readiness_events(h), "the check at connection")
            await agent.readiness.step()
    assert readiness_events(h, "s1") == []
