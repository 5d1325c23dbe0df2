"""Loaded by every Python process the tests start under libfaketime: this folder goes
first on PYTHONPATH there (tests/faketime_support.faked_env), and nowhere else.

Those runs leave the monotonic clock alone (``FAKETIME_DONT_FAKE_MONOTONIC=1``): when
libfaketime fakes it too, Python's timed lock waits (``sem_clockwait`` on the monotonic
clock, which libfaketime 0.9.10 does not intercept) wait for the whole fake offset, so a
thread's ``Event.wait(1)`` hangs for days. But with the monotonic clock left alone,
libfaketime 0.9.10 still shifts the absolute deadline Python 3.11+ gives
``clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME)`` by the fake offset, so every
``time.sleep`` fails with EINVAL (wolfcw/libfaketime#426). Here ``time.sleep`` waits with
``select``, a relative timeout that libfaketime passes through: the same wait, on the real
monotonic clock, with nothing about the wall clock changed.
"""

from __future__ import annotations

import os
import select
import time


def _sleep(seconds: float) -> None:
    if seconds < 0:
        raise ValueError("sleep length must be non-negative")
    select.select([], [], [], seconds)


if os.environ.get("FAKETIME_DONT_FAKE_MONOTONIC") == "1" and "faketime" in os.environ.get(
    "LD_PRELOAD", ""
):
    time.sleep = _sleep
