"""Issue 12, acceptance 4: a session over a link that narrows adapts instead of freezing.

The product itself across the network lab (tests/netlab/deployment.py): coturn and
``telecentre serve`` in the WAN, real ``telecentre agent`` processes for room ``a``
(site ``a``, home NAT) and room ``g`` (site ``guest``, home NAT; ICE policy ``relay``,
since two Linux home NATs never connect directly, docs/architecture.md), both at
640x360. Site ``a``'s access link is shaped both ways: 3 Mbit/s, 1 % loss, 40 +- 5 ms.
Both streams cross it (a -> g on its uplink, g -> a on its downlink), and each room is
measured as the receiving room, from its status file (read every ``SAMPLE_S``; the
agent rewrites it twice a second): frames, audio frames, gaps over 1 s, and the bytes
its connection received.

- Wide: from T + 10 s to the narrowing, at least 25 fps over that span and no gap
  over 1 s. (Per second, the frame rate dips under 25 when these shared cores are
  loaded: at load averages of 7-10, two agents encoding and decoding 640x360 lost
  seconds of 10-20 fps with no gap over 0.3 s; the JSON keeps each second.)
- Narrowed to 600 kbit/s both ways for 30 s: from 5 s after the narrowing, the received
  bitrate stays under the limit (plus the sampling's slack), no gap over 1 s, and
  audio in every second.
- Widened again: received above 1.5 Mbit/s within 20 s.

Per-second figures go to ``adaptation.json`` in the test's directory (and the
assertion messages); bench/network narrow measures the same change with raw aiortc
and with the agent's patches (``--peers``), adapt and recover times included.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.netlab import Lab, Link
from tests.netlab.deployment import Deployment, LabAgent, wait_for

pytestmark = pytest.mark.e2e

WIDE = Link(rate_kbit=3000, loss=0.01, delay_ms=40.0, jitter_ms=5.0)
NARROW = Link(rate_kbit=600, loss=0.01, delay_ms=40.0, jitter_ms=5.0)
LEAD = 4  # seconds of pre-roll
AHEAD = 7  # the booking starts this long after it is made
SETTLE_S = 10  # acceptance 4: "after the first 10 s"
WIDE_S = 20  # of camera at 3 Mbit/s before the narrowing
NARROW_S = 30
ADAPT_S = 5  # acceptance 4: "after 5 s of adaptation"
RECOVER_WITHIN_S = 20
MIN_FPS = 25
FREEZE_S = 1.0
RECOVERED_KBPS = 1500
# A second's received bytes, read from two status files half a second stale at most,
# can straddle a little more than one second of the link.
RATE_SLACK = 1.15
MIN_AUDIO_PER_S = 1
SAMPLE_S = 0.2


@dataclass(frozen=True)
class Sample:
    """One reading of a receiving room's status, for the peer it receives from."""

    at: float  # the agent's clock when it wrote the status (the server's time)
    frames: int
    audio_frames: int
    long_gaps: int
    last_frame_at: float | None
    received_bytes: int


def sample(agent: LabAgent, peer: str, session_id: str) -> Sample | None:
    status = agent.status()
    totals = status["peers"].get(peer)
    received = status.get("received_bytes", {}).get(session_id, {}).get(peer)
    if not totals or received is None:
        return None
    return Sample(
        at=status["server_now"],
        frames=totals["frames"],
        audio_frames=totals["audio_frames"],
        long_gaps=totals["long_gaps"],
        last_frame_at=totals["last_frame_at"],
        received_bytes=received,
    )


def per_second(samples: Sequence[Sample], start: float, end: float) -> list[dict[str, Any]]:
    """One row per whole second from ``start``: fps, received kbit/s, audio frames per
    second, gaps over 1 s that ended in it, and its staleness (the longest time since
    the last frame seen at a reading: a gap still open)."""
    rows = []
    second = start
    while second + 1 <= end:
        inside = [s for s in samples if second <= s.at <= second + 1]
        before = [s for s in samples if s.at < second]
        if before and inside:
            first, last = before[-1], inside[-1]
            span = last.at - first.at
            rows.append(
                {
                    "s": round(second - start, 1),
                    "fps": round((last.frames - first.frames) / span, 1),
                    "kbps": round((last.received_bytes - first.received_bytes) * 8 / span / 1000),
                    "audio_per_s": round((last.audio_frames - first.audio_frames) / span, 1),
                    "long_gaps": last.long_gaps - first.long_gaps,
                    "stale_s": round(
                        max(s.at - (s.last_frame_at or s.at) for s in [first, *inside]), 2
                    ),
                }
            )
        second += 1
    return rows


def window(rows: Sequence[dict[str, Any]], since: float, until: float) -> list[dict[str, Any]]:
    return [r for r in rows if since <= r["s"] and r["s"] + 1 <= until]


def wide_fps(rows: Sequence[dict[str, Any]]) -> float | None:
    """The frame rate over a span of whole seconds."""
    return round(sum(r["fps"] for r in rows) / len(rows), 1) if rows else None


def frozen(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows with a gap over 1 s (ended, or still open at a reading)."""
    return [r for r in rows if r["long_gaps"] or r["stale_s"] > FREEZE_S]


class Watch:
    """Reads both receiving rooms' status every SAMPLE_S while the session runs."""

    def __init__(self, receivers: dict[str, tuple[LabAgent, str]], session_id: str) -> None:
        self.receivers = receivers
        self.session_id = session_id
        self.samples: dict[str, list[Sample]] = {room: [] for room in receivers}

    async def run(self) -> None:
        while True:
            for room, (agent, peer) in self.receivers.items():
                try:
                    found = sample(agent, peer, self.session_id)
                except (OSError, ValueError, KeyError):
                    found = None  # the file is being replaced: the next reading
                if found is not None and (
                    not self.samples[room] or found.at > self.samples[room][-1].at
                ):
                    self.samples[room].append(found)
            await asyncio.sleep(SAMPLE_S)

    def rows(self, room: str, start: float, end: float) -> list[dict[str, Any]]:
        return per_second(self.samples[room], start, end)


def recovered_after(rows: Sequence[dict[str, Any]], widen_s: float) -> float | None:
    """Seconds from the widening to the first second received above RECOVERED_KBPS."""
    for row in rows:
        if row["s"] >= widen_s and row["kbps"] > RECOVERED_KBPS:
            return round(row["s"] + 1 - widen_s, 1)
    return None


async def test_a_narrowing_link_adapts_without_freezing_and_recovers(
    deployment_lab: Lab, tmp_path: Path
) -> None:
    site = deployment_lab.site("a")
    await asyncio.to_thread(site.shape, WIDE, WIDE)
    dep = await Deployment.start(deployment_lab, tmp_path)
    await dep.add_room("a", site="a")
    await dep.add_room("g", site="guest", ice_policy="relay")
    await dep.start_agents("a", "g")
    a, g = dep.agents["a"], dep.agents["g"]
    peer_a, peer_g = f"room:{dep.rooms['a']}", f"room:{dep.rooms['g']}"
    start = time.time() + AHEAD
    end = start + WIDE_S + NARROW_S + RECOVER_WITHIN_S + 10
    session_id = await dep.book(start, end, ["a", "g"], lead=LEAD)
    watch = Watch({"a": (a, peer_g), "g": (g, peer_a)}, session_id)
    task = asyncio.create_task(watch.run())
    report: dict[str, Any] = {"link": {"wide": str(WIDE), "narrow": str(NARROW)}}
    try:
        for receiver, sender in ((a, peer_g), (g, peer_a)):
            await wait_for(
                f"{receiver.room} receiving",
                lambda r=receiver, s=sender: _async(sample(r, s, session_id)),
                AHEAD + 20,
            )
        await asyncio.sleep(max(0.0, start + WIDE_S - time.time()))
        narrow_at = time.time()
        await asyncio.to_thread(site.shape, NARROW, NARROW)
        await asyncio.sleep(NARROW_S)
        widen_at = time.time()
        await asyncio.to_thread(site.shape, WIDE, WIDE)

        async def both_recovered() -> bool:
            now = time.time()
            return all(
                recovered_after(watch.rows(room, start, now), widen_at - start) is not None
                for room in ("a", "g")
            )

        with contextlib.suppress(AssertionError):  # judged below, with the figures
            await wait_for("both streams above 1.5 Mbit/s", both_recovered, RECOVER_WITHIN_S)
        over = time.time()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    narrow_s, widen_s = narrow_at - start, widen_at - start
    failures = []
    for room in ("a", "g"):
        rows = watch.rows(room, start, over)
        wide = window(rows, SETTLE_S, narrow_s)
        adapted = window(rows, narrow_s + ADAPT_S, widen_s)
        recovery = recovered_after(rows, widen_s)
        report[room] = {
            "narrow_at_s": round(narrow_s, 1),
            "widen_at_s": round(widen_s, 1),
            "wide_fps": wide_fps(wide),
            "wide_min_fps": min((r["fps"] for r in wide), default=None),
            "narrowed_max_kbps": max((r["kbps"] for r in adapted), default=None),
            "recover_s": recovery,
            "per_second": rows,
        }
        if len(wide) < narrow_s - SETTLE_S - 2 or len(adapted) < NARROW_S - ADAPT_S - 2:
            failures.append(f"{room}: too few readings ({len(wide)} wide, {len(adapted)} narrow)")
        if (wide_fps(wide) or 0) < MIN_FPS or frozen(wide):
            failures.append(f"{room}: under {MIN_FPS} fps or frozen on the wide link")
        if frozen(adapted):
            failures.append(f"{room}: froze after {ADAPT_S} s of adaptation")
        if any(r["kbps"] > NARROW.rate_kbit * RATE_SLACK for r in adapted):
            failures.append(f"{room}: received above {NARROW.rate_kbit} kbit/s while narrowed")
        if any(r["audio_per_s"] < MIN_AUDIO_PER_S for r in window(rows, narrow_s, widen_s)):
            failures.append(f"{room}: a second without audio while narrowed")
        if recovery is None or recovery > RECOVER_WITHIN_S:
            failures.append(f"{room}: not above {RECOVERED_KBPS} kbit/s within 20 s")
    (tmp_path / "adaptation.json").write_text(json.dumps(report, indent=1))
    summary = {
        room: {k: v for k, v in report[room].items() if k != "per_second"} for room in ("a", "g")
    }
    assert not failures, f"{failures}\n{json.dumps(summary)}\n{json.dumps(report)}"
    dep.assert_clean_logs()


async def _async(value: Any) -> Any:
    return value
