"""Sleeps that a wake event cuts short."""

from __future__ import annotations

import asyncio
import contextlib


async def sleep_or_wake(wake: asyncio.Event, delay: float) -> bool:
    """Sleep ``delay`` seconds or until ``wake`` is set; clear it and say whether it was.

    The event is cleared on return, so a set that arrives during the caller's next piece
    of work wakes the next sleep at once instead of being lost."""
    woken = wake.is_set()
    if not woken:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), max(0.0, delay))
            woken = True
    wake.clear()
    return woken
