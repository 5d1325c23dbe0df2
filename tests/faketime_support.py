"""Another wall clock for a child process, with libfaketime (Debian's 0.9.10), set up the
one way that holds for Python 3.11+ and Chromium:

- the monotonic clock is left alone (``--exclude-monotonic``): faked, it makes Python's
  timed lock waits (``sem_clockwait``, which libfaketime does not intercept) wait for
  the whole offset;
- ``FAKETIME_FORCE_MONOTONIC_FIX=0``: the fix libfaketime selects for this glibc shifts
  every condition-variable deadline, which stalls the GIL hand-over between threads and
  Chromium;
- tests/faketime_site/sitecustomize.py puts ``time.sleep`` back on its feet (see there).

File times are not shifted (libfaketime 0.9.10 misses glibc's ``stat``): compare them
with file times, not with ``time.time()``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from tests.requirements import missing

ROOT = Path(__file__).resolve().parents[1]
SITE = Path(__file__).resolve().parent / "faketime_site"


def faketime() -> str:
    """The ``faketime`` wrapper; skips, or fails under CI, when it is not installed."""
    path = shutil.which("faketime")
    if path is None:
        missing("libfaketime is not installed (scripts/services.sh installs it)")
    return path


def faked_env() -> dict[str, str]:
    """What a faked Python process needs in its environment, beside ``faketime``'s own."""
    path = (str(SITE), str(ROOT), os.environ.get("PYTHONPATH", ""))
    return {
        "FAKETIME_FORCE_MONOTONIC_FIX": "0",
        "PYTHONPATH": os.pathsep.join(p for p in path if p),
    }


def ticking_from(instant: str) -> list[str]:
    """A command prefix: the wall clock reads ``instant`` (UTC, ``YYYY-MM-DD HH:MM:SS``)
    when the process starts, and ticks. Each of its child processes starts again at
    ``instant``. Absolute, so it holds in a suite that runs under faketime itself."""
    return [faketime(), "--exclude-monotonic", "-f", f"@{instant}"]
