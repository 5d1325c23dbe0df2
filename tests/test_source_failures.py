"""A camera or microphone source that dies is a readiness failure, not silence.

Regressions:

- an exception from the synthetic camera inside the outgoing track's ``recv`` ended
  aiortc's MediaRelay reader for good: every peer stopped getting frames and nobody
  was told (the 160x120 crash of tests/test_media_sizes.py looked like this);
- a camera that went away after the session's start was never reported: readiness
  ran only before the start and once per connection, so the dashboard kept showing
  the room ready.

Now the sources are guarded (the room sends its "camera unavailable" card, or
silence), and a device whose check changes its verdict makes the agent send a fresh
readiness report for its open sessions at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import av
import numpy as np
import numpy.typing as npt
import pytest

from room_agents.agent import RoomAgent
from room_agents.capture import GuardedCamera, GuardedMicrophone, RoomDevices
from room_agents.config import AgentConfig
from room_agents.devices import DEVICE_FAILED, parse_spec
from room_agents.ice import unpin_host_addresses
from room_agents.media import SineSource, SyntheticCamera, UnavailableCard
from room_agents.readiness import (
    ReadinessRunner,
    camera_check,
    devices_changed,
    microphone_check,
    open_sessions,
)
from room_agents.stamp import Stamp, read_stamp
from signalling import protocol as p
from signalling.client import SignallingClient
from signalling.ports import RoomReadiness
from tests.signalling_fixtures import Harness, eventually, signalling_harness
from web.services import LiveView
from web.ui.dashboard import room_readiness

W, H, FPS = 320, 180, 15
T0 = 1_767_225_600.0


class FakeClock:
    def __init__(self, t: float = T0) -> None:
        self.t = t

    def now(self) -> float:
        return self.t


def luma_of(frame: av.VideoFrame) -> npt.NDArray[np.uint8]:
    return np.asarray(frame.to_ndarray(format="yuv420p"), dtype=np.uint8)[: frame.height]


class Exploded(RuntimeError):
    pass


def explode(*args: object) -> Any:
    raise Exploded("the source blew up")


# --- the guards, without IO -----------------------------------------------------------------


def test_a_camera_that_raises_sends_the_unavailable_card_and_comes_back(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    camera = SyntheticCamera(clock, W, H)
    guard = GuardedCamera(camera, UnavailableCard(clock, W, H), parse_spec("synthetic", "camera"))
    changes: list[str | None] = []
    guard.on_change = lambda: changes.append(guard.error)
    assert read_stamp(luma_of(guard.next_frame())) == Stamp(int(T0 * 1000), camera=True)

    camera.next_frame = explode  # type: ignore[method-assign]
    with caplog.at_level(logging.ERROR, logger="room_agents.capture"):
        frames = [guard.next_frame() for _ in range(5)]
    assert all(
        read_stamp(luma_of(f)) == Stamp(int(T0 * 1000), camera=False, no_camera=True)
        for f in frames
    )
    assert guard.failures == 5
    assert guard.error == "camera synthetic failed: Exploded: the source blew up"
    tracebacks = [r for r in caplog.records if r.exc_info]
    assert len(tracebacks) == 1, "one traceback per distinct error, not one per frame"
    assert changes == [guard.error]  # told once, when it failed

    del camera.next_frame  # the class's method again: the source delivers
    assert read_stamp(luma_of(guard.next_frame())) == Stamp(int(T0 * 1000), camera=True)
    assert not guard.error and changes == [changes[0], None]


def test_a_microphone_that_raises_sends_silence() -> None:
    source = SineSource()
    guard = GuardedMicrophone(source, parse_spec("synthetic", "microphone"))
    assert np.abs(guard.read(0, 960)).max() > 0
    source.read = explode  # type: ignore[method-assign,assignment]
    silent = guard.read(960, 960)
    assert silent.shape == (960,) and silent.dtype == np.int16 and not silent.any()
    assert guard.error is not None and "Exploded" in guard.error


def test_a_failed_source_shows_in_the_device_status_and_fails_its_check() -> None:
    """Even a synthetic source, which used to pass whatever happened."""
    devices = RoomDevices(AgentConfig(server_url="ws://a/ws", width=W, height=H), FakeClock())
    status = devices.status()
    assert camera_check(status["camera"]).ok and microphone_check(status["microphone"]).ok
    devices.camera.source.next_frame = explode  # type: ignore[method-assign]
    devices.microphone.source.read = explode  # type: ignore[method-assign,assignment]
    devices.camera.next_frame()
    devices.microphone.read(0, 960)
    status = devices.status()
    for name, check in (("camera", camera_check), ("microphone", microphone_check)):
        assert status[name]["state"] == "unavailable"
        assert status[name]["error_code"] == DEVICE_FAILED
        verdict = check(status[name])
        assert not verdict.ok and "Exploded: the source blew up" in verdict.detail, verdict


def test_a_camera_that_cannot_build_a_frame_is_known_before_the_first_call(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``RoomDevices.start`` builds one frame, so the check at connection reports it."""
    monkeypatch.setattr(SyntheticCamera, "next_frame", explode)
    devices = RoomDevices(AgentConfig(server_url="ws://a/ws", width=W, height=H), FakeClock())
    assert devices.status()["camera"]["state"] == "ok"  # nothing read yet
    devices.start()
    assert not camera_check(devices.status()["camera"]).ok


# --- the readiness rules ------------------------------------------------------------------


def entry(session_id: str, start: float, end: float, **kw: Any) -> p.ScheduleEntry:
    return p.ScheduleEntry(
        session_id=session_id,
        booking_id="b",
        title="t",
        start=start,
        end=end,
        lead=60,
        state=kw.pop("state", "scheduled"),
        ticket="x",
        rooms=[],
        **kw,
    )


def test_a_device_change_is_reported_for_the_sessions_the_room_is_in_or_about_to_be() -> None:
    now = 10_000.0
    entries = [
        entry("live", now - 60, now + 60, state="live"),
        entry("soon", now + 30, now + 90),  # within the lead of 60 s
        entry("later", now + 600, now + 900),
        entry("over", now - 600, now - 60, state="ended"),
        entry("reserved", now - 60, now + 60, connect_mode="reserve-only"),
        entry("joined-by-hand", now - 60, now + 60, connect_mode="reserve-only"),
        entry("cancelled", now - 60, now + 60, state="cancelled"),
    ]
    got = open_sessions(entries, now, 60, joined={"joined-by-hand", "cancelled"})
    assert got == ["live", "soon", "joined-by-hand"]


def test_only_a_change_of_the_camera_or_microphone_verdict_counts() -> None:
    ok = {"spec": "synthetic", "state": "ok"}
    dead = {"spec": "synthetic", "state": "unavailable", "error": "camera synthetic failed: X"}
    report = p.Readiness(
        ok=False,
        checks=[
            p.ReadinessCheck("camera", True, "synthetic test picture"),
            p.ReadinessCheck("microphone", True, "synthetic tone"),
            p.ReadinessCheck("turn", False, "unreachable"),
        ],
        at=T0,
    )
    assert devices_changed(None, {"camera": dead, "microphone": ok}) == []  # nothing sent yet
    assert devices_changed(report, {"camera": ok, "microphone": ok}) == []
    assert devices_changed(report, {"camera": dead, "microphone": ok}) == ["camera"]
    assert devices_changed(report, {"camera": dead, "microphone": dead}) == [
        "camera",
        "microphone",
    ]


@dataclass
class FakeDevices:
    camera: dict[str, Any] = field(default_factory=lambda: {"spec": "synthetic", "state": "ok"})
    microphone: dict[str, Any] = field(default_factory=lambda: {"spec": "synthetic", "state": "ok"})

    def status(self) -> dict[str, Any]:
        return {"camera": dict(self.camera), "microphone": dict(self.microphone)}


@dataclass
class FakeAgent:
    """The runner's view of an agent (readiness.AgentView), with a real client."""

    client: SignallingClient | None
    clock: FakeClock
    entries: list[p.ScheduleEntry]
    devices: FakeDevices = field(default_factory=FakeDevices)
    ice_servers: list[p.IceServer] = field(default_factory=list)
    sessions: dict[str, object] = field(default_factory=dict)


def room_reports(h: Harness, room_id: str, since: int = 0) -> list[RoomReadiness]:
    """The room's readiness reports among the server's events from index ``since``."""
    return [
        e for e in h.events.events[since:] if isinstance(e, RoomReadiness) and e.room_id == room_id
    ]


async def test_the_runner_reports_a_device_change_at_once_then_at_most_every_spacing() -> None:
    async with signalling_harness() as h:
        h.add_room("a")
        client = await h.client("a")
        await client.ping()  # the clock is measured: the check need not settle
        now = time.time()
        agent = FakeAgent(client, FakeClock(now), [entry("s1", now - 60, now + 600, state="live")])
        runner = ReadinessRunner(agent, lead=60, settle=0, device_spacing=60)
        try:
            assert await runner.step() == []  # nothing due, nothing reported yet
            runner.connected()
            (first,) = await runner.step()
            assert (first.session_id, first.ok) == (None, True)  # the check at connection

            agent.devices.camera = {
                "spec": "v4l2:/dev/video0",
                "state": "unavailable",
                "error": "camera v4l2:/dev/video0: no such device or file",
            }
            (failing,) = await runner.step()  # not due: the session has started
            assert (failing.session_id, failing.ok) == ("s1", False)
            assert [c.name for c in failing.checks if not c.ok] == ["camera"]
            assert runner.device_reports == 1
            assert await runner.step() == []  # no change since: nothing more

            agent.devices.camera = {
                "spec": "v4l2:/dev/video0",
                "state": "ok",
                "frames": 10,
                "last_frame_age": 0.1,
            }
            assert await runner.step() == []  # within the spacing: held back
            runner.device_spacing = 0
            (recovered,) = await runner.step()
            assert (recovered.session_id, recovered.ok) == ("s1", True)
        finally:
            await client.close()
    assert [(e.session_id, e.ok) for e in room_reports(h, "a")] == [
        (None, True),
        ("s1", False),
        ("s1", True),
    ]


# --- real agents ----------------------------------------------------------------------------


@asynccontextmanager
async def agent_for(h: Harness, room_id: str, **config: Any) -> AsyncIterator[RoomAgent]:
    base = AgentConfig(
        server_url=h.url, key=h.keys[room_id], width=W, height=H, fps=FPS, label=room_id
    )
    agent = RoomAgent(replace(base, **config))
    task = asyncio.create_task(agent.run())
    try:
        await asyncio.wait_for(agent.connected.wait(), 10)
        yield agent
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        unpin_host_addresses()


def failing(reports: list[RoomReadiness], session_id: str, check: str) -> RoomReadiness | None:
    for report in reports:
        if report.session_id == session_id and any(
            c.name == check and not c.ok for c in report.checks
        ):
            return report
    return None


def detail(report: RoomReadiness, check: str) -> str:
    return next(c.detail for c in report.checks if c.name == check)


async def test_a_synthetic_camera_and_microphone_that_die_mid_call_are_reported_not_silent() -> (
    None
):
    async with signalling_harness() as h:
        h.add_room("a")
        h.add_room("b")
        async with agent_for(h, "a") as a, agent_for(h, "b") as b:
            a.readiness.device_spacing = 0.2
            await eventually(lambda: room_reports(h, "a"), "a's check at connection")
            now = time.time()
            h.push_session("s1", ["a", "b"], start=now - 1, end=now + 120)

            def seen(key: str) -> int:
                return int(b.screen.totals().get("room:a", {}).get(key) or 0)

            await eventually(lambda: seen("camera_frames") >= FPS, "b to see a's camera", 20)
            mark = len(h.events.events)

            a.devices.camera.source.next_frame = explode  # type: ignore[method-assign]
            cards = seen("no_camera_frames")
            await eventually(
                lambda: seen("no_camera_frames") >= cards + FPS,
                "b to keep getting frames: a's unavailable card",
                10,
            )

            def camera_report() -> RoomReadiness | None:
                return failing(room_reports(h, "a", mark), "s1", "camera")

            await eventually(camera_report, "a report for s1 with the camera failing", 5)
            report = camera_report()
            assert report is not None and not report.ok
            assert "Exploded: the source blew up" in detail(report, "camera")
            assert [c.name for c in report.checks if not c.ok] == ["camera"]
            live = LiveView()
            for event in room_reports(h, "a"):
                live.listen(event)
            shown = room_readiness(live.readiness)["a"]
            assert (shown.value, shown.detail) == ("failing", "camera")

            a.devices.microphone.source.read = explode  # type: ignore[method-assign,assignment]
            await eventually(
                lambda: failing(room_reports(h, "a", mark), "s1", "microphone"),
                "a report for s1 with the microphone failing",
                5,
            )

            del a.devices.camera.source.next_frame
            del a.devices.microphone.source.read
            camera_frames = seen("camera_frames")
            await eventually(
                lambda: seen("camera_frames") >= camera_frames + FPS, "a's camera again", 10
            )
            await eventually(
                lambda: any(e.ok and e.session_id == "s1" for e in room_reports(h, "a", mark)),
                "the recovery, reported for s1",
                5,
            )
    assert a.devices.status()["camera"]["state"] == "ok"


def write_y4m(path: Path, seconds: float) -> None:
    """A short YUV4MPEG2 file of FFmpeg's test picture: a camera that can be unplugged."""
    tmp = path.with_suffix(".part")
    with av.open(f"testsrc2=size={W}x{H}:rate={FPS}", format="lavfi") as src:
        with av.open(str(tmp), "w", format="yuv4mpegpipe") as out:
            stream = out.add_stream("rawvideo", rate=FPS)
            stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
            for i, frame in enumerate(src.decode(video=0)):
                if i >= seconds * FPS:
                    break
                for packet in stream.encode(frame):
                    out.mux(packet)
            for packet in stream.encode(None):
                out.mux(packet)
    tmp.rename(path)


async def test_a_camera_that_goes_away_during_a_live_session_is_reported_at_once(
    tmp_path: Path,
) -> None:
    """A file camera (FFmpeg's container ends, and cannot be opened again), the way an
    unplugged camera fails: the capture thread says so, the agent reports it."""
    camera = tmp_path / "camera.y4m"
    write_y4m(camera, 1.0)
    async with signalling_harness() as h:
        h.add_room("a")
        async with agent_for(h, "a", camera=f"file:{camera}", device_retry=0.3) as a:
            await eventually(
                lambda: any(e.ok for e in room_reports(h, "a")), "a passing check, camera on"
            )
            now = time.time()
            h.push_session("s1", ["a"], start=now - 1, end=now + 120)
            await eventually(lambda: "s1" in a.sessions, "a to join s1")
            mark = len(h.events.events)
            camera.unlink()
            gone = time.monotonic()

            def camera_report() -> RoomReadiness | None:
                return failing(room_reports(h, "a", mark), "s1", "camera")

            await eventually(camera_report, "a report for s1 with the camera failing", 8)
            took = time.monotonic() - gone
            report = camera_report()
            assert report is not None
            assert "camera.y4m" in detail(report, "camera"), detail(report, "camera")
            # The 1 s file ends, the reopen fails; the runner looks every second.
            assert took < 4.0, took
            assert a.readiness.device_reports >= 1
