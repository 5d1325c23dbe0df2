"""bench/network's ``product`` part: the product's own call path across the lab, beside
the raw aiortc floor of the same run (issue 12, acceptance 7).

A ``tests/netlab/deployment.py`` deployment per mode in a lab shaped like the floor's
(coturn and ``telecentre serve`` in the WAN): room ``sender`` behind site a's home NAT,
room ``receiver`` on the WAN (a host address, so every mode crosses the same shaped
link, a's, both ways), in an automatic session booked a few seconds ahead with a real
pre-roll. Modes as the floor's: ``direct`` (STUN only, policy all), ``relay_udp``,
``relay_tcp``, ``relay_tls`` (the service lists only that TURN URL, both rooms on
policy relay). Per call, from the service's session record and the agents' status
files: join -> first frame per room (the agent's own milestones), glass-to-glass p50
and p95 over the session (the stamps the receiver read), received fps and freezes over
the live part, and the pair each side's media took.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.measure import ratio, summary
from tests.netlab import DEPLOYMENT_CENTRES, Lab, Link, SiteSpec
from tests.netlab.deployment import Deployment

Json = dict[str, Any]
MODES = ("direct", "relay_udp", "relay_tcp", "relay_tls")
TRANSPORTS = {"direct": (), "relay_udp": ("udp",), "relay_tcp": ("tcp",), "relay_tls": ("tls",)}
LEAD = 8  # seconds of pre-roll
AHEAD = 12  # the booking starts this long after it is made (the rooms are online)


def log(message: str) -> None:
    print(f"[network product {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def ts(value: str | None) -> float | None:
    return datetime.fromisoformat(value).timestamp() if value else None


def shaped_sites(link: Link) -> tuple[SiteSpec, ...]:
    """``DEPLOYMENT_CENTRES`` with every access link shaped like the floor's."""
    return tuple(
        SiteSpec(s.name, nat=s.nat, egress=s.egress, up=link, down=link) for s in DEPLOYMENT_CENTRES
    )


async def product_call(lab: Lab, work: Path, mode: str, seconds: float) -> Json:
    dep = await Deployment.start(lab, work, turn_transports=TRANSPORTS[mode])
    try:
        policy = "all" if mode == "direct" else "relay"
        await dep.add_room("sender", site="a", ice_policy=policy)
        await dep.add_room("receiver", site="wan", ice_policy=policy)
        await dep.start_agents("sender", "receiver")
        start = time.time() + AHEAD
        end = start + seconds
        session_id = await dep.book(start, end, ["sender", "receiver"], lead=LEAD)
        sender_peer = f"room:{dep.rooms['sender']}"
        await asyncio.sleep(max(0.0, start + 1 - time.time()))  # live, and one second in
        first = dep.agents["receiver"].status()["peers"].get(sender_peer) or {}
        at_first = time.time()
        await asyncio.sleep(max(0.0, end - 1 - time.time()))
        last = dep.agents["receiver"].status()["peers"].get(sender_peer) or {}
        at_last = time.time()
        pairs = {
            room: (dep.agents[room].status()["pairs"].get(session_id) or {}) for room in dep.agents
        }
        record = await dep.session(session_id)
    finally:
        await dep.stop()
    rooms = {dep.rooms[name]: name for name in dep.rooms}
    join_to_first: Json = {}
    for row in record["rooms"]:
        joined, first_frame = ts(row["joined_at"]), ts(row["first_frame_at"])
        join_to_first[rooms[row["room_id"]]] = (
            None
            if joined is None or first_frame is None
            else round((first_frame - joined) * 1000, 1)
        )
    frames = (last.get("frames") or 0) - (first.get("frames") or 0)
    return {
        "join_to_first_frame_ms": join_to_first,
        "joined_before_t_s": {
            rooms[row["room_id"]]: None
            if ts(row["joined_at"]) is None
            else round(start - (ts(row["joined_at"]) or 0), 2)
            for row in record["rooms"]
        },
        "glass_to_glass_ms": {"p50": last.get("latency_p50_ms"), "p95": last.get("latency_p95_ms")},
        "fps": round(frames / (at_last - at_first), 1) if at_last > at_first else None,
        "freezes": (last.get("freezes") or 0) - (first.get("freezes") or 0),
        "pairs": pairs,
    }


def aggregate(runs: list[Json]) -> Json:
    def each(room: str) -> list[float | None]:
        return [r["join_to_first_frame_ms"].get(room) for r in runs]

    return {
        "join_to_first_frame_ms": {room: summary(each(room), 1) for room in ("sender", "receiver")},
        "glass_to_glass_p50_ms": summary([r["glass_to_glass_ms"]["p50"] for r in runs], 1),
        "glass_to_glass_p95_ms": summary([r["glass_to_glass_ms"]["p95"] for r in runs], 1),
        "fps": summary([r["fps"] for r in runs], 1),
        "freezes": sum(r["freezes"] for r in runs),
        "runs": runs,
    }


def run_product(link: Link, modes: list[str], calls: int, seconds: float) -> Json:
    """Every mode ``calls`` times in one lab (one deployment at a time), as JSON."""

    async def body(lab: Lab, work: Path) -> Json:
        out: Json = {}
        for mode in modes:
            runs = []
            for i in range(calls):
                log(f"product: {mode} {i + 1}/{calls}")
                try:
                    runs.append(await product_call(lab, work / f"{mode}-{i}", mode, seconds))
                except (AssertionError, RuntimeError, TimeoutError) as error:
                    runs.append({"error": str(error)[:500]})
            good = [r for r in runs if "error" not in r]
            out[mode] = aggregate(good) if good else {"errors": runs}
            if len(good) != len(runs):
                out[mode]["errors"] = [r for r in runs if "error" in r]
        return out

    with tempfile.TemporaryDirectory() as work, Lab.build(sites=shaped_sites(link)) as lab:
        return asyncio.run(body(lab, Path(work)))


def versus_floor(product: Json, floor: Json) -> Json:
    """The product's call against the raw aiortc floor of the same mode and run: the
    receiver's join -> first frame over the floor's offer -> first frame (the product
    adds joining, the pre-roll's card and its own set-up), glass-to-glass p50 as a
    difference."""
    result: Json = {}
    for mode, found in product.items():
        raw = floor.get(mode)
        if not raw or "error" in raw or "join_to_first_frame_ms" not in found:
            continue
        g2g, raw_g2g = found["glass_to_glass_p50_ms"]["p50"], raw["glass_to_glass_p50_ms"]["p50"]
        result[mode] = {
            "first_frame_ratio": ratio(
                found["join_to_first_frame_ms"]["receiver"]["p50"],
                raw["offer_to_first_frame_ms"]["p50"],
            ),
            "glass_to_glass_p50_added_ms": None
            if g2g is None or raw_g2g is None
            else round(g2g - raw_g2g, 1),
        }
    return result
