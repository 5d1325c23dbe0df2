"""The database handle: one engine, sessions run off the event loop.

Domain code is written as synchronous functions over a ``DbSession``; async callers
hand them to ``Database.run`` (a worker thread; SQLite gets a single one, since it
has a single writer anyway) and the CLI to ``Database.run_sync``. Each call is one
transaction, committed on return and rolled back on an exception.

SQLite: WAL (readers never wait for the writer), ``busy_timeout`` so a second
process (the CLI) waits for the lock instead of failing, foreign keys on, and
``BEGIN IMMEDIATE`` so a transaction that reads before it writes takes the write
lock up front: in WAL a deferred transaction whose snapshot went stale while it
read fails at its first write with SQLITE_BUSY, which no timeout retries.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.pool import StaticPool
from sqlmodel import Session as DbSession
from sqlmodel import create_engine

__all__ = ["SQLITE_FILENAME", "Database", "DbSession"]

T = TypeVar("T")

SQLITE_FILENAME = "telecentre.sqlite3"
SQLITE_BUSY_TIMEOUT_MS = 10_000


def _sqlite_engine(url: str) -> Engine:
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
            if not in_memory:
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA foreign_keys=ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


class Database:
    """An engine plus the threads that use it; ``url`` is any SQLAlchemy URL."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.is_sqlite = make_url(url).get_backend_name() == "sqlite"
        if self.is_sqlite:
            self.engine = _sqlite_engine(url)
        else:
            self.engine = create_engine(url, pool_pre_ping=True)
        self._executor = ThreadPoolExecutor(
            max_workers=1 if self.is_sqlite else 4, thread_name_prefix="telecentre-db"
        )

    @classmethod
    def for_data_dir(cls, path: str | os.PathLike[str]) -> Database:
        """The embedded default: ``telecentre.sqlite3`` in the data directory."""
        directory = Path(path)
        directory.mkdir(parents=True, exist_ok=True)
        return cls(f"sqlite:///{(directory / SQLITE_FILENAME).resolve()}")

    def migrate(self) -> None:
        """Bring the schema to the newest migration (alembic ``upgrade head``)."""
        from orchestrator.migrations import upgrade

        upgrade(self.engine)

    def run_sync(self, fn: Callable[[DbSession], T]) -> T:
        """Run ``fn`` in one transaction on this thread. Objects it returns stay usable
        (they are not expired on commit) but are detached: read, don't lazy-load."""
        with DbSession(self.engine, expire_on_commit=False) as session:
            try:
                result = fn(session)
                session.commit()
            except BaseException:
                session.rollback()
                raise
            return result

    async def run(self, fn: Callable[[DbSession], T]) -> T:
        """``run_sync`` on a worker thread. Cancelling the caller does not stop a
        transaction already running; it still commits or rolls back on its own."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self.run_sync, fn)

    def close_sync(self) -> None:
        self._executor.shutdown(wait=True)
        self.engine.dispose()

    async def close(self) -> None:
        await asyncio.to_thread(self.close_sync)
