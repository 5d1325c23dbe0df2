"""The clock the orchestrator reads and sleeps on, injected so tests never sleep for real.

``now()`` is the wall clock (epoch seconds, UTC), because bookings are wall-clock
instants; ``sleep()`` waits on the event loop's monotonic time, so a wall-clock
jump cannot stretch or shorten a timer. Callers re-read ``now()`` after waking.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

# Float arithmetic such as ``now + (wake - now)`` can miss ``wake`` by an ulp; a fake
# sleeper whose deadline is within this much of the fake time counts as due.
_FAKE_SLACK = 1e-6


class Clock(Protocol):
    def now(self) -> float:
        """Wall-clock time, epoch seconds UTC."""
        ...

    async def sleep(self, seconds: float) -> None: ...


def instant(clock: Clock) -> datetime:
    """The clock's now as an aware UTC datetime (what the store and the rules take)."""
    return datetime.fromtimestamp(clock.now(), UTC)


class SystemClock:
    """The real clock: ``time.time()`` for instants, loop time for sleeping."""

    def now(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


@dataclass(eq=False)
class _Sleeper:
    deadline: float
    future: asyncio.Future[None]
    resumed: asyncio.Event = field(default_factory=asyncio.Event)


class FakeClock:
    """A clock that moves only when told to; sleepers wake when it passes their deadline.

    ``advance``/``set`` return only after every sleeper they woke has resumed and run
    up to its next suspension point, so a test can look at the effects right away.
    """

    def __init__(self, start: float) -> None:
        self._now = float(start)
        self._sleepers: list[_Sleeper] = []

    def now(self) -> float:
        return self._now

    @property
    def sleepers(self) -> int:
        """How many coroutines are sleeping on this clock."""
        return len(self._sleepers)

    @property
    def next_deadline(self) -> float | None:
        """When the earliest sleeper wants to wake, if any sleeps."""
        return min((s.deadline for s in self._sleepers), default=None)

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        sleeper = _Sleeper(self._now + seconds, asyncio.get_running_loop().create_future())
        self._sleepers.append(sleeper)
        try:
            await sleeper.future
        finally:
            if sleeper in self._sleepers:
                self._sleepers.remove(sleeper)
            sleeper.resumed.set()

    async def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a clock does not go backwards")
        await self.set(self._now + seconds)

    async def set(self, t: float) -> None:
        """Jump to ``t`` (it may go backwards, like a wall clock) and wake who is due."""
        self._now = float(t)
        woken = [s for s in self._sleepers if s.deadline <= self._now + _FAKE_SLACK]
        for sleeper in woken:
            self._sleepers.remove(sleeper)
            if not sleeper.future.done():
                sleeper.future.set_result(None)
        for sleeper in woken:
            await sleeper.resumed.wait()
        await asyncio.sleep(0)
