"""Logging what peers do wrong without letting them write the log: at most ``burst``
lines per kind of event per ``interval``; the next line after a quiet spell says how
many were left out. A flood of bad messages costs a few lines a minute, and each
line is one line (no traceback: a peer's mistake is not the server's fault)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

MAX_KINDS = 256
"""Kinds are the server's own labels (error codes); the bound is a safety net."""


@dataclass(slots=True)
class _Window:
    started: float
    lines: int = 0
    suppressed: int = 0


class QuietLog:
    def __init__(
        self,
        logger: logging.Logger,
        *,
        interval: float = 60.0,
        burst: int = 5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._interval = interval
        self._burst = burst
        self._clock = clock
        self._windows: dict[str, _Window] = {}

    def log(
        self, level: int, kind: str, message: str, *args: object, exc_info: bool = False
    ) -> bool:
        """Log ``message % args`` unless ``kind`` already had its lines in this
        interval; True when the line was written."""
        now = self._clock()
        window = self._windows.get(kind)
        if window is None or now - window.started >= self._interval:
            if window is None and len(self._windows) >= MAX_KINDS:
                self._windows.pop(next(iter(self._windows)))
            left_out = window.suppressed if window is not None else 0
            window = self._windows[kind] = _Window(started=now)
            if left_out:
                message += " (%d similar line(s) left out in the last %.0f s)"
                args = (*args, left_out, self._interval)
        if window.lines >= self._burst:
            window.suppressed += 1
            return False
        window.lines += 1
        self._logger.log(level, message, *args, exc_info=exc_info)
        return True

    def info(self, kind: str, message: str, *args: object) -> bool:
        return self.log(logging.INFO, kind, message, *args)

    def warning(self, kind: str, message: str, *args: object) -> bool:
        return self.log(logging.WARNING, kind, message, *args)

    def exception(self, kind: str, message: str, *args: object) -> bool:
        """A fault of the server's own (a bug): its traceback, within the same limits."""
        return self.log(logging.ERROR, kind, message, *args, exc_info=True)
