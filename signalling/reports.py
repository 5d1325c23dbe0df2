"""What a peer reports (``stats``) on its way to the orchestrator: kept to the session's
real peers, milestones passed on once, media figures at most once per interval.

An honest room agent reports its media every 2 s and each milestone once; a peer
that reports faster must not make the service write faster. Reports that arrive
within ``interval`` of the last one delivered for the same (session, peer) are
merged into one waiting report, delivered when the interval is over: period
counts (frames, freezes, audio frames, lost packets) add up, gauges (fps,
latency, bitrates, CPU) take the newest value, the loss fraction the worst.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection, Coroutine, Hashable
from dataclasses import dataclass, replace
from typing import Any, Generic, TypeVar

from signalling import protocol as p
from signalling.ports import MediaReport

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")


def _sum(a: int | None, b: int | None) -> int | None:
    if a is None or b is None:
        return b if a is None else a
    return a + b


def _worst(a: float | None, b: float | None) -> float | None:
    if a is None or b is None:
        return b if a is None else a
    return max(a, b)


def merge_media(older: p.MediaStats, newer: p.MediaStats) -> p.MediaStats:
    """One peer's figures over two consecutive periods, as one period."""
    return replace(
        newer,
        frames=older.frames + newer.frames,
        freezes=older.freezes + newer.freezes,
        audio_frames=older.audio_frames + newer.audio_frames,
        packets_lost=_sum(older.packets_lost, newer.packets_lost),
        loss_fraction=_worst(older.loss_fraction, newer.loss_fraction),
    )


def merge_reports(older: MediaReport, newer: MediaReport) -> MediaReport:
    """Two media reports of one peer in one session as one."""
    by_peer = {m.peer_id: m for m in older.media}
    for m in newer.media:
        kept = by_peer.get(m.peer_id)
        by_peer[m.peer_id] = m if kept is None else merge_media(kept, m)
    return replace(
        newer,
        media=tuple(by_peer.values()),
        process=newer.process if newer.process is not None else older.process,
    )


def media_of_members(
    media: list[p.MediaStats], sender: str, members: Collection[str]
) -> list[p.MediaStats]:
    """The entries about the session's other members: figures about a peer that is
    not in the session (or about the sender itself) are dropped, so a peer cannot
    grow the session's media summary with invented peer ids. One entry per peer:
    a repeated peer id keeps its last entry."""
    kept = {m.peer_id: m for m in media if m.peer_id != sender and m.peer_id in members}
    return list(kept.values())


@dataclass(slots=True)
class _Slot(Generic[T]):
    sent_at: float
    pending: T | None = None
    timer: asyncio.TimerHandle | None = None


class Coalescer(Generic[K, T]):
    """At most one delivery per key per ``interval`` (loop time); what arrives sooner
    is merged into the waiting report, delivered at the end of the interval."""

    def __init__(
        self,
        interval: float,
        merge: Callable[[T, T], T],
        deliver: Callable[[T], Coroutine[Any, Any, None]],
        spawn: Callable[[Coroutine[Any, Any, None]], None],
    ) -> None:
        self.interval = interval
        self._merge = merge
        self._deliver = deliver
        self._spawn = spawn
        self._slots: dict[K, _Slot[T]] = {}
        self.merged = 0

    def __len__(self) -> int:
        return len(self._slots)

    async def offer(self, key: K, report: T) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        slot = self._slots.get(key)
        if slot is None:
            self._slots[key] = _Slot(sent_at=now)
            await self._deliver(report)
            return
        if slot.pending is None and now - slot.sent_at >= self.interval:
            slot.sent_at = now
            await self._deliver(report)
            return
        self.merged += 1
        slot.pending = report if slot.pending is None else self._merge(slot.pending, report)
        if slot.timer is None:
            slot.timer = loop.call_at(slot.sent_at + self.interval, self._flush, key)

    def _flush(self, key: K) -> None:
        slot = self._slots.get(key)
        if slot is None or slot.pending is None:
            return
        report, slot.pending, slot.timer = slot.pending, None, None
        slot.sent_at = asyncio.get_running_loop().time()
        self._spawn(self._deliver(report))

    def forget(self, key: K) -> T | None:
        """Drop the key's state; returns the report still waiting, for the caller to
        deliver before what ends the key (a peer leaving the session)."""
        slot = self._slots.pop(key, None)
        if slot is None:
            return None
        if slot.timer is not None:
            slot.timer.cancel()
        return slot.pending

    def close(self) -> None:
        for slot in self._slots.values():
            if slot.timer is not None:
                slot.timer.cancel()
        self._slots.clear()
