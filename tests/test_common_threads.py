"""common/threads.py: the device thread's start, stop and retries, on real threads
(every wait is bounded; nothing sleeps for its own sake)."""

from __future__ import annotations

import threading

from common.threads import StoppableThread


def test_a_thread_starts_once_and_stops_when_asked() -> None:
    started = threading.Event()
    runs = []

    def body() -> None:
        runs.append(threading.current_thread())
        started.set()
        while not worker.wait(5):
            pass

    worker = StoppableThread(body, name="test-worker")
    assert not worker.running
    assert worker.start()
    assert not worker.start()  # already running: not a second thread
    assert started.wait(5)
    assert worker.running and not worker.stopping
    assert worker.stop(5)
    assert not worker.running and worker.stopping
    assert len(runs) == 1 and runs[0].daemon and runs[0].name == "test-worker"
    assert not runs[0].is_alive()


def test_stop_says_when_the_thread_did_not_end_in_time() -> None:
    release = threading.Event()
    inside = threading.Event()

    def stuck() -> None:  # a device read that ignores the flag
        inside.set()
        release.wait(5)

    worker = StoppableThread(stuck, name="stuck")
    worker.start()
    assert inside.wait(5)
    assert not worker.stop(0.05)
    release.set()


def test_stop_before_start_is_harmless_and_a_stopped_thread_starts_again() -> None:
    ran = threading.Event()
    worker = StoppableThread(ran.set, name="again")
    assert worker.stop(1)
    assert worker.start()
    assert ran.wait(5)
    assert worker.stop(5)
    ran.clear()
    assert worker.start() and not worker.stopping
    assert ran.wait(5)
    assert worker.stop(5)


def test_repeat_pauses_after_a_failure_goes_again_at_once_when_asked_and_survives_a_crash() -> None:
    pauses: list[float] = []
    crashes: list[str] = []
    outcomes: list[bool | Exception] = [True, False, RuntimeError("boom"), True]
    attempts = 0
    done = threading.Event()

    def attempt() -> bool:
        nonlocal attempts
        attempts += 1
        if not outcomes:
            done.set()
            worker.wait(5)  # until stopped
            return False
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def pause() -> float:
        pauses.append(0.0)
        return 0.0

    def crashed(exc: Exception) -> None:
        crashes.append(str(exc))

    def run() -> None:
        worker.repeat(attempt, pause, crashed)

    worker = StoppableThread(run, name="repeat")
    worker.start()
    assert done.wait(5)
    assert worker.stop(5)
    # True, False (pause), crash (pause), True, then the last attempt ends by the stop
    # without a pause.
    assert attempts == 5
    assert crashes == ["boom"]
    assert len(pauses) == 2
