"""Strangers and a noisy room cannot slow a live session (issue 9, acceptance 2).

A real ``telecentre serve`` runs a session between two honest rooms and a noisy one.
While it goes preparing -> live -> ending -> ended, a separate process floods the
endpoint: 100 unauthenticated sockets (each from its own loopback address) sending
56 KB ``stats`` before any hello and reconnecting at once, and the noisy room sending
maximal ``stats`` and refused candidates at its rate limit. The honest rooms ping
throughout. The product's promises: honest round trips stay short (p99 under
``P99_BOUND``, the goal itself: about 16 ms was measured here with other test runs
loading both cores; ``bench/abuse`` prints the distribution) and every transition
happens within a second of when it is due. The flood must have been real: the test
checks what it sent.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from pathlib import Path

import aiohttp
import pytest

from signalling import protocol as p
from signalling.client import SignallingClient, SignallingError
from tests.e2e_support import Network
from tests.flood_support import flood_tally, start_flood

pytestmark = pytest.mark.e2e

P99_BOUND = 0.050
LEAD = 6.0
FLOOD_SECONDS = 18.0


def p99(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[98]


async def honest_room(
    url: str, key: str, session_id: str, until: float, received: dict[str, float]
) -> list[float]:
    """Join the session with the ticket of the room's schedule, ping every 50 ms until
    ``until``, and note when each of the session's states reached the room (wall
    clock) until it ended."""
    async with aiohttp.ClientSession() as http:
        client = SignallingClient(http, url, key=key, agent="honest")
        await client.connect()
        ticket = None
        while ticket is None:
            msg = await asyncio.wait_for(client.recv(), 20)
            if isinstance(msg, p.Schedule):
                entry = next((e for e in msg.sessions if e.session_id == session_id), None)
                ticket = entry.ticket if entry is not None else None

        async def listen() -> None:
            while "ended" not in received:
                msg = await client.recv()
                if isinstance(msg, p.SessionState) and msg.session_id == session_id:
                    received.setdefault(msg.state, time.time())

        listening = asyncio.create_task(listen())
        while True:
            try:
                await client.join(session_id, ticket)
                break
            except SignallingError as exc:  # the ticket's window opens at T - lead
                if exc.code != p.ErrorCode.TICKET_NOT_YET_VALID:
                    raise
                await asyncio.sleep(0.2)
        rtts: list[float] = []
        loop = asyncio.get_running_loop()
        while loop.time() < until:
            rtts.append(await client.ping())
            await asyncio.sleep(0.05)
        await asyncio.wait_for(listening, 30)
        await client.close()
        return rtts


def test_a_flood_of_strangers_and_a_noisy_room_do_not_slow_a_live_session(
    tmp_path: Path,
) -> None:
    net = Network.create(
        tmp_path,
        [
            ("honest-a", "Fontainebleau", "Europe/Paris"),
            ("honest-b", "Amsterdam", "Europe/Amsterdam"),
            ("noisy", "Strasbourg", "Europe/Paris"),
        ],
    )
    net.serve.start()
    try:
        net.serve.wait_ready()
        start = time.time() + LEAD + 4
        end = start + 8
        session_id = net.book(start, end, ["honest-a", "honest-b", "noisy"], lead=int(LEAD))
        url = net.serve.url.replace("http://", "ws://") + "/ws"
        flood = start_flood(url, FLOOD_SECONDS, 100, net.key_files["noisy"], session_id)
        keys = [net.key_files[r].read_text().strip() for r in ("honest-a", "honest-b")]

        received: list[dict[str, float]] = [{}, {}]

        async def both() -> list[list[float]]:
            until = asyncio.get_running_loop().time() + FLOOD_SECONDS - 1
            rooms = [
                honest_room(url, k, session_id, until, r)
                for k, r in zip(keys, received, strict=True)
            ]
            return list(await asyncio.gather(*rooms))

        rtts = asyncio.run(both())
        tally = flood_tally(flood, 60)
        # The flood was real: hundreds of oversize hellos (each refused one held 2 s), the noisy room at its limit.
        assert tally.get("sent", 0) > 300, tally
        assert tally.get("stats", 0) > 100, tally
        samples = [r for room in rtts for r in room]
        assert len(samples) > 200
        worst = p99(samples)
        print(
            f"honest p99 {worst * 1000:.1f} ms median {statistics.median(samples) * 1000:.1f} n={len(samples)} {tally}"
        )
        assert worst < P99_BOUND, f"honest p99 {worst * 1000:.1f} ms during the flood ({tally})"

        # Each state reached both rooms within a second of when it was due, all of
        # them during the flood.
        due = {"preparing": start - LEAD, "live": start, "ending": start, "ended": end}
        for room in received:
            for state, when in due.items():
                assert when - 0.5 <= room[state] <= when + 1.0, (state, room[state] - when)
        log = net.serve.log()
        assert "Traceback" not in log, log[-3000:]
        # The refusals were logged, a few lines per minute per code, not one per message.
        assert log.count("too-large") < 30, log.count("too-large")
    finally:
        net.stop_all()
