"""The test process's end of the delaying forwarder (tests/netlab/delay.py): starts it
in a router namespace and sets each direction's delay, waiting for its answers."""

from __future__ import annotations

import select
import subprocess
import sys
from pathlib import Path
from typing import IO, Protocol

REPO = Path(__file__).resolve().parents[2]
ANSWER_WITHIN = 10.0


class Runs(Protocol):
    name: str

    def popen(self, *argv: str, **kwargs: object) -> subprocess.Popen[bytes]: ...


def _answer(out: IO[bytes], proc: subprocess.Popen[bytes]) -> str:
    ready, _, _ = select.select([out], [], [], ANSWER_WITHIN)
    if not ready:
        raise RuntimeError(f"the delaying forwarder did not answer within {ANSWER_WITHIN} s")
    line = out.readline().decode().strip()
    if not line:
        raise RuntimeError(f"the delaying forwarder exited ({proc.poll()})")
    return line


class Delayer:
    """A running forwarder; ``set`` returns once it applies the new delay."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self._proc = proc

    @classmethod
    def start(cls, router: Runs) -> Delayer:
        proc = router.popen(
            sys.executable,
            "-m",
            "tests.netlab.delay",
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        delayer = cls(proc)
        try:
            line = delayer._read()
            if line != "ready":
                raise RuntimeError(f"the delaying forwarder in {router.name} said {line!r}")
        except BaseException:
            delayer.close()
            raise
        return delayer

    def _read(self) -> str:
        assert self._proc.stdout is not None
        return _answer(self._proc.stdout, self._proc)

    def _say(self, line: str) -> str:
        assert self._proc.stdin is not None
        self._proc.stdin.write(f"{line}\n".encode())
        self._proc.stdin.flush()
        return self._read()

    def set(self, queue: int, delay_ms: float, jitter_ms: float) -> None:
        answer = self._say(f"set {queue} {delay_ms} {jitter_ms}")
        if answer != "ok":
            raise RuntimeError(f"the delaying forwarder refused the delay: {answer}")

    def packets(self) -> dict[int, int]:
        """Packets delayed so far, per queue."""
        answer = self._say("stats").split()
        return {int(q): int(n) for q, n in (item.split(":") for item in answer[1:])}

    def close(self) -> None:
        if self._proc.poll() is None and self._proc.stdin is not None:
            try:
                self._proc.stdin.write(b"quit\n")
                self._proc.stdin.flush()
            except BrokenPipeError:
                pass
            try:
                self._proc.wait(2.0)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        for stream in (self._proc.stdin, self._proc.stdout):
            if stream is not None:
                stream.close()
