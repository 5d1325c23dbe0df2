"""Benchmark: the same rooms in a mesh and on the SFU (Janus), N = 2..6; where SFU wins.

Usage (as root: the Janus gathers on an interface of its own, tests/janus_support.py)::

    bench/sfu [--rooms 2,3,4,5,6] [--modes mesh,sfu] [--seconds 10] [--lead 8] [--fps 30]
              [--floor-seconds 8] [--margin 0.1] [--keep] [--out FILE]

One JSON document goes to stdout (and to ``--out``), progress to stderr. The defaults
take about 8 minutes on two cores; ``--fps`` (default the agents' 30) sends fewer frames,
``--keep`` keeps the logs.

The scenario
------------
A real Janus (Debian's, configured as deploy/janus/ ships it, started by
tests/sfu_support.janus_pool), a real ``telecentre serve`` process pointed at it, and
real ``telecentre agent`` processes (tests/e2e_support.Agent: 640x360, the synthetic
stamped camera at the agents' 30 fps), one room per centre, all on this machine. For
each N the two modes run back to back (a pair is read under the same load), each with a
serve of its own on the same data: ``mesh`` with ``mesh_cap`` 99 (every session a mesh),
``sfu`` with ``mesh_cap`` 1 (a session moves onto Janus when its second room joins: the
orchestrator does not plan sessions on the SFU yet, so the first joiner's mesh
membership and the move are part of the SFU set-up time). N agents are started afresh,
a session is booked at T = now + lead + 6 s (more when the database is slow), the
agents join by themselves at T - lead, and the figures are read over a steady window
from T + 2 s (``--seconds`` long). The session ends 2 s after the window; the agents are
stopped before the next point. Rooms, the booking and the session record are made and
read in this process with the CLI's own functions (``telecentre room add``, ``book``,
``session show``): a CLI process takes seconds to start on a loaded machine.

Figures per room (a point is one mode and one N)
------------------------------------------------
- ``cpu_pct``: the agent process's CPU time (/proc/PID/stat, all threads) over the
  window, in % of one core. ``janus_cpu_pct`` and ``serve_cpu_pct`` per point, the same
  for Janus and serve; ``janus_cpu_pct_per_room`` divides Janus' by N.
- ``uplink_kbps`` / ``downlink_kbps``: the agent's status file ``sent_bytes`` and
  ``received_bytes`` of the session (per connection: RTP, RTCP, DTLS), summed over its
  connections, over the window read against the status file's own ``server_now``.
  ``streams_sent``: connections sending at least a quarter of the busiest one's rate
  (and 20 kbit/s): N - 1 in a mesh, 1 on the SFU (a subscription sends only RTCP).
- ``fps_per_remote`` / ``fps_min``: decoded frames per second of each remote site.
- ``latency_p50_ms`` (median over the remote sites) / ``latency_p95_ms`` (worst):
  glass-to-glass from the frame stamps (room_agents/screen.py), the screen's cumulative
  totals at the window's end (card period and set-up included, as bench/autostart).
- ``setup_ms``: from the room's join (the session record's ``joined_at``, via
  ``telecentre session show``) to the first decoded frame of the last of its remote
  sites (the status file's per-peer ``first_frame_at``, server clock);
  ``setup_rel_T_ms``: that last first frame against T (negative: inside the lead time).

Per point, ``rooms_without_left_at`` counts the rooms whose leave the session record
lacks 10 s after the end (the server failed on it). ``other_cpu_s_per_s`` is what the
rest of the machine used in the window (/proc/stat busy time minus agents, Janus, serve
and this process): above 0.25 s/s a point is flagged ``contended``. ``busy_fraction`` is
the machine's busy time over its capacity: near 1 the 2 cores were saturated (the mesh
at N >= 3 on one 2-core machine is, at 640x360 30 fps: the
rooms of a real deployment each have a PC of their own), and CPU figures are capped.

The floor (this process, same invocation, before anything else starts)
-----------------------------------------------------------------------
Two bare aiortc RTCPeerConnections on loopback (host candidates pinned to 127.0.0.1, no
ICE servers, the agent's aiortc patches not installed), one sending the same stamped
640x360 source (room_agents.media, set live) and audio, the other decoding into a
HeadlessScreen: ``cpu_pct_per_stream`` (this process: one encode, one decode, both ends'
crypto), ``uplink_kbps`` (the sender's transport bytes), glass-to-glass p50 / p95 and fps,
over a steady window of ``--floor-seconds``.

Ratios, goals and the break-even
--------------------------------
``by_rooms`` gives, per N, the p50 over rooms of each figure for mesh and SFU, the ratios
SFU / mesh, and product / floor (per-room CPU over the floor's per-stream CPU; uplink in
floor streams). Goals from /work/shared/PERFORMANCE.md's SFU line: per-room uplink = 1
stream for any N (every SFU room's ``streams_sent`` is 1); glass-to-glass p50 on the SFU
<= mesh + 10 ms at every N; set-up inside the lead time (every SFU room's ``setup_ms``
<= lead). ``break_even``: the smallest N at which the SFU's per-room CPU or uplink is
lower than the mesh's by more than ``--margin`` (p50 over rooms), counted only where the
pair is ``comparable`` (neither point contended nor saturating the machine, both
delivering 80 % of the frame rate sent: a starved room's CPU and uplink are low because
it starved); sessions of that many rooms are better on the SFU, so the default
``mesh_cap`` (the largest mesh) is N - 1. ``n_by_streams_sent`` is the same rule on the
streams each room sends (N - 1 against 1), which no load changes.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.measure import cpu_seconds, emit, machine_busy_seconds, ratio, summary

Json = dict[str, Any]

WIDTH, HEIGHT, FPS = 640, 360, 30  # what the agents send (FPS: their default)
DEFAULT_ROOMS = "2,3,4,5,6"
MODES = ("mesh", "sfu")
MESH_CAP = {"mesh": 99, "sfu": 1}
LEAD_S = 8
BOOK_MARGIN_S = 6.0  # T = booking + lead + this: the schedule reaches the agents first
SETTLE_S = 2.0  # after T, before the window
WINDOW_S = 10.0
TAIL_S = 2.0  # the session ends this long after the window
FLOOR_S = 8.0
FLOOR_SETTLE_S = 2.0
BREAK_EVEN_MARGIN = 0.10
LATENCY_ALLOWANCE_MS = 10.0  # PERFORMANCE.md: glass-to-glass <= mesh + 10 ms
STREAM_SHARE = 0.25  # a connection sends a stream: >= this share of the busiest one
STREAM_MIN_KBPS = 20.0  # and at least this (RTCP alone is a few kbit/s)
CONTENDED_OTHER_CPU = 0.25
SATURATED = 0.95  # busy fraction of the machine's cores at which CPU figures are capped
COMPARABLE_FPS_SHARE = 0.8
LEFT_WAIT_S = 10.0  # after the end, for every room's leave to be recorded
SERVE_START_S = 90.0  # a loaded machine takes its time to import and migrate
MAX_ROOMS = 6
BOOKING_SECONDS: list[float] = []  # how long the last bookings took (the margin before T)
ROOMS: tuple[tuple[str, str, str], ...] = tuple(
    (f"room{i}", f"Centre {i}", "Europe/Paris") for i in range(1, MAX_ROOMS + 1)
)
FIGURES = (
    "cpu_pct",
    "uplink_kbps",
    "downlink_kbps",
    "streams_sent",
    "uplink_kbps_per_stream",
    "fps_min",
    "latency_p50_ms",
    "latency_p95_ms",
    "setup_ms",
    "setup_rel_T_ms",
)


def log(message: str) -> None:
    print(f"[sfu {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def rounded(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


def delta(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else b - a


# --- pure parts: one room's window, a point, the table, the break-even --------------------


@dataclass
class Sample:
    """What one agent's status file and /proc said at one instant."""

    status: Json
    cpu_s: float | None
    mono: float


def grown(before: Mapping[str, int], after: Mapping[str, int]) -> dict[str, int]:
    """Bytes each connection carried between two readings (a connection replaced in
    between starts from zero again)."""
    out: dict[str, int] = {}
    for conn, value in after.items():
        old = before.get(conn, 0)
        out[conn] = value - old if value >= old else value
    return out


def streams_sent(rates_kbps: Mapping[str, float]) -> int:
    """How many connections carry a stream the room sends (not just RTCP)."""
    if not rates_kbps:
        return 0
    top = max(rates_kbps.values())
    floor = max(top * STREAM_SHARE, STREAM_MIN_KBPS)
    return sum(1 for v in rates_kbps.values() if v >= floor)


def room_window(first: Sample, second: Sample, session_id: str) -> Json:
    """A room's figures over the window between two samples."""
    a, b = first.status, second.status
    span = delta(a.get("server_now"), b.get("server_now"))
    wall = second.mono - first.mono
    cpu = delta(first.cpu_s, second.cpu_s)

    def per_conn(key: str) -> dict[str, float]:
        if not span:
            return {}
        moved = grown(a.get(key, {}).get(session_id, {}), b.get(key, {}).get(session_id, {}))
        return {conn: n * 8 / 1000 / span for conn, n in moved.items()}

    sent, received = per_conn("sent_bytes"), per_conn("received_bytes")
    peers_a: Json = a.get("peers", {})
    peers_b: Json = b.get("peers", {})
    fps = {
        peer: rounded((t.get("frames", 0) - peers_a.get(peer, {}).get("frames", 0)) / span, 2)
        for peer, t in peers_b.items()
        if span
    }
    p50s = [t["latency_p50_ms"] for t in peers_b.values() if t.get("latency_p50_ms") is not None]
    p95s = [t["latency_p95_ms"] for t in peers_b.values() if t.get("latency_p95_ms") is not None]
    calls: list[str] = b.get("sessions", {}).get(session_id, [])
    return {
        "topology": "sfu" if "sfu" in calls else "mesh",
        "connections": len(calls),
        "cpu_pct": rounded(cpu / wall * 100) if cpu is not None and wall > 0 else None,
        "uplink_kbps": rounded(sum(sent.values())) if span else None,
        "downlink_kbps": rounded(sum(received.values())) if span else None,
        "uplink_kbps_per_connection": {k: rounded(v) for k, v in sent.items()},
        "streams_sent": streams_sent(sent),
        "uplink_kbps_per_stream": (
            rounded(sum(sent.values()) / streams_sent(sent)) if streams_sent(sent) else None
        ),
        "fps_per_remote": fps,
        "fps_min": min((v for v in fps.values() if v is not None), default=None),
        "latency_p50_ms": rounded(statistics.median(p50s)) if p50s else None,
        "latency_p95_ms": rounded(max(p95s)) if p95s else None,
    }


def room_setup(
    joined_at: float | None, status: Json, remotes: int, start: float, lead_s: float
) -> Json:
    """From the room's join to the first frame of the last of its ``remotes`` remote
    sites (None while one has not arrived), and that instant against T."""
    firsts = [
        t.get("first_frame_at") for t in status.get("peers", {}).values() if t.get("first_frame_at")
    ]
    last = max(firsts) if firsts and len(firsts) >= remotes else None
    setup = delta(joined_at, last)
    return {
        "setup_ms": rounded(None if setup is None else setup * 1000),
        "setup_rel_T_ms": rounded(None if last is None else (last - start) * 1000),
        "joined_rel_T_ms": rounded(None if joined_at is None else (joined_at - start) * 1000),
        "inside_lead": None if last is None else last <= start,
        "lead_s": lead_s,
    }


def point_summary(rooms: Mapping[str, Json]) -> Json:
    """Each figure over the point's rooms: p50, min, max."""
    return {f: summary((r.get(f) for r in rooms.values()), 1) for f in FIGURES}


def p50(point: Json | None, figure: str) -> float | None:
    if point is None or "summary" not in point:
        return None
    value: float | None = point["summary"][figure]["p50"]
    return value


def worst(point: Json | None, figure: str) -> float | None:
    if point is None or "summary" not in point:
        return None
    value: float | None = point["summary"][figure]["max"]
    return value


def comparable(mesh: Json | None, sfu: Json | None, fps: float) -> bool:
    """Whether a mesh and an SFU point can be compared: neither disturbed by the rest
    of the machine, neither saturating it, and both delivering 80 % of the frame rate
    sent to every room (a starved room's CPU and uplink are low because it starved)."""
    for side in (mesh, sfu):
        if side is None or "error" in side:
            return False
        if side.get("contended") or (side.get("busy_fraction") or 0.0) >= SATURATED:
            return False
        if side.get("fps_min") is None or side["fps_min"] < COMPARABLE_FPS_SHARE * fps:
            return False
    return True


def by_rooms(points: Sequence[Json], floor: Json | None, fps: float = FPS) -> Json:
    """Per N: mesh and SFU side by side (p50 over rooms), SFU / mesh, product / floor."""
    table: Json = {}
    counts = sorted({p["n"] for p in points})
    floor_cpu = floor.get("cpu_pct_per_stream") if floor else None
    floor_up = floor.get("uplink_kbps") if floor else None
    floor_latency = floor.get("latency_p50_ms") if floor else None
    for n in counts:
        side: dict[str, Json | None] = {
            mode: next((p for p in points if p["n"] == n and p["mode"] == mode), None)
            for mode in MODES
        }
        row: Json = {}
        for mode, point in side.items():
            if point is None or "summary" not in point:
                row[mode] = None if point is None else {"error": point.get("error")}
                continue
            row[mode] = {
                "cpu_pct": p50(point, "cpu_pct"),
                "uplink_kbps": p50(point, "uplink_kbps"),
                "downlink_kbps": p50(point, "downlink_kbps"),
                "streams_sent_p50": p50(point, "streams_sent"),
                "streams_sent_max": worst(point, "streams_sent"),
                "uplink_kbps_per_stream": p50(point, "uplink_kbps_per_stream"),
                "fps_min": point["summary"]["fps_min"]["min"],
                "latency_p50_ms": p50(point, "latency_p50_ms"),
                "latency_p95_ms": worst(point, "latency_p95_ms"),
                "setup_ms_p50": p50(point, "setup_ms"),
                "setup_ms_max": worst(point, "setup_ms"),
                "janus_cpu_pct": point.get("janus_cpu_pct"),
                "serve_cpu_pct": point.get("serve_cpu_pct"),
                "busy_fraction": point.get("busy_fraction"),
                "contended": point.get("contended"),
                "cpu_over_floor_stream": ratio(p50(point, "cpu_pct"), floor_cpu),
                "uplink_in_floor_streams": ratio(p50(point, "uplink_kbps"), floor_up),
                "latency_p50_over_floor": ratio(p50(point, "latency_p50_ms"), floor_latency),
            }
        mesh, sfu = side["mesh"], side["sfu"]
        latency_mesh, latency_sfu = p50(mesh, "latency_p50_ms"), p50(sfu, "latency_p50_ms")
        row["sfu_over_mesh"] = {
            "cpu_pct": ratio(p50(sfu, "cpu_pct"), p50(mesh, "cpu_pct")),
            "uplink_kbps": ratio(p50(sfu, "uplink_kbps"), p50(mesh, "uplink_kbps")),
            "downlink_kbps": ratio(p50(sfu, "downlink_kbps"), p50(mesh, "downlink_kbps")),
            "setup_ms": ratio(p50(sfu, "setup_ms"), p50(mesh, "setup_ms")),
            "latency_p50_minus_mesh_ms": rounded(delta(latency_mesh, latency_sfu)),
        }
        row["comparable"] = comparable(row["mesh"], row["sfu"], fps)
        table[str(n)] = row
    return table


def lower(sfu: float | None, mesh: float | None, margin: float) -> bool:
    return sfu is not None and mesh is not None and sfu < mesh * (1 - margin)


def break_even(table: Mapping[str, Json], margin: float) -> Json:
    """The smallest N at which the SFU's per-room CPU or uplink is below the mesh's by
    more than ``margin``; the default mesh_cap (the largest mesh) is one less."""

    def first(check: Callable[[Json, Json], bool], measured: bool = True) -> int | None:
        for key in sorted(table, key=int):
            mesh, sfu = table[key].get("mesh"), table[key].get("sfu")
            if not mesh or not sfu or "error" in mesh or "error" in sfu:
                continue
            if measured and not table[key].get("comparable", True):
                continue
            if check(mesh, sfu):
                return int(key)
        return None

    by_cpu = first(lambda m, s: lower(s["cpu_pct"], m["cpu_pct"], margin))
    by_uplink = first(lambda m, s: lower(s["uplink_kbps"], m["uplink_kbps"], margin))
    by_streams = first(
        lambda m, s: lower(s["streams_sent_p50"], m["streams_sent_p50"], margin), measured=False
    )
    either = min((n for n in (by_cpu, by_uplink) if n is not None), default=None)
    return {
        "rule": "smallest N where the SFU's per-room CPU or uplink (p50 over rooms) is "
        f"below the mesh's by more than {round(margin * 100)} %, at an N where the two "
        "are comparable (see by_rooms' comparable); mesh_cap = N - 1",
        "comparable_n": [int(k) for k in sorted(table, key=int) if table[k].get("comparable")],
        "n": either,
        "n_by_cpu": by_cpu,
        "n_by_uplink": by_uplink,
        # Streams sent, whatever rate each runs at and however loaded the machine.
        "n_by_streams_sent": by_streams,
        "mesh_cap": None if either is None else max(either - 1, 1),
        "mesh_cap_by_cpu": None if by_cpu is None else max(by_cpu - 1, 1),
        "mesh_cap_by_streams_sent": None if by_streams is None else max(by_streams - 1, 1),
    }


def goals(points: Sequence[Json], table: Mapping[str, Json], lead_s: float) -> list[Json]:
    """PERFORMANCE.md's SFU line, read off the points."""
    sfu_points = [p for p in points if p["mode"] == "sfu" and "rooms" in p]
    streams = [r["streams_sent"] for p in sfu_points for r in p["rooms"].values()]
    setups = [r["setup_ms"] for p in sfu_points for r in p["rooms"].values()]
    latency = {
        n: row["sfu_over_mesh"]["latency_p50_minus_mesh_ms"]
        for n, row in table.items()
        if row["sfu_over_mesh"]["latency_p50_minus_mesh_ms"] is not None
    }
    return [
        {
            "goal": "per-room uplink = 1 stream for any N (every SFU room sends one stream)",
            "streams_sent": summary(streams, 1),
            "met": (all(s == 1 for s in streams) if streams else None),
        },
        {
            "goal": f"glass-to-glass p50 on the SFU <= mesh + {LATENCY_ALLOWANCE_MS:g} ms",
            "sfu_minus_mesh_ms_by_n": latency,
            "met": (all(v <= LATENCY_ALLOWANCE_MS for v in latency.values()) if latency else None),
        },
        {
            "goal": "setup inside the lead time (every SFU room's join -> last remote's "
            "first frame <= lead)",
            "lead_ms": lead_s * 1000,
            "setup_ms": summary(setups, 1),
            "met": (
                None if not setups else all(s is not None and s <= lead_s * 1000 for s in setups)
            ),
        },
    ]


def report(
    points: Sequence[Json], floor: Json | None, scenario: Json, margin: float, lead_s: float
) -> Json:
    table = by_rooms(points, floor, scenario.get("fps_sent", FPS))
    return {
        "benchmark": "sfu",
        "scenario": scenario,
        "floor": floor,
        "by_rooms": table,
        "break_even": break_even(table, margin),
        "goals": goals(points, table, lead_s),
        "points": list(points),
    }


# --- the floor: two bare aiortc peer connections in this process -------------------------


class WallClock:
    def now(self) -> float:
        return time.time()


async def floor_stream(width: int, height: int, seconds: float, fps: int = FPS) -> Json:
    """One stamped stream between two bare aiortc peers on loopback: this process's CPU
    per stream, the sender's uplink and glass-to-glass over a steady window."""
    from aiortc import RTCPeerConnection

    from room_agents.calls import transport_bytes
    from room_agents.ice import pin_host_addresses, rtc_configuration, unpin_host_addresses
    from room_agents.ice_pacing import check_pacing_installed
    from room_agents.jitter import marker_release_installed
    from room_agents.media import (
        OutgoingVideoTrack,
        StartingCard,
        SyntheticAudioTrack,
        SyntheticCamera,
    )
    from room_agents.screen import HeadlessScreen

    if check_pacing_installed() or marker_release_installed():
        raise RuntimeError("the floor must run on unpatched aiortc and aioice")
    clock = WallClock()
    loop = asyncio.get_running_loop()
    video = OutgoingVideoTrack(
        SyntheticCamera(clock, width, height, fps, label="floor"),
        StartingCard(clock, width, height, fps, label="floor"),
        fps=fps,
    )
    video.set_live(True)
    audio = SyntheticAudioTrack()
    pin_host_addresses(["127.0.0.1"])
    caller = RTCPeerConnection(rtc_configuration([]))
    callee = RTCPeerConnection(rtc_configuration([]))
    screen = HeadlessScreen(clock)
    first: asyncio.Future[float] = loop.create_future()

    def on_first(_peer: str, at: float) -> None:
        if not first.done():
            first.set_result(at)

    screen.on_first_frame = on_first

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
        await asyncio.sleep(FLOOR_SETTLE_S)
        cpu0, busy0, mono0 = cpu_seconds(os.getpid()), machine_busy_seconds(), time.monotonic()
        sent0 = transport_bytes(caller)[1]
        frames0 = screen.totals()["caller"]["frames"] or 0
        await asyncio.sleep(seconds)
        wall = time.monotonic() - mono0
        cpu = delta(cpu0, cpu_seconds(os.getpid()))
        other = machine_busy_seconds() - busy0 - (cpu or 0.0)
        totals = screen.totals()["caller"]
        return {
            "offer_to_first_frame_ms": rounded((first_at - started) * 1000),
            "cpu_pct_per_stream": rounded(cpu / wall * 100) if cpu is not None else None,
            "uplink_kbps": rounded((transport_bytes(caller)[1] - sent0) * 8 / 1000 / wall),
            "fps": rounded(((totals["frames"] or 0) - frames0) / wall, 2),
            "latency_p50_ms": totals["latency_p50_ms"],
            "latency_p95_ms": totals["latency_p95_ms"],
            "window_s": rounded(wall, 2),
            "other_cpu_s_per_s": round(max(other, 0.0) / wall, 3),
            "contended": max(other, 0.0) / wall > CONTENDED_OTHER_CPU,
        }
    finally:
        await screen.close()
        await caller.close()
        await callee.close()
        video.stop()
        audio.stop()
        unpin_host_addresses()


def quieter(first: Json, second: Json) -> Json:
    """Of two floor measurements, the one the rest of the machine disturbed less."""
    return first if first["other_cpu_s_per_s"] <= second["other_cpu_s_per_s"] else second


# --- the scenario with real processes ----------------------------------------------------


class Desk:
    """The service's database, driven in this process the way the CLI drives it
    (``telecentre room add``, ``book``, ``session show``: the same functions): a CLI call
    is a fresh Python process, seconds each on a loaded machine, and a booking must
    reach the rooms before T - lead."""

    def __init__(self, data_dir: Path) -> None:
        from web.cli.base import open_database

        self.db = open_database(argparse.Namespace(data_dir=str(data_dir)))

    def close(self) -> None:
        self.db.close_sync()

    def make_rooms(self, rooms: Sequence[tuple[str, str, str]]) -> dict[str, tuple[str, str]]:
        """One centre per room; room name -> (room id, key)."""
        from orchestrator.centres import add_centre, add_room

        def work(s: Any) -> dict[str, tuple[str, str]]:
            made: dict[str, tuple[str, str]] = {}
            for room, centre_name, zone in rooms:
                centre = add_centre(s, centre_name, zone)
                added, key = add_room(s, centre.id, room)
                made[room] = (added.id, key)
            return made

        made: dict[str, tuple[str, str]] = self.db.run_sync(work)
        return made

    def book(self, start: float, end: float, room_ids: Sequence[str], lead: int) -> str:
        from datetime import UTC, datetime

        from orchestrator.clock import SystemClock, instant
        from orchestrator.desk import door

        now = instant(SystemClock())

        def work(s: Any) -> str:
            zone = door.zone_for(s, list(room_ids))
            request = door.at_instants(
                "bench/sfu",
                list(room_ids),
                datetime.fromtimestamp(start, UTC),
                datetime.fromtimestamp(end, UTC),
                zone,
                lead_seconds=lead,
            )
            result = door.book(s, request, None, now=now)
            session_id: str = result.session_ids[0]
            return session_id

        session_id: str = self.db.run_sync(work)
        return session_id

    def session(self, session_id: str) -> Json:
        from orchestrator.sessions import readiness
        from orchestrator.sessions.detail import session_detail
        from web.api_json import session_detail_json

        def work(s: Any) -> Json:
            detail = session_detail(s, session_id)
            data: Json = session_detail_json(detail, readiness.for_session(s, session_id))
            return data

        record: Json = self.db.run_sync(work)
        return record


def serve_env(janus: Any, keys: Any, mesh_cap: int) -> dict[str, str]:
    """serve's settings (TELECENTRE_* variables) for one Janus and a mesh cap."""
    return {
        "TELECENTRE_MESH_CAP": str(mesh_cap),
        "TELECENTRE_MESH_LIMIT": str(mesh_cap),
        "TELECENTRE_JANUS_URLS": janus.url,
        "TELECENTRE_JANUS_ADMIN_URLS": janus.admin_url,
        "TELECENTRE_JANUS_ADMIN_SECRET": keys.admin_secret,
        "TELECENTRE_JANUS_API_SECRET": keys.api_secret,
        "TELECENTRE_JANUS_ROOM_ADMIN_KEY": keys.admin_key,
        "TELECENTRE_CANDIDATE_NETWORKS": f"127.0.0.1/32,{janus.ice_address}/32",
    }


def sleep_until(instant: float) -> None:
    """Sleep until the wall-clock ``instant`` (the scenario runs on the wall clock)."""
    remaining = instant - time.time()
    if remaining > 0:
        time.sleep(remaining)


def ts(value: str | None) -> float | None:
    from datetime import datetime

    return datetime.fromisoformat(value).timestamp() if value else None


@dataclass
class Options:
    counts: list[int]
    modes: list[str]
    window_s: float
    lead_s: int
    floor_s: float
    margin: float
    keep: bool = False
    fps: int = FPS


def online(agent: Any) -> Callable[[], bool]:
    return lambda: bool(agent.status().get("connected"))


def pid_of(process: Any) -> int:
    """The pid of a started tests/e2e_support.Managed process."""
    assert process.proc is not None, "not started"
    pid: int = process.proc.pid
    return pid


@dataclass
class World:
    """What every point shares: the work directory, the database, the rooms, serve."""

    work: Path
    desk: Desk
    rooms: dict[str, str]  # name -> room id
    key_files: dict[str, Path]
    serve: Any = None  # tests/e2e_support.Serve, one per mode


def run_point(net: World, janus_pid: int, mode: str, n: int, options: Options) -> Json:
    """One session of ``n`` rooms in ``mode``: fresh agents, booked, measured, ended."""
    from tests.e2e_support import Agent, wait_until

    names = [room for room, _, _ in ROOMS[:n]]
    directory = net.work / f"{mode}-{n}"
    agents = {
        name: Agent.make(
            directory, name, net.serve.url, net.key_files[name], width=WIDTH, height=HEIGHT
        )
        for name in names
    }
    if options.fps != FPS:
        for agent in agents.values():
            agent.argv += ["--fps", str(options.fps)]
    try:
        for agent in agents.values():
            agent.start()
        for name, agent in agents.items():
            wait_until(f"{name} online", online(agent), 60)
        # On a loaded machine a booking (a database write) can take seconds: T leaves
        # room for a few of them before T - lead.
        margin = (
            max(BOOK_MARGIN_S, 3 * BOOKING_SECONDS[-1] + 2) if BOOKING_SECONDS else BOOK_MARGIN_S
        )
        start = float(math.ceil(time.time() + options.lead_s + margin))
        duration = SETTLE_S + options.window_s + TAIL_S
        called = time.monotonic()
        session_id = net.desk.book(
            start, start + duration, [net.rooms[k] for k in names], options.lead_s
        )
        BOOKING_SECONDS.append(time.monotonic() - called)
        late = time.time() > start - options.lead_s
        log(
            f"{mode} N={n}: session {session_id}, T in {start - time.time():.1f} s"
            + (" (booked late: the rooms join after T - lead)" if late else "")
        )
        sleep_until(start + SETTLE_S)

        def take() -> tuple[dict[str, Sample], float | None, float | None, float, float | None]:
            samples = {
                name: Sample(a.status(), cpu_seconds(pid_of(a)), time.monotonic())
                for name, a in agents.items()
            }
            return (
                samples,
                cpu_seconds(janus_pid),
                cpu_seconds(pid_of(net.serve)),
                machine_busy_seconds(),
                cpu_seconds(os.getpid()),
            )

        before = take()
        mono0 = time.monotonic()
        sleep_until(start + SETTLE_S + options.window_s)
        after = take()
        wall = time.monotonic() - mono0
        record = net.desk.session(session_id)
        booked_start = ts(record["start"])
        joined = {r["room_id"]: ts(r["joined_at"]) for r in record["rooms"]}
        rooms: Json = {}
        for name in names:
            figures = room_window(before[0][name], after[0][name], session_id)
            figures.update(
                room_setup(
                    joined.get(net.rooms[name]), after[0][name].status, n - 1, start, options.lead_s
                )
            )
            rooms[name] = figures
        janus_cpu = delta(before[1], after[1])
        serve_cpu = delta(before[2], after[2])
        agents_cpu = sum(delta(before[0][k].cpu_s, after[0][k].cpu_s) or 0.0 for k in names)
        ours = (
            agents_cpu
            + (janus_cpu or 0.0)
            + (serve_cpu or 0.0)
            + (delta(before[4], after[4]) or 0.0)
        )
        busy = after[3] - before[3]
        other = max(busy - ours, 0.0) / wall
        cpus = os.cpu_count() or 1
        point: Json = {
            "mode": mode,
            "n": n,
            "session_id": session_id,
            "window_s": round(wall, 2),
            "booked_late": late,
            "booked_ahead_s": round(margin + options.lead_s, 1),
            "topologies": sorted({r["topology"] for r in rooms.values()}),
            "janus_cpu_pct": rounded(janus_cpu / wall * 100) if janus_cpu is not None else None,
            "janus_cpu_pct_per_room": (
                rounded(janus_cpu / wall * 100 / n) if janus_cpu is not None else None
            ),
            "serve_cpu_pct": rounded(serve_cpu / wall * 100) if serve_cpu is not None else None,
            "busy_fraction": round(busy / wall / cpus, 3),
            "other_cpu_s_per_s": round(other, 3),
            "contended": other > CONTENDED_OTHER_CPU,
            "summary": point_summary(rooms),
            "rooms": rooms,
        }
        if booked_start is None or abs(booked_start - start) > 0.5:
            point["warning_start"] = f"the session starts at {record['start']}, not {start}"
        if point["topologies"] != [mode]:
            point["warning"] = f"rooms ran on {point['topologies']}, not {mode}"
        ended = wait_until(
            "the session ended",
            lambda: (lambda r: r if r["state"] == "ended" else None)(net.desk.session(session_id)),
            max(30.0, start + duration - time.time() + 30),
            interval=0.5,
        )
        # Every room leaves at the end (recorded a moment after the state); a leave the
        # server failed on is never recorded.
        try:
            ended = wait_until(
                "every room's leave recorded",
                lambda: (lambda r: r if all(x["left_at"] for x in r["rooms"]) else None)(
                    net.desk.session(session_id)
                ),
                LEFT_WAIT_S,
                interval=0.5,
            )
        except AssertionError:
            ended = net.desk.session(session_id)
        point["rooms_without_left_at"] = sum(1 for r in ended["rooms"] if not r["left_at"])
        s = point["summary"]
        log(
            f"{mode} N={n}: cpu {s['cpu_pct']['p50']} %, up {s['uplink_kbps']['p50']} kbit/s, "
            f"down {s['downlink_kbps']['p50']} kbit/s, g2g {s['latency_p50_ms']['p50']} ms, "
            f"setup max {s['setup_ms']['max']} ms, janus {point['janus_cpu_pct']} %, "
            f"machine busy {point['busy_fraction']}, other {point['other_cpu_s_per_s']} s/s"
        )
        return point
    except Exception as exc:  # one failed point is reported, the others still count
        log(f"{mode} N={n} FAILED: {type(exc).__name__}: {exc}")
        for name, agent in agents.items():
            tail = "\n    ".join(agent.log().splitlines()[-10:])
            log(f"  last lines of {name}'s log:\n    {tail}")
        return {"mode": mode, "n": n, "error": f"{type(exc).__name__}: {exc}"}
    finally:
        for agent in agents.values():
            agent.stop()
            agent.kill()


def serve_and_run(net: World, janus_pid: int, mode: str, n: int, options: Options) -> Json:
    """The point, once serve answers (a serve that does not start is the point's error)."""
    try:
        net.serve.wait_ready(SERVE_START_S)
    except AssertionError as exc:
        tail = "\n    ".join(net.serve.log().splitlines()[-15:])
        log(f"{mode} N={n}: serve did not start: {exc}\n    {tail}")
        return {"mode": mode, "n": n, "error": f"serve: {exc}"}
    return run_point(net, janus_pid, mode, n, options)


def run(options: Options) -> tuple[list[Json], Json]:
    """Janus, the rooms, then every point with its own serve; all stopped and removed."""
    from tests.e2e_support import Serve, base_env, free_port
    from tests.sfu_support import PoolSecrets, janus_pool

    work = Path(tempfile.mkdtemp(prefix="bench-sfu-"))
    points: list[Json] = []
    janus_info: Json = {}
    try:
        keys = PoolSecrets()
        with janus_pool(work / "janus", 1, keys) as pool:
            janus = pool[0]
            janus_info = {"url": janus.url, "ice_address": janus.ice_address}
            log(f"Janus at {janus.url}, gathering on {janus.ice_address}; making the rooms")
            data = work / "data"
            desk = Desk(data)
            made = desk.make_rooms(ROOMS[: max(options.counts)])
            net = World(work, desk, {k: v[0] for k, v in made.items()}, {})
            for name, (_room_id, key) in made.items():
                net.key_files[name] = work / f"{name}.key"
                net.key_files[name].write_text(key + "\n")
                net.key_files[name].chmod(0o600)
            # Mesh and SFU of one N run back to back (serve restarted with the other
            # mesh cap), so that a pair is read under the same load of the machine.
            for n in options.counts:
                for mode in options.modes:
                    net.serve = Serve.make(data, free_port())
                    net.serve.env = base_env(**serve_env(janus, keys, MESH_CAP[mode]))
                    net.serve.start()
                    try:
                        points.append(serve_and_run(net, janus.pid, mode, n, options))
                    finally:
                        net.serve.stop()
                        net.serve.kill()
            desk.close()
    finally:
        if options.keep:
            log(f"kept the logs and data in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return points, janus_info


def versions() -> Json:
    from bench.autostart import versions as library_versions

    found: Json = library_versions()
    found["loadavg_1m"] = round(os.getloadavg()[0], 2)
    return found


def parse_counts(text: str) -> list[int]:
    counts = sorted({int(v) for v in text.split(",") if v.strip()})
    if not counts or counts[0] < 2 or counts[-1] > MAX_ROOMS:
        raise ValueError(f"room counts are between 2 and {MAX_ROOMS}")
    return counts


def parse_args(argv: Sequence[str] | None = None) -> tuple[Options, Path | None]:
    parser = argparse.ArgumentParser(
        prog="bench/sfu",
        description="The same N rooms in a mesh and on Janus: per-room CPU, uplink, "
        "glass-to-glass and set-up, against raw aiortc in the same run; the break-even N.",
    )
    parser.add_argument(
        "--rooms", default=DEFAULT_ROOMS, help=f"N values (default {DEFAULT_ROOMS})"
    )
    parser.add_argument("--modes", default="mesh,sfu", help="mesh, sfu or both (default both)")
    parser.add_argument("--seconds", type=float, default=WINDOW_S, help="window per point")
    parser.add_argument("--lead", type=int, default=LEAD_S, help="the sessions' lead (s)")
    parser.add_argument("--floor-seconds", type=float, default=FLOOR_S)
    parser.add_argument("--margin", type=float, default=BREAK_EVEN_MARGIN)
    parser.add_argument("--out", type=Path)
    parser.add_argument(
        "--fps",
        type=int,
        default=FPS,
        help=f"frames per second the rooms send (default {FPS}, the agents' own); fewer "
        "keep the 2 cores from saturating at larger N",
    )
    parser.add_argument("--keep", action="store_true", help="keep the logs and data directory")
    args = parser.parse_args(argv)
    try:
        counts = parse_counts(args.rooms)
    except ValueError as exc:
        parser.error(str(exc))
    modes = [m for m in args.modes.split(",") if m.strip()]
    if not modes or any(m not in MODES for m in modes):
        parser.error("--modes takes mesh and/or sfu")
    if args.seconds < 2 or args.lead < 3 or args.floor_seconds < 2:
        parser.error("--seconds and --floor-seconds at least 2, --lead at least 3")
    if not 1 <= args.fps <= 60:
        parser.error("--fps is 1 to 60")
    if not 0 <= args.margin < 1:
        parser.error("--margin is a fraction, 0 to 1")
    options = Options(
        counts, modes, args.seconds, args.lead, args.floor_seconds, args.margin, args.keep, args.fps
    )
    return options, args.out


def main(argv: Sequence[str] | None = None) -> int:
    options, out = parse_args(argv)
    if os.geteuid() != 0:
        print("bench/sfu runs as root (Janus gathers on a veth pair of its own)", file=sys.stderr)
        return 2
    # SIGTERM unwinds like Ctrl-C, so the finally blocks stop the processes, remove the dirs.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    began = time.monotonic()
    log(f"floor: two bare aiortc peers, {WIDTH}x{HEIGHT}, {options.floor_s:g} s window")
    floor_before = asyncio.run(floor_stream(WIDTH, HEIGHT, options.floor_s, options.fps))
    log(f"floor: {floor_before}")
    points, janus = run(options)
    log("floor again, after the points")
    floor_after = asyncio.run(floor_stream(WIDTH, HEIGHT, options.floor_s, options.fps))
    log(f"floor: {floor_after}")
    floor = quieter(floor_before, floor_after)
    scenario: Json = {
        "resolution": f"{WIDTH}x{HEIGHT}",
        "fps_sent": options.fps,
        "rooms": options.counts,
        "modes": {m: {"mesh_cap": MESH_CAP[m]} for m in options.modes},
        "lead_s": options.lead_s,
        "booked_ahead_s": options.lead_s + BOOK_MARGIN_S,
        "window_rel_T_s": [SETTLE_S, SETTLE_S + options.window_s],
        "floor_window_s": options.floor_s,
        "break_even_margin": options.margin,
        "janus": janus,
        "environment": versions(),
    }
    scenario["floors_measured"] = {"before": floor_before, "after": floor_after}
    document = report(points, floor, scenario, options.margin, options.lead_s)
    document["elapsed_s"] = round(time.monotonic() - began, 1)
    emit(document, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
