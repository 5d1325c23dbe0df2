"""Call set-up latency: ICE ends with its last check (room_agents.ice_pacing), the agent
warms aiortc up once when it connects (room_agents.calls.warm_up), and a received video
frame leaves the jitter buffer with its last packet (room_agents.jitter).

How long set-up takes is a figure for bench/autostart; these tests check the behaviour
behind it, by counting, not timing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import aioice
import aioice.ice
import pytest
from aiortc.jitterbuffer import JitterBuffer
from aiortc.rtp import RtpPacket

from room_agents import calls as calls_module
from room_agents import room_control
from room_agents.calls import SessionCalls
from room_agents.ice import pin_host_addresses, pinned_host_addresses, unpin_host_addresses
from room_agents.ice_pacing import (
    STARTABLE,
    check_pacing_installed,
    install_check_pacing,
    more_to_start,
    uninstall_check_pacing,
)
from room_agents.jitter import (
    MarkerJitterBuffer,
    install_marker_release,
    marker_release_installed,
    receivers_buffer,
    uninstall_marker_release,
)
from tests.signalling_fixtures import eventually, running_agent, signalling_harness

State = aioice.ice.CandidatePair.State


AGENT_LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


async def noop_send(_message: object) -> None:
    pass


def test_the_pacing_loop_stops_once_the_last_check_has_started() -> None:
    assert set(STARTABLE) == {State.WAITING, State.FROZEN}
    # The check just started has its task: nothing else to start, no wait.
    assert not more_to_start([(State.WAITING, True)], candidates_expected=False)
    assert not more_to_start(
        [(State.IN_PROGRESS, True), (State.SUCCEEDED, True), (State.FAILED, True)], False
    )
    # Another pair still to start keeps the 20 ms pacing between checks.
    assert more_to_start([(State.WAITING, True), (State.WAITING, False)], False)
    assert more_to_start([(State.IN_PROGRESS, True), (State.FROZEN, False)], False)
    # A peer still trickling candidates keeps the loop going, as aioice does.
    assert more_to_start([(State.SUCCEEDED, True)], candidates_expected=True)


async def loopback_pair() -> tuple[aioice.Connection, aioice.Connection]:
    """Two aioice connections on 127.0.0.1 that know each other's candidates and
    credentials (as after an offer and an answer with end-of-candidates)."""
    controlling = aioice.Connection(ice_controlling=True)
    controlled = aioice.Connection(ice_controlling=False)
    for conn in (controlling, controlled):
        await conn.gather_candidates()
    for local, remote in ((controlling, controlled), (controlled, controlling)):
        for candidate in remote.local_candidates:
            await local.add_remote_candidate(candidate)
        await local.add_remote_candidate(None)
        local.remote_username = remote.local_username
        local.remote_password = remote.local_password
    return controlling, controlled


@pytest.fixture
async def loopback_only() -> AsyncIterator[None]:
    before = pinned_host_addresses()
    pin_host_addresses(["127.0.0.1"])
    try:
        yield
    finally:
        if before is None:
            unpin_host_addresses()
        else:
            pin_host_addresses(before)


@pytest.fixture
def pacing_restored() -> Any:
    was = check_pacing_installed()
    yield
    (install_check_pacing if was else uninstall_check_pacing)()


async def connect_counting(periodic_calls: list[int]) -> None:
    """Connect a loopback pair, counting the pacing loop's turns (calls of aioice's own
    ``_check_periodic``, under the patch or not)."""
    connection = aioice.ice.Connection
    current = connection.__dict__["_check_periodic"]
    original: Callable[[Any], bool] = getattr(current, "original", current)

    def counted(self: Any) -> bool:
        periodic_calls.append(id(self))
        return original(self)

    if hasattr(current, "original"):
        current.original = counted
    else:
        connection._check_periodic = counted  # type: ignore[method-assign]
    a, b = await loopback_pair()
    try:
        await asyncio.wait_for(asyncio.gather(a.connect(), b.connect()), 10)
    finally:
        if hasattr(current, "original"):
            current.original = original
        else:
            connection._check_periodic = original  # type: ignore[method-assign]
        await a.close()
        await b.close()


async def test_with_the_patch_each_side_s_pacing_loop_turns_once_and_still_connects(
    loopback_only: None, pacing_restored: None
) -> None:
    uninstall_check_pacing()
    raw: list[int] = []
    await connect_counting(raw)
    # aioice alone: a turn starts the one check, 20 ms later a second finds nothing.
    assert sorted(raw.count(i) for i in set(raw)) == [2, 2]

    assert install_check_pacing() and install_check_pacing()  # idempotent
    assert check_pacing_installed()
    paced: list[int] = []
    await connect_counting(paced)
    assert sorted(paced.count(i) for i in set(paced)) == [1, 1]

    uninstall_check_pacing()
    assert not check_pacing_installed()


async def test_the_warm_up_builds_an_offer_on_the_pinned_addresses_and_closes_it(
    loopback_only: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[Any] = []
    real = calls_module.RTCPeerConnection

    def recording(*args: Any, **kwargs: Any) -> Any:
        pc = real(*args, **kwargs)
        made.append(pc)
        return pc

    monkeypatch.setattr(calls_module, "RTCPeerConnection", recording)
    await asyncio.wait_for(calls_module.warm_up(), 10)
    (pc,) = made
    sdp = pc.localDescription.sdp
    assert sdp.count("m=video ") == 2 and "m=audio " in sdp and "m=application " in sdp
    candidates = [line for line in sdp.splitlines() if line.startswith("a=candidate:")]
    assert candidates and all(" 127.0.0.1 " in line for line in candidates)
    assert "srflx" not in sdp and "relay" not in sdp  # no ICE server was asked
    assert pc.connectionState == "closed"


async def test_an_agent_warms_up_once_on_its_first_welcome_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    runs: list[int] = []

    async def counting_warm_up() -> None:
        runs.append(1)

    monkeypatch.setattr(room_control, "warm_up", counting_warm_up)
    async with signalling_harness() as h:
        h.add_room("a")
        async with running_agent(h, "a") as agent:
            await eventually(lambda: runs, "the warm-up to run")
            agent.control.connected()  # as after a reconnect
            await agent.control._tasks.drain(5)  # what it spawned has run
            assert runs == [1]


# --- video frames leave the jitter buffer with their marked last packet ------------------


def rtp(sequence: int, timestamp: int, marker: bool = False, data: bytes = b"") -> RtpPacket:
    packet = RtpPacket(sequence_number=sequence, timestamp=timestamp)
    packet.marker = int(marker)
    packet._data = data or bytes([sequence % 256])  # type: ignore[attr-defined]
    return packet


def released(buffer: JitterBuffer, packets: list[RtpPacket]) -> list[tuple[bytes, int] | None]:
    out: list[tuple[bytes, int] | None] = []
    for packet in packets:
        _pli, frame = buffer.add(packet)
        out.append(None if frame is None else (frame.data, frame.timestamp))
    return out


def test_a_video_frame_leaves_with_its_marked_packet_not_with_the_next_frame() -> None:
    packets = [
        rtp(65534, 100, data=b"a"),
        rtp(65535, 100, data=b"b"),
        rtp(0, 100, marker=True, data=b"c"),  # across the sequence number wrap
        rtp(1, 200, marker=True, data=b"d"),
        rtp(2, 300, data=b"e"),
    ]
    ours = released(MarkerJitterBuffer(capacity=128, is_video=True), packets)
    assert ours == [None, None, (b"abc", 100), (b"d", 200), None]
    # aiortc's own buffer holds each frame until the next frame's first packet.
    theirs = released(JitterBuffer(capacity=128, is_video=True), packets)
    assert theirs == [None, None, None, (b"abc", 100), (b"d", 200)]


def test_a_gap_holds_the_frame_until_the_packet_comes_and_an_unmarked_frame_falls_back() -> None:
    buffer = MarkerJitterBuffer(capacity=128, is_video=True)
    # Packet 11 is late (a retransmission): the frame waits for it, then leaves whole.
    assert released(buffer, [rtp(10, 100, data=b"a"), rtp(12, 100, True, b"c")]) == [None, None]
    assert released(buffer, [rtp(11, 100, data=b"b")]) == [(b"abc", 100)]
    # A frame that ends without a marker leaves when the next frame starts (aiortc's
    # rule); a multi-packet frame after it leaves with its own marker again.
    out = released(buffer, [rtp(13, 200, data=b"d"), rtp(14, 300, data=b"e")])
    assert out == [None, (b"d", 200)]
    assert released(buffer, [rtp(15, 300, True, b"f")]) == [(b"ef", 300)]
    # A late packet of a frame already handed over is dropped, as aiortc drops it.
    assert released(buffer, [rtp(11, 100, data=b"b")]) == [None]
    assert released(buffer, [rtp(16, 400, True, b"g")]) == [(b"g", 400)]


def test_audio_buffers_are_aiortc_s_own() -> None:
    packets = [rtp(n, n * 960, marker=True) for n in range(8)]
    ours = released(MarkerJitterBuffer(capacity=16, prefetch=4), packets)
    theirs = released(JitterBuffer(capacity=16, prefetch=4), packets)
    assert ours == theirs


def test_receivers_built_after_the_install_use_the_marker_buffer() -> None:
    was = marker_release_installed()
    try:
        uninstall_marker_release()
        assert receivers_buffer() is JitterBuffer
        assert install_marker_release() and install_marker_release()  # idempotent
        assert receivers_buffer() is MarkerJitterBuffer
        uninstall_marker_release()
        assert not marker_release_installed()
    finally:
        (install_marker_release if was else uninstall_marker_release)()


async def test_the_calls_install_both_patches(loopback_only: None) -> None:
    SessionCalls(
        "s1",
        "room:a",
        noop_send,
        None,
        None,
        [],
        [],
        lambda _: None,  # type: ignore[arg-type]
    )
    assert check_pacing_installed() and marker_release_installed()


def test_bench_autostart_reads_the_agent_s_connected_line_and_splits_the_set_up() -> None:
    from bench.autostart import connected_at, setup_steps

    # room_agents/calls.py's line, with the selected pair when aioice has one.
    for via in (" (host -> relay)", ""):
        record = logging.LogRecord(
            "room_agents.calls", logging.INFO, "calls.py", 1,
            "session %s peer %s connection %s%s", ("s1", "room:b", "connected", via), None,
        )  # fmt: skip
        record.created = 1_800_000_000.25
        record.msecs = 250.0
        line = logging.Formatter(AGENT_LOG_FORMAT).format(record)  # as room_agents.cli logs
        log = "\n".join(["noise", line.replace("s1", "s0"), line])
        assert connected_at(log, "s1") == pytest.approx(1_800_000_000.25, abs=0.001)
        assert connected_at(log, "s2") is None
    steps = setup_steps(10.0, 10.5, 10.55, 10.6)
    assert steps == {
        "peer_wait": 500.0,
        "last_join_to_connected": 50.0,
        "connected_to_first_frame": 50.0,
        "last_join_to_first_frame": 100.0,
    }
