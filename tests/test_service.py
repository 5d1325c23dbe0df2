"""Domain commands, participation records and the database handle, on a real SQLite file."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from sqlmodel import select

from orchestrator.booking import one_off
from orchestrator.centres import add_centre, add_room, list_centres, list_rooms, rotate_room_key
from orchestrator.credentials import hash_room_key
from orchestrator.db import Database, DbSession
from orchestrator.errors import DomainError
from orchestrator.models import Booking, BookingRoom, Centre, Participation, Room, Session
from orchestrator.people import api_tokens
from orchestrator.sessions import participation
from orchestrator.sessions.detail import list_sessions, session_detail

START = datetime(2027, 3, 29, 9, 0, tzinfo=UTC)  # the Monday after Europe's DST switch


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database.for_data_dir(tmp_path)
    database.migrate()
    yield database
    database.close_sync()


@pytest.fixture
def rooms(db: Database) -> list[str]:
    """Two rooms in Madrid and one in Montevideo."""

    def setup(s: DbSession) -> list[str]:
        madrid = add_centre(s, "Madrid", "Europe/Madrid")
        mvd = add_centre(s, "Montevideo", "America/Montevideo")
        return [
            add_room(s, madrid.id, "Sala 1")[0].id,
            add_room(s, madrid.id, "Sala 2")[0].id,
            add_room(s, mvd.id, "Sala 1")[0].id,
        ]

    return db.run_sync(setup)


def _code(exc: pytest.ExceptionInfo[DomainError]) -> str:
    return exc.value.code


# --- database handle --------------------------------------------------------------------


def test_sqlite_pragmas_on_every_connection(db: Database) -> None:
    with db.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 10_000


def test_foreign_keys_are_enforced(db: Database) -> None:
    with pytest.raises(sa.exc.IntegrityError):
        db.run_sync(lambda s: s.add(Room(centre_id="nope", name="x", key_hash="h")))


async def test_run_commits_off_the_loop_and_rolls_back_on_error(db: Database) -> None:
    loop_thread = threading.get_ident()

    def add(s: DbSession) -> int:
        add_centre(s, "Lyon", "Europe/Paris")
        return threading.get_ident()

    assert await db.run(add) != loop_thread

    def add_then_fail(s: DbSession) -> None:
        add_centre(s, "Nice", "Europe/Paris")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        await db.run(add_then_fail)
    names = await db.run(lambda s: [c.name for c in list_centres(s)])
    assert names == ["Lyon"]


async def test_concurrent_writers_on_one_file_wait_for_each_other(tmp_path: Path) -> None:
    first = Database.for_data_dir(tmp_path)
    first.migrate()
    second = Database.for_data_dir(tmp_path)  # like the CLI, another engine on the file
    try:

        def add(db: Database, name: str) -> None:
            db.run_sync(lambda s: add_centre(s, name, "UTC"))

        await asyncio.gather(
            *(
                asyncio.to_thread(add, db, f"c{i}-{n}")
                for i in range(10)
                for n, db in enumerate((first, second))
            )
        )
        assert len(first.run_sync(list_centres)) == 20
    finally:
        first.close_sync()
        second.close_sync()


def test_in_memory_database_is_shared_between_threads() -> None:
    db = Database("sqlite://")
    try:
        db.migrate()
        db.run_sync(lambda s: add_centre(s, "A", "UTC"))
        assert asyncio.run(db.run(lambda s: len(list_centres(s)))) == 1
    finally:
        db.close_sync()


# --- centres and rooms ------------------------------------------------------------------


def test_centre_zone_is_validated(db: Database) -> None:
    with pytest.raises(DomainError) as exc:
        db.run_sync(lambda s: add_centre(s, "Atlantis", "Atlantis/Capital"))
    assert _code(exc) == "unknown-timezone"
    with pytest.raises(DomainError) as exc:
        db.run_sync(lambda s: add_centre(s, "Nowhere", "../etc/passwd"))
    assert _code(exc) == "unknown-timezone"


def test_centre_names_are_unique_and_required(db: Database) -> None:
    db.run_sync(lambda s: add_centre(s, "Madrid", "Europe/Madrid"))
    with pytest.raises(DomainError) as exc:
        db.run_sync(lambda s: add_centre(s, "Madrid", "Europe/Madrid"))
    assert _code(exc) == "duplicate"
    with pytest.raises(DomainError) as exc:
        db.run_sync(lambda s: add_centre(s, "  ", "UTC"))
    assert _code(exc) == "invalid-name"


def test_room_key_is_returned_once_and_stored_hashed(db: Database, rooms: list[str]) -> None:
    centre_id = db.run_sync(lambda s: list_centres(s)[0].id)
    room, key = db.run_sync(lambda s: add_room(s, centre_id, "Sala 3"))
    stored = db.run_sync(lambda s: s.get(Room, room.id))
    assert stored is not None
    assert stored.key_hash == hash_room_key(key) != key
    assert stored.key_generation == 1


def test_room_names_are_unique_within_a_centre_only(db: Database, rooms: list[str]) -> None:
    madrid = db.run_sync(lambda s: list_centres(s)[0].id)
    with pytest.raises(DomainError) as exc:
        db.run_sync(lambda s: add_room(s, madrid, "Sala 1"))
    assert _code(exc) == "duplicate"
    with pytest.raises(DomainError) as exc:
        db.run_sync(lambda s: add_room(s, "missing", "Sala 1"))
    assert _code(exc) == "not-found"
    assert len(db.run_sync(lambda s: list_rooms(s))) == 3
    assert len(db.run_sync(lambda s: list_rooms(s, madrid))) == 2


def test_rotating_a_key_bumps_the_generation(db: Database, rooms: list[str]) -> None:
    key = db.run_sync(lambda s: rotate_room_key(s, rooms[0]))
    room = db.run_sync(lambda s: s.get(Room, rooms[0]))
    assert room is not None
    assert room.key_generation == 2
    assert room.key_hash == hash_room_key(key)
    with pytest.raises(DomainError) as exc:
        db.run_sync(lambda s: rotate_room_key(s, "missing"))
    assert _code(exc) == "not-found"


# --- bookings ---------------------------------------------------------------------------


def _book(db: Database, room_ids: list[str], **kw: object) -> tuple[Booking, Session]:
    start = kw.pop("start", START)
    end = kw.pop("end", START + timedelta(hours=1))
    return db.run_sync(
        lambda s: one_off.book(s, "Weekly", start, end, room_ids, **kw)  # type: ignore[arg-type]
    )


def test_booking_creates_a_scheduled_session(db: Database, rooms: list[str]) -> None:
    booking, session = _book(db, [rooms[0], rooms[2]])
    assert session.state == "scheduled" and session.revision == 1
    assert session.lead_seconds == booking.lead_seconds == 60
    assert booking.connect_mode == "automatic"
    detail = db.run_sync(lambda s: session_detail(s, session.id))
    assert [(t.seq, t.state) for t in detail.transitions] == [(1, "scheduled")]
    assert {p.room_id for p in detail.participations} == {rooms[0], rooms[2]}
    assert all(p.joined_at is None and p.rejoins == 0 for p in detail.participations)
    assert detail.start == START and detail.start.tzinfo == UTC
    assert detail.title == "Weekly"


def test_booking_keeps_utc_and_wall_clock_in_the_first_rooms_zone(
    db: Database, rooms: list[str]
) -> None:
    start = datetime(2027, 3, 29, 10, 0, tzinfo=ZoneInfo("Europe/Madrid"))  # CEST, UTC+2
    booking, _ = _book(db, [rooms[2], rooms[0]], start=start, end=start + timedelta(hours=1))
    stored = db.run_sync(lambda s: s.get(Booking, booking.id))
    assert stored is not None
    assert stored.start_utc == datetime(2027, 3, 29, 8, 0, tzinfo=UTC)
    assert stored.start_utc.tzinfo == UTC
    assert stored.timezone == "America/Montevideo"  # the first room's centre
    assert stored.start_local == datetime(2027, 3, 29, 5, 0)  # UTC-3, naive
    assert stored.end_local == datetime(2027, 3, 29, 6, 0)

    # Same hour, and rooms[0] again: the first booking must let go of it first.
    db.run_sync(lambda s: one_off.cancel_booking(s, booking.id))
    booking2, _ = _book(db, rooms[:2], start=start, end=start + timedelta(hours=1))
    stored2 = db.run_sync(lambda s: s.get(Booking, booking2.id))
    assert stored2 is not None and stored2.start_local == datetime(2027, 3, 29, 10, 0)

    booking3, _ = _book(db, rooms[:2], timezone="Asia/Tokyo")
    stored3 = db.run_sync(lambda s: s.get(Booking, booking3.id))
    assert stored3 is not None and stored3.start_local == datetime(2027, 3, 29, 18, 0)


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"end": START}, "invalid-time"),
        ({"end": START - timedelta(minutes=1)}, "invalid-time"),
        ({"start": START.replace(tzinfo=None)}, "invalid-time"),
        ({"lead_seconds": -1}, "invalid-lead"),
        ({"timezone": "Mars/Olympus"}, "unknown-timezone"),
        ({"connect_mode": "telepathic"}, "invalid-connect-mode"),
    ],
)
def test_invalid_bookings_are_refused(
    db: Database, rooms: list[str], kwargs: dict[str, object], code: str
) -> None:
    with pytest.raises(DomainError) as exc:
        _book(db, rooms[:2], **kwargs)
    assert _code(exc) == code
    assert db.run_sync(one_off.list_bookings) == []  # nothing half-written


def test_booking_needs_two_distinct_known_rooms(db: Database, rooms: list[str]) -> None:
    for room_ids, code in [
        ([rooms[0]], "too-few-rooms"),
        ([], "too-few-rooms"),
        ([rooms[0], rooms[0]], "duplicate"),
        ([rooms[0], "missing"], "not-found"),
    ]:
        with pytest.raises(DomainError) as exc:
            _book(db, room_ids)
        assert _code(exc) == code, room_ids


def test_listing_bookings_and_sessions_by_overlap(db: Database, rooms: list[str]) -> None:
    hour = timedelta(hours=1)
    _book(db, rooms[:2], start=START, end=START + hour)
    _book(db, rooms[:2], start=START + 2 * hour, end=START + 3 * hour)
    assert len(db.run_sync(one_off.list_bookings)) == 2
    sessions = db.run_sync(lambda s: list_sessions(s, START + hour, START + 2 * hour))
    assert sessions == []
    sessions = db.run_sync(lambda s: list_sessions(s, START + hour / 2, START + 5 * hour))
    assert [x.start_utc for x in sessions] == [START, START + 2 * hour]
    bookings = db.run_sync(lambda s: one_off.list_bookings(s, since=START + hour))
    assert [b.start_utc for b in bookings] == [START + 2 * hour]


def test_cancelling_a_booking(db: Database, rooms: list[str]) -> None:
    booking, session = _book(db, rooms[:2])
    cancelled = db.run_sync(lambda s: one_off.cancel_booking(s, booking.id))
    assert [c.id for c in cancelled] == [session.id]
    detail = db.run_sync(lambda s: session_detail(s, session.id))
    assert detail.state == "cancelled" and detail.revision == 2
    assert [t.state for t in detail.transitions] == ["scheduled", "cancelled"]
    assert db.run_sync(lambda s: one_off.cancel_booking(s, booking.id)) == []


def test_session_detail_of_unknown_session(db: Database) -> None:
    with pytest.raises(DomainError) as exc:
        db.run_sync(lambda s: session_detail(s, "missing"))
    assert _code(exc) == "not-found"


def test_instants_round_trip_as_aware_utc(db: Database) -> None:
    centre = db.run_sync(lambda s: add_centre(s, "Z", "UTC"))
    loaded = db.run_sync(lambda s: s.exec(select(Centre).where(Centre.id == centre.id)).one())
    assert loaded.created_at.tzinfo == UTC
    assert abs(loaded.created_at - centre.created_at) < timedelta(microseconds=1)
    with pytest.raises(sa.exc.StatementError, match="naive"):
        db.run_sync(lambda s: s.add(Centre(name="N", timezone="UTC", created_at=datetime.now())))


# --- API tokens -------------------------------------------------------------------------


def test_api_tokens(db: Database) -> None:
    token = db.run_sync(lambda s: api_tokens.create_api_token(s, "ops"))
    assert db.run_sync(lambda s: api_tokens.check_api_token(s, token))
    assert not db.run_sync(lambda s: api_tokens.check_api_token(s, token[:-1] + "x"))
    assert not db.run_sync(lambda s: api_tokens.check_api_token(s, ""))


# --- participation ----------------------------------------------------------------------

T0 = START.timestamp()


def _participation(db: Database, session_id: str, room_id: str) -> Participation:
    row = db.run_sync(lambda s: s.get(Participation, (session_id, room_id)))
    assert row is not None
    return row


def test_joins_leaves_and_rejoins_are_idempotent(db: Database, rooms: list[str]) -> None:
    _, session = _book(db, rooms[:2])
    sid, rid = session.id, rooms[0]
    for _ in range(2):
        db.run_sync(lambda s: participation.record_joined(s, sid, rid, T0 - 50))
    row = _participation(db, sid, rid)
    assert row.joined_at == START - timedelta(seconds=50) and row.rejoins == 0

    for _ in range(2):
        db.run_sync(lambda s: participation.record_left(s, sid, rid, T0 + 10))
    assert _participation(db, sid, rid).left_at == START + timedelta(seconds=10)

    for _ in range(2):
        db.run_sync(lambda s: participation.record_joined(s, sid, rid, T0 + 20))
    row = _participation(db, sid, rid)
    assert row.rejoins == 1 and row.left_at is None
    assert row.joined_at == START - timedelta(seconds=50)  # the first join is kept

    db.run_sync(lambda s: participation.record_left(s, sid, rid, T0 + 3600))
    assert _participation(db, sid, rid).left_at == START + timedelta(hours=1)


def test_milestones_first_value_wins(db: Database, rooms: list[str]) -> None:
    _, session = _book(db, rooms[:2])
    sid, rid = session.id, rooms[1]
    db.run_sync(lambda s: participation.record_milestone(s, sid, rid, "first-frame", T0 - 30))
    db.run_sync(lambda s: participation.record_milestone(s, sid, rid, "first-frame", T0 - 20))
    db.run_sync(lambda s: participation.record_milestone(s, sid, rid, "live", T0 + 1.25))
    row = _participation(db, sid, rid)
    assert row.first_frame_at == START - timedelta(seconds=30)
    assert row.live_at == START + timedelta(seconds=1.25)
    with pytest.raises(DomainError) as exc:
        db.run_sync(lambda s: participation.record_milestone(s, sid, rid, "bored", T0))
    assert _code(exc) == "invalid-event"


def test_events_for_rooms_outside_the_session_are_refused(db: Database, rooms: list[str]) -> None:
    _, session = _book(db, rooms[:2])
    with pytest.raises(DomainError) as exc:
        db.run_sync(lambda s: participation.record_joined(s, session.id, rooms[2], T0))
    assert _code(exc) == "not-found"


def test_media_summary(db: Database, rooms: list[str]) -> None:
    _, session = _book(db, rooms)
    sid, rid = session.id, rooms[0]
    b, c = f"room:{rooms[1]}", f"room:{rooms[2]}"  # the session's other rooms
    reports = [
        (T0 + 10, {"peer_id": b, "fps": 30.0, "latency_p50_ms": 120.0, "freezes": 0}),
        (T0 + 20, {"peer_id": b, "fps": 20.0, "latency_p50_ms": 180.0, "freezes": 2}),
        (T0 + 20, {"peer_id": b, "fps": 20.0, "latency_p50_ms": 180.0, "freezes": 2}),
        (T0 + 20, {"peer_id": c, "fps": 25.0, "latency_p50_ms": None, "freezes": 1}),
    ]
    for at, media in reports:

        def record(s: DbSession, m: dict[str, object] = media, t: float = at) -> None:
            participation.record_media(s, sid, rid, m, at=t)

        db.run_sync(record)
    row = _participation(db, sid, rid)
    assert row.media_summary is not None
    summary = json.loads(row.media_summary)
    assert summary["reports"] == 3  # the repeated report counted once
    assert summary["fps_latest"] == 25.0
    assert summary["fps_mean"] == pytest.approx(25.0)
    assert summary["latency_p50_ms_max"] == 180.0
    assert summary["freezes_total"] == 3
    detail = db.run_sync(lambda s: session_detail(s, sid))
    assert next(p for p in detail.participations if p.room_id == rid).media == summary


def test_booking_rows_link_rooms_of_different_centres(db: Database, rooms: list[str]) -> None:
    booking, _ = _book(db, [rooms[0], rooms[2]])
    linked = db.run_sync(
        lambda s: s.exec(
            select(BookingRoom.room_id).where(BookingRoom.booking_id == booking.id)
        ).all()
    )
    assert set(linked) == {rooms[0], rooms[2]}
