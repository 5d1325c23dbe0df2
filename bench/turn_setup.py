"""Call set-up through TURN on loopback: two room agents in one process, a session
pushed to both, time until each decodes the other's first frame ("push -> first
frame both ways"), direct and relayed through a real coturn over UDP, TCP and TLS.

Relayed runs use the ``relay`` ICE policy on both rooms (relay to relay, the worst
case) and are measured with and without room_agents/ice_triggered.py (an incoming
check resends our in-progress check at once instead of waiting for the 500 ms STUN
retransmission). Loopback only: what it shows is the protocol's waits, not a
network's delay (the network lab's bench measures shaped links).

    bench/turn_setup --runs 7 [--out result.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

from bench.measure import summary
from room_agents import calls
from room_agents.agent import RoomAgent
from room_agents.ice_triggered import install_triggered_checks, uninstall_triggered_checks
from signalling.turn import TurnConfig
from tests.coturn_support import Coturn, running_coturn
from tests.signalling_fixtures import Harness, eventually, running_agent, signalling_harness

SECRET = "bench-turn-secret"
MODES = ("direct", "udp", "tcp", "tls")
PATCH = "install_triggered_checks"


def _agent(h: Harness, room_id: str, policy: str) -> AbstractAsyncContextManager[Any]:
    return running_agent(h, room_id, ice_policy=policy)


def _frames(agent: RoomAgent, peer_id: str) -> int:
    return int(agent.screen.totals().get(peer_id, {}).get("camera_frames") or 0)


async def _one(coturn: Coturn, mode: str, index: int) -> float:
    url = {"udp": coturn.udp_url, "tcp": coturn.tcp_url, "tls": coturn.tls_url}.get(mode)
    turn = TurnConfig(urls=(url,), secret=SECRET) if url else TurnConfig()
    policy = "all" if mode == "direct" else "relay"
    async with signalling_harness(turn=turn) as h:
        h.add_room("a")
        h.add_room("b")
        async with _agent(h, "a", policy) as a, _agent(h, "b", policy) as b:
            started = time.monotonic()
            now = time.time()
            h.push_session(f"s{index}", ["a", "b"], start=now - 1, end=now + 120)
            await eventually(
                lambda: _frames(a, "room:b") >= 1 and _frames(b, "room:a") >= 1, "frames", 30
            )
            return (time.monotonic() - started) * 1000


async def run(runs: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    # The agents' calls install the patch; a run without it must keep them from it.
    original = getattr(calls, PATCH)
    with (
        tempfile.TemporaryDirectory() as work,
        running_coturn(Path(work), [SECRET], tls=True) as coturn,
    ):
        os.environ["SSL_CERT_FILE"] = str(coturn.ca_file)  # the test CA, for turns:
        for triggered in (True, False):
            if triggered:
                setattr(calls, PATCH, original)
                install_triggered_checks()
            else:
                setattr(calls, PATCH, lambda: False)
                uninstall_triggered_checks()
            for mode in MODES:
                if mode == "direct" and not triggered:
                    continue
                values = [await _one(coturn, mode, i) for i in range(runs)]
                key = mode if mode == "direct" else f"relay_{mode}"
                key += "" if mode == "direct" or triggered else "_without_triggered_checks"
                results[key] = summary(values, 1, round_values=True)
        setattr(calls, PATCH, original)
    return {
        "what": "push -> first frame both ways, ms (two agents, loopback, 320x180 at 15 fps)",
        "runs": runs,
        "results": results,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    report = asyncio.run(run(args.runs))
    text = json.dumps(report, indent=2)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    sys.stdout.write(text + "\n")


if __name__ == "__main__":
    main()
