"""Benchmark: what strangers and a noisy room cost a live session's signalling.

Usage (from anywhere; the launcher cds to the repository root)::

    bench/abuse [--seconds 20] [--strangers 100] [--connection-flood 2000]

One JSON document goes to stdout, progress to stderr.

A real ``telecentre serve`` process (fresh data directory, loopback) holds a session
between two honest rooms, played by SignallingClients in this process that each ping
every 20 ms; the flood runs in a separate process (``tests/flood_support.py``) so its
own CPU is not counted against the server's event loop. Scenarios, one after the
other, ``--seconds`` each:

- ``quiet``: no flood. The floor: the same server, session and clients, same run.
- ``strangers``: 100 unauthenticated sockets, each from its own loopback address,
  sending a 56 KB ``stats`` before any hello and reconnecting as soon as they can.
- ``noisy_room``: a third room of the session sending, at its message rate limit,
  maximal ``stats`` (64 KiB, 32 media entries) and 64 KiB offers full of refused
  candidates.
- ``both``: the two at once (issue 9's acceptance scenario); a second session, whose
  transitions fall inside the window, checks the scheduler's punctuality:
  ``transitions_late_ms`` is when each ``session-state`` reached one of its rooms,
  after it was due.
- ``connection_flood``: ``--connection-flood`` sockets from 100 addresses, far more
  than the limits on connections waiting to say hello admit: most attempts are
  refused with HTTP 503 and retried at once. A raw connection flood is what a
  reverse proxy or firewall should stop (docs/deploy.md); this shows what is left
  when none does.

Figures per scenario: honest ping round trips (p50, p95, p99, max, n, in ms), the
server's CPU (s/s) and resident memory (start, end), the flood's own tally. The goal
(issue 9): honest p99 under 50 ms in ``both``; ``p99_vs_quiet`` is the ratio to the
floor.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from bench.measure import compact_json, cpu_seconds, ratio
from signalling import protocol as p
from signalling.client import SignallingClient, SignallingError
from tests.e2e_support import ROOT, Network, base_env, wait_until

GOAL_P99_MS = 50.0
PING_INTERVAL = 0.02


def log(message: str) -> None:
    print(f"[abuse] {message}", file=sys.stderr, flush=True)


def rss_bytes(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def distribution(samples: list[float]) -> dict[str, Any]:
    if len(samples) < 2:
        return {"n": len(samples)}
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return {
        "p50": round(statistics.median(samples) * 1000, 2),
        "p95": round(cuts[94] * 1000, 2),
        "p99": round(cuts[98] * 1000, 2),
        "max": round(max(samples) * 1000, 2),
        "n": len(samples),
    }


class Honest:
    """A room that joined the session and pings; ``window`` collects round trips."""

    def __init__(self, url: str, key: str, session_id: str) -> None:
        self.url, self.key, self.session_id = url, key, session_id
        self.window: list[float] | None = None
        self.stop = asyncio.Event()

    async def run(self, ready: asyncio.Event) -> None:
        async with aiohttp.ClientSession() as http:
            client = SignallingClient(http, self.url, key=self.key, agent="bench-honest")
            await client.connect()
            ticket = None
            while ticket is None:
                msg = await asyncio.wait_for(client.recv(), 30)
                if isinstance(msg, p.Schedule):
                    entry = next((e for e in msg.sessions if e.session_id == self.session_id), None)
                    ticket = entry.ticket if entry else None
            while True:
                try:
                    await client.join(self.session_id, ticket)
                    break
                except SignallingError as exc:
                    if exc.code != p.ErrorCode.TICKET_NOT_YET_VALID:
                        raise
                    await asyncio.sleep(0.2)
            ready.set()
            while not self.stop.is_set():
                rtt = await client.ping(timeout=10)
                if self.window is not None:
                    self.window.append(rtt)
                await asyncio.sleep(PING_INTERVAL)
            await client.close()


class Listener:
    """A connected room that only notes when each ``session-state`` reaches it."""

    def __init__(self, url: str, key: str) -> None:
        self.url, self.key = url, key
        self.received: dict[tuple[str, str], float] = {}
        self.stop = asyncio.Event()

    async def run(self, ready: asyncio.Event) -> None:
        async with aiohttp.ClientSession() as http:
            client = SignallingClient(http, self.url, key=self.key, agent="bench-listener")
            await client.connect()
            ready.set()
            while not self.stop.is_set():
                try:
                    msg = await asyncio.wait_for(client.recv(), 0.5)
                except TimeoutError:
                    continue
                if isinstance(msg, p.SessionState):
                    self.received.setdefault((msg.session_id, msg.state), time.time())
            await client.close()


async def flood(args: list[str], seconds: float) -> dict[str, Any]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.flood_support",
        "--seconds",
        str(seconds),
        *args,
        cwd=ROOT,
        env=base_env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL,
    )
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"flood failed: {err.decode()[-2000:]}")
    tally: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return tally


async def scenario(
    name: str, honest: list[Honest], pid: int, seconds: float, flood_args: list[str] | None
) -> dict[str, Any]:
    log(f"{name}: {seconds:.0f} s")
    windows: list[list[float]] = [[] for _ in honest]
    cpu0, t0, rss0 = cpu_seconds(pid), time.monotonic(), rss_bytes(pid)
    for h, w in zip(honest, windows, strict=True):
        h.window = w
    if flood_args is None:
        await asyncio.sleep(seconds)
        tally: dict[str, Any] = {}
    else:
        tally = await flood(flood_args, seconds)
    for h in honest:
        h.window = None
    cpu1, t1, rss1 = cpu_seconds(pid), time.monotonic(), rss_bytes(pid)
    samples = [r for w in windows for r in w]
    return {
        "ping_ms": distribution(samples),
        "server_cpu_s_per_s": round(((cpu1 or 0) - (cpu0 or 0)) / max(t1 - t0, 1e-9), 3),
        "server_rss_mib": [round(v / 2**20, 1) if v is not None else None for v in (rss0, rss1)],
        "flood": tally,
    }


def transitions_late_ms(
    listener: Listener, session_id: str, start: float, end: float, lead: float
) -> dict[str, float | None]:
    """When each transition reached a room of the session, after it was due."""
    wait_until(
        "the probe session to end",
        lambda: (session_id, "ended") in listener.received,
        max(10.0, end - time.time() + 15),
    )
    due = {"preparing": start - lead, "live": start, "ended": end}
    return {
        state: round((listener.received[(session_id, state)] - when) * 1000, 1)
        if (session_id, state) in listener.received
        else None
        for state, when in due.items()
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-abuse-") as tmp:
        net = Network.create(
            Path(tmp),
            [
                ("honest-a", "Fontainebleau", "Europe/Paris"),
                ("honest-b", "Amsterdam", "Europe/Amsterdam"),
                ("noisy", "Strasbourg", "Europe/Paris"),
                ("probe-a", "Colmar", "Europe/Paris"),
                ("probe-b", "Mulhouse", "Europe/Paris"),
            ],
        )
        net.serve.start()
        try:
            net.serve.wait_ready()
            assert net.serve.proc is not None
            pid = net.serve.proc.pid
            url = net.serve.url.replace("http://", "ws://") + "/ws"
            start = time.time() + 6
            session_id = net.book(start, start + 3600, ["honest-a", "honest-b", "noisy"], lead=5)
            honest = [
                Honest(url, net.key_files[r].read_text().strip(), session_id)
                for r in ("honest-a", "honest-b")
            ]
            listener = Listener(url, net.key_files["probe-a"].read_text().strip())
            readies = [asyncio.Event() for _ in range(len(honest) + 1)]
            tasks = [asyncio.create_task(h.run(r)) for h, r in zip(honest, readies, strict=False)]
            tasks.append(asyncio.create_task(listener.run(readies[-1])))
            await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies)), 60)
            noisy = ["--room-key-file", str(net.key_files["noisy"]), "--session", session_id]
            out: dict[str, Any] = {}
            seconds = args.seconds
            out["quiet"] = await scenario("quiet", honest, pid, seconds, None)
            out["strangers"] = await scenario(
                "strangers",
                honest,
                pid,
                seconds,
                ["--url", url, "--strangers", str(args.strangers)],
            )
            out["noisy_room"] = await scenario(
                "noisy_room", honest, pid, seconds, ["--url", url, "--strangers", "0", *noisy]
            )
            probe_lead = 4.0
            probe_start = time.time() + 4 + probe_lead + 2  # the CLI takes a second or two
            probe_end = probe_start + 6
            probe = await asyncio.to_thread(
                net.book, probe_start, probe_end, ["probe-a", "probe-b"], int(probe_lead)
            )
            out["both"] = await scenario(
                "both",
                honest,
                pid,
                max(seconds, probe_end - time.time() + 1),
                ["--url", url, "--strangers", str(args.strangers), *noisy],
            )
            out["both"]["transitions_late_ms"] = await asyncio.to_thread(
                transitions_late_ms, listener, probe, probe_start, probe_end, probe_lead
            )
            out["connection_flood"] = await scenario(
                "connection_flood",
                honest,
                pid,
                seconds,
                ["--url", url, "--strangers", str(args.connection_flood)],
            )
            for h in honest:
                h.stop.set()
            listener.stop.set()
            await asyncio.gather(*tasks)
        finally:
            net.stop_all()
    quiet_p99 = out["quiet"]["ping_ms"].get("p99")
    for name in ("strangers", "noisy_room", "both", "connection_flood"):
        out[name]["p99_vs_quiet"] = ratio(out[name]["ping_ms"].get("p99"), quiet_p99)
    both_p99 = out["both"]["ping_ms"].get("p99")
    return {
        "benchmark": "abuse",
        "seconds_per_scenario": args.seconds,
        "goal": {"honest_p99_ms_during_both": GOAL_P99_MS},
        "met": both_p99 is not None and both_p99 < GOAL_P99_MS,
        "scenarios": out,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--strangers", type=int, default=100)
    parser.add_argument("--connection-flood", type=int, default=2000)
    result = asyncio.run(run(parser.parse_args()))
    print(compact_json(result))


if __name__ == "__main__":
    main()
