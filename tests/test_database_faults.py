"""Database faults (issue 9, item 8), on real SQLite files and the whole service.

- A database another process holds locked (``BEGIN EXCLUSIVE`` on a second
  connection): the API, the pages and the login answer 503 ``database-busy`` within
  the configured wait, however many requests queue; the scheduler logs one line and
  takes its transition at the first poll after the lock is gone.
- A damaged file, or one that is not a database: ``telecentre serve`` stops at start
  with one clear message and exit status 2, no traceback.
- Damage met while running: 503 ``database-unavailable`` and a bounded number of log
  lines, none with a traceback; a login says the service cannot reach its database
  instead of "wrong email address or password".
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest

from orchestrator.booking import one_off
from orchestrator.calendars.jobs import CalendarJobs
from orchestrator.centres import add_centre, add_room, list_centres, list_rooms
from orchestrator.clock import FakeClock
from orchestrator.db import SQLITE_FILENAME, Database, DatabaseBusy, DatabaseUnavailable
from orchestrator.log_limit import FaultLogFilter
from orchestrator.people import accounts, api_tokens
from orchestrator.sessions.detail import session_detail
from orchestrator.sessions.scheduler import Scheduler
from orchestrator.sessions.tickets import TicketSigner
from tests.accounts_support import browser_like
from tests.test_scheduler import FakeControl
from tests.ui_support import PASSWORD, csrf_of, running_app
from web.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
EMAIL = "paul@example.org"
BUSY_WAIT = 0.5
MARGIN = 3.0
"""Seconds of slack on top of the configured wait: this machine is shared and loaded."""


@dataclass
class Seeded:
    data_dir: Path
    token: str

    @property
    def path(self) -> Path:
        return self.data_dir / SQLITE_FILENAME

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def seed(data_dir: Path) -> Seeded:
    """A database with a centre, two rooms, a staff member and an API token, its WAL
    folded into the main file (so that damage to the file is all there is)."""
    db = Database.for_data_dir(data_dir)
    db.migrate()

    def setup(s: object) -> str:
        paris = add_centre(s, "Paris", "Europe/Paris")  # type: ignore[arg-type]
        for name in ("Salle Bleue", "Salle Verte"):
            add_room(s, paris.id, name)  # type: ignore[arg-type]
        accounts.create_user(s, EMAIL, "Paul", PASSWORD, "staff", paris.id)  # type: ignore[arg-type]
        return api_tokens.create_api_token(s, "test")  # type: ignore[arg-type]

    token = db.run_sync(setup)
    db.close_sync()
    with sqlite3.connect(data_dir / SQLITE_FILENAME) as c:
        c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return Seeded(data_dir, token)


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """Another process's view: a second connection holding the write lock."""
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN EXCLUSIVE")
        yield
    finally:
        other.execute("ROLLBACK")
        other.close()


def damage_tables(path: Path, *tables: str) -> None:
    """Overwrite the root page of each table (and of its indexes) with garbage."""
    with sqlite3.connect(path) as c:
        page_size = c.execute("PRAGMA page_size").fetchone()[0]
        rows = c.execute(
            f"SELECT tbl_name, rootpage FROM sqlite_master WHERE tbl_name IN ({','.join('?' * len(tables))})",
            tables,
        ).fetchall()
    assert {name for name, _ in rows} == set(tables)
    roots = [root for _, root in rows]
    with path.open("r+b") as f:
        for root in roots:
            f.seek((root - 1) * page_size)
            f.write(os.urandom(page_size))


def damage_middle(path: Path) -> None:
    """Garbage over the middle third of the file, as a failing disk might leave it."""
    size = path.stat().st_size
    with path.open("r+b") as f:
        f.seek(size // 3)
        f.write(os.urandom(size // 3))


def quick_check(path: Path) -> str:
    try:
        with sqlite3.connect(path) as c:
            return str(c.execute("PRAGMA quick_check").fetchone()[0])
    except sqlite3.DatabaseError as exc:
        return str(exc)


@asynccontextmanager
async def api(url: str, seeded: Seeded) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(url, headers=seeded.auth) as http:
        yield http


def db_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r
        for r in caplog.records
        if r.levelno >= logging.WARNING and "database" in r.getMessage().lower()
    ]


# --- locked by another process ----------------------------------------------------------


async def test_a_locked_database_answers_503_database_busy_within_the_wait(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    seeded = seed(tmp_path)
    settings = Settings(
        data_dir=tmp_path, database_busy_wait=BUSY_WAIT, poll_interval=0.1, fault_log_interval=60
    )
    async with running_app(settings) as app, api(app.url, seeded) as http:
        async with browser_like() as browser:
            csrf = await csrf_of(browser, f"{app.url}/login")  # before the lock: no database
            with locked(seeded.path):

                async def centres() -> tuple[int, dict[str, object], str | None, float]:
                    began = time.monotonic()
                    async with http.get("/api/v1/centres") as r:
                        body = await r.json()
                        return (
                            r.status,
                            body,
                            r.headers.get("Retry-After"),
                            time.monotonic() - began,
                        )

                # Requests that queue behind each other still share one wait, not one each.
                answers = await asyncio.gather(*(centres() for _ in range(6)))
                for status, body, retry_after, took in answers:
                    assert status == 503
                    assert body["error"]["code"] == "database-busy"  # type: ignore[index]
                    assert retry_after is not None and int(retry_after) >= 1
                    assert took < BUSY_WAIT + MARGIN, took
                began = time.monotonic()
                async with browser.post(
                    f"{app.url}/login",
                    data={"csrf_token": csrf, "email": EMAIL, "password": PASSWORD},
                    allow_redirects=False,
                    headers={"Accept-Language": "fr"},
                ) as r:
                    page = await r.text()
                    assert r.status == 503
                    assert time.monotonic() - began < BUSY_WAIT + MARGIN
                assert "database-busy" in page
                assert "La base de données est occupée" in page  # the visitor's language
                assert "mot de passe" not in page.lower()
            async with http.get("/api/v1/centres") as r:  # the lock is gone: served again
                assert r.status == 200
    lines = [r for r in db_records(caplog) if r.name == "web.database_errors"]
    assert len(lines) == 1  # seven refusals, one line
    assert all(r.exc_info is None for r in caplog.records if r.levelno >= logging.WARNING)


async def test_the_scheduler_says_once_that_the_database_is_locked_and_steps_when_it_is_free(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    seeded = seed(tmp_path)
    db = Database.for_data_dir(tmp_path, busy_wait=0.2)
    t0 = datetime(2030, 6, 3, 9, 0, tzinfo=UTC)
    rooms = db.run_sync(lambda s: [r.id for r in list_rooms(s)])
    _, session = db.run_sync(
        lambda s: one_off.book(s, "Weekly", t0, t0 + timedelta(hours=1), rooms, lead_seconds=60)
    )
    clock = FakeClock(t0.timestamp() - 120)
    scheduler = Scheduler(db, FakeControl(), TicketSigner.generate(), clock, poll_interval=0.5)
    task = asyncio.create_task(scheduler.run())
    try:
        await asyncio.wait_for(scheduler.wait_idle(), 10)
        with locked(seeded.path):
            await clock.set(t0.timestamp() - 60)  # preparing is due, the database is not
            for _ in range(5):
                await asyncio.wait_for(scheduler.wait_idle(), 10)
                await clock.advance(0.5)
            await asyncio.wait_for(scheduler.wait_idle(), 10)
        await clock.advance(0.5)
        await asyncio.wait_for(scheduler.wait_idle(), 10)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    detail = db.run_sync(lambda s: session_detail(s, session.id))
    db.close_sync()
    # Taken at the first poll after the lock, and recorded then (the rooms were told then).
    assert [t.state for t in detail.transitions[1:]] == ["preparing"]
    lines = [r for r in caplog.records if r.name == "orchestrator.sessions.scheduler"]
    assert len(lines) == 1 and "database-busy" in lines[0].getMessage()
    assert lines[0].exc_info is None


async def test_the_caldav_loop_outlives_a_locked_database_and_says_so_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A CI run saw the CalDAV loop's first pass meet the lock while listing its links:
    the loop ended for good ("Task exception was never retrieved") and no link would
    have been synced again until a restart."""
    seeded = seed(tmp_path)
    db = Database.for_data_dir(tmp_path, busy_wait=0.2)
    clock = FakeClock(datetime(2030, 6, 3, 9, 0, tzinfo=UTC).timestamp())
    jobs = CalendarJobs(db, clock, fault_log_interval=60)
    passes: list[int] = []
    passed = asyncio.Event()
    real_pass = jobs.sync_caldav_links

    async def counted() -> None:
        passes.append(len(passes))
        try:
            await real_pass()
        finally:
            passed.set()  # the loop goes on to its sleep before this waiter wakes

    jobs.sync_caldav_links = counted  # type: ignore[method-assign]

    async def asleep() -> None:
        await passed.wait()
        passed.clear()
        assert clock.sleepers == 1

    task = asyncio.create_task(jobs.run_caldav(interval=60))
    try:
        with locked(seeded.path):
            for _ in range(3):  # three passes against the lock
                await asyncio.wait_for(asleep(), 10)
                await clock.advance(60)
            await asyncio.wait_for(asleep(), 10)
        await clock.advance(60)  # the lock is gone: the next pass lists the links
        await asyncio.wait_for(asleep(), 10)
        assert not task.done()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        db.close_sync()
    assert len(passes) == 5
    lines = [r for r in caplog.records if r.name == "orchestrator.calendars.jobs"]
    assert len(lines) == 1 and "database-busy" in lines[0].getMessage()  # four failed, one line
    assert lines[0].exc_info is None


# --- damaged or not a database ------------------------------------------------------------


def serve(data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TELECENTRE_DATA_DIR": str(data_dir), "TELECENTRE_PORT": "0"}
    return subprocess.run(
        [sys.executable, "-m", "web.cli", "serve"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("damage", ["middle", "not-a-database"])
def test_serve_refuses_a_damaged_database_at_start(tmp_path: Path, damage: str) -> None:
    seeded = seed(tmp_path)
    if damage == "middle":
        damage_middle(seeded.path)
        assert quick_check(seeded.path) != "ok"  # the premise: the file is damaged
    else:
        seeded.path.write_bytes(b"these are not the bytes of a database\n" * 500)
    done = serve(tmp_path)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    error_lines = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1, done.stderr
    assert str(seeded.path) in error_lines[0]
    assert "cannot be used" in error_lines[0] and "(database-unavailable)" in error_lines[0]


async def test_damage_met_while_running_answers_503_and_logs_a_line_not_a_traceback(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    seeded = seed(tmp_path)
    damage_tables(seeded.path, "api_token", "app_user", "login_throttle")
    # The start does not read those tables: the damage is met by requests.
    settings = Settings(
        data_dir=tmp_path, database_startup_check=False, poll_interval=0.1, fault_log_interval=60
    )
    async with running_app(settings) as app:
        async with api(app.url, seeded) as http:
            for _ in range(30):
                async with http.get("/api/v1/centres") as r:
                    assert r.status == 503
                    assert (await r.json())["error"]["code"] == "database-unavailable"
            async with http.get("/healthz") as r:
                assert r.status == 200
        async with browser_like() as browser:
            csrf = await csrf_of(browser, f"{app.url}/login")
            async with browser.post(
                f"{app.url}/login",
                data={"csrf_token": csrf, "email": EMAIL, "password": PASSWORD},
                allow_redirects=False,
            ) as r:
                page = await r.text()
                assert r.status == 503
    assert "The service cannot reach its database" in page
    assert "database-unavailable" in page
    assert "Wrong email address or password" not in page
    assert len(db_records(caplog)) <= 2  # 31 refusals: one line per fault code and interval
    assert all(r.exc_info is None for r in caplog.records if r.levelno >= logging.WARNING)


def test_the_database_names_its_faults(tmp_path: Path) -> None:
    seeded = seed(tmp_path)
    db = Database.for_data_dir(tmp_path, busy_wait=0.2, sync_busy_wait=0.2)
    try:
        with locked(seeded.path), pytest.raises(DatabaseBusy) as busy:
            db.run_sync(list_centres)
        assert busy.value.code == "database-busy"
        damage_tables(seeded.path, "centre")
        db.engine.dispose()  # a new connection reads the file afresh
        with pytest.raises(DatabaseUnavailable) as unavailable:
            db.run_sync(list_centres)
        assert unavailable.value.code == "database-unavailable"
        with pytest.raises(DatabaseUnavailable):
            db.check()
    finally:
        db.close_sync()


def test_background_loops_log_a_database_fault_once_per_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    logger = logging.getLogger("tests.feeds")
    handler = caplog.handler
    fault_filter = FaultLogFilter(interval=60)
    handler.addFilter(fault_filter)
    try:
        for _ in range(20):
            try:
                try:
                    raise sqlite3.DatabaseError("database disk image is malformed")
                except sqlite3.DatabaseError as exc:
                    raise DatabaseUnavailable("the service cannot reach its database") from exc
            except DatabaseUnavailable:
                logger.exception("feed polling failed; retrying")
        logger.error("an unrelated failure")
    finally:
        handler.removeFilter(fault_filter)
    mine = [r for r in caplog.records if r.name == "tests.feeds"]
    assert [r.exc_info for r in mine] == [None, None]
    assert "database-unavailable" in mine[0].getMessage()
    assert mine[1].getMessage() == "an unrelated failure"
