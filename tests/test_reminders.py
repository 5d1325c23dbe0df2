"""Issue 10: a transparent booking's session is a *reminder* (it never connects), and
the pages read it as one (``orchestrator.sessions.reminders``), before and after its end; a
reminder the scheduler took to ``ended`` is no meeting for usage.

The scheduler runs on a fake clock against a real SQLite file and a fake
``SessionControl``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from orchestrator import lifecycle, transitions
from orchestrator.booking import commands
from orchestrator.booking.policy import BookingSettings
from orchestrator.booking.values import SeriesSpec
from orchestrator.centres import add_centre, add_room
from orchestrator.clock import FakeClock
from orchestrator.db import Database, DbSession
from orchestrator.errors import DomainError
from orchestrator.models import Booking, Session
from orchestrator.reports.usage import usage_report
from orchestrator.sessions import actions
from orchestrator.sessions.reminders import reminder_ids, was_reminder
from orchestrator.sessions.scheduler import Scheduler
from orchestrator.sessions.tickets import TicketSigner
from tests.test_transparent_events import FakeControl

NOW = datetime(2027, 1, 11, 12, 0, tzinfo=UTC)
START = datetime(2027, 1, 12, 9, 0, tzinfo=UTC)  # 10:00 in Paris
HOUR = timedelta(hours=1)


def test_a_transparent_session_that_never_began_is_a_reminder_before_and_after_its_end() -> None:
    assert was_reminder(True, lifecycle.SCHEDULED, began=False)
    assert was_reminder(True, lifecycle.ENDED, began=False)
    # It began as a call before its booking turned transparent: a call, then and after.
    assert not was_reminder(True, lifecycle.LIVE, began=True)
    assert not was_reminder(True, lifecycle.ENDED, began=True)
    assert not was_reminder(True, lifecycle.CANCELLED, began=False)
    assert not was_reminder(False, lifecycle.SCHEDULED, began=False)
    assert not was_reminder(False, lifecycle.ENDED, began=False)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database.for_data_dir(tmp_path)
    database.migrate()
    yield database
    database.close_sync()


def two_meetings(db: Database) -> tuple[str, str]:
    """(reminder, call): the same hour in two rooms of Fontainebleau, one marked free in
    its calendar."""

    def work(s: DbSession) -> tuple[str, str]:
        paris = add_centre(s, "Fontainebleau", "Europe/Paris")
        rooms = [add_room(s, paris.id, n)[0].id for n in ("Salle Bleue", "Verte")]
        ids = []
        for transparent, room in ((True, rooms[0]), (False, rooms[1])):
            spec = SeriesSpec(
                uid=f"meeting-{transparent}",
                title="Pick up the keys" if transparent else "Delegation",
                timezone="Europe/Paris",
                start_local=datetime(2027, 1, 12, 10, 0),
                duration=HOUR,
                transparent=transparent,
            )
            ids.append(commands.create_series(s, spec, [room], now=NOW).session_ids[0])
        return ids[0], ids[1]

    return db.run_sync(work)


async def test_the_scheduler_ends_a_reminder_which_stays_one_and_usage_counts_only_the_call(
    db: Database,
) -> None:
    reminder, call = two_meetings(db)
    clock = FakeClock(NOW.timestamp())
    scheduler = Scheduler(db, FakeControl(), TicketSigner.generate(), clock)

    def read(session_id: str) -> Session:
        found = db.run_sync(lambda s: s.get(Session, session_id))
        assert found is not None
        return found

    assert db.run_sync(lambda s: reminder_ids(s, [reminder, call])) == {reminder}
    for at in (START - timedelta(seconds=60), START, START + HOUR):
        await clock.set(at.timestamp())
        await scheduler.step()
    assert (read(reminder).state, read(call).state) == ("ended", "ended")
    # Over, it is still read as the reminder it was: nothing ever connected.
    assert db.run_sync(lambda s: reminder_ids(s, [reminder, call])) == {reminder}
    report = db.run_sync(lambda s: usage_report(s, 2027, START + 2 * HOUR))
    (paris,) = report.centres
    assert (paris.months[0].sessions, paris.months[0].minutes) == (1, 60)
    assert paris.months[0].rooms_used == 1


def test_a_call_whose_booking_turned_transparent_is_no_reminder(db: Database) -> None:
    _, call = two_meetings(db)

    def live_then_free(s: DbSession) -> None:
        session = s.get(Session, call)
        assert session is not None
        transitions.record_transition(s, session, "preparing", START - timedelta(seconds=60))
        transitions.record_transition(s, session, "live", START)
        transitions.record_transition(s, session, "ended", START + HOUR)
        booking = s.get(Booking, session.booking_id)
        assert booking is not None
        booking.transparent = True
        s.add(booking)

    db.run_sync(live_then_free)
    assert db.run_sync(lambda s: reminder_ids(s, [call])) == frozenset()
    assert db.run_sync(lambda s: reminder_ids(s, [])) == frozenset()


def test_a_reminder_cannot_be_extended_by_any_door(db: Database) -> None:
    """The page hides Extend for a reminder; the rule itself refuses it too (a direct
    POST, the API), since a reminder holds no room to keep longer."""
    reminder, call = two_meetings(db)
    settings = BookingSettings()

    def extend(session_id: str) -> Session:
        return db.run_sync(lambda s: actions.extend(s, session_id, 15, NOW, settings))

    with pytest.raises(DomainError) as refused:
        extend(reminder)
    assert refused.value.code == "no-call"
    assert extend(call).end_utc == START + HOUR + timedelta(minutes=15)
