"""Benchmark: two room agents in one long session; CPU, memory, latency, against raw aiortc.

Usage (from anywhere; the launcher cds to the repository root)::

    bench/agent [--minutes 10] [--width 1280 --height 720 --fps 30]
                [--floor-seconds 60] [--json-out FILE]

One JSON document goes to stdout (and to ``--json-out``), progress to stderr. Exit
status 1, with the reason and the last lines of its log on stderr, when an agent or
the server dies; Ctrl-C and SIGTERM stop every process it started and remove the
temporary data. A 10-minute run takes about 12.5 minutes; run it on a quiet machine
(see ``other_cpu_s_per_s`` and ``contended`` in the output).

The scenario (processes and booking as in bench/autostart, helpers in tests/e2e_support.py)
---------------------------------------------------------------------------------------------
A real ``telecentre serve`` on loopback with a fresh data directory, two rooms in two
centres, and one ``telecentre agent`` process per room sending its synthetic stamped
camera and tone at ``--width``x``--height``, ``--fps`` (aiortc's default codec, VP8).
Once both agents are connected a session is booked with the CLI: it starts at
T = now + 30 s with a lead of 5 s and lasts ``--minutes`` plus a 15 s margin, so the
measurement ends before the agents leave. Each agent sends one stream and receives one.

Every few seconds the bench checks that serve and both agents are alive, and reads each
agent's status file (room_agents.agent ``status()``: the screen's cumulative totals per
remote peer, latency from stamped frames against the server-corrected clock) together
with /proc/PID/stat (CPU) and /proc/PID/status (VmRSS). Figures per agent:

- ``cpu_s_per_s``: utime + stime over the window T + 10 s .. T + N min, per wall second.
- ``rss_mib_start`` / ``rss_mib_end`` / ``rss_growth_mib``: VmRSS at minute 1 (at half
  the session when it is shorter than 2 minutes; ``scenario.rss_start_rel_T_s``) and at
  minute N; ``rss_series_mib`` is every sample from T on, ``rss_growth_ok`` (top level)
  is whether every agent grew at most 20 MiB.
- ``latency_p50_ms`` / ``latency_p95_ms``: the screen's cumulative glass-to-glass at
  T + N min (the 5 s lead behind the starting card included: it is stamped too).
- ``fps``: frames received over the window, per second of the status file's own clock.
- ``freezes`` (cumulative at the end, W3C freezeCount rule) and ``freezes_window``.

``serve_cpu_s_per_s`` is the server over the same window; ``other_cpu_s_per_s`` is what
the rest of the machine used meanwhile (/proc/stat busy time minus serve, the agents and
this process); above 0.25 s/s the run is flagged ``contended`` (it still counts).

The floor (measured first, in the same invocation)
--------------------------------------------------
Two raw aiortc processes (this module with ``--floor-peer``), one call between them on
127.0.0.1: each sends ``OutgoingVideoTrack(SyntheticCamera)`` live plus the synthetic
tone at the same size and rate, straight into an RTCPeerConnection (no signalling
server, no MediaRelay, no schedule), and drains what it receives into a
``HeadlessScreen`` on ``time.time``; the SDP goes through this process's pipes. Per
peer: CPU over ``--floor-seconds`` after a 5 s warm-up, VmRSS at both ends, and the
same screen totals. Goals (/work/shared/PERFORMANCE.md): agent CPU per sent 720p30
stream <= 1.1x the floor; memory flat over 10 min (here: growth <= 20 MiB);
glass-to-glass p50 <= 1.2x the floor.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import selectors
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from bench.autostart import CONTENDED_OTHER_CPU, ms, ts, versions
from bench.measure import compact_json, cpu_seconds, machine_busy_seconds, ratio
from tests.e2e_support import ROOT, Managed, Network, base_env

Json = dict[str, Any]

ROOMS: tuple[tuple[str, str, str], ...] = (
    ("fontainebleau", "Fontainebleau", "Europe/Paris"),
    ("amsterdam", "Amsterdam", "Europe/Amsterdam"),
)
BOOK_AHEAD_S = 30.0  # T = booking time + this (the CLI is slow on a busy machine)
LEAD_S = 5
END_MARGIN_S = 15.0  # the session outlasts the measurement by this much
WARMUP_S = 10.0  # the CPU / fps window starts at T + this
SAMPLE_EVERY_S = 10.0  # status, CPU and RSS samples from T on
ALIVE_EVERY_S = 1.0
STALE_STATUS_S = 10.0  # an agent writes its status file twice a second  # how often the processes are checked between samples
FLOOR_WARMUP_S = 5.0
FLOOR_CONNECT_TIMEOUT_S = 30.0
RSS_GROWTH_LIMIT_MIB = 20.0
GOAL_CPU_RATIO = 1.1
GOAL_LATENCY_RATIO = 1.2
DOCUMENTED_FLOORS = {
    "agent_cpu_per_sent_720p30_stream_s_per_s": "VP8 0.34-0.44 in a real call; H.264 0.69-0.82",
    "glass_to_glass_720p30_p50_ms": "46-50 (33 of it aiortc's jitter buffer)",
}


class BenchError(Exception):
    """A process the bench depends on died or never got going: the run is void."""


def log(message: str) -> None:
    print(f"[bench/agent {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- /proc and status files ----------------------------------------------------------------


def rss_mib(pid: int) -> float | None:
    """VmRSS of a process in MiB; None once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return round(int(line.split()[1]) / 1024.0, 1)
    except OSError:
        return None
    return None


def read_json(path: Path) -> Json:
    try:
        data: Json = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data


def delta(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else b - a


def per_second(amount: float | None, seconds: float | None) -> float | None:
    return None if amount is None or not seconds else round(amount / seconds, 3)


def how_it_ended(code: int | None) -> str:
    if code is None:
        return "never started"
    return f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"


def tail(text: str, lines: int = 20) -> str:
    return "\n    ".join(text.splitlines()[-lines:])


@dataclass
class Reading:
    """One process at one instant: its status file (if any), CPU seconds, VmRSS."""

    mono: float
    status: Json
    cpu_s: float | None
    rss_mib: float | None

    def peers(self) -> dict[str, Json]:
        peers: dict[str, Json] = self.status.get("peers") or {}
        return peers

    def total(self, key: str) -> float | None:
        """``key`` summed over every remote peer seen (a rebuilt call may add one)."""
        values = [p[key] for p in self.peers().values() if p.get(key) is not None]
        return sum(values) if values else None

    def main_peer(self) -> Json:
        """The remote peer with the most stamped frames (latency is per peer)."""
        peers = list(self.peers().values())
        return max(peers, key=lambda p: p.get("stamped_frames") or 0) if peers else {}


def read(pid: int, status_path: Path | None) -> Reading:
    status = read_json(status_path) if status_path is not None else {}
    return Reading(time.monotonic(), status, cpu_seconds(pid), rss_mib(pid))


def media_figures(first: Reading, last: Reading, clock_key: str) -> Json:
    """Received video between two readings of the same process, and its totals at the end."""
    span = delta(first.status.get(clock_key), last.status.get(clock_key))
    frames = delta(first.total("frames"), last.total("frames"))
    peer = last.main_peer()
    return {
        "latency_p50_ms": peer.get("latency_p50_ms"),
        "latency_p95_ms": peer.get("latency_p95_ms"),
        "fps": per_second(frames, span),
        "frames": last.total("frames"),
        "stamped_frames": last.total("stamped_frames"),
        "camera_frames": last.total("camera_frames"),
        "audio_frames": last.total("audio_frames"),
        "freezes": last.total("freezes"),
        "freezes_window": delta(first.total("freezes"), last.total("freezes")),
        "remote_peers_seen": len(last.peers()),
    }


def cpu_figure(first: Reading, last: Reading) -> float | None:
    return per_second(delta(first.cpu_s, last.cpu_s), last.mono - first.mono)


def other_cpu(
    busy: tuple[float, float], ours: Sequence[float | None], wall: float
) -> tuple[float | None, bool | None]:
    """CPU seconds per second the rest of the machine used, and whether that is too much."""
    if wall <= 0:
        return None, None
    other = round(max(busy[1] - busy[0] - sum(v or 0.0 for v in ours), 0.0) / wall, 3)
    return other, other > CONTENDED_OTHER_CPU


# --- the floor: two raw aiortc processes --------------------------------------------------


class WallClock:
    def now(self) -> float:
        return time.time()


async def floor_peer(role: str, width: int, height: int, fps: int, status_path: Path) -> None:
    """One side of the raw call: SDP lines on stdin/stdout, status to ``status_path``,
    until stdin closes or SIGTERM/SIGINT."""
    from aiortc import RTCPeerConnection, RTCSessionDescription

    from room_agents.ice import pin_host_addresses, rtc_configuration
    from room_agents.media import (
        OutgoingVideoTrack,
        StartingCard,
        SyntheticAudioTrack,
        SyntheticCamera,
    )
    from room_agents.screen import HeadlessScreen

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    pin_host_addresses(["127.0.0.1"])
    clock = WallClock()
    video = OutgoingVideoTrack(
        SyntheticCamera(clock, width, height, fps, label=role),
        StartingCard(clock, width, height, fps, label=role),
        fps=fps,
    )
    video.set_live(True)
    audio = SyntheticAudioTrack()
    pc = RTCPeerConnection(rtc_configuration([]))
    screen = HeadlessScreen(clock)

    @pc.on("track")
    def on_track(track: Any) -> None:
        if track.kind == "video":
            screen.attach_video("remote", track)
        else:
            screen.attach_audio("remote", track)

    # stdin through the loop, not a reader thread: a thread blocked in readline would
    # keep a stopped peer alive (and idle) until the parent closed the pipe.
    stdin = asyncio.StreamReader(limit=1 << 20)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)

    async def read_line() -> str:
        return (await stdin.readline()).decode()

    def emit() -> None:
        sdp = pc.localDescription
        print(json.dumps({"sdp": sdp.sdp, "type": sdp.type}), flush=True)

    async def remote() -> RTCSessionDescription:
        line = await read_line()
        if not line:
            raise SystemExit("stdin closed before the remote description came")
        return RTCSessionDescription(**json.loads(line))

    try:
        pc.addTrack(video)
        pc.addTrack(audio)
        if role == "offer":
            await pc.setLocalDescription(await pc.createOffer())
            emit()
            await pc.setRemoteDescription(await remote())
        else:
            await pc.setRemoteDescription(await remote())
            await pc.setLocalDescription(await pc.createAnswer())
            emit()
        eof = asyncio.ensure_future(read_line())  # the parent closes stdin to stop us
        stopped = asyncio.ensure_future(stop.wait())
        tmp = status_path.with_suffix(".tmp")
        while not (eof.done() or stopped.done()):
            status = {
                "pid": os.getpid(),
                "now": time.time(),
                "state": pc.connectionState,
                "peers": screen.totals(),
            }
            tmp.write_text(json.dumps(status))
            os.replace(tmp, status_path)
            await asyncio.wait({eof, stopped}, timeout=0.5)
        stopped.cancel()
    finally:
        await screen.close()
        await pc.close()
        video.stop()
        audio.stop()


def run_floor_peer(args: argparse.Namespace) -> int:
    try:
        import uvloop

        runner: Callable[[Any], Any] = uvloop.run  # as the agent runs (room_agents.cli)
    except ImportError:
        runner = asyncio.run
    runner(floor_peer(args.floor_peer, args.width, args.height, args.fps, Path(args.status)))
    return 0


@dataclass
class FloorPeer:
    role: str
    status_path: Path
    log_path: Path
    proc: subprocess.Popen[str] | None = None
    log_file: IO[bytes] | None = field(default=None, repr=False)

    def start(self, width: int, height: int, fps: int) -> None:
        argv = [sys.executable, "-m", "bench.agent", "--floor-peer", self.role]
        argv += ["--width", str(width), "--height", str(height), "--fps", str(fps)]
        argv += ["--status", str(self.status_path)]
        self.log_file = open(self.log_path, "wb")  # closed in stop()
        self.proc = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=base_env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log_file,
            text=True,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def send(self, line: str) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(line)
        self.proc.stdin.flush()

    def receive(self, timeout: float) -> str:
        assert self.proc is not None and self.proc.stdout is not None
        out: list[str] = []
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            while time.monotonic() < deadline:
                if sel.select(timeout=0.2):
                    out.append(self.proc.stdout.readline())
                    break
                self.check()
        if not out or not out[0]:
            self.check()
            raise BenchError(f"floor peer {self.role} sent no description in {timeout:.0f} s")
        return out[0]

    def check(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise BenchError(
                f"floor peer {self.role} {how_it_ended(self.proc.returncode)}; "
                f"last lines of its log:\n    {tail(self.log())}"
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        proc = self.proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(OSError):
                if proc.stdin is not None:
                    proc.stdin.close()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        if proc is not None and proc.stdout is not None:
            proc.stdout.close()
        if self.log_file is not None:
            self.log_file.close()


def wait_for(
    what: str, condition: Callable[[], bool], timeout: float, check: Callable[[], None]
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        check()
        if time.monotonic() > deadline:
            raise BenchError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.2)


def measure_floor(work: Path, width: int, height: int, fps: int, seconds: float) -> Json:
    peers = [
        FloorPeer(role, work / f"floor-{role}.json", work / f"floor-{role}.log")
        for role in ("offer", "answer")
    ]
    offerer, answerer = peers

    def check() -> None:
        for peer in peers:
            peer.check()

    try:
        for peer in peers:
            peer.start(width, height, fps)
        answerer.send(offerer.receive(FLOOR_CONNECT_TIMEOUT_S))
        offerer.send(answerer.receive(FLOOR_CONNECT_TIMEOUT_S))
        wait_for(
            "the floor call's first frames both ways",
            lambda: all((read(p.pid, p.status_path).total("frames") or 0) > 0 for p in peers),
            FLOOR_CONNECT_TIMEOUT_S,
            check,
        )
        log(f"floor call up; warm-up {FLOOR_WARMUP_S:.0f} s, then {seconds:.0f} s measured")
        sleep_checking(time.monotonic() + FLOOR_WARMUP_S, check)
        busy0, own0 = machine_busy_seconds(), cpu_seconds(os.getpid())
        first = [read(p.pid, p.status_path) for p in peers]
        sleep_checking(time.monotonic() + seconds, check)
        busy1, own1 = machine_busy_seconds(), cpu_seconds(os.getpid())
        last = [read(p.pid, p.status_path) for p in peers]
        wall = last[0].mono - first[0].mono
        per_peer = {
            f"floor-{p.role}": {
                "cpu_s_per_s": cpu_figure(a, b),
                "rss_mib_start": a.rss_mib,
                "rss_mib_end": b.rss_mib,
                "rss_growth_mib": round_or_none(delta(a.rss_mib, b.rss_mib)),
                **media_figures(a, b, "now"),
            }
            for p, a, b in zip(peers, first, last, strict=True)
        }
        ours = [delta(a.cpu_s, b.cpu_s) for a, b in zip(first, last, strict=True)]
        other, contended = other_cpu((busy0, busy1), [*ours, delta(own0, own1)], wall)
        return {
            "window_s": round(wall, 1),
            "cpu_s_per_s": mean_of(v["cpu_s_per_s"] for v in per_peer.values()),
            "latency_p50_ms": mean_of(v["latency_p50_ms"] for v in per_peer.values()),
            "latency_p95_ms": mean_of(v["latency_p95_ms"] for v in per_peer.values()),
            "fps": mean_of(v["fps"] for v in per_peer.values()),
            "other_cpu_s_per_s": other,
            "contended": contended,
            "peers": per_peer,
        }
    except BenchError:
        for peer in peers:
            log(f"last lines of floor peer {peer.role} log:\n    {tail(peer.log())}")
        raise
    finally:
        for peer in peers:
            peer.stop()


# --- the session between two agents -------------------------------------------------------


def round_or_none(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


def mean_of(values: Iterator[float | None] | Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return round(statistics.fmean(present), 3) if present else None


def sleep_checking(until_mono: float, check: Callable[[], None]) -> None:
    """Sleep until the monotonic instant, checking the processes every second."""
    while True:
        check()
        left = until_mono - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(left, ALIVE_EVERY_S))


def check_alive(processes: dict[str, Managed]) -> None:
    for name, managed in processes.items():
        proc = managed.proc
        if proc is None or proc.poll() is not None:
            code = None if proc is None else proc.returncode
            raise BenchError(
                f"{name} {how_it_ended(code)} during the run; last lines of its log:\n"
                f"    {tail(managed.log())}"
            )


def wait_connected(net: Network, check: Callable[[], None], timeout: float = 30) -> None:
    def connected(path: Path) -> Callable[[], bool]:
        return lambda: bool(read_json(path).get("connected"))

    for room, agent in net.agents.items():
        wait_for(f"agent {room} to connect", connected(agent.status_path), timeout, check)


def run_session(work: Path, width: int, height: int, fps: int, minutes: float) -> Json:
    duration = minutes * 60.0
    rss_start_at = min(60.0, duration / 2)
    net = Network.create(work, ROOMS)
    names = [room for room, _, _ in ROOMS]
    processes: dict[str, Managed] = {"serve": net.serve}
    try:
        net.serve.start()

        def check() -> None:
            check_alive(processes)

        wait_for("serve to answer /healthz", healthy(net), 30, check)
        for room in names:
            agent = net.agent(room, width=width, height=height)
            agent.argv += ["--fps", str(fps)]
            agent.start()
            processes[f"agent {room}"] = agent
        wait_connected(net, check)
        at = time.time() + BOOK_AHEAD_S
        session_id = net.book(at, at + duration + END_MARGIN_S, names, lead=LEAD_S)
        start = ts(net.session(session_id)["start"])
        assert start is not None
        log(
            f"session {session_id}: T in {start - time.time():.1f} s, measuring "
            f"{minutes:g} min at {width}x{height} {fps} fps"
        )
        # Samples at T + 0, 10, 20 ... and at the three instants that matter.
        offsets = sorted(
            {*(k * SAMPLE_EVERY_S for k in range(int(duration // SAMPLE_EVERY_S) + 1))}
            | {WARMUP_S, rss_start_at, duration}
        )
        load_before = os.getloadavg()[0]
        mono_of_T = time.monotonic() + (start - time.time())
        pids = {room: net.agents[room].proc.pid for room in names}  # type: ignore[union-attr]
        serve_pid = net.serve.proc.pid  # type: ignore[union-attr]
        readings: dict[str, dict[float, Reading]] = {name: {} for name in [*names, "serve"]}
        machine: dict[float, tuple[float, float | None]] = {}
        for offset in offsets:
            sleep_checking(mono_of_T + offset, check)
            machine[offset] = (machine_busy_seconds(), cpu_seconds(os.getpid()))
            for room in names:
                status_path = net.agents[room].status_path
                age = time.time() - status_path.stat().st_mtime
                if age > STALE_STATUS_S:
                    raise BenchError(
                        f"agent {room} is alive but wrote no status for {age:.0f} s (stuck?); "
                        f"last lines of its log:\n    {tail(net.agents[room].log())}"
                    )
                readings[room][offset] = read(pids[room], status_path)
            readings["serve"][offset] = read(serve_pid, None)
            if offset and offset % 60 == 0:
                log(
                    f"T + {offset / 60:g} min: "
                    + ", ".join(f"{r} {readings[r][offset].rss_mib} MiB" for r in names)
                )
        record = net.session(session_id)
        agents: Json = {}
        for room in names:
            r = readings[room]
            first, last = r[WARMUP_S], r[duration]
            growth = delta(r[rss_start_at].rss_mib, last.rss_mib)
            agents[room] = {
                "pid": pids[room],
                "cpu_s_per_s": cpu_figure(first, last),
                "rss_mib_start": r[rss_start_at].rss_mib,
                "rss_mib_end": last.rss_mib,
                "rss_growth_mib": round_or_none(growth),
                "rss_growth_ok": growth is not None and growth <= RSS_GROWTH_LIMIT_MIB,
                **media_figures(first, last, "server_now"),
                "first_camera_rel_T_ms": ms(delta(start, last.main_peer().get("first_camera_at"))),
                "violations": last.status.get("violations"),
                "rss_series_mib": [r[o].rss_mib for o in offsets],
            }
        serve_first, serve_last = readings["serve"][WARMUP_S], readings["serve"][duration]
        ours = [
            delta(serve_first.cpu_s, serve_last.cpu_s),
            delta(machine[WARMUP_S][1], machine[duration][1]),
        ] + [delta(readings[r][WARMUP_S].cpu_s, readings[r][duration].cpu_s) for r in names]
        other, contended = other_cpu(
            (machine[WARMUP_S][0], machine[duration][0]),
            ours,
            serve_last.mono - serve_first.mono,
        )
        by_id = {room["room_id"]: room for room in record.get("rooms", [])}
        return {
            "session_id": session_id,
            "T": record.get("start"),
            "state_at_end": record.get("state"),
            "window_rel_T_s": [WARMUP_S, duration],
            "rss_start_rel_T_s": rss_start_at,
            "sample_offsets_rel_T_s": offsets,
            "serve_cpu_s_per_s": cpu_figure(serve_first, serve_last),
            "serve_rss_mib": [serve_first.rss_mib, serve_last.rss_mib],
            "other_cpu_s_per_s": other,
            "contended": contended,
            "loadavg_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
            "agents": agents,
            # The server's own summary of the agents' periodic stats reports.
            "server_media": {
                room: {
                    k: round(v, 3) if isinstance(v, float) else v
                    for k, v in (by_id.get(net.rooms[room], {}).get("media") or {}).items()
                    if k != "last_at"
                }
                for room in names
            },
        }
    finally:
        for agent in net.agents.values():
            agent.stop()
        net.serve.stop()
        for managed in processes.values():
            managed.kill()


def healthy(net: Network) -> Callable[[], bool]:
    def ready() -> bool:
        try:
            net.serve.get("/healthz")
        except OSError:
            return False
        return True

    return ready


# --- the document -------------------------------------------------------------------------


def goals(session: Json, floor: Json | None) -> tuple[Json, list[Json]]:
    agents = session["agents"]
    floor_cpu = floor["cpu_s_per_s"] if floor else None
    floor_p50 = floor["latency_p50_ms"] if floor else None
    floor_p95 = floor["latency_p95_ms"] if floor else None
    ratios = {
        room: {
            "cpu_over_floor": ratio(a["cpu_s_per_s"], floor_cpu),
            "latency_p50_over_floor": ratio(a["latency_p50_ms"], floor_p50),
            "latency_p95_over_floor": ratio(a["latency_p95_ms"], floor_p95),
            "fps_over_floor": ratio(a["fps"], floor["fps"] if floor else None),
        }
        for room, a in agents.items()
    }

    def worst(key: str) -> float | None:
        values: list[float] = [v for r in ratios.values() if (v := r[key]) is not None]
        return max(values) if values else None

    cpu, latency = worst("cpu_over_floor"), worst("latency_p50_over_floor")
    return ratios, [
        {
            "goal": f"agent CPU per sent stream <= {GOAL_CPU_RATIO}x floor (worst agent)",
            "ratio": cpu,
            "met": None if cpu is None else cpu <= GOAL_CPU_RATIO,
        },
        {
            "goal": f"resident memory growth <= {RSS_GROWTH_LIMIT_MIB:g} MiB (every agent)",
            "growth_mib": {room: a["rss_growth_mib"] for room, a in agents.items()},
            "met": all(a["rss_growth_ok"] for a in agents.values()),
        },
        {
            "goal": f"glass-to-glass p50 <= {GOAL_LATENCY_RATIO}x floor (worst agent)",
            "ratio": latency,
            "met": None if latency is None else latency <= GOAL_LATENCY_RATIO,
        },
    ]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/agent",
        description="Two room agents in one session for N minutes: CPU, resident memory, "
        "glass-to-glass latency, frame rate and freezes, with a raw aiortc floor.",
    )
    parser.add_argument("--minutes", type=float, default=10.0, help="session length (10)")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument(
        "--floor-seconds",
        type=float,
        default=60.0,
        help="how long the raw aiortc call is measured (60; 0 skips the floor)",
    )
    parser.add_argument("--json-out", type=Path, help="also write the JSON document here")
    parser.add_argument("--floor-peer", choices=("offer", "answer"), help=argparse.SUPPRESS)
    parser.add_argument("--status", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.floor_peer is None and args.minutes * 60 < 2 * WARMUP_S:
        parser.error(f"--minutes must be at least {2 * WARMUP_S / 60:g}")
    if args.floor_peer is not None and not args.status:
        parser.error("--floor-peer needs --status")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.floor_peer is not None:
        return run_floor_peer(args)
    # Ctrl-C unwinds even when started with SIGINT ignored (a shell's background job);
    # SIGTERM and SIGHUP unwind like it: the finally blocks stop every process.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: sys.exit(143))
    began = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="bench-agent-"))
    try:
        floor = None
        if args.floor_seconds > 0:
            log(f"floor: raw aiortc call at {args.width}x{args.height} {args.fps} fps")
            floor = measure_floor(work, args.width, args.height, args.fps, args.floor_seconds)
            log(
                f"floor: {floor['cpu_s_per_s']} CPU-s/s per peer, latency p50 "
                f"{floor['latency_p50_ms']} ms, {floor['fps']} fps"
            )
        session = run_session(work, args.width, args.height, args.fps, args.minutes)
    except BenchError as exc:
        log(f"FAILED: {exc}")
        return 1
    except KeyboardInterrupt:
        log("interrupted; every process stopped")
        return 130
    finally:
        shutil.rmtree(work, ignore_errors=True)
    ratios, goal_list = goals(session, floor)
    document = {
        "benchmark": "agent",
        "scenario": {
            "rooms": [{"room": r, "centre": c, "zone": z} for r, c, z in ROOMS],
            "width": args.width,
            "height": args.height,
            "fps_sent": args.fps,
            "minutes": args.minutes,
            "booked_ahead_s": BOOK_AHEAD_S,
            "lead_s": LEAD_S,
            "cpu_and_fps_window_rel_T_s": session.pop("window_rel_T_s"),
            "rss_start_rel_T_s": session.pop("rss_start_rel_T_s"),
            "sample_offsets_rel_T_s": session.pop("sample_offsets_rel_T_s"),
            "floor_seconds": args.floor_seconds,
            "codec": "aiortc default (VP8)",
        },
        "environment": versions(),
        "documented_floors": DOCUMENTED_FLOORS,
        "rss_growth_ok": all(a["rss_growth_ok"] for a in session["agents"].values()),
        "goals": goal_list,
        "ratios": ratios,
        "floor": floor,
        **session,
        "elapsed_s": round(time.monotonic() - began, 1),
    }
    text = compact_json(document, flat_scalar_lists=True)
    print(text)
    if args.json_out is not None:
        args.json_out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
