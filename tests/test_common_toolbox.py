"""common/: the task set and the wake-event sleep that every long-lived object uses."""

from __future__ import annotations

import asyncio
import logging

import pytest

from common.tasks import TaskSet
from common.waits import sleep_or_wake


async def test_task_set_keeps_tasks_until_they_end_and_close_cancels_the_rest() -> None:
    tasks = TaskSet()
    done = asyncio.Event()
    started = asyncio.Event()
    cancelled = asyncio.Event()

    async def quick() -> None:
        done.set()

    async def forever() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    tasks.spawn(quick())
    tasks.spawn(forever(), name="forever")
    await asyncio.wait_for(done.wait(), 5)
    await asyncio.wait_for(started.wait(), 5)
    await asyncio.sleep(0)
    assert len(tasks) == 1
    await asyncio.wait_for(tasks.close(), 5)
    assert cancelled.is_set()
    assert len(tasks) == 0


async def test_close_from_inside_the_set_spares_the_caller() -> None:
    tasks = TaskSet()
    finished = asyncio.Event()

    async def ends_itself() -> None:
        await tasks.close()
        finished.set()

    tasks.spawn(ends_itself())
    await asyncio.wait_for(finished.wait(), 5)


async def test_drain_waits_for_work_under_way_without_cancelling() -> None:
    tasks = TaskSet()
    release = asyncio.Event()

    async def slow() -> None:
        await release.wait()

    task = tasks.spawn(slow())
    await tasks.drain(0.01)
    assert not task.done()
    release.set()
    await tasks.drain(5)
    assert task.done() and not task.cancelled()


async def test_sleep_or_wake_returns_early_when_woken_and_clears_the_event() -> None:
    wake = asyncio.Event()
    asyncio.get_running_loop().call_soon(wake.set)
    assert await asyncio.wait_for(sleep_or_wake(wake, 60), 5) is True
    assert not wake.is_set()


async def test_sleep_or_wake_keeps_a_wake_that_came_before_the_sleep() -> None:
    wake = asyncio.Event()
    wake.set()
    assert await sleep_or_wake(wake, 60) is True
    assert await sleep_or_wake(wake, 0) is False


async def test_a_task_that_fails_is_logged_with_its_name_as_it_ends(
    caplog: pytest.LogCaptureFixture,
) -> None:
    tasks = TaskSet()

    async def fails() -> None:
        raise RuntimeError("boom")

    task = tasks.spawn(fails(), name="the-loop")
    await asyncio.wait([task], timeout=5)
    await asyncio.sleep(0)  # the done callbacks run
    assert len(tasks) == 0
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "the-loop" in errors[0].getMessage()
    assert errors[0].exc_info is not None and isinstance(errors[0].exc_info[1], RuntimeError)
