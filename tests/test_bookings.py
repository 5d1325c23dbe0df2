"""The booking store on a real SQLite file: series, sessions, edits, conflicts, horizon."""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlmodel import col, select

from orchestrator import centres
from orchestrator.booking import commands, one_off
from orchestrator.booking.busy import busy
from orchestrator.booking.conflicts import Busy
from orchestrator.booking.horizon import roll_horizon
from orchestrator.booking.policy import BookingSettings
from orchestrator.booking.store import BookingConflict
from orchestrator.booking.values import CANCELLED, OverrideSpec, SeriesSpec
from orchestrator.booking.views import room_occurrences
from orchestrator.db import Database, DbSession
from orchestrator.errors import DomainError
from orchestrator.models import (
    Booking,
    Participation,
    Room,
    RoomSlot,
    Session,
    SessionTransitionRecord,
)
from tests.test_migrations import POSTGRES_URL, _postgres_or_skip

NOW = datetime(2027, 1, 4, 7, 0, tzinfo=UTC)  # a Monday, 08:00 in Paris
PARIS = "Europe/Paris"
H = timedelta(hours=1)
SETTINGS = BookingSettings()


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """Every store test runs on SQLite and on PostgreSQL (a schema of its own)."""
    if request.param == "sqlite":
        database = Database.for_data_dir(tmp_path)
        database.migrate()
        yield database
        database.close_sync()
        return
    yield from _postgres_database()


def _postgres_database() -> Iterator[Database]:
    _postgres_or_skip()
    schema = f"telecentre_bookings_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    url = sa.make_url(POSTGRES_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    database = Database(url.render_as_string(hide_password=False))
    try:
        database.migrate()
        yield database
    finally:
        database.close_sync()
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Iterator[Database]:
    database = Database.for_data_dir(tmp_path)
    database.migrate()
    yield database
    database.close_sync()


@pytest.fixture
def rooms(db: Database) -> list[str]:
    return _rooms(db)


def _rooms(db: Database) -> list[str]:
    """Four rooms in Paris, one in Montréal."""

    def setup(s: DbSession) -> list[str]:
        paris = centres.add_centre(s, "Paris", PARIS)
        mtl = centres.add_centre(s, "Montréal", "America/Montreal")
        made = [centres.add_room(s, paris.id, f"Salle {i}")[0].id for i in range(4)]
        return [*made, centres.add_room(s, mtl.id, "Salon")[0].id]

    return db.run_sync(setup)


def weekly(uid: str = "w", **kw: object) -> SeriesSpec:
    base = SeriesSpec(
        uid=uid,
        title="Weekly",
        timezone=PARIS,
        start_local=datetime(2027, 1, 4, 9, 0),
        duration=H,
        rrules=("FREQ=WEEKLY;COUNT=10",),
    )
    return dataclasses.replace(base, **kw)  # type: ignore[arg-type]


def one(uid: str, start_local: datetime, duration: timedelta = H, **kw: object) -> SeriesSpec:
    spec = SeriesSpec(
        uid=uid, title=uid, timezone=PARIS, start_local=start_local, duration=duration
    )
    return dataclasses.replace(spec, **kw)  # type: ignore[arg-type]


def create(
    db: Database, spec: SeriesSpec, room_ids: list[str], **kw: object
) -> commands.BookingResult:
    kw.setdefault("now", NOW)
    return db.run_sync(lambda s: commands.create_series(s, spec, room_ids, **kw))  # type: ignore[arg-type]


def sessions_of(db: Database, booking_id: str) -> list[Session]:
    return list(
        db.run_sync(
            lambda s: s.exec(
                select(Session)
                .where(Session.booking_id == booking_id)
                .order_by(col(Session.start_utc))
            ).all()
        )
    )


def slots_of(db: Database, room_id: str) -> list[tuple[datetime, datetime]]:
    rows = db.run_sync(
        lambda s: s.exec(
            select(RoomSlot).where(RoomSlot.room_id == room_id).order_by(col(RoomSlot.start_utc))
        ).all()
    )
    return [(r.start_utc, r.end_utc) for r in rows]


def set_rooms(db: Database, room_ids: list[str], **values: object) -> None:
    def write(s: DbSession) -> None:
        s.connection().execute(sa.update(Room).where(col(Room.id).in_(room_ids)).values(**values))

    db.run_sync(write)


def code_of(exc: pytest.ExceptionInfo[DomainError]) -> str:
    return exc.value.code


# --- creating a series -----------------------------------------------------------------


def test_a_weekly_series_has_one_scheduled_session_per_occurrence(
    db: Database, rooms: list[str]
) -> None:
    result = create(db, weekly(), rooms[:2])
    sessions = sessions_of(db, result.booking_id)
    assert len(sessions) == len(result.session_ids) == 10
    assert all(s.state == "scheduled" and s.revision == 1 for s in sessions)
    assert [s.recurrence_id for s in sessions] == [s.start_utc for s in sessions]
    # 09:00 in Paris every Monday: 08:00 UTC in winter, 07:00 UTC after the March switch.
    assert sessions[0].start_utc == datetime(2027, 1, 4, 8, 0, tzinfo=UTC)
    assert sessions[-1].start_utc == datetime(2027, 3, 8, 8, 0, tzinfo=UTC)
    assert len(slots_of(db, rooms[0])) == len(slots_of(db, rooms[1])) == 10
    parts = db.run_sync(lambda s: s.exec(select(Participation)).all())
    assert len(parts) == 20
    history = db.run_sync(lambda s: s.exec(select(SessionTransitionRecord)).all())
    assert {(t.seq, t.state) for t in history} == {(1, "scheduled")}
    booking = db.run_sync(lambda s: commands.find_booking(s, "local", "w"))
    assert booking is not None and booking.id == result.booking_id
    assert booking.rrule == "FREQ=WEEKLY;COUNT=10" and booking.uid == "w"
    assert db.run_sync(lambda s: commands.find_booking(s, "feed:x", "w")) is None


def test_dst_keeps_the_wall_clock_time(db: Database, rooms: list[str]) -> None:
    spec = weekly(start_local=datetime(2027, 3, 22, 9, 0), rrules=("FREQ=WEEKLY;COUNT=2",))
    result = create(db, spec, [rooms[0], rooms[4]])
    starts = [s.start_utc for s in sessions_of(db, result.booking_id)]
    assert starts == [
        datetime(2027, 3, 22, 8, 0, tzinfo=UTC),
        datetime(2027, 3, 29, 7, 0, tzinfo=UTC),
    ]
    listed = db.run_sync(lambda s: room_occurrences(s, rooms[4], NOW, NOW + 120 * 24 * H))
    assert [o.start_local for o in listed] == [
        datetime(2027, 3, 22, 4, 0),
        datetime(2027, 3, 29, 3, 0),
    ]


def test_expansion_is_bounded_by_the_horizon(db: Database, rooms: list[str]) -> None:
    set_rooms(db, rooms, max_advance_days=30)
    daily = weekly(rrules=("FREQ=DAILY",))
    result = create(db, daily, rooms[:2], settings=BookingSettings(horizon_days=30))
    assert len(result.session_ids) == 30
    capped = create(
        db,
        weekly("w2", rrules=("FREQ=DAILY",)),
        rooms[2:4],
        settings=BookingSettings(max_occurrences=5),
    )
    assert len(capped.session_ids) == 5


def test_the_horizon_reaches_the_longest_room_booking_window(
    db: Database, rooms: list[str]
) -> None:
    assert db.run_sync(lambda s: commands.horizon_end(s, NOW, SETTINGS)) == NOW + 180 * 24 * H

    set_rooms(db, [rooms[3]], max_advance_days=400)
    assert db.run_sync(lambda s: commands.horizon_end(s, NOW, SETTINGS)) == NOW + 400 * 24 * H


# --- conflicts ----------------------------------------------------------------------------


def test_reject_refuses_the_whole_series_and_writes_nothing(db: Database, rooms: list[str]) -> None:
    create(db, one("taken", datetime(2027, 1, 18, 9, 30)), [rooms[1]])
    with pytest.raises(BookingConflict) as exc:
        create(db, weekly(), rooms[:2])
    assert code_of(exc) == "conflict"
    [conflict] = exc.value.conflicts
    assert conflict.room_id == rooms[1]
    assert conflict.occurrence.recurrence_id == datetime(2027, 1, 18, 8, 0, tzinfo=UTC)
    assert conflict.busy.title == "taken"
    assert db.run_sync(lambda s: commands.find_booking(s, "local", "w")) is None
    assert slots_of(db, rooms[0]) == []


def test_skip_leaves_the_conflicting_dates_out(db: Database, rooms: list[str]) -> None:
    create(db, one("taken", datetime(2027, 1, 18, 9, 30)), [rooms[1]])
    result = create(db, weekly(), rooms[:2], on_conflict="skip")
    assert len(result.session_ids) == 9
    assert [c.occurrence.start for c in result.skipped] == [datetime(2027, 1, 18, 8, 0, tzinfo=UTC)]
    skipped = [s for s in sessions_of(db, result.booking_id) if s.id not in result.session_ids]
    assert [s.state for s in skipped] == ["cancelled"]
    # Neither room is held that day (all or nothing), and the skip is not a calendar edit.
    assert datetime(2027, 1, 18, 8, 0, tzinfo=UTC) not in [a for a, _ in slots_of(db, rooms[0])]
    assert db.run_sync(lambda s: commands.series_spec(s, result.booking_id)).overrides == ()
    shown = db.run_sync(lambda s: commands.series_spec(s, result.booking_id, include_skipped=True))
    assert [(o.recurrence_id, o.status) for o in shown.overrides] == [
        (datetime(2027, 1, 18, 9, 0), CANCELLED)
    ]


def test_multi_room_bookings_are_all_or_nothing(db: Database, rooms: list[str]) -> None:
    create(db, one("taken", datetime(2027, 1, 4, 9, 0)), [rooms[2]])
    with pytest.raises(BookingConflict):
        create(db, one("multi", datetime(2027, 1, 4, 9, 30)), [rooms[0], rooms[1], rooms[2]])
    assert slots_of(db, rooms[0]) == slots_of(db, rooms[1]) == []


def test_room_buffers_apply_to_the_test_only(db: Database, rooms: list[str]) -> None:
    set_rooms(db, [rooms[0]], buffer_seconds=900)
    first = create(db, one("first", datetime(2027, 1, 4, 9, 0)), [rooms[0]])
    with pytest.raises(BookingConflict):
        create(db, one("close", datetime(2027, 1, 4, 10, 10)), [rooms[0]])
    with pytest.raises(BookingConflict):  # before it, symmetrically
        create(db, one("before", datetime(2027, 1, 4, 7, 50)), [rooms[0]])
    create(db, one("after", datetime(2027, 1, 4, 10, 15)), [rooms[0]])
    [session] = sessions_of(db, first.booking_id)
    assert (session.start_utc, session.end_utc) == (
        datetime(2027, 1, 4, 8, 0, tzinfo=UTC),
        datetime(2027, 1, 4, 9, 0, tzinfo=UTC),
    )
    assert slots_of(db, rooms[0])[0] == (session.start_utc, session.end_utc + timedelta(minutes=15))
    free = db.run_sync(lambda s: busy(s, [rooms[0]], NOW, NOW + 24 * H))
    assert (free[rooms[0]][0].start, free[rooms[0]][0].end) == (session.start_utc, session.end_utc)


def test_transparent_and_cancelled_occurrences_never_block(db: Database, rooms: list[str]) -> None:
    create(db, one("free", datetime(2027, 1, 4, 9, 0), transparent=True), [rooms[0]])
    create(db, one("busy", datetime(2027, 1, 4, 9, 0)), [rooms[0]])
    series = create(db, weekly("s"), [rooms[1]])
    rid = datetime(2027, 1, 11, 8, 0, tzinfo=UTC)
    cancelled = db.run_sync(
        lambda s: commands.cancel_series(s, series.booking_id, recurrence_id=rid, now=NOW)
    )
    assert len(cancelled) == 1
    create(db, one("instead", datetime(2027, 1, 11, 9, 0)), [rooms[1]])
    spec = db.run_sync(lambda s: commands.series_spec(s, series.booking_id))
    assert [(o.recurrence_id, o.status) for o in spec.overrides] == [
        (datetime(2027, 1, 11, 9, 0), CANCELLED)
    ]


def test_book_is_conflict_checked_too(db: Database, rooms: list[str]) -> None:
    start = datetime(2027, 1, 4, 8, 0, tzinfo=UTC)
    db.run_sync(lambda s: one_off.book(s, "One", start, start + H, rooms[:2]))
    with pytest.raises(BookingConflict):
        db.run_sync(lambda s: one_off.book(s, "Two", start + H / 2, start + 2 * H, rooms[1:3]))
    with pytest.raises(BookingConflict):
        create(db, one("x", datetime(2027, 1, 4, 9, 0)), [rooms[0]])


# --- policy -------------------------------------------------------------------------------


def test_policy_refusals(db: Database, rooms: list[str]) -> None:
    set_rooms(db, [rooms[0]], max_duration_seconds=7200, max_advance_days=30)
    cases: list[tuple[SeriesSpec, dict[str, object], str]] = [
        (one("long", datetime(2027, 1, 5, 9, 0), 3 * H), {}, "too-long"),
        (one("far", datetime(2027, 2, 10, 9, 0)), {}, "too-far-ahead"),
        (
            one("m", datetime(2027, 1, 5, 9, 0)),
            {"connect_mode": "telepathic"},
            "invalid-connect-mode",
        ),
        (one("l", datetime(2027, 1, 5, 9, 0)), {"lead_seconds": 3601}, "invalid-lead"),
        (one("z", datetime(2027, 1, 5, 9, 0), timezone="Mars/Olympus"), {}, "unknown-timezone"),
        (one("r", datetime(2027, 1, 5, 9, 0), rrules=("FREQ=SOMETIMES",)), {}, "bad-rrule"),
        (one("c", datetime(2027, 1, 5, 9, 0), status=CANCELLED), {}, "cancelled"),
    ]
    for spec, kw, code in cases:
        with pytest.raises(DomainError) as exc:
            create(db, spec, [rooms[0]], **kw)
        assert code_of(exc) == code, spec.uid
    with pytest.raises(DomainError) as exc:
        create(db, one("dup", datetime(2027, 1, 5, 9, 0)), [rooms[0], rooms[0]])
    assert code_of(exc) == "duplicate"
    # A series whose first occurrence is within the window is accepted whole.
    result = create(db, weekly(rrules=("FREQ=WEEKLY;COUNT=10",)), [rooms[0]])
    assert len(result.session_ids) == 10


def test_all_day_series_are_reserve_only(db: Database, rooms: list[str]) -> None:
    spec = one("day", datetime(2027, 1, 5), timedelta(days=1), all_day=True)
    result = create(db, spec, [rooms[0]], connect_mode="automatic")
    booking = db.run_sync(lambda s: s.get(Booking, result.booking_id))
    assert booking is not None and booking.connect_mode == "reserve-only"
    [session] = sessions_of(db, result.booking_id)
    assert session.start_utc == datetime(2027, 1, 4, 23, 0, tzinfo=UTC)
    assert session.end_utc == datetime(2027, 1, 5, 23, 0, tzinfo=UTC)
    assert db.run_sync(lambda s: commands.series_spec(s, result.booking_id)).duration == timedelta(
        days=1
    )


# --- edits ---------------------------------------------------------------------------------


def test_editing_all_moves_what_has_not_begun_and_leaves_history(
    db: Database, rooms: list[str]
) -> None:
    result = create(db, weekly(), rooms[:2])
    later = NOW + 8 * 24 * H  # the first two occurrences are over
    first_two = sessions_of(db, result.booking_id)[:2]
    renamed = weekly(title="Renamed", start_local=datetime(2027, 1, 4, 10, 0))
    edited = db.run_sync(
        lambda s: commands.update_series(s, result.booking_id, renamed, scope="all", now=later)
    )
    assert len(edited.session_ids) == 8
    after = {s.id: s for s in sessions_of(db, result.booking_id)}
    for old in first_two:  # history is untouched
        assert (after[old.id].start_utc, after[old.id].state) == (old.start_utc, old.state)
    live = [s for s in after.values() if s.state == "scheduled" and s.start_utc > later]
    assert len(live) == 8 and all(s.start_utc.hour == 9 for s in live)
    # The 09:00 occurrences are gone (a new DTSTART makes new recurrence ids).
    assert len([s for s in after.values() if s.state == "cancelled"]) == 8
    booking = db.run_sync(lambda s: s.get(Booking, result.booking_id))
    assert booking is not None and booking.title == "Renamed" and booking.sequence == 1
    assert len(slots_of(db, rooms[0])) == 2 + 8
    # Back to 09:00: the cancelled occurrences come back as new sessions.
    back = db.run_sync(
        lambda s: commands.update_series(s, result.booking_id, weekly(), scope="all", now=later)
    )
    assert len(back.session_ids) == 8
    assert len(slots_of(db, rooms[0])) == 2 + 8


def test_editing_all_can_change_rooms(db: Database, rooms: list[str]) -> None:
    result = create(db, weekly(), rooms[:2])
    db.run_sync(
        lambda s: commands.update_series(
            s, result.booking_id, weekly(), room_ids=[rooms[0], rooms[3]], now=NOW
        )
    )
    assert slots_of(db, rooms[1]) == [] and len(slots_of(db, rooms[3])) == 10
    assert db.run_sync(lambda s: commands.series_spec(s, result.booking_id)).rooms == tuple(
        sorted([rooms[0], rooms[3]])
    )


def test_editing_one_occurrence(db: Database, rooms: list[str]) -> None:
    result = create(db, weekly(), rooms[:2])
    create(db, one("other", datetime(2027, 1, 11, 15, 0)), [rooms[1]])
    rid = datetime(2027, 1, 11, 8, 0, tzinfo=UTC)
    moved = weekly(title="Moved", start_local=datetime(2027, 1, 11, 14, 0), duration=2 * H)
    with pytest.raises(BookingConflict):  # 14:00-16:00 meets "other" at 15:00
        db.run_sync(
            lambda s: commands.update_series(
                s, result.booking_id, moved, scope="this", recurrence_id=rid, now=NOW
            )
        )
    moved = dataclasses.replace(moved, duration=H)
    db.run_sync(
        lambda s: commands.update_series(
            s, result.booking_id, moved, scope="this", recurrence_id=rid, now=NOW
        )
    )
    session = next(s for s in sessions_of(db, result.booking_id) if s.recurrence_id == rid)
    assert session.start_utc == datetime(2027, 1, 11, 13, 0, tzinfo=UTC)
    assert (session.title, session.revision, session.state) == ("Moved", 2, "scheduled")
    spec = db.run_sync(lambda s: commands.series_spec(s, result.booking_id))
    assert spec.overrides == (
        OverrideSpec(datetime(2027, 1, 11, 9, 0), datetime(2027, 1, 11, 14, 0), H, title="Moved"),
    )
    with pytest.raises(DomainError) as exc:
        db.run_sync(
            lambda s: commands.update_series(
                s,
                result.booking_id,
                moved,
                scope="this",
                recurrence_id=rid + timedelta(minutes=1),
                now=NOW,
            )
        )
    assert code_of(exc) == "not-found"
    with pytest.raises(DomainError) as exc:  # it has begun
        db.run_sync(
            lambda s: commands.update_series(
                s, result.booking_id, moved, scope="this", recurrence_id=rid, now=rid + 6 * H
            )
        )
    assert code_of(exc) == "begun"


def test_editing_this_and_following_splits_the_series(db: Database, rooms: list[str]) -> None:
    result = create(db, weekly(), rooms[:2])
    split = datetime(2027, 1, 25, 8, 0, tzinfo=UTC)  # the fourth occurrence
    changed = weekly(start_local=datetime(2027, 1, 4, 11, 0))  # time of day changes
    new = db.run_sync(
        lambda s: commands.update_series(
            s, result.booking_id, changed, scope="this-and-following", recurrence_id=split, now=NOW
        )
    )
    assert new.booking_id != result.booking_id
    old_spec = db.run_sync(lambda s: commands.series_spec(s, result.booking_id))
    new_spec = db.run_sync(lambda s: commands.series_spec(s, new.booking_id))
    assert old_spec.rrules == ("FREQ=WEEKLY;UNTIL=20270125T075959Z",) and old_spec.sequence == 1
    assert new_spec.uid != old_spec.uid and new_spec.uid.endswith("@telecentre")
    assert new_spec.start_local == datetime(2027, 1, 25, 11, 0)
    assert new_spec.rrules == ("FREQ=WEEKLY;COUNT=7",)  # 10 in all, 3 before the split
    old_live = [s for s in sessions_of(db, result.booking_id) if s.state == "scheduled"]
    assert len(old_live) == 3 and len(new.session_ids) == 7
    assert sessions_of(db, new.booking_id)[0].start_utc == datetime(2027, 1, 25, 10, 0, tzinfo=UTC)
    assert len(slots_of(db, rooms[0])) == 10


def test_cancelling(db: Database, rooms: list[str]) -> None:
    result = create(db, weekly(), rooms[:2])
    later = NOW + 8 * 24 * H
    cut = datetime(2027, 2, 1, 8, 0, tzinfo=UTC)  # the fifth
    gone = db.run_sync(
        lambda s: commands.cancel_series(
            s, result.booking_id, recurrence_id=cut, this_and_following=True, now=later
        )
    )
    assert len(gone) == 6
    spec = db.run_sync(lambda s: commands.series_spec(s, result.booking_id))
    assert spec.rrules == ("FREQ=WEEKLY;UNTIL=20270201T075959Z",)
    gone = db.run_sync(lambda s: commands.cancel_series(s, result.booking_id, now=later))
    assert len(gone) == 2  # the first two have ended: history stays as it is
    states = [s.state for s in sessions_of(db, result.booking_id)]
    assert states[:2] == ["scheduled", "scheduled"] and set(states[2:]) == {"cancelled"}
    assert len(slots_of(db, rooms[0])) == 2
    history = db.run_sync(
        lambda s: s.exec(
            select(SessionTransitionRecord).where(SessionTransitionRecord.state == "cancelled")
        ).all()
    )
    assert len(history) == 8
    booking = db.run_sync(lambda s: s.get(Booking, result.booking_id))
    assert booking is not None and booking.status == "cancelled"
    with pytest.raises(DomainError) as exc:
        db.run_sync(
            lambda s: commands.cancel_series(
                s,
                result.booking_id,
                recurrence_id=datetime(2027, 1, 4, 8, 0, tzinfo=UTC),
                now=later,
            )
        )
    assert code_of(exc) == "past"


def test_cancelling_an_occurrence_beyond_the_horizon(db: Database, rooms: list[str]) -> None:
    set_rooms(db, rooms, max_advance_days=14)
    result = create(
        db, weekly(rrules=("FREQ=WEEKLY",)), [rooms[0]], settings=BookingSettings(horizon_days=14)
    )
    assert len(result.session_ids) == 2
    far = datetime(2027, 6, 7, 7, 0, tzinfo=UTC)
    db.run_sync(lambda s: commands.cancel_series(s, result.booking_id, recurrence_id=far, now=NOW))
    spec = db.run_sync(lambda s: commands.series_spec(s, result.booking_id))
    assert [(o.recurrence_id, o.status) for o in spec.overrides] == [
        (datetime(2027, 6, 7, 9, 0), CANCELLED)
    ]


def test_series_spec_round_trips_overrides(db: Database, rooms: list[str]) -> None:
    spec = weekly(
        uid="rt",
        rdates=(datetime(2027, 1, 6, 15, 0),),
        exdates=(datetime(2027, 1, 18, 9, 0),),
        overrides=(
            OverrideSpec(datetime(2027, 1, 11, 9, 0), datetime(2027, 1, 12, 10, 0), 2 * H),
            OverrideSpec(
                datetime(2027, 1, 25, 9, 0), datetime(2027, 1, 25, 9, 0), H, status=CANCELLED
            ),
            OverrideSpec(
                datetime(2027, 2, 1, 9, 0), datetime(2027, 2, 1, 9, 0), H, title="Special"
            ),
        ),
        organiser="mailto:anne@example.org",
        sequence=3,
    )
    result = create(db, spec, rooms[:2], source="feed:1")
    back = db.run_sync(lambda s: commands.series_spec(s, result.booking_id))
    assert dataclasses.replace(back, rooms=()) == spec
    assert len(result.session_ids) == 9  # 10 + 1 RDATE - 1 EXDATE - 1 cancelled


def test_an_imported_booking_keeps_its_sequence(db: Database, rooms: list[str]) -> None:
    result = create(db, weekly(sequence=4), [rooms[0]], source="feed:1")
    db.run_sync(
        lambda s: commands.update_series(
            s, result.booking_id, weekly(sequence=4, title="T"), now=NOW
        )
    )
    assert db.run_sync(lambda s: commands.series_spec(s, result.booking_id)).sequence == 4


# --- the horizon, free/busy, listing --------------------------------------------------------


def test_the_horizon_rolls_forward(db: Database, rooms: list[str]) -> None:
    set_rooms(db, rooms, max_advance_days=14)
    settings = BookingSettings(horizon_days=14)
    daily = weekly(rrules=("FREQ=DAILY",))
    result = create(db, daily, rooms[:2], settings=settings)
    assert len(result.session_ids) == 14
    # Someone else takes day 16 of the series in one of its rooms.
    create(
        db,
        one("later", datetime(2027, 1, 22, 9, 0)),
        [rooms[1]],
        now=NOW + 9 * 24 * H,
        settings=settings,
    )
    horizon = NOW + 14 * 24 * H
    later = NOW + 3 * 24 * H
    assert db.run_sync(lambda s: roll_horizon(s, later, settings, since=horizon)) == 3
    assert db.run_sync(lambda s: roll_horizon(s, later, settings)) == 0  # idempotent
    created = db.run_sync(
        lambda s: roll_horizon(s, NOW + 7 * 24 * H, settings, since=horizon + 3 * 24 * H)
    )
    assert created == 3  # 4 entered; the one on the 19th conflicts and is skipped
    states = {s.recurrence_id: s.state for s in sessions_of(db, result.booking_id)}
    assert states[datetime(2027, 1, 22, 8, 0, tzinfo=UTC)] == "cancelled"
    assert db.run_sync(lambda s: roll_horizon(s, NOW + 7 * 24 * H, settings)) == 0  # never retried


def test_free_busy_lists_every_room_asked_for(db: Database, rooms: list[str]) -> None:
    create(db, weekly(), rooms[:2])
    found = db.run_sync(lambda s: busy(s, rooms, NOW, NOW + 7 * 24 * H))
    assert set(found) == set(rooms)
    assert [b.start for b in found[rooms[0]]] == [datetime(2027, 1, 4, 8, 0, tzinfo=UTC)]
    assert found[rooms[2]] == []
    assert found[rooms[0]][0].title == "Weekly" and found[rooms[0]][0].booking_id
    bare = db.run_sync(lambda s: busy(s, rooms, NOW, NOW + 7 * 24 * H, detail=False))
    assert {r: [(b.start, b.end, b.session_id) for b in v] for r, v in bare.items()} == {
        r: [(b.start, b.end, b.session_id) for b in v] for r, v in found.items()
    }


def test_free_busy_of_200_rooms_over_7_days_is_fast(tmp_path: Path) -> None:
    """The issue's figure (≤ 50 ms); asserted loosely here, measured in the report."""
    database = Database.for_data_dir(tmp_path)
    database.migrate()
    try:
        room_ids = _many_rooms(database, 200, days=10)
        since = NOW
        best: dict[bool, float] = {}
        found: dict[bool, dict[str, list[Busy]]] = {}
        for detail in (False, True):
            for _ in range(5):
                began = time.perf_counter()
                found[detail] = database.run_sync(
                    lambda s, d=detail: busy(s, room_ids, since, since + 7 * 24 * H, detail=d)  # type: ignore[misc]
                )
                took = time.perf_counter() - began
                best[detail] = min(best.get(detail, took), took)
        assert sum(len(v) for v in found[False].values()) == 200 * 7 * 4
        times = {d: [[(b.start, b.end) for b in v] for v in found[d].values()] for d in found}
        assert times[False] == times[True]
        print(
            f"free/busy 200 rooms x 7 days: {best[False] * 1000:.1f} ms, with titles {best[True] * 1000:.1f} ms"
        )
        assert best[False] < 0.5
    finally:
        database.close_sync()


def _many_rooms(db: Database, count: int, *, days: int) -> list[str]:
    """``count`` rooms, each with 4 one-hour meetings a day over ``days`` days from NOW."""
    from orchestrator.models import Centre, new_id

    def setup(s: DbSession) -> list[str]:
        centre = Centre(name="Big", timezone=PARIS)
        s.add(centre)
        s.flush()
        ids = [new_id() for _ in range(count)]
        s.connection().execute(
            sa.insert(Room),
            [
                {
                    "id": r,
                    "centre_id": centre.id,
                    "name": r,
                    "key_hash": "x",
                    "key_generation": 1,
                    "aliases": "[]",
                    "buffer_seconds": 0,
                    "max_advance_days": 180,
                    "created_at": NOW,
                }
                for r in ids
            ],
        )
        for index, room_id in enumerate(ids):
            spec = SeriesSpec(
                uid=f"bench-{index}",
                title="m",
                timezone=PARIS,
                start_local=datetime(2027, 1, 4, 9, 0),
                duration=H,
                rrules=(f"FREQ=DAILY;BYHOUR=9,11,13,15;COUNT={4 * days}",),
            )
            commands.create_series(s, spec, [room_id], now=NOW)
        return ids

    return db.run_sync(setup)


def test_cli_booking_list(
    sqlite_db: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from web.cli import main

    db = sqlite_db
    rooms = _rooms(db)
    create(db, weekly(rrules=("FREQ=WEEKLY;COUNT=2",)), [rooms[0], rooms[4]], source="feed:abc")
    args = [
        "booking",
        "list",
        "--room",
        rooms[4],
        "--from",
        "2027-01-01T00:00:00Z",
        "--to",
        "2027-02-01",
        "--data-dir",
        str(tmp_path),
    ]
    assert main([*args, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    items = data["occurrences"]
    assert [
        (i["start"], i["start_local"], i["timezone"], i["state"], i["source"]) for i in items
    ] == [
        (
            "2027-01-04T08:00:00+00:00",
            "2027-01-04T03:00:00",
            "America/Montreal",
            "scheduled",
            "feed:abc",
        ),
        (
            "2027-01-11T08:00:00+00:00",
            "2027-01-11T03:00:00",
            "America/Montreal",
            "scheduled",
            "feed:abc",
        ),
    ]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "2027-01-04 08:00Z-09:00Z  2027-01-04 03:00-04:00 America/Montreal  scheduled" in text
    assert main(["booking", "list", "--room", "nope", "--data-dir", str(tmp_path), "--json"]) == 2
    assert json.loads(capsys.readouterr().out)["error"]["code"] == "not-found"
