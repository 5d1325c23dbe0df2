"""A device worked on a thread of its own, and the state word the status file shows.

Cameras, microphones (capture.py) and the speaker (playback.py) share this life: the
thread (common/threads.py) started once and stopped with a bounded join, the state
``starting`` → working (``ok`` or ``playing``) ↔ ``unavailable`` → ``stopped``, and the
failure logged once per distinct reason while the work retries every ``retry`` seconds.
"""

from __future__ import annotations

import logging

from common.threads import StoppableThread
from room_agents.devices import DeviceError, DeviceSpec

log = logging.getLogger(__name__)


class DeviceThread:
    """Subclasses implement ``_run`` (on the thread) and name their working state."""

    working_state = "ok"

    def __init__(self, spec: DeviceSpec, retry: float, *, name: str, label: str) -> None:
        self.spec = spec
        self.retry = retry
        self.state = "stopped"  # starting, working_state, unavailable, stopped
        self.error: DeviceError | None = None
        self._label = label
        self._thread = StoppableThread(self._run, name=name)

    def _run(self) -> None:
        raise NotImplementedError

    def start(self) -> None:
        if self._thread.running:
            return
        self.state = "starting"
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        if not self._thread.stop(timeout):
            log.warning("%s: the device thread did not stop within %.0f s", self._label, timeout)
        self.state = "stopped"

    def _working(self, said: str) -> None:
        """The device works (again): log ``said`` once and clear the error."""
        if self.state != self.working_state:
            log.info("%s %s", self._label, said)
            self.state, self.error = self.working_state, None

    def _unavailable(self, error: DeviceError) -> None:
        if self.error is None or self.error.message != error.message:
            log.error("%s; retrying every %g s", error.message, self.retry)
        self.state, self.error = "unavailable", error
