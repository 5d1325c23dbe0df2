"""Session actions on real databases: extend (only when every room is free, buffers
included, and against PostgreSQL's exclusion constraint under a race), end now,
cancel one occurrence or the series without touching history."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlmodel import col, select

from orchestrator import centres, lifecycle, transitions
from orchestrator.booking import commands
from orchestrator.booking.policy import BookingSettings
from orchestrator.booking.store import BookingConflict
from orchestrator.booking.values import SeriesSpec
from orchestrator.clock import FakeClock
from orchestrator.db import Database, DbSession
from orchestrator.errors import DomainError
from orchestrator.models import Booking, RoomSlot, Session, SessionTransitionRecord
from orchestrator.ports import RoomSchedule, SessionTransition
from orchestrator.sessions import actions as session_actions
from orchestrator.sessions import participation
from orchestrator.sessions.scheduler import Scheduler
from orchestrator.sessions.tickets import TicketSigner
from tests.test_bookings import _postgres_database
from tests.test_scheduler import FakeControl

T = datetime(2027, 1, 5, 8, 0, tzinfo=UTC)  # 09:00 in Paris
BOOKED_AT = T - timedelta(days=1)
SETTINGS = BookingSettings()
MIN = timedelta(minutes=1)


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "sqlite":
        database = Database.for_data_dir(tmp_path)
        database.migrate()
        yield database
        database.close_sync()
        return
    yield from _postgres_database()


@pytest.fixture
def postgres() -> Iterator[Database]:
    yield from _postgres_database()


def make_rooms(db: Database, buffer_minutes: int = 0) -> list[str]:
    """Rooms A (Paris, with the buffer given), B (Amsterdam) and C (Paris)."""

    def setup(s: DbSession) -> list[str]:
        paris = centres.add_centre(s, "Paris", "Europe/Paris")
        amsterdam = centres.add_centre(s, "Amsterdam", "Europe/Amsterdam")
        a = centres.add_room(s, paris.id, "A")[0]
        centres.set_room_policy(s, a.id, buffer_seconds=buffer_minutes * 60)
        b = centres.add_room(s, amsterdam.id, "B")[0]
        c = centres.add_room(s, paris.id, "C")[0]
        return [a.id, b.id, c.id]

    return db.run_sync(setup)


def meeting(uid: str, start_local: datetime, minutes: int = 60, **kw: object) -> SeriesSpec:
    spec = SeriesSpec(
        uid=uid,
        title=f"Private {uid}",
        timezone="Europe/Paris",
        start_local=start_local,
        duration=timedelta(minutes=minutes),
    )
    return dataclasses.replace(spec, **kw)  # type: ignore[arg-type]


def book(db: Database, spec: SeriesSpec, rooms: list[str]) -> list[str]:
    result = db.run_sync(lambda s: commands.create_series(s, spec, rooms, now=BOOKED_AT))
    return list(result.session_ids)


def go_live(db: Database, session_id: str, at: datetime = T) -> None:
    def step(s: DbSession) -> None:
        session = s.get(Session, session_id)
        assert session is not None
        for state in ("preparing", "live"):
            assert transitions.record_transition(s, session, state, at, now=at)

    db.run_sync(step)


def slots(db: Database, session_id: str) -> dict[str, tuple[datetime, datetime]]:
    rows = db.run_sync(
        lambda s: s.exec(select(RoomSlot).where(RoomSlot.session_id == session_id)).all()
    )
    return {r.room_id: (r.start_utc, r.end_utc) for r in rows}


def get_session(db: Database, session_id: str) -> Session:
    found = db.run_sync(lambda s: s.get(Session, session_id))
    assert found is not None
    return found


def extend(db: Database, session_id: str, minutes: int, now: datetime) -> Session:
    return db.run_sync(lambda s: session_actions.extend(s, session_id, minutes, now, SETTINGS))


# --- extend -----------------------------------------------------------------------------


def test_extend_lengthens_the_session_and_every_room_slot(db: Database) -> None:
    a, b, _ = make_rooms(db, buffer_minutes=10)
    [sid] = book(db, meeting("m1", datetime(2027, 1, 5, 9, 0)), [a, b])
    go_live(db, sid)
    before = get_session(db, sid)
    booked = db.run_sync(lambda s: s.get(Booking, before.booking_id))
    assert booked is not None
    sequence = booked.sequence

    after = extend(db, sid, 15, T + 50 * MIN)

    assert after.end_utc == T + 75 * MIN
    assert after.revision == before.revision + 1
    assert after.state == lifecycle.LIVE  # an extension is no transition of its own
    # Each room's slot keeps the room's buffer after the new end.
    assert slots(db, sid) == {a: (T, T + 85 * MIN), b: (T, T + 75 * MIN)}
    booking = db.run_sync(lambda s: s.get(Booking, before.booking_id))
    assert booking is not None and booking.sequence == sequence + 1
    # Calendars now read the occurrence as one that lasts 75 minutes.
    spec = db.run_sync(lambda s: commands.series_spec(s, before.booking_id))
    assert [o.duration for o in spec.overrides] == [timedelta(minutes=75)]


def test_extend_is_refused_when_one_room_is_taken_and_names_that_room(db: Database) -> None:
    a, b, _ = make_rooms(db)
    [sid] = book(db, meeting("m1", datetime(2027, 1, 5, 9, 0)), [a, b])
    book(db, meeting("secret", datetime(2027, 1, 5, 10, 10)), [b])
    go_live(db, sid)

    with pytest.raises(BookingConflict) as refused:
        extend(db, sid, 15, T + 50 * MIN)

    assert refused.value.code == "conflict"
    assert "room B " in refused.value.message and "room A" not in refused.value.message
    assert "secret" not in refused.value.message  # another centre's title stays private
    assert get_session(db, sid).end_utc == T + 60 * MIN
    assert slots(db, sid) == {a: (T, T + 60 * MIN), b: (T, T + 60 * MIN)}
    # Ten minutes still fit.
    assert extend(db, sid, 10, T + 50 * MIN).end_utc == T + 70 * MIN


def test_extend_respects_the_buffers_of_both_meetings(db: Database) -> None:
    a, b, _ = make_rooms(db, buffer_minutes=10)
    [sid] = book(db, meeting("m1", datetime(2027, 1, 5, 9, 0)), [a, b])
    book(db, meeting("next", datetime(2027, 1, 5, 10, 20)), [a])
    go_live(db, sid)
    # 10:15 + A's 10-minute buffer runs into the 10:20 meeting; 10:10 + 10 does not.
    with pytest.raises(BookingConflict, match="room A "):
        extend(db, sid, 15, T + 50 * MIN)
    options = db.run_sync(lambda s: session_actions.extension_options(s, sid, T + 50 * MIN))
    assert options == ()
    assert extend(db, sid, 10, T + 50 * MIN).end_utc == T + 70 * MIN


def test_extend_skips_a_room_released_for_a_no_show(db: Database) -> None:
    a, b, _ = make_rooms(db)
    [sid] = book(db, meeting("m1", datetime(2027, 1, 5, 9, 0)), [a, b])
    go_live(db, sid)
    join(db, sid, a)
    released = db.run_sync(
        lambda s: commands.release_no_shows(s, now=T + 11 * MIN, settings=SETTINGS)
    )
    assert released == [(sid, b)]
    book(db, meeting("later", datetime(2027, 1, 5, 10, 0)), [b])  # B is free after release

    after = extend(db, sid, 30, T + 50 * MIN)

    assert after.end_utc == T + 90 * MIN
    assert slots(db, sid) == {a: (T, T + 90 * MIN), b: (T, T + 11 * MIN)}


def join(db: Database, session_id: str, room_id: str) -> None:
    db.run_sync(lambda s: participation.record_joined(s, session_id, room_id, T.timestamp()))


def test_extend_refuses_an_ended_session_and_odd_lengths(db: Database) -> None:
    a, b, _ = make_rooms(db)
    [sid] = book(db, meeting("m1", datetime(2027, 1, 5, 9, 0)), [a, b])
    for minutes in (0, -5, 241):
        with pytest.raises(DomainError) as bad:
            extend(db, sid, minutes, T)
        assert bad.value.code == "invalid-extension"
    with pytest.raises(DomainError) as ended:
        extend(db, sid, 15, T + 60 * MIN)  # at the end: over, even before the scheduler
    assert ended.value.code == "ended"
    db.run_sync(lambda s: session_actions.cancel_occurrence(s, sid, T - MIN))
    with pytest.raises(DomainError) as cancelled:
        extend(db, sid, 15, T)
    assert cancelled.value.code == "ended"


def test_extension_options_name_what_would_be_granted(db: Database) -> None:
    a, b, _ = make_rooms(db)
    [sid] = book(db, meeting("m1", datetime(2027, 1, 5, 9, 0)), [a, b])
    assert db.run_sync(lambda s: session_actions.extension_options(s, sid, T)) == (15, 30)
    book(db, meeting("next", datetime(2027, 1, 5, 10, 20)), [b])
    assert db.run_sync(lambda s: session_actions.extension_options(s, sid, T)) == (15,)
    assert db.run_sync(lambda s: session_actions.extension_options(s, sid, T + 61 * MIN)) == ()


def _waiting_on_a_lock(postgres: Database) -> int:
    with postgres.engine.connect() as conn:
        return int(
            conn.exec_driver_sql(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE wait_event_type = 'Lock' AND datname = current_database()"
            ).scalar_one()
        )


def test_postgres_extension_racing_a_booking_is_refused_by_the_constraint(
    postgres: Database,
) -> None:
    """A booking of room B from 10:00 is written but not committed when the extension
    checks: the check passes, the slot update waits on the booking's row, and once
    the booking commits the exclusion constraint refuses the extension."""
    a, b, _ = make_rooms(postgres)
    [sid] = book(postgres, meeting("m1", datetime(2027, 1, 5, 9, 0)), [a, b])
    go_live(postgres, sid)
    written, release = threading.Event(), threading.Event()
    outcome: dict[str, object] = {}

    def racing_booking(s: DbSession) -> None:
        commands.create_series(s, meeting("racer", datetime(2027, 1, 5, 10, 0)), [b], now=T)
        s.flush()
        written.set()
        assert release.wait(30)

    def booker() -> None:
        postgres.run_sync(racing_booking)

    def extender() -> None:
        try:
            outcome["session"] = extend(postgres, sid, 15, T + 50 * MIN)
        except Exception as exc:
            outcome["error"] = exc

    threads = [threading.Thread(target=booker), threading.Thread(target=extender)]
    threads[0].start()
    assert written.wait(30)
    threads[1].start()
    deadline = time.monotonic() + 30
    while _waiting_on_a_lock(postgres) < 1:  # the extension's slot update waits
        assert time.monotonic() < deadline, "the extension never waited on the booking"
        threads[1].join(0.05)
        assert threads[1].is_alive(), f"the extension did not wait: {outcome}"
    release.set()
    for thread in threads:
        thread.join(30)

    error = outcome.get("error")
    assert isinstance(error, BookingConflict), outcome
    assert error.code == "conflict" and "room B " in error.message
    assert get_session(postgres, sid).end_utc == T + 60 * MIN
    assert slots(postgres, sid) == {a: (T, T + 60 * MIN), b: (T, T + 60 * MIN)}


async def test_the_scheduler_keeps_the_rooms_until_the_new_end(tmp_path: Path) -> None:
    database = Database.for_data_dir(tmp_path)
    database.migrate()
    try:
        a, b, _ = make_rooms(database)
        [sid] = book(database, meeting("m1", datetime(2027, 1, 5, 9, 0)), [a, b])
        # Both joined: neither is released as a no-show.
        for room in (a, b):
            join(database, sid, room)
        clock = FakeClock((T + 56 * MIN).timestamp())
        control = FakeControl()
        scheduler = Scheduler(database, control, TicketSigner.generate(), clock)
        await scheduler.step()  # preparing, live, ending (10:55)
        assert get_session(database, sid).state == lifecycle.ENDING
        control.take()

        extend(database, sid, 30, T + 57 * MIN)
        await clock.set((T + 58 * MIN).timestamp())
        await scheduler.step()
        pushed = control.of(RoomSchedule)
        assert {s.room_id for s in pushed} == {a, b}
        assert all(s.items[0].end == (T + 90 * MIN).timestamp() for s in pushed)

        await clock.set((T + 61 * MIN).timestamp())  # the old end has passed
        await scheduler.step()
        assert get_session(database, sid).state == lifecycle.ENDING
        assert not control.of(SessionTransition), "no warning before the new end's"

        # The rooms are warned again for the new end: 5 minutes, then 1 minute before.
        for minute in (84, 85, 88, 89):
            await clock.set((T + minute * MIN).timestamp())
            await scheduler.step()
        warnings = [t.at for t in control.of(SessionTransition) if t.state == lifecycle.ENDING]
        assert warnings == [(T + 85 * MIN).timestamp(), (T + 89 * MIN).timestamp()]
        await clock.set((T + 90 * MIN).timestamp())
        await scheduler.step()
        ended = [t for t in control.of(SessionTransition) if t.state == lifecycle.ENDED]
        assert [(t.at, t.end) for t in ended] == [((T + 90 * MIN).timestamp(),) * 2]
    finally:
        database.close_sync()


# --- end now ------------------------------------------------------------------------------


def test_end_now_frees_the_rooms_and_the_scheduler_ends_it(db: Database) -> None:
    a, b, _ = make_rooms(db, buffer_minutes=10)
    [sid] = book(db, meeting("m1", datetime(2027, 1, 5, 9, 0)), [a, b])
    go_live(db, sid)
    now = T + 20 * MIN

    ended = db.run_sync(lambda s: session_actions.end_now(s, sid, now))

    assert ended.end_utc == now
    assert slots(db, sid) == {a: (T, now + 10 * MIN), b: (T, now)}
    book(db, meeting("after", datetime(2027, 1, 5, 9, 30)), [a, b])  # free from 09:30 on
    from orchestrator.sessions.scheduler import apply_due_transitions

    steps, _ = db.run_sync(lambda s: apply_due_transitions(s, now.timestamp() + 0.5, 1.0))
    assert [(t.session_id, t.state) for t in steps] == [(sid, lifecycle.ENDED)]
    with pytest.raises(DomainError) as again:
        db.run_sync(lambda s: session_actions.end_now(s, sid, now + MIN))
    assert again.value.code == "ended"


def test_end_now_before_the_start_asks_for_a_cancellation(db: Database) -> None:
    a, b, _ = make_rooms(db)
    [sid] = book(db, meeting("m1", datetime(2027, 1, 5, 9, 0)), [a, b])
    with pytest.raises(DomainError) as early:
        db.run_sync(lambda s: session_actions.end_now(s, sid, T - MIN))
    assert early.value.code == "not-begun"
    assert get_session(db, sid).end_utc == T + 60 * MIN


# --- cancel -------------------------------------------------------------------------------


def _end_first(db: Database, session_id: str) -> None:
    go_live(db, session_id)

    def finish(s: DbSession) -> None:
        session = s.get(Session, session_id)
        assert session is not None
        assert transitions.record_transition(s, session, lifecycle.ENDED, T + 60 * MIN)

    db.run_sync(finish)


def _history(db: Database, session_id: str) -> list[tuple[int, str]]:
    rows = db.run_sync(
        lambda s: s.exec(
            select(SessionTransitionRecord)
            .where(SessionTransitionRecord.session_id == session_id)
            .order_by(col(SessionTransitionRecord.seq))
        ).all()
    )
    return [(r.seq, r.state) for r in rows]


def test_cancel_one_occurrence_keeps_history_and_the_rest(db: Database) -> None:
    a, b, _ = make_rooms(db)
    daily = meeting("daily", datetime(2027, 1, 5, 9, 0), rrules=("FREQ=DAILY;COUNT=3",))
    first, second, third = book(db, daily, [a, b])
    _end_first(db, first)
    history = _history(db, first)

    cancelled = db.run_sync(
        lambda s: session_actions.cancel_occurrence(s, second, T + 2 * 60 * MIN)
    )

    assert cancelled == [second]
    states = [get_session(db, x).state for x in (first, second, third)]
    assert states == [lifecycle.ENDED, lifecycle.CANCELLED, lifecycle.SCHEDULED]
    assert _history(db, first) == history
    assert slots(db, second) == {} and set(slots(db, third)) == {a, b}
    with pytest.raises(DomainError) as past:
        db.run_sync(lambda s: session_actions.cancel_occurrence(s, first, T + 2 * 60 * MIN))
    assert past.value.code == "past"


def test_cancel_the_series_stops_what_is_live_and_keeps_what_ended(db: Database) -> None:
    a, b, _ = make_rooms(db)
    daily = meeting("daily", datetime(2027, 1, 5, 9, 0), rrules=("FREQ=DAILY;COUNT=3",))
    first, second, third = book(db, daily, [a, b])
    _end_first(db, first)
    go_live(db, second, T + timedelta(days=1))
    now = T + timedelta(days=1, minutes=10)
    booking_id = get_session(db, first).booking_id

    cancelled = db.run_sync(lambda s: session_actions.cancel_series(s, booking_id, now))

    assert cancelled == [second, third]
    states = [get_session(db, x).state for x in (first, second, third)]
    assert states == [lifecycle.ENDED, lifecycle.CANCELLED, lifecycle.CANCELLED]
    booking = db.run_sync(lambda s: s.get(Booking, booking_id))
    assert booking is not None and booking.status == "cancelled"


def test_cancelling_the_only_occurrence_cancels_the_booking(db: Database) -> None:
    a, b, _ = make_rooms(db)
    [sid] = book(db, meeting("once", datetime(2027, 1, 5, 9, 0)), [a, b])
    booking_id = get_session(db, sid).booking_id
    assert db.run_sync(lambda s: session_actions.cancel_occurrence(s, sid, T - MIN)) == [sid]
    booking = db.run_sync(lambda s: s.get(Booking, booking_id))
    assert booking is not None and booking.status == "cancelled"
    count = sa.select(sa.func.count()).select_from(RoomSlot)
    assert db.run_sync(lambda s: s.connection().execute(count).scalar_one()) == 0
