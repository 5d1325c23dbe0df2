"""The receiver's estimate climbs quickly once the path has been quiet for a while.

aiortc's receive-side estimator (``aiortc.rate``, webrtc.org's AIMD) raises its REMB by
8 % a second, and only additively (some 30 kbit/s a second) once it has seen an
overuse ("near max"): after a link narrowed to 600 kbit/s and widened again, the
stream stayed below 1.5 Mbit/s for 21-25 s (docs/architecture.md, "Narrow links"),
and a call's first climb from 500 kbit/s took 18 s to reach 1.5 Mbit/s.

``RecallingRateControl`` keeps aiortc's rules but for the increase: it is always
multiplicative, 8 % a second while the last overuse is less than ``QUIET_S`` old (a
link that stays narrow is probed as gently as before: the estimate reaches it again
within that time and is cut), and ``RECALL_GAIN_PER_S`` a second once the path has
been quiet longer (a link that widened, or a call's start). An overuse still cuts to
0.85 of the measured throughput, and the estimate still cannot exceed 1.5 times what
arrives (so the sender's rate leads the climb, a step at a time: room_agents.vp8_rate).

Heavy loss is a cut too (``note_heavy_loss``, from room_agents.early_reports), taken from
what arrives then alone. When a link narrowed from 3 to 0.6 Mbit/s the queue it built
was too short for the delay detector to see more than once, so the estimate stayed
near 1.8 Mbit/s; the sender's loss cut held the rate down, but when it lifted after
2 s of clean reports the encoder jumped back to that stale estimate and flooded the
link again (a second freeze, 4 s after the narrowing, in a lab run).

An overuse's cut is taken from the most that arrived over the last ``CUT_MEMORY_S``
rather than from the last second alone. On these loaded cores a receiver whose process
is starved reads its own late packets as a queue: it signalled overuse again and again
while the throughput it measured fell with its stalls, and aiortc's cuts (0.85 of that)
took a wide link's estimate from 3.2 to 0.15 Mbit/s in 15 s. A link that really narrows
loses packets at once, and the sender's loss-based cut (room_agents.vp8_rate) follows it
within a report, so the delay-based cut need not chase the falling throughput.

``install_rate_recall`` makes aiortc's ``RemoteBitrateEstimator`` build this class (the
room agent's calls install it; bench/network's raw floor does not).
"""

from __future__ import annotations

import logging
from typing import Final

import aiortc.rate
from aiortc.rate import AimdRateControl, BandwidthUsage

log = logging.getLogger(__name__)

RECALL_GAIN_PER_S: Final = 1.5
QUIET_S: Final = 2.0
AIORTC_GAIN_PER_S: Final = 1.08
CUT_MEMORY_S: Final = 2.0
_BUILT_FROM: Final = "AimdRateControl"


def climb_gain(quiet_ms: int | None) -> float:
    """The per-second gain of the estimate's increase, given the time since the last
    overuse (None: none yet)."""
    if quiet_ms is not None and quiet_ms < QUIET_S * 1000:
        return AIORTC_GAIN_PER_S
    return RECALL_GAIN_PER_S


def cut_basis(throughputs: list[tuple[int, int]], now_ms: int, current: int | None) -> int | None:
    """What a cut is taken from: the most that arrived within CUT_MEMORY_S of
    ``now_ms`` (``throughputs``: (ms, bit/s) readings), ``current`` included."""
    recent = [bps for at, bps in throughputs if now_ms - at <= CUT_MEMORY_S * 1000]
    if current is not None:
        recent.append(current)
    return max(recent) if recent else None


class RecallingRateControl(AimdRateControl):
    """aiortc's AIMD with a multiplicative climb, fast after a quiet spell, and cuts
    from the recent most that arrived."""

    def __init__(self) -> None:
        super().__init__()
        self._overused_at_ms: int | None = None
        self._throughputs: list[tuple[int, int]] = []
        self._heavy_loss = False

    def note_heavy_loss(self) -> None:
        """The receiver lost many packets since its last report (room_agents.
        early_reports): the next update cuts as an overuse does, from what arrives then
        alone (a link that drops packets has narrowed; no queue need be seen)."""
        self._heavy_loss = True

    def update(
        self, bandwidth_usage: BandwidthUsage, estimated_throughput: int | None, now_ms: int
    ) -> int | None:
        self._throughputs = [
            (at, bps) for at, bps in self._throughputs if now_ms - at <= CUT_MEMORY_S * 1000
        ]
        if estimated_throughput is not None:
            self._throughputs.append((now_ms, estimated_throughput))
        if self._heavy_loss and estimated_throughput is not None:
            self._heavy_loss = False
            self._overused_at_ms = now_ms
            bandwidth_usage = BandwidthUsage.OVERUSING
        elif bandwidth_usage == BandwidthUsage.OVERUSING:
            self._overused_at_ms = now_ms
            estimated_throughput = cut_basis(self._throughputs, now_ms, estimated_throughput)
        self.near_max = False  # never the additive near-max step
        return super().update(bandwidth_usage, estimated_throughput, now_ms)

    def _multiplicative_rate_increase(self, new_bitrate: int, last_ms: int, now_ms: int) -> int:
        quiet = None if self._overused_at_ms is None else now_ms - self._overused_at_ms
        elapsed_ms = min(now_ms - last_ms, 1000)
        gain: float = climb_gain(quiet) ** (elapsed_ms / 1000)
        return int(max((gain - 1) * new_bitrate, 1000))


def rate_recall_installed() -> bool:
    return getattr(aiortc.rate, _BUILT_FROM) is RecallingRateControl


def install_rate_recall() -> bool:
    """Make aiortc's receivers built from now on estimate with ``RecallingRateControl``
    (idempotent, whole process); False, and left alone, when aiortc's rate control is
    not the one this subclass was written over."""
    if rate_recall_installed():
        return True
    current = getattr(aiortc.rate, _BUILT_FROM, None)
    needed = ("current_bitrate", "near_max", "state")
    if current is not AimdRateControl or not all(hasattr(current(), n) for n in needed):
        log.warning("aiortc's rate control is not the expected one: it climbs as before")
        return False
    setattr(aiortc.rate, _BUILT_FROM, RecallingRateControl)
    return True


def uninstall_rate_recall() -> None:
    if rate_recall_installed():
        setattr(aiortc.rate, _BUILT_FROM, AimdRateControl)
