"""Acceptance 5 in the lab, shared by its test (tests/test_lab_remap.py) and its
benchmark (bench/remap.py): the product (tests/netlab/deployment.py) with A (home NAT,
policy ``all``), B (symmetric NAT behind a 443-only firewall, policy ``relay``) and W (a
room on a public address in the WAN) in one session on lossy links; A's router is
re-addressed mid-call, and each direction of A's calls is timed from the change to the
first frame after its outage (the agents' ``outage_from``/``outage_to`` per peer,
room_agents/screen.py)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.netlab.deployment import Deployment, LabAgent, wait_for
from tests.netlab.lab import Lab
from tests.netlab.plan import Link

LEAD = 6
AHEAD = 9
LOSSY = Link(loss=0.01, delay_ms=40, jitter_ms=5)
# Three agents, A with two encoders, on two shared cores: 320x180 keeps the lab's CPU
# from being what is measured (the recovery is round trips, not pixels).
SMALL = ("--width", "320", "--height", "180")
ROOMS = (("a", "a", "all"), ("b", "b", "relay"), ("w", "wan", "all"))  # room, site, policy


def peer_totals(agent: LabAgent, peer: str) -> dict[str, Any]:
    try:
        totals: dict[str, Any] = agent.status()["peers"].get(peer) or {}
    except (OSError, ValueError):
        return {}  # being rewritten
    return totals


def back_after(totals: dict[str, Any], change: float) -> float | None:
    """Seconds from the change to the first frame after its outage (0.0 when frames
    never stopped for 0.5 s); None while the outage lasts."""
    last = totals.get("last_frame_at") or 0.0
    end = totals.get("outage_to")
    if end is not None and end > change:
        return float(end) - change
    if last > change + 1.0:  # frames came on, with no outage since the change
        return 0.0
    return None


@dataclass
class RemapSession:
    """The deployment, the room ids, and the directions of A's calls (receiver, sender
    peer id)."""

    dep: Deployment
    ids: dict[str, str]
    directions: list[tuple[LabAgent, str]]
    start: float

    def name(self, agent: LabAgent, peer: str) -> str:
        names = {peer_id: room for room, peer_id in self.ids.items()}
        return f"{agent.room}<-{names[peer]}"

    async def flowing(self) -> None:
        """Until every direction carries camera frames after T + 1 s."""

        async def all_flowing() -> bool:
            return all(
                (t := peer_totals(agent, peer)).get("camera_frames")
                and (t.get("last_frame_at") or 0) > self.start + 1
                for agent, peer in self.directions
            )

        await wait_for("camera frames both ways on A's calls", all_flowing, AHEAD + 20)

    def found_dead(self) -> list[str]:
        """The rooms whose agent found a path dead so far."""
        return [
            room for room, agent in self.dep.agents.items() if "the path is dead" in agent.log()
        ]

    async def readdress(self, within: float) -> dict[str, float]:
        """Re-address A's router; seconds to media back per direction (bounded wait)."""
        change = time.time()
        await asyncio.to_thread(self.dep.lab.site("a").readdress)

        async def all_back() -> dict[str, float] | None:
            found = {
                self.name(agent, peer): back_after(peer_totals(agent, peer), change)
                for agent, peer in self.directions
            }
            return None if None in found.values() else found  # type: ignore[return-value]

        backs: dict[str, float] = await wait_for("media back on every call of A", all_back, within)
        return backs


async def remap_session(lab: Lab, work: Path, seconds: float) -> RemapSession:
    """Shape every access link lossy, start the product and the three rooms, book a
    session of ``seconds`` starting ``AHEAD`` s from now, wait until media flows."""
    for site in ("a", "b", "guest"):
        await asyncio.to_thread(lab.site(site).shape, LOSSY, LOSSY)
    dep = await Deployment.start(lab, work)
    for room, site, policy in ROOMS:
        await dep.add_room(room, site=site, ice_policy=policy)
    for room, _, _ in ROOMS:
        await dep.start_agent(room, *SMALL)
    for room, _, _ in ROOMS:
        await dep.online(room)
    ids = {room: f"room:{dep.rooms[room]}" for room, _, _ in ROOMS}
    a = dep.agents["a"]
    start = time.time() + AHEAD
    await dep.book(start, start + seconds, [room for room, _, _ in ROOMS], lead=LEAD)
    directions = [(a, ids[o]) for o in ("b", "w")] + [(dep.agents[o], ids["a"]) for o in ("b", "w")]
    session = RemapSession(dep, ids, directions, start)
    await session.flowing()
    return session
