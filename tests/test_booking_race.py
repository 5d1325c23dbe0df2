"""Two requests for one slot never both win: 50 processes at once, SQLite and PostgreSQL.

Each worker is a separate process (``fork``) with a ``Database`` of its own on the
same SQLite file or PostgreSQL schema; all wait on a barrier, then book. SQLite
serialises the check and the write (``BEGIN IMMEDIATE``); on PostgreSQL the
exclusion constraint ``ex_room_slot_no_overlap`` refuses the loser, whose error is
translated into ``BookingConflict``. The last test inserts an overlapping slot with
plain SQL, past every check of ours, and the database alone refuses it.
"""

from __future__ import annotations

import multiprocessing
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlmodel import select

from orchestrator import centres
from orchestrator.booking import commands, store
from orchestrator.booking.store import BookingConflict
from orchestrator.booking.values import SeriesSpec
from orchestrator.db import Database, DbSession
from orchestrator.models import RoomSlot
from tests.test_migrations import POSTGRES_URL, _postgres_or_skip

WORKERS = 50
NOW = datetime(2027, 1, 4, 7, 0, tzinfo=UTC)
CONTEXT = multiprocessing.get_context("fork")


def _spec(index: int) -> SeriesSpec:
    """Request ``index``: one hour from 09:00 + index minutes, so every two overlap."""
    return SeriesSpec(
        uid=f"race-{index}",
        title=f"Request {index}",
        timezone="Europe/Paris",
        start_local=datetime(2027, 1, 5, 9, 0) + timedelta(minutes=index % 30),
        duration=timedelta(hours=1),
    )


def _worker(url: str, room_ids: list[str], index: int, barrier: Barrier, results: Any) -> None:
    db = Database(url)
    try:
        barrier.wait(timeout=60)
        db.run_sync(lambda s: commands.create_series(s, _spec(index), room_ids, now=NOW))
        results.put((index, "won"))
    except BookingConflict:
        results.put((index, "conflict"))
    except Exception as exc:  # reported, so the test shows what went wrong
        results.put((index, f"{type(exc).__name__}: {exc}"))
    finally:
        db.close_sync()


def _race(url: str, requests: list[list[str]]) -> Counter[str]:
    barrier = CONTEXT.Barrier(len(requests))
    results = CONTEXT.Queue()
    workers = [
        CONTEXT.Process(target=_worker, args=(url, rooms, i, barrier, results))
        for i, rooms in enumerate(requests)
    ]
    for w in workers:
        w.start()
    outcomes = [results.get(timeout=120) for _ in workers]
    for w in workers:
        w.join(timeout=30)
    return Counter(outcome for _, outcome in outcomes)


def _rooms(db: Database, count: int) -> list[str]:
    def setup(s: DbSession) -> list[str]:
        centre = centres.add_centre(s, f"C{uuid.uuid4().hex[:6]}", "Europe/Paris")
        return [centres.add_room(s, centre.id, f"R{i}")[0].id for i in range(count)]

    return db.run_sync(setup)


def _slots(db: Database) -> list[RoomSlot]:
    return list(db.run_sync(lambda s: s.exec(select(RoomSlot)).all()))


def _check_one_room(db: Database, url: str) -> None:
    [room] = _rooms(db, 1)
    db.close_sync()  # no connection crosses the fork
    outcomes = _race(url, [[room]] * WORKERS)
    assert outcomes == Counter({"won": 1, "conflict": WORKERS - 1}), outcomes
    assert len(_slots(db)) == 1


def _check_multi_room(db: Database, url: str) -> None:
    rooms = _rooms(db, WORKERS + 1)
    shared, own = rooms[0], rooms[1:]
    db.close_sync()
    # Every request holds the shared room and one room of its own.
    outcomes = _race(url, [[shared, own[i]] for i in range(WORKERS)])
    assert outcomes == Counter({"won": 1, "conflict": WORKERS - 1}), outcomes
    slots = _slots(db)
    assert len(slots) == 2  # all or nothing: the losers hold not even their own room
    assert {s.room_id for s in slots} & {shared} == {shared}


# --- SQLite ------------------------------------------------------------------------------


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Iterator[Database]:
    db = Database.for_data_dir(tmp_path)
    db.migrate()
    yield db
    db.close_sync()


def test_sqlite_one_room_exactly_one_of_50_processes_wins(sqlite_db: Database) -> None:
    _check_one_room(sqlite_db, sqlite_db.url)


def test_sqlite_multi_room_exactly_one_of_50_processes_wins(sqlite_db: Database) -> None:
    _check_multi_room(sqlite_db, sqlite_db.url)


# --- PostgreSQL --------------------------------------------------------------------------


@pytest.fixture
def postgres() -> Iterator[Database]:
    """A migrated Database on a fresh schema of its own, dropped afterwards."""
    _postgres_or_skip()
    schema = f"telecentre_race_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    url = sa.make_url(POSTGRES_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    db = Database(url.render_as_string(hide_password=False))
    try:
        db.migrate()
        yield db
    finally:
        db.close_sync()
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()


def test_postgres_one_room_exactly_one_of_50_processes_wins(postgres: Database) -> None:
    _check_one_room(postgres, postgres.url)


def test_postgres_multi_room_exactly_one_of_50_processes_wins(postgres: Database) -> None:
    _check_multi_room(postgres, postgres.url)


def test_postgres_refuses_an_overlapping_slot_inserted_with_plain_sql(postgres: Database) -> None:
    room, other = _rooms(postgres, 2)
    result = postgres.run_sync(lambda s: commands.create_series(s, _spec(0), [room], now=NOW))
    [session_id] = result.session_ids
    # A second session of the same booking, written past every check of ours.
    with postgres.engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO meeting_session (id, booking_id, start_utc, end_utc, lead_seconds,"
                " state, revision, created_at, updated_at)"
                " SELECT 'intruder', booking_id, start_utc, end_utc, 0, 'scheduled', 1,"
                " created_at, updated_at FROM meeting_session WHERE id = :sid"
            ),
            {"sid": session_id},
        )
    insert = sa.text(
        "INSERT INTO room_slot (room_id, session_id, start_utc, end_utc)"
        " VALUES (:room, 'intruder', :start, :end)"
    )
    start = datetime(2027, 1, 5, 8, 59, 59, tzinfo=UTC)  # one second into the held hour
    with pytest.raises(sa.exc.IntegrityError) as exc:
        with postgres.engine.begin() as conn:
            conn.execute(insert, {"room": room, "start": start, "end": start + timedelta(hours=1)})
    assert store.is_slot_overlap(exc.value)
    assert "ex_room_slot_no_overlap" in str(exc.value.orig)
    # Half-open: touching the end is no overlap; another room is no overlap either.
    with postgres.engine.begin() as conn:
        end = datetime(2027, 1, 5, 9, 0, tzinfo=UTC)
        conn.execute(insert, {"room": room, "start": end, "end": end + timedelta(hours=1)})
    with postgres.engine.begin() as conn:
        conn.execute(insert, {"room": other, "start": start, "end": start + timedelta(hours=1)})


def test_postgres_a_refusal_by_the_constraint_is_a_booking_conflict(
    postgres: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With our own check blinded, the database is the only guard, and its refusal
    still reaches the caller as ``BookingConflict`` (code ``conflict``)."""
    [room] = _rooms(postgres, 1)
    postgres.run_sync(lambda s: commands.create_series(s, _spec(0), [room], now=NOW))
    monkeypatch.setattr(store, "busy_rows", lambda *a, **k: {})
    with pytest.raises(BookingConflict) as exc:
        postgres.run_sync(lambda s: commands.create_series(s, _spec(1), [room], now=NOW))
    assert exc.value.code == "conflict"
    assert len(_slots(postgres)) == 1
    assert postgres.run_sync(lambda s: commands.find_booking(s, "local", "race-1")) is None
