"""The database handle: one engine, sessions run off the event loop, faults named.

Domain code is written as synchronous functions over a ``DbSession``; async callers
hand them to ``Database.run`` (a worker thread; SQLite gets a single one, since it
has a single writer anyway) and the CLI to ``Database.run_sync``. Each call is one
transaction, committed on return and rolled back on an exception.

SQLite: WAL (readers never wait for the writer), foreign keys on, and ``BEGIN
IMMEDIATE`` so a transaction that reads before it writes takes the write lock up
front: in WAL a deferred transaction whose snapshot went stale while it read fails
at its first write with SQLITE_BUSY, which no timeout retries. So the only place a
transaction waits for another process is its ``BEGIN``, and ``busy_timeout`` bounds
that wait.

Rules:

- **Order.** The worker threads take jobs by ``Priority``, then in arrival order: the
  scheduler's lifecycle steps first, then people's requests, then signalling's
  joins and leaves, then media stats and readiness reports. A job already running
  is never interrupted, so what the lower priorities may cost the higher ones is
  one transaction each (the stats writer keeps those small).
- **Bounded wait.** A job handed to ``run`` (the service: requests, the scheduler,
  events) waits at most ``busy_wait`` seconds for the database, counted from when it
  was handed in: its ``BEGIN`` gets the rest of that budget as SQLite's
  ``busy_timeout``, and a job whose budget ran out while it queued tries once
  without waiting. So while another process holds the write lock every caller hears
  ``DatabaseBusy`` within about ``busy_wait`` (not one wait per queued job), and a
  job that merely queued behind slow work of our own still runs once the lock is
  free. ``run_sync`` called directly (a command-line process, a migration) waits up
  to ``sync_busy_wait``, longer: nobody else queues behind it, and several
  processes writing at once (a batch of CLI commands) take turns rather than fail.
- **Faults are named.** SQLite's busy and locked errors become ``DatabaseBusy``
  (``database-busy``); a damaged file, a file that is not a database, an I/O error,
  a full disk or a read-only file become ``DatabaseUnavailable``
  (``database-unavailable``). Other errors (constraints, programming errors) pass
  through unchanged.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from enum import IntEnum
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from sqlalchemy import Engine, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url
from sqlalchemy.pool import StaticPool
from sqlmodel import Session as DbSession
from sqlmodel import create_engine

__all__ = [
    "DEFAULT_BUSY_WAIT",
    "SQLITE_FILENAME",
    "Database",
    "DatabaseBusy",
    "DatabaseFault",
    "DatabaseUnavailable",
    "DbSession",
    "Priority",
    "fault_of",
]

T = TypeVar("T")

SQLITE_FILENAME = "telecentre.sqlite3"
DEFAULT_BUSY_WAIT = 2.0
"""Seconds a job of the service waits for a database another process holds locked."""
SYNC_BUSY_WAIT = 10.0
"""Seconds a direct ``run_sync`` (the CLI) waits for it."""

# SQLite's primary result codes (https://www.sqlite.org/rescode.html).
_BUSY_CODES = frozenset({5, 6})  # SQLITE_BUSY, SQLITE_LOCKED
_UNAVAILABLE_CODES = frozenset(
    {
        8,  # SQLITE_READONLY
        10,  # SQLITE_IOERR
        11,  # SQLITE_CORRUPT
        13,  # SQLITE_FULL
        14,  # SQLITE_CANTOPEN
        15,  # SQLITE_PROTOCOL
        26,  # SQLITE_NOTADB
    }
)


# --- faults -----------------------------------------------------------------------------


class DatabaseFault(Exception):
    """The database could not do its part; ``code`` is stable (the API and the pages
    answer 503 with it), ``message`` is safe to show, ``detail`` is for the log."""

    code: ClassVar[str] = "database-unavailable"

    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail

    def __str__(self) -> str:
        return f"{self.code}: {self.message}" + (f" ({self.detail})" if self.detail else "")


class DatabaseBusy(DatabaseFault):
    """Another process held the database locked for longer than the wait allowed."""

    code: ClassVar[str] = "database-busy"


class DatabaseUnavailable(DatabaseFault):
    """The database cannot be used: damaged, not a database, unreadable, full."""

    code: ClassVar[str] = "database-unavailable"


BUSY_MESSAGE = "the database is busy; try again in a moment"
UNAVAILABLE_MESSAGE = "the service cannot reach its database"


def fault_of(error: BaseException) -> DatabaseFault | None:
    """The fault an error of the database driver stands for, or None when it is not
    one (a constraint, a programming error: those stay what they are)."""
    if isinstance(error, DatabaseFault):
        return error
    if isinstance(error, sa_exc.TimeoutError):  # no pooled connection came free
        return DatabaseBusy(BUSY_MESSAGE, str(error).splitlines()[0])
    original = getattr(error, "orig", error)
    if isinstance(original, sqlite3.Error):
        code = getattr(original, "sqlite_errorcode", None)
        primary = code & 0xFF if isinstance(code, int) else None
        detail = str(original)
        if primary in _BUSY_CODES:
            return DatabaseBusy(BUSY_MESSAGE, detail)
        if primary in _UNAVAILABLE_CODES:
            return DatabaseUnavailable(UNAVAILABLE_MESSAGE, detail)
        return None
    if isinstance(error, sa_exc.DBAPIError) and error.connection_invalidated:
        return DatabaseUnavailable(UNAVAILABLE_MESSAGE, str(original).splitlines()[0])
    if isinstance(error, sa_exc.OperationalError):  # a server database unreachable
        return DatabaseUnavailable(UNAVAILABLE_MESSAGE, str(original).splitlines()[0])
    return None


# --- the engine -------------------------------------------------------------------------


def _sqlite_engine(url: str, busy_ms: Callable[[], int]) -> Engine:
    parsed = make_url(url)
    in_memory = parsed.database in (None, "", ":memory:")
    if in_memory:
        # One shared connection, or every checkout would see its own empty database.
        engine = create_engine(url, connect_args={"check_same_thread": False}, poolclass=StaticPool)
    else:
        engine = create_engine(url, connect_args={"check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the sqlite3 module, decide where transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout={busy_ms()}")
            if not in_memory:
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # The wait for the write lock happens here, and only here: bound it by what is
        # left of this job's budget (see the module's rules).
        connection.exec_driver_sql(f"PRAGMA busy_timeout={busy_ms()}")
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


# --- the worker threads -----------------------------------------------------------------


class Priority(IntEnum):
    """Which database work goes first when several wait (lower first)."""

    SCHEDULER = 0
    """Lifecycle transitions and schedules: due at a planned time."""
    REQUEST = 1
    """People and API clients waiting for an answer."""
    EVENTS = 2
    """Signalling's joins, leaves, milestones and room connections: few and kept."""
    STATS = 3
    """Media stats and readiness reports: coalesced, and shed first under load."""


_Job = tuple[Callable[[], Any], "Future[Any]", float]
_STOP = len(Priority)  # after every queued job


class _PriorityWorkers:
    """Threads that take jobs by priority, then in arrival order. Each job records
    when it was handed in, so the database can bound its total wait."""

    def __init__(self, threads: int, name: str, started: threading.local) -> None:
        self._queue: queue.PriorityQueue[tuple[int, int, _Job | None]] = queue.PriorityQueue()
        self._seq = itertools.count()
        self._started = started
        self._threads = [
            threading.Thread(target=self._work, name=f"{name}-{i}", daemon=True)
            for i in range(threads)
        ]
        self._lock = threading.Lock()
        self._closed = False
        for thread in self._threads:
            thread.start()

    def submit(self, priority: Priority, fn: Callable[[], T]) -> Future[T]:
        future: Future[T] = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("the database is closed")
            self._queue.put((int(priority), next(self._seq), (fn, future, time.monotonic())))
        return future

    def _work(self) -> None:
        while True:
            _, _, job = self._queue.get()
            if job is None:
                return
            fn, future, handed_in = job
            if not future.set_running_or_notify_cancel():
                continue  # the caller gave up before the job started
            self._started.handed_in = handed_in
            try:
                result = fn()
            except BaseException as exc:
                future.set_exception(exc)
            else:
                future.set_result(result)
            finally:
                self._started.handed_in = None

    @property
    def waiting(self) -> int:
        """Jobs handed in and not started yet."""
        return self._queue.qsize()

    def shutdown(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for _ in self._threads:
                self._queue.put((_STOP, next(self._seq), None))
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join()


# --- the handle -------------------------------------------------------------------------


class Database:
    """An engine plus the threads that use it; ``url`` is any SQLAlchemy URL.

    ``busy_wait``: seconds a job handed to ``run`` may wait for a database locked by
    another process; ``sync_busy_wait``: the same for a direct ``run_sync`` (see the
    module's rules).
    """

    def __init__(
        self,
        url: str,
        *,
        busy_wait: float = DEFAULT_BUSY_WAIT,
        sync_busy_wait: float = SYNC_BUSY_WAIT,
    ) -> None:
        if busy_wait < 0 or sync_busy_wait < 0:
            raise ValueError("busy waits are not negative")
        self.url = url
        self.busy_wait = busy_wait
        self.sync_busy_wait = sync_busy_wait
        self.is_sqlite = make_url(url).get_backend_name() == "sqlite"
        self._job = threading.local()
        if self.is_sqlite:
            self.engine = _sqlite_engine(url, self._busy_ms)
        else:
            self.engine = create_engine(url, pool_pre_ping=True)
        self._workers = _PriorityWorkers(
            1 if self.is_sqlite else 4, "telecentre-db", started=self._job
        )

    @classmethod
    def for_data_dir(
        cls,
        path: str | os.PathLike[str],
        *,
        busy_wait: float = DEFAULT_BUSY_WAIT,
        sync_busy_wait: float = SYNC_BUSY_WAIT,
    ) -> Database:
        """The embedded default: ``telecentre.sqlite3`` in the data directory."""
        directory = Path(path)
        directory.mkdir(parents=True, exist_ok=True)
        return cls(
            f"sqlite:///{(directory / SQLITE_FILENAME).resolve()}",
            busy_wait=busy_wait,
            sync_busy_wait=sync_busy_wait,
        )

    def _busy_ms(self) -> int:
        """What is left of the current job's wait budget, in milliseconds (0: try once)."""
        handed_in: float | None = getattr(self._job, "handed_in", None)
        if handed_in is None:
            return round(self.sync_busy_wait * 1000)
        left = handed_in + self.busy_wait - time.monotonic()
        return max(0, round(left * 1000))

    def migrate(self) -> None:
        """Bring the schema to the newest migration (alembic ``upgrade head``);
        a database that cannot be used raises its ``DatabaseFault``."""
        # Alembic loads only when the schema is brought up to date (serve, the CLI's
        # first use of a data directory), not with every import of the database.
        from orchestrator.migrations import upgrade

        try:
            upgrade(self.engine)
        except Exception as exc:
            fault = fault_of(exc)
            if fault is None:
                raise
            raise fault from exc

    def check(self) -> None:
        """Raise ``DatabaseUnavailable`` unless the database can be opened and, for
        SQLite, passes ``PRAGMA quick_check`` (every page of the file is read, so a
        damaged file is found at start rather than by a request)."""
        try:
            with self.engine.connect() as connection:
                if not self.is_sqlite:
                    connection.exec_driver_sql("SELECT 1")
                    return
                rows = [str(r[0]) for r in connection.exec_driver_sql("PRAGMA quick_check")]
        except Exception as exc:
            fault = fault_of(exc)
            if fault is None:
                raise
            raise fault from exc
        if rows != ["ok"]:
            raise DatabaseUnavailable("the database file is damaged", "; ".join(rows[:3])[:300])

    def run_sync(self, fn: Callable[[DbSession], T]) -> T:
        """Run ``fn`` in one transaction on this thread. Objects it returns stay usable
        (they are not expired on commit) but are detached: read, don't lazy-load.
        Errors that are database faults are raised as ``DatabaseFault``; a lock held
        by another process is waited for up to ``sync_busy_wait`` (``run``'s jobs:
        what is left of ``busy_wait``)."""
        try:
            with DbSession(self.engine, expire_on_commit=False) as session:
                try:
                    result = fn(session)
                    session.commit()
                except BaseException:
                    _quietly_roll_back(session)
                    raise
                return result
        except (sa_exc.DBAPIError, sa_exc.TimeoutError) as exc:
            fault = fault_of(exc)
            if fault is None:
                raise
            raise fault from exc

    async def run(
        self, fn: Callable[[DbSession], T], *, priority: Priority = Priority.REQUEST
    ) -> T:
        """``run_sync`` on a worker thread, taken in ``priority`` order. Cancelling the
        caller before the job starts drops it; a transaction already running still
        commits or rolls back on its own."""
        future = self._workers.submit(priority, lambda: self.run_sync(fn))
        return await asyncio.wrap_future(future)

    @property
    def waiting(self) -> int:
        """Jobs handed to ``run`` that wait for a thread (a gauge for operators)."""
        return self._workers.waiting

    def close_sync(self) -> None:
        self._workers.shutdown()
        self.engine.dispose()

    async def close(self) -> None:
        await asyncio.to_thread(self.close_sync)


def _quietly_roll_back(session: DbSession) -> None:
    """Roll back after a failure; a database that fails again while rolling back (a
    damaged file) must not hide the first error."""
    try:
        session.rollback()
    except Exception:  # the first error is the one raised
        pass
