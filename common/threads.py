"""The device thread's lifecycle: one daemon thread that retries its work until stopped.

A camera, a microphone and a speaker each run on a thread of their own, because a
device read or write blocks. They share one life: ``start`` runs the thread once,
``stop`` sets a flag the work polls and joins with a timeout (a device stuck in a
read must not hang the agent's shutdown; a daemon thread left behind dies with the
process), and the work is retried after a pause, an unexpected exception being one
more failed attempt, never the end of the thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable


class StoppableThread:
    """A daemon thread running ``target``, which polls ``stopping`` and sleeps in ``wait``."""

    def __init__(self, target: Callable[[], None], name: str) -> None:
        self._target = target
        self.name = name
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        """Started and not stopped (the thread itself may have ended)."""
        return self._thread is not None

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def wait(self, seconds: float) -> bool:
        """Sleep ``seconds`` or until stopped; say whether stopped."""
        return self._stop.wait(seconds)

    def start(self) -> bool:
        """Start the thread; False if it is already running."""
        if self._thread is not None:
            return False
        self._stop.clear()
        self._thread = threading.Thread(target=self._target, name=self.name, daemon=True)
        self._thread.start()
        return True

    def stop(self, timeout: float) -> bool:
        """Ask the thread to stop and wait at most ``timeout`` seconds for it; False if
        it did not end in time (the owner says so, naming its device)."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is None:
            return True
        thread.join(timeout)
        return not thread.is_alive()

    def repeat(
        self,
        attempt: Callable[[], bool],
        pause: Callable[[], float],
        crashed: Callable[[Exception], None],
    ) -> None:
        """Call ``attempt`` until stopped, pausing ``pause()`` seconds after each one,
        unless it returns True (go again at once). An exception from ``attempt`` goes
        to ``crashed`` (still inside the handler, so it may log the traceback) and is
        followed by the pause."""
        while not self.stopping:
            try:
                again = attempt()
            except Exception as exc:
                crashed(exc)
                again = False
            if not again and not self.stopping:
                self.wait(pause())
