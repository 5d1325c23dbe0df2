"""Issue 9, acceptance 1: the tests that read the wall clock for dates pass at any hour
and on the days the clocks change, not only at the hour CI happens to run.

Those tests carry the ``wall_clock`` marker (``pytestmark = pytest.mark.wall_clock`` in
the booking pages', dashboard's, API's, calendars', feeds', panel's, usage and scheduler
tests). Here they run again, in a pytest of their own under libfaketime, at each instant
of ``INSTANTS``; a failure names the instant and the tests that failed there. A test on a
fake clock (orchestrator.clock.FakeClock) keeps its marker when the pages or the
scheduler around it read dates: a path that reads the real clock instead of the injected
one shows up here. A new test that books relative to the real now belongs here too.

The faked run is set up as tests/faketime_support.py says, with the ``faketime``
wrapper's offset (``FAKETIME="+N"``), which keeps ticking (a frozen clock hangs asyncio)
and which every child process shares (the service and agents some tests start).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests import faketime_support

ROOT = Path(__file__).resolve().parents[1]
MARKER = "wall_clock"

# (instant, why it is there). Europe changes its clocks at 01:00 UTC on the last
# Sundays of March and October; North America on the second Sunday of March
# (14 March 2027), so on 18 March 2027 Montréal is 5 h behind Paris, not 6, and a
# series starting a week later crosses Europe's change.
INSTANTS = (
    ("2027-03-18 00:30:00", "just after midnight UTC, 01:30 in Paris"),
    ("2027-03-18 20:30:00", "the evening: a booking three hours away is tomorrow in Paris"),
    ("2027-03-18 23:30:00", "UTC's last hour: Paris and Amsterdam are on the next day"),
    ("2027-03-28 00:30:00", "Europe's spring change, 30 min before 02:00 becomes 03:00"),
    ("2027-03-28 23:30:00", "after the spring change: 01:30 CEST, the day before had 23 hours"),
    ("2027-10-31 00:30:00", "Europe's autumn change, 30 min before 03:00 becomes 02:00"),
)
# Two runs at a time (the suite waits meanwhile); on a 2-core machine each takes about
# 35 s alone and 42 s beside another: about 2 minutes for the six.
PARALLEL = 2
BUDGET_SECONDS = 150.0


@dataclass(frozen=True, slots=True)
class Outcome:
    started: datetime
    tests: int
    skipped: int
    failed: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Run:
    outcome: Outcome | None  # None: no report (the run timed out or did not start)
    output: str
    returncode: int | None
    seconds: float


def read_junit(path: Path) -> Outcome:
    """What a run's JUnit report says: when it started (by its own clock), how many
    tests ran and were skipped, and the ids of those that failed or errored."""
    suite = ET.parse(path).getroot()
    if suite.tag == "testsuites":
        suite = suite[0]
    failed = tuple(
        f"{case.get('classname')}::{case.get('name')}"
        for case in suite.iter("testcase")
        if case.find("failure") is not None or case.find("error") is not None
    )
    started = datetime.fromisoformat(suite.get("timestamp", ""))
    return Outcome(
        started=started if started.tzinfo else started.astimezone(),
        tests=int(suite.get("tests", "0")),
        skipped=int(suite.get("skipped", "0")),
        failed=failed,
    )


def marked_modules() -> list[Path]:
    """The test modules that hold wall_clock tests (a marker is spelt
    ``pytest.mark.wall_clock``), so that a faked run collects only those."""
    here = Path(__file__).resolve()
    return sorted(
        path
        for path in here.parent.glob("test_*.py")
        if path != here and f"pytest.mark.{MARKER}" in path.read_text(encoding="utf-8")
    )


def run_at(faketime: str, instant: str, folder: Path, modules: list[Path]) -> Run:
    """The wall_clock tests of ``modules`` in a pytest whose clock starts at ``instant``
    (UTC) and keeps ticking."""
    folder.mkdir(parents=True, exist_ok=True)
    report = folder / "junit.xml"
    command = [
        faketime,
        "--exclude-monotonic",
        instant,
        sys.executable,
        "-m",
        "pytest",
        "-m",
        MARKER,
        "-p",
        "no:cacheprovider",
        "-q",
        "-rfE",
        f"--basetemp={folder / 'tmp'}",
        f"--junitxml={report}",
        *map(str, modules),
    ]
    began = time.monotonic()
    try:
        done = subprocess.run(
            command,
            cwd=ROOT,
            env={**os.environ, **faketime_support.faked_env()},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=BUDGET_SECONDS,
        )
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else ""
        return Run(None, out, None, time.monotonic() - began)
    outcome = read_junit(report) if report.exists() else None
    return Run(outcome, done.stdout + done.stderr, done.returncode, time.monotonic() - began)


@pytest.fixture(scope="module")
def faked_runs(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Future[Run]]]:
    """Starts a faked run for each instant this session tests, ``PARALLEL`` at a time."""
    if "faketime" in os.environ.get("LD_PRELOAD", ""):
        pytest.skip("this run is under faketime already, and faketime does not nest")
    faketime = faketime_support.faketime()
    wanted = [
        item.callspec.params["instant"]
        for item in request.session.items
        if getattr(item, "originalname", "") == "test_the_wall_clock_tests_pass_at"
        and hasattr(item, "callspec")
    ]
    modules = marked_modules()
    base = tmp_path_factory.mktemp("any-hour")
    with ThreadPoolExecutor(max_workers=PARALLEL) as pool:
        runs = {
            instant: pool.submit(
                run_at,
                faketime,
                instant,
                base / instant.replace(" ", "T").replace(":", ""),
                modules,
            )
            for instant in wanted
        }
        try:
            yield runs
        finally:
            for future in runs.values():
                future.cancel()


# Its run may wait for two others to finish first.
@pytest.mark.timeout(int(BUDGET_SECONDS * (len(INSTANTS) / PARALLEL + 1)))
@pytest.mark.parametrize(("instant", "why"), INSTANTS, ids=[i for i, _ in INSTANTS])
def test_the_wall_clock_tests_pass_at(
    instant: str, why: str, faked_runs: dict[str, Future[Run]]
) -> None:
    run = faked_runs[instant].result()
    at = f"at {instant} UTC ({why})"
    assert run.returncode is not None, (
        f"{at} the {MARKER} tests took over {BUDGET_SECONDS:.0f} s:\n{run.output[-3000:]}"
    )
    assert run.outcome is not None, f"{at} no report:\n{run.output[-3000:]}"
    wanted = datetime.fromisoformat(instant).replace(tzinfo=UTC)
    assert abs((run.outcome.started - wanted).total_seconds()) < 60, (
        f"the run did not see the faked clock: it started at {run.outcome.started}"
    )
    assert run.outcome.tests > 0, f"{at} no {MARKER} test ran:\n{run.output[-3000:]}"
    assert not run.outcome.failed, (
        f"{at} these {MARKER} tests fail:\n  "
        + "\n  ".join(run.outcome.failed)
        + f"\n\n{run.output[-6000:]}"
    )
    assert run.returncode == 0, run.output[-3000:]
    print(f"{at}: {run.outcome.tests} tests, {run.outcome.skipped} skipped, {run.seconds:.0f} s")


def test_the_test_that_failed_every_evening_is_among_them() -> None:
    """Issue 9 named it: it booked at now + 3 h and failed from 20:00 UTC on."""
    assert ROOT / "tests" / "test_dashboard.py" in marked_modules()
