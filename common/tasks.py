"""The fire-and-forget task set: one owner for the tasks an object starts and does not
await, so that none is garbage-collected mid-flight and ``close`` leaves none behind.

A task that ends with an error is logged by the set, with its name and traceback, as
it ends: nobody awaits these tasks, so otherwise the error would surface (if ever)
as asyncio's "Task exception was never retrieved" when the task is collected."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger(__name__)


class TaskSet:
    """Tasks started by one owner; ``close`` cancels them and waits until they end."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(
        self, coro: Coroutine[Any, Any, Any], *, name: str | None = None
    ) -> asyncio.Task[Any]:
        """Start ``coro`` now; the set keeps it until it ends."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._ended)
        return task

    def _ended(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        error = task.exception()  # retrieved: asyncio will not report it again
        if error is not None:
            log.error("task %s ended with an error", task.get_name(), exc_info=error)

    def __len__(self) -> int:
        return len(self._tasks)

    async def drain(self, timeout: float) -> None:
        """Wait at most ``timeout`` seconds for the tasks under way; cancel none."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)

    async def close(self) -> None:
        """Cancel every task but the caller's own, and wait until they have ended.

        A task of the set may call this (a call ending itself): it is left to finish."""
        current = asyncio.current_task()
        others = [t for t in self._tasks if t is not current]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)
