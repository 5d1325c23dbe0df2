"""Benchmark: a booked session starts by itself; how fast, how smooth, against raw aiortc.

Usage (from anywhere; the launcher cds to the repository root)::

    bench/autostart [--runs N] [--resolutions 640x360,1280x720] [--quick]

One JSON document goes to stdout, progress to stderr.

The scenario (as in tests/test_e2e_autostart.py, with its helpers in tests/e2e_support.py)
------------------------------------------------------------------------------------------
A real ``telecentre serve`` process and two ``telecentre agent`` processes, rooms in two
centres (Fontainebleau, Europe/Paris and Amsterdam, Europe/Amsterdam), all on loopback,
fresh data directory per run. Once both agents are connected, a booking is made with the
CLI while serve runs: it starts at T = now + 15 s with a lead of 5 s and lasts 20 s. The
agents join by themselves at T - 5 s behind the "starting" card, switch to the camera at
T and leave at T + 20 s. Agents send the synthetic stamped camera at the resolution
under test (``--width/--height``), 30 fps.

Figures per run and per room (the room is the *receiver*; each room has one remote peer)
--------------------------------------------------------------------------------------------
From the session record (``telecentre session show ID --json``), all on the server clock:

- ``first_frame_rel_T_ms``: first decoded frame (the card) minus T; negative = before T.
- ``live_rel_T_ms``: first remote *camera* frame minus T (the "cameras live after the
  booked second" figure).
- ``join_to_first_frame_ms``: first frame minus this room's join (signalling + ICE +
  DTLS + keyframe, plus whatever the room waited for its peer to join).
- ``setup_steps_ms``: that time step by step: ``peer_wait`` (this room's join to the
  later join: the later joiner offers), ``last_join_to_connected`` (signalling, offer,
  answer, ICE, DTLS: up to the agent's "connection connected" log line),
  ``connected_to_first_frame`` (first keyframe encoded, sent, decoded) and
  ``last_join_to_first_frame``. Aggregated under ``setup_steps_ms`` beside the floor's
  steps, with their ratios in ``ratios``.

From the agent's status file (room_agents.agent ``status()``; the screen's cumulative
``totals()`` per remote peer, stamped frames read against the server-corrected clock):

- ``latency_p50_ms`` / ``latency_p95_ms``: cumulative glass-to-glass, read at T + 18 s
  (card period and live period together, as the status file carries no window).
- ``fps_live``: ``frames`` read at T + 3 s and T + 13 s, divided by the difference of
  the status file's own ``server_now`` (when those counts were written).
- ``freezes`` (cumulative at T + 18 s) and ``freezes_live`` (between the two samples).
- ``agent_cpu_s_per_s``: utime + stime of the agent process (/proc/PID/stat) over the
  same two instants, divided by the wall time between the reads. ``serve_cpu_s_per_s``
  is the same for the serve process, per run. ``other_cpu_s_per_s`` is what the rest of
  the machine used meanwhile (/proc/stat busy time minus serve, agents and this
  process); a run above 0.25 s/s is flagged ``contended`` (another test or demo on these
  2 cores perturbs every figure) and listed in ``contended_runs``; it still counts.

Per resolution and room the runs are aggregated as p50 (median), max and the raw values;
``all_rooms`` pools both rooms of every run.

Floors (measured in this process, in the same invocation, before the scenario runs)
------------------------------------------------------------------------------------------
Raw aiortc on loopback: aioice host addresses pinned to 127.0.0.1
(``room_agents.ice.pin_host_addresses``), ``rtc_configuration([])`` (no ICE servers), a
caller sending ``OutgoingVideoTrack(SyntheticCamera, StartingCard)`` with ``set_live(True)``
plus ``SyntheticAudioTrack``, to a callee that drains into a ``HeadlessScreen`` whose
clock is ``time.time``; no signalling server, no MediaRelay, one direction.

- ``offer_to_first_frame_ms``: from just before ``createOffer`` to the callee's first
  decoded video frame (ICE gathering, checks, DTLS, first keyframe), over several calls
  after one discarded warm-up call. ``steps_ms``: the same calls step by step, from
  the offer's start to the caller's ICE ``completed`` and ``connected`` (DTLS done),
  and from ``connected`` to the first frame.
- ``two_way_offer_to_first_frame_ms``: the same call with media both ways (the callee
  sends too, as a session's rooms do), offer -> first frame at each end, pooled;
  ``ratios.join_to_first_frame_p50_over_two_way_floor`` reads the product against it
  (information only: the goals are stated against the one-way floor).
- ``paired_floor`` (per run, and pooled in the results): the same one-way and two-way
  floor calls (at most 3 of each) made in each run's own minute, while the booked
  agents wait for T - lead, so that a run is read against a floor under the same
  machine load (these 2 cores are shared: a floor measured a few minutes earlier can
  be off by 2x either way). ``join_to_first_frame_p50_over_paired_floor`` per run and
  pooled; the goals keep the start-of-invocation floor.
- The floor runs on aiortc and aioice as they come: the agent's own set-up patches
  (room_agents.ice_pacing, room_agents.jitter) are installed by its calls only; the
  benchmark refuses to measure a floor with them installed.
- ``latency_p50_ms`` / ``latency_p95_ms`` / ``fps``: one call kept up for a few seconds;
  the screen's cumulative totals, like the agents'.

Ratios and goals (/work/shared/PERFORMANCE.md) are computed per resolution from the
pooled figures: live after T p50 <= 100 ms and max <= 250 ms; join -> first frame p50
<= 2x the floor's offer -> first frame p50 (and <= 1.5x, issue 12's acceptance 6); glass-to-glass p50 <= 1.2x the floor's p50
(the document states that goal for 720p30; it is computed at every resolution).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from bench.measure import compact_json, cpu_seconds, machine_busy_seconds, ratio, summary
from tests.e2e_support import Agent, Network, wait_until

ROOMS: tuple[tuple[str, str, str], ...] = (
    ("fontainebleau", "Fontainebleau", "Europe/Paris"),
    ("amsterdam", "Amsterdam", "Europe/Amsterdam"),
)
DEFAULT_RESOLUTIONS = "640x360,1280x720"
BOOK_AHEAD_S = 15.0  # T = booking time + this
LEAD_S = 5
DURATION_S = 20.0
SAMPLE_AT = (3.0, 13.0)  # seconds after T: the window for frame rate and CPU
TOTALS_AT = 18.0  # seconds after T: cumulative latency and freezes (before leaving at 20 s)
FLOOR_CALLS = 5  # offer -> first frame repetitions per resolution (after one warm-up)
FLOOR_LATENCY_S = 8.0  # how long the floor call runs for glass-to-glass
PAIRED_CALLS = 3  # floor calls of each kind in each run's own minute (paired_floor)
PAIRED_MARGIN_S = 2.0  # the paired floor calls end this long before T - lead
FPS = 30
# A run is flagged "contended" when the rest of the machine used more than this many
# CPU seconds per second (of 2) in the measuring window.
CONTENDED_OTHER_CPU = 0.25

GOAL_LIVE_P50_MS = 100.0
GOAL_LIVE_MAX_MS = 250.0
GOAL_JOIN_RATIO = 2.0
GOAL_JOIN_RATIO_ISSUE_12 = 1.5  # issue 12, acceptance 6
GOAL_LATENCY_RATIO = 1.2
DOCUMENTED_FLOORS = {
    "cameras_live_after_T_ms": "one frame interval + glass-to-glass ~ 80",
    "offer_to_first_frame_ms": "67-85",
    "glass_to_glass_720p30_p50_ms": "46-50 (33 of it aiortc's jitter buffer)",
}

Json = dict[str, Any]


def log(message: str) -> None:
    print(f"[autostart {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- small helpers ----------------------------------------------------------------------


def parse_resolution(text: str) -> tuple[int, int]:
    width, _, height = text.strip().lower().partition("x")
    return int(width), int(height)


def ts(value: str | None) -> float | None:
    return datetime.fromisoformat(value).timestamp() if value else None


def ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000.0, 1)


def sleep_until(instant: float) -> None:
    """Sleep until the wall-clock ``instant`` (the scenario is on the wall clock)."""
    delay = instant - time.time()
    if delay > 0:
        time.sleep(delay)


def versions() -> Json:
    found: Json = {"python": platform.python_version(), "cpus": os.cpu_count()}
    for dist in ("aiortc", "aioice", "av", "aiohttp", "uvloop"):
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            found[dist] = None
    return found


# --- floors: raw aiortc in this process ------------------------------------------------


class WallClock:
    """The screen's clock for the floor call: sender and receiver share ``time.time``."""

    def now(self) -> float:
        return time.time()


async def raw_call(width: int, height: int, keep_up_s: float) -> Json:
    """One plain aiortc call on loopback: offer -> first decoded frame, and its totals."""
    from aiortc import RTCPeerConnection

    from room_agents.ice import rtc_configuration
    from room_agents.media import (
        OutgoingVideoTrack,
        StartingCard,
        SyntheticAudioTrack,
        SyntheticCamera,
    )
    from room_agents.screen import HeadlessScreen

    clock = WallClock()
    loop = asyncio.get_running_loop()
    video = OutgoingVideoTrack(
        SyntheticCamera(clock, width, height, FPS, label="floor"),
        StartingCard(clock, width, height, FPS, label="floor"),
        fps=FPS,
    )
    video.set_live(True)
    audio = SyntheticAudioTrack()
    caller = RTCPeerConnection(rtc_configuration([]))
    callee = RTCPeerConnection(rtc_configuration([]))
    screen = HeadlessScreen(clock)
    first: asyncio.Future[float] = loop.create_future()

    def on_first(_peer: str, at: float) -> None:
        if not first.done():
            first.set_result(at)

    screen.on_first_frame = on_first
    marks: dict[str, float] = {}  # wall-clock instants of the caller's set-up steps

    @caller.on("iceconnectionstatechange")
    def on_ice() -> None:
        if caller.iceConnectionState == "completed":
            marks.setdefault("ice", time.time())

    @caller.on("connectionstatechange")
    def on_connection() -> None:
        if caller.connectionState == "connected":  # ICE and DTLS done
            marks.setdefault("connected", time.time())

    @callee.on("track")
    def on_track(track: Any) -> None:
        if track.kind == "video":
            screen.attach_video("caller", track)
        else:
            screen.attach_audio("caller", track)

    try:
        caller.addTrack(video)
        caller.addTrack(audio)
        started = time.time()
        await caller.setLocalDescription(await caller.createOffer())
        await callee.setRemoteDescription(caller.localDescription)
        await callee.setLocalDescription(await callee.createAnswer())
        await caller.setRemoteDescription(callee.localDescription)
        first_at = await asyncio.wait_for(first, 15)
        result: Json = {
            "offer_to_first_frame_ms": ms(first_at - started),
            "steps_ms": floor_steps(started, marks, first_at),
        }
        if keep_up_s > 0:
            await asyncio.sleep(keep_up_s)
            totals = screen.totals()["caller"]
            elapsed = (totals["last_frame_at"] or first_at) - first_at
            result.update(
                latency_p50_ms=totals["latency_p50_ms"],
                latency_p95_ms=totals["latency_p95_ms"],
                fps=round(((totals["frames"] or 1) - 1) / elapsed, 2) if elapsed > 0 else None,
                freezes=totals["freezes"],
                stamped_frames=totals["stamped_frames"],
                frames=totals["frames"],
            )
        return result
    finally:
        await screen.close()
        await caller.close()
        await callee.close()
        video.stop()
        audio.stop()


async def raw_two_way_call(width: int, height: int) -> Json:
    """The same plain aiortc call with media both ways, as a session's two rooms send:
    offer -> first decoded frame at each end (two encoders and two decoders start at
    once, in this one process)."""
    from aiortc import RTCPeerConnection

    from room_agents.ice import rtc_configuration
    from room_agents.media import (
        OutgoingVideoTrack,
        StartingCard,
        SyntheticAudioTrack,
        SyntheticCamera,
    )
    from room_agents.screen import HeadlessScreen

    clock = WallClock()
    loop = asyncio.get_running_loop()
    pcs = [RTCPeerConnection(rtc_configuration([])) for _ in range(2)]
    screens = [HeadlessScreen(clock) for _ in range(2)]
    firsts: list[asyncio.Future[float]] = [loop.create_future() for _ in range(2)]
    tracks: list[Any] = []
    for pc, screen, first in zip(pcs, screens, firsts, strict=True):
        video = OutgoingVideoTrack(
            SyntheticCamera(clock, width, height, FPS, label="floor"),
            StartingCard(clock, width, height, FPS, label="floor"),
            fps=FPS,
        )
        video.set_live(True)
        tracks += [video, SyntheticAudioTrack()]

        def on_first(_peer: str, at: float, first: asyncio.Future[float] = first) -> None:
            if not first.done():
                first.set_result(at)

        screen.on_first_frame = on_first

        def on_track(track: Any, screen: HeadlessScreen = screen) -> None:
            if track.kind == "video":
                screen.attach_video("peer", track)
            else:
                screen.attach_audio("peer", track)

        pc.on("track", on_track)
    caller, callee = pcs
    try:
        caller.addTrack(tracks[0])
        caller.addTrack(tracks[1])
        started = time.time()
        await caller.setLocalDescription(await caller.createOffer())
        await callee.setRemoteDescription(caller.localDescription)
        callee.addTrack(tracks[2])
        callee.addTrack(tracks[3])
        await callee.setLocalDescription(await callee.createAnswer())
        await caller.setRemoteDescription(callee.localDescription)
        at = await asyncio.wait_for(asyncio.gather(*firsts), 15)
        return {"offer_to_first_frame_ms": [ms(a - started) for a in at]}
    finally:
        for screen in screens:
            await screen.close()
        for pc in pcs:
            await pc.close()
        for track in tracks:
            track.stop()


def floor_steps(started: float, marks: dict[str, float], first_at: float) -> Json:
    """The floor call's set-up, step by step: ICE checks done, DTLS done (connected),
    first decoded frame, each from the offer's start."""
    return {
        "ice_completed": ms(delta(started, marks.get("ice"))),
        "connected": ms(delta(started, marks.get("connected"))),
        "connected_to_first_frame": ms(delta(marks.get("connected"), first_at)),
    }


async def paired_floor(width: int, height: int, until: float) -> Json:
    """Floor calls in the run's own minute (while the agents wait for T - lead), so a
    run's join -> first frame is read against a floor measured under the same load:
    one-way calls, then two-way calls, as many as fit before ``until`` (wall clock),
    at most PAIRED_CALLS of each."""
    from room_agents.ice import pin_host_addresses, unpin_host_addresses

    one_way: list[float | None] = []
    two_way: list[float | None] = []
    pin_host_addresses(["127.0.0.1"])
    try:
        while len(one_way) < PAIRED_CALLS and time.time() < until:
            one_way.append((await raw_call(width, height, 0))["offer_to_first_frame_ms"])
        while len(two_way) < 2 * PAIRED_CALLS and time.time() < until:
            two_way += (await raw_two_way_call(width, height))["offer_to_first_frame_ms"]
    finally:
        unpin_host_addresses()
    return {
        "offer_to_first_frame_ms": summary(one_way),
        "two_way_offer_to_first_frame_ms": summary(two_way),
    }


async def measure_floors(resolutions: Sequence[tuple[int, int]], calls: int) -> Json:
    from room_agents.ice import pin_host_addresses, unpin_host_addresses
    from room_agents.ice_pacing import check_pacing_installed
    from room_agents.jitter import marker_release_installed

    # The floor is aiortc as it comes: the agent's patches are installed by its calls,
    # which this process never builds.
    if check_pacing_installed() or marker_release_installed():
        raise RuntimeError("the floor must run on unpatched aiortc and aioice")
    pin_host_addresses(["127.0.0.1"])
    floors: Json = {}
    try:
        for width, height in resolutions:
            key = f"{width}x{height}"
            log(f"floor {key}: warm-up call, then {calls} calls for offer -> first frame")
            await raw_call(width, height, 0)
            floor_calls = [await raw_call(width, height, 0) for _ in range(calls)]
            firsts = [c["offer_to_first_frame_ms"] for c in floor_calls]
            log(f"floor {key}: {calls} calls with media both ways")
            two_way = [
                at
                for _ in range(calls)
                for at in (await raw_two_way_call(width, height))["offer_to_first_frame_ms"]
            ]
            log(f"floor {key}: one call kept up {FLOOR_LATENCY_S:.0f} s for glass-to-glass")
            busy, own, began = machine_busy_seconds(), cpu_seconds(os.getpid()), time.monotonic()
            long_call = await raw_call(width, height, FLOOR_LATENCY_S)
            other = machine_busy_seconds() - busy - (delta(own, cpu_seconds(os.getpid())) or 0.0)
            other_per_s = round(max(other, 0.0) / (time.monotonic() - began), 3)
            floors[key] = {
                "offer_to_first_frame_ms": summary(firsts),
                "two_way_offer_to_first_frame_ms": summary(two_way),
                "steps_ms": {
                    step: summary(c["steps_ms"][step] for c in floor_calls)
                    for step in ("ice_completed", "connected", "connected_to_first_frame")
                },
                "latency_p50_ms": long_call["latency_p50_ms"],
                "latency_p95_ms": long_call["latency_p95_ms"],
                "fps": long_call["fps"],
                "freezes": long_call["freezes"],
                "call_offer_to_first_frame_ms": long_call["offer_to_first_frame_ms"],
                "other_cpu_s_per_s": other_per_s,
                "contended": other_per_s > CONTENDED_OTHER_CPU,
            }
            log(
                f"floor {key}: {json.dumps(floors[key]['offer_to_first_frame_ms']['p50'])} ms "
                f"to first frame, latency p50 {long_call['latency_p50_ms']} ms"
            )
    finally:
        unpin_host_addresses()
    return floors


# --- the scenario with real processes ---------------------------------------------------


@dataclass
class Sample:
    """What one agent's status file and /proc said at one instant."""

    status: Json
    cpu_s: float | None
    mono: float

    def peer(self) -> Json:
        """Totals for the one remote peer (empty when no frame arrived yet)."""
        peers: dict[str, Json] = self.status.get("peers", {})
        return next(iter(peers.values()), {}) if peers else {}


def sample(agent: Agent) -> Sample:
    assert agent.proc is not None
    return Sample(agent.status(), cpu_seconds(agent.proc.pid), time.monotonic())


def delta(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else b - a


def wait_connected(net: Network, timeout: float = 30) -> None:
    def connected(agent: Agent) -> Callable[[], bool]:
        return lambda: bool(agent.status().get("connected"))

    for room, agent in net.agents.items():
        wait_until(f"{room} online", connected(agent), timeout)


def wait_ended(net: Network, session_id: str, end: float) -> Json:
    def ended() -> Json | None:
        record = net.session(session_id)
        done = record["state"] == "ended" and all(r["left_at"] for r in record["rooms"])
        return record if done else None

    return wait_until(
        "session ended and every room left", ended, max(10.0, end - time.time() + 10), interval=0.5
    )


CONNECTED_LINE = re.compile(
    r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) INFO room_agents\.calls: "
    r"session (\S+) peer \S+ connection connected(?: \(\S+ -> \S+\))?$"
)


def connected_at(agent_log: str, session_id: str) -> float | None:
    """When the agent's first call of the session was connected (ICE and DTLS done),
    from its INFO log line (local wall clock, milliseconds; the agents run on this
    machine, so it is the server's clock to within the clock offset, ~0 on loopback)."""
    for line in agent_log.splitlines():
        found = CONNECTED_LINE.match(line)
        if found and found.group(2) == session_id:
            return datetime.strptime(found.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
    return None


def setup_steps(
    joined: float | None, last_join: float | None, connected: float | None, first: float | None
) -> Json:
    """A room's join -> first frame, step by step: waiting for the peer to join (the
    later joiner offers), the later join to the call connected (signalling, offer,
    answer, ICE, DTLS), then to the first decoded frame (first keyframe encoded, sent,
    decoded)."""
    return {
        "peer_wait": ms(delta(joined, last_join)),
        "last_join_to_connected": ms(delta(last_join, connected)),
        "connected_to_first_frame": ms(delta(connected, first)),
        "last_join_to_first_frame": ms(delta(last_join, first)),
    }


def room_figures(
    record_room: Json,
    start: float,
    first: Sample,
    second: Sample,
    last: Sample,
    last_join: float | None = None,
    connected: float | None = None,
) -> Json:
    joined, first_frame, live, left = (
        ts(record_room[k]) for k in ("joined_at", "first_frame_at", "live_at", "left_at")
    )
    a, b, end_totals = first.peer(), second.peer(), last.peer()
    span = delta(first.status.get("server_now"), second.status.get("server_now"))
    frames = delta(a.get("frames"), b.get("frames"))
    cpu = delta(first.cpu_s, second.cpu_s)
    wall = second.mono - first.mono
    camera_at = end_totals.get("first_camera_at")
    return {
        "first_frame_rel_T_ms": ms(delta(start, first_frame)),
        "live_rel_T_ms": ms(delta(start, live)),
        "join_to_first_frame_ms": ms(delta(joined, first_frame)),
        "setup_steps_ms": setup_steps(joined, last_join, connected, first_frame),
        "joined_rel_T_ms": ms(delta(start, joined)),
        "left_rel_end_ms": None if left is None else ms(left - start - DURATION_S),
        "status_first_camera_rel_T_ms": ms(delta(start, camera_at)),
        "latency_p50_ms": end_totals.get("latency_p50_ms"),
        "latency_p95_ms": end_totals.get("latency_p95_ms"),
        "fps_live": round(frames / span, 2) if frames is not None and span else None,
        "freezes": end_totals.get("freezes"),
        "freezes_live": delta(a.get("freezes"), b.get("freezes")),
        "audio_frames": end_totals.get("audio_frames"),
        "agent_cpu_s_per_s": round(cpu / wall, 3) if cpu is not None and wall > 0 else None,
        "rejoins": record_room.get("rejoins"),
        # The server's own summary of the agents' periodic stats (peer ids left out).
        "server_media": {
            k: v for k, v in (record_room.get("media") or {}).items() if k != "last_at"
        },
    }


def run_scenario(width: int, height: int, index: int) -> Json:
    """One full run with fresh processes and data; everything is stopped and removed."""
    work = Path(tempfile.mkdtemp(prefix="bench-autostart-"))
    net: Network | None = None
    try:
        net = Network.create(work, ROOMS)
        net.serve.start()
        net.serve.wait_ready()
        names = [room for room, _, _ in ROOMS]
        for room in names:
            net.agent(room, width=width, height=height).start()
        wait_connected(net)
        at = time.time() + BOOK_AHEAD_S
        session_id = net.book(at, at + DURATION_S, names, lead=LEAD_S)
        booked = net.session(session_id)
        start = ts(booked["start"])
        assert start is not None
        end = start + DURATION_S
        log(f"run {index} {width}x{height}: session {session_id}, T in {start - time.time():.1f} s")
        paired = asyncio.run(paired_floor(width, height, start - LEAD_S - PAIRED_MARGIN_S))
        load_before = os.getloadavg()[0]
        serve_pid = net.serve.proc.pid if net.serve.proc is not None else 0
        samples: dict[str, list[Sample]] = {room: [] for room in names}
        serve_cpu: list[tuple[float | None, float]] = []
        machine: list[tuple[float, float | None]] = []  # (all CPUs busy, this process)
        for offset in (*SAMPLE_AT, TOTALS_AT):
            sleep_until(start + offset)
            machine.append((machine_busy_seconds(), cpu_seconds(os.getpid())))
            for room in names:
                samples[room].append(sample(net.agents[room]))
            serve_cpu.append((cpu_seconds(serve_pid), time.monotonic()))
        record = wait_ended(net, session_id, end)
        by_id = {r["room_id"]: r for r in record["rooms"]}
        joins = [ts(r["joined_at"]) for r in record["rooms"]]
        last_join = None if None in joins else max(j for j in joins if j is not None)
        rooms = {
            room: room_figures(
                by_id[net.rooms[room]],
                start,
                samples[room][0],
                samples[room][1],
                samples[room][2],
                last_join=last_join,
                connected=connected_at(net.agents[room].log(), session_id),
            )
            for room in names
        }
        violations = {room: net.agents[room].status().get("violations") for room in names}
        serve_delta = delta(serve_cpu[0][0], serve_cpu[1][0])
        serve_wall = serve_cpu[1][1] - serve_cpu[0][1]
        # CPU the rest of the machine used in the window: another test or demo running
        # beside the benchmark on these 2 cores shows here, and perturbs every figure.
        ours = [serve_delta, delta(machine[0][1], machine[1][1])] + [
            delta(samples[room][0].cpu_s, samples[room][1].cpu_s) for room in names
        ]
        other = machine[1][0] - machine[0][0] - sum(v or 0.0 for v in ours)
        other_per_s = round(max(other, 0.0) / serve_wall, 3)
        transitions = {t["state"]: ms(delta(start, ts(t["at"]))) for t in record["transitions"]}
        result: Json = {
            "run": index,
            "session_id": session_id,
            "T": booked["start"],
            "transitions_rel_T_ms": transitions,
            "serve_cpu_s_per_s": (
                round(serve_delta / serve_wall, 3) if serve_delta is not None else None
            ),
            "other_cpu_s_per_s": other_per_s,
            "contended": other_per_s > CONTENDED_OTHER_CPU,
            "loadavg_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
            "violations": violations,
            "rooms": rooms,
            "paired_floor": paired,
            "join_to_first_frame_p50_over_paired_floor": ratio(
                summary(f["join_to_first_frame_ms"] for f in rooms.values())["p50"],
                paired["offer_to_first_frame_ms"]["p50"],
            ),
            "join_to_first_frame_p50_over_paired_two_way_floor": ratio(
                summary(f["join_to_first_frame_ms"] for f in rooms.values())["p50"],
                paired["two_way_offer_to_first_frame_ms"]["p50"],
            ),
        }
        log(
            f"run {index} {width}x{height}: "
            + "; ".join(
                f"{room} live {f['live_rel_T_ms']} ms, join->first {f['join_to_first_frame_ms']}"
                f" ms, g2g p50 {f['latency_p50_ms']} ms, {f['fps_live']} fps"
                for room, f in rooms.items()
            )
            + f"; other CPU on the machine {other_per_s} s/s"
        )
        return result
    except Exception as exc:  # one failed run is reported, the others still count
        log(f"run {index} {width}x{height} FAILED: {exc}")
        if net is not None:
            for name, text in [("serve", net.serve.log())] + [
                (room, agent.log()) for room, agent in net.agents.items()
            ]:
                tail = "\n    ".join(text.splitlines()[-15:])
                log(f"  last lines of {name} log:\n    {tail}")
        return {"run": index, "error": f"{type(exc).__name__}: {exc}"}
    finally:
        if net is not None:
            net.stop_all()
            for agent in net.agents.values():
                agent.kill()
            net.serve.kill()
        shutil.rmtree(work, ignore_errors=True)


# --- aggregation and goals --------------------------------------------------------------

SETUP_STEPS = (
    "peer_wait",
    "last_join_to_connected",
    "connected_to_first_frame",
    "last_join_to_first_frame",
)
ROOM_FIGURES = (
    "first_frame_rel_T_ms",
    "live_rel_T_ms",
    "join_to_first_frame_ms",
    "latency_p50_ms",
    "latency_p95_ms",
    "fps_live",
    "freezes",
    "freezes_live",
    "agent_cpu_s_per_s",
)


def aggregate(runs: list[Json], floor: Json | None) -> Json:
    good = [r for r in runs if "rooms" in r]
    names = [room for room, _, _ in ROOMS]
    per_room = {
        room: {f: summary(r["rooms"][room][f] for r in good) for f in ROOM_FIGURES}
        for room in names
    }
    pooled = {f: summary(r["rooms"][room][f] for r in good for room in names) for f in ROOM_FIGURES}
    steps = {
        step: summary(r["rooms"][room]["setup_steps_ms"][step] for r in good for room in names)
        for step in SETUP_STEPS
    }
    floor_steps_p50 = (
        {k: v["p50"] for k, v in floor["steps_ms"].items()} if floor and "steps_ms" in floor else {}
    )
    floor_first = floor["offer_to_first_frame_ms"]["p50"] if floor else None
    floor_latency = floor["latency_p50_ms"] if floor else None
    join = pooled["join_to_first_frame_ms"]
    latency = pooled["latency_p50_ms"]
    live = pooled["live_rel_T_ms"]
    ratios = {
        "join_to_first_frame_p50_over_floor": ratio(join["p50"], floor_first),
        "join_to_first_frame_max_over_floor": ratio(join["max"], floor_first),
        "latency_p50_over_floor_p50": ratio(latency["p50"], floor_latency),
        "latency_p50_max_over_floor_p50": ratio(latency["max"], floor_latency),
        # Against raw aiortc sending both ways, as the session's rooms do (information:
        # the goals are stated against the one-way floor).
        "join_to_first_frame_p50_over_two_way_floor": ratio(
            join["p50"],
            floor["two_way_offer_to_first_frame_ms"]["p50"]
            if floor and "two_way_offer_to_first_frame_ms" in floor
            else None,
        ),
        # The call proper: from the later join (the offer) against the floor's offer.
        "last_join_to_first_frame_p50_over_floor": ratio(
            steps["last_join_to_first_frame"]["p50"], floor_first
        ),
        "last_join_to_connected_p50_over_floor_connected": ratio(
            steps["last_join_to_connected"]["p50"], floor_steps_p50.get("connected")
        ),
        "connected_to_first_frame_p50_over_floor": ratio(
            steps["connected_to_first_frame"]["p50"],
            floor_steps_p50.get("connected_to_first_frame"),
        ),
        "latency_p95_over_floor_p95": ratio(
            pooled["latency_p95_ms"]["p50"], floor["latency_p95_ms"] if floor else None
        ),
    }

    def met(check: Callable[[], bool], *needed: float | None) -> bool | None:
        return None if any(v is None for v in needed) else check()

    join_ratio = ratios["join_to_first_frame_p50_over_floor"]
    latency_ratio = ratios["latency_p50_over_floor_p50"]
    goals = [
        {
            "goal": "cameras live after the booked second: p50 <= 100 ms, max <= 250 ms",
            "p50_ms": live["p50"],
            "max_ms": live["max"],
            "met": met(
                lambda: live["p50"] <= GOAL_LIVE_P50_MS and live["max"] <= GOAL_LIVE_MAX_MS,
                live["p50"],
                live["max"],
            ),
        },
        {
            "goal": "join -> first decoded frame <= 2x floor (p50 of runs and rooms)",
            "p50_ms": join["p50"],
            "floor_p50_ms": floor_first,
            "ratio": join_ratio,
            "met": met(
                lambda: join_ratio is not None and join_ratio <= GOAL_JOIN_RATIO, join_ratio
            ),
        },
        {
            "goal": "join -> first decoded frame <= 1.5x floor (issue 12; p50 of runs and rooms)",
            "p50_ms": join["p50"],
            "floor_p50_ms": floor_first,
            "ratio": join_ratio,
            "met": met(
                lambda: join_ratio is not None and join_ratio <= GOAL_JOIN_RATIO_ISSUE_12,
                join_ratio,
            ),
        },
        {
            "goal": "glass-to-glass p50 <= 1.2x floor (stated for 720p30)",
            "p50_ms": latency["p50"],
            "floor_p50_ms": floor_latency,
            "ratio": latency_ratio,
            "met": met(
                lambda: latency_ratio is not None and latency_ratio <= GOAL_LATENCY_RATIO,
                latency_ratio,
            ),
        },
    ]
    paired_one = [v for r in good for v in r["paired_floor"]["offer_to_first_frame_ms"]["values"]]
    paired_two = [
        v for r in good for v in r["paired_floor"]["two_way_offer_to_first_frame_ms"]["values"]
    ]
    paired = {
        "offer_to_first_frame_ms": summary(paired_one),
        "two_way_offer_to_first_frame_ms": summary(paired_two),
        "join_to_first_frame_p50_over_paired_floor_p50": ratio(
            join["p50"], summary(paired_one)["p50"]
        ),
        "join_to_first_frame_p50_over_paired_two_way_floor_p50": ratio(
            join["p50"], summary(paired_two)["p50"]
        ),
        "per_run_ratio": summary(r["join_to_first_frame_p50_over_paired_floor"] for r in good),
        "per_run_two_way_ratio": summary(
            r["join_to_first_frame_p50_over_paired_two_way_floor"] for r in good
        ),
    }
    return {
        "runs_ok": len(good),
        "paired_floor": paired,
        "runs_failed": len(runs) - len(good),
        "contended_runs": [r["run"] for r in good if r["contended"]],
        "other_cpu_s_per_s": summary(r["other_cpu_s_per_s"] for r in good),
        "goals": goals,
        "ratios": ratios,
        "floor": {
            "offer_to_first_frame_ms_p50": floor_first,
            "latency_p50_ms": floor_latency,
            "latency_p95_ms": floor["latency_p95_ms"] if floor else None,
        },
        "all_rooms": pooled,
        "setup_steps_ms": {"rooms": steps, "floor_p50": floor_steps_p50},
        "rooms": per_room,
        "serve_cpu_s_per_s": summary(r["serve_cpu_s_per_s"] for r in good),
    }


# --- main -----------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/autostart",
        description="A booked two-room session starts by itself: timings, latency, frame "
        "rate and CPU, with raw aiortc floors from the same invocation.",
    )
    parser.add_argument("--runs", type=int, default=3, help="runs per resolution (default 3)")
    parser.add_argument(
        "--resolutions",
        default=DEFAULT_RESOLUTIONS,
        help=f"comma-separated WxH list (default {DEFAULT_RESOLUTIONS})",
    )
    parser.add_argument(
        "--floor-calls",
        type=int,
        default=FLOOR_CALLS,
        help=f"raw offer -> first frame calls per resolution (default {FLOOR_CALLS})",
    )
    parser.add_argument(
        "--quick", action="store_true", help="1 run at 640x360 (overrides --runs and --resolutions)"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.runs, args.resolutions = 1, "640x360"
    if args.runs < 1 or args.floor_calls < 1:
        parser.error("--runs and --floor-calls must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so the finally blocks stop the processes, remove the dirs.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    resolutions = [parse_resolution(r) for r in args.resolutions.split(",") if r.strip()]
    began = time.monotonic()
    floors = asyncio.run(measure_floors(resolutions, args.floor_calls))
    results: Json = {}
    for width, height in resolutions:
        key = f"{width}x{height}"
        runs = []
        for index in range(1, args.runs + 1):
            log(f"run {index}/{args.runs} at {key}")
            runs.append(run_scenario(width, height, index))
        results[key] = {**aggregate(runs, floors.get(key)), "raw_runs": runs}
        log(f"{key}: " + json.dumps(results[key]["goals"]))
    document = {
        "benchmark": "autostart",
        "scenario": {
            "rooms": [{"room": r, "centre": c, "zone": z} for r, c, z in ROOMS],
            "booked_ahead_s": BOOK_AHEAD_S,
            "lead_s": LEAD_S,
            "duration_s": DURATION_S,
            "fps_sent": FPS,
            "runs_per_resolution": args.runs,
            "fps_and_cpu_window_rel_T_s": list(SAMPLE_AT),
            "totals_read_at_rel_T_s": TOTALS_AT,
            "floor_offer_calls": args.floor_calls,
            "floor_latency_call_s": FLOOR_LATENCY_S,
        },
        "environment": versions(),
        "documented_floors": DOCUMENTED_FLOORS,
        "floors": floors,
        "results": results,
        "elapsed_s": round(time.monotonic() - began, 1),
    }
    print(compact_json(document))
    return 0


if __name__ == "__main__":
    sys.exit(main())
