"""Logging that a fault repeated many times a second cannot flood.

A database that is locked or damaged fails every request and every background pass
the same way; the log needs to say so once in a while, not once per failure with a
traceback each time.

- ``LogLimiter``: at most one line per ``interval`` seconds per key; the next line
  says how many were held back in between.
- ``FaultLogFilter``: a ``logging.Filter`` for handlers, so that loops which log
  every failure with its traceback (``log.exception``) log a ``DatabaseFault`` as one
  line per interval per logger and fault code, without the traceback. Other records
  pass unchanged.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from orchestrator.db import DatabaseFault

DEFAULT_INTERVAL = 60.0
MAX_KEYS = 256
"""Keys remembered at most (the oldest are forgotten: they may log again)."""


class LogLimiter:
    """At most one line per ``interval`` seconds (on ``now``, monotonic) per key."""

    def __init__(
        self,
        logger: logging.Logger,
        interval: float = DEFAULT_INTERVAL,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.interval = interval
        self._now = now
        self._last: dict[str, tuple[float, int]] = {}  # key -> (logged at, held back since)

    def allow(self, key: str) -> int | None:
        """How many lines were held back since the last one if a line may be logged
        now for ``key`` (and count it as logged), or None to hold this one back."""
        now = self._now()
        last = self._last.get(key)
        if last is not None and now - last[0] < self.interval:
            self._last[key] = (last[0], last[1] + 1)
            return None
        if last is None and len(self._last) >= MAX_KEYS:
            del self._last[next(iter(self._last))]
        self._last.pop(key, None)
        self._last[key] = (now, 0)
        return last[1] if last is not None else 0

    def log(self, level: int, key: str, message: str, *args: object) -> bool:
        """Log ``message % args`` unless a line for ``key`` was logged within the
        interval; returns whether it was logged."""
        held = self.allow(key)
        if held is None:
            return False
        if held:
            message += " (%d more like it since the last report)"
            args = (*args, held)
        self.logger.log(level, message, *args)
        return True


def _fault_in(record: logging.LogRecord) -> DatabaseFault | None:
    error = record.exc_info[1] if record.exc_info else None
    seen = 0
    while error is not None and seen < 8:  # the fault may be a cause of what was logged
        if isinstance(error, DatabaseFault):
            return error
        error = error.__cause__ or error.__context__
        seen += 1
    return None


class FaultLogFilter(logging.Filter):
    """See the module's rules."""

    def __init__(
        self, interval: float = DEFAULT_INTERVAL, now: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__()
        self._limiter = LogLimiter(logging.getLogger(__name__), interval, now)

    def filter(self, record: logging.LogRecord) -> bool:
        fault = _fault_in(record)
        if fault is None:
            return True
        held = self._limiter.allow(f"{record.name}:{fault.code}")
        if held is None:
            return False
        record.msg = f"{record.getMessage()}: {fault}" + (
            f" ({held} more like it since the last report)" if held else ""
        )
        record.args = None
        record.exc_info = None
        record.exc_text = None
        return True
