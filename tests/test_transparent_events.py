"""Issue 10, calendars, item 1: a transparent event never sets up a call, and no room
ever holds two overlapping calls, on SQLite and on PostgreSQL.

Found by a user: an Outlook reminder marked free (TRANSP:TRANSPARENT, the fixture
``outlook_free_reminder_and_meeting.ics``) became an automatic session, and since it
blocks nothing, a real meeting took the same hour: the room held two calls at once.

The scheduler runs on a fake clock against the real importer and a fake
``SessionControl`` that records what the rooms were told.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import pytest
import sqlalchemy as sa
from sqlmodel import col, select

from orchestrator import centres, lifecycle
from orchestrator.booking import commands
from orchestrator.booking.policy import BookingSettings
from orchestrator.booking.store import is_slot_overlap
from orchestrator.booking.values import SeriesSpec
from orchestrator.calendars.ical_in import importer
from orchestrator.calendars.ical_in.plan import ImportSource
from orchestrator.clock import FakeClock
from orchestrator.db import Database, DbSession
from orchestrator.models import (
    Booking,
    BookingRoom,
    Participation,
    RoomSlot,
    Session,
    SessionTransitionRecord,
)
from orchestrator.ports import RoomCredential, RoomSchedule, SessionTransition, TicketRevocation
from orchestrator.sessions import calls, detail, panels
from orchestrator.sessions.scheduler import Scheduler
from orchestrator.sessions.tickets import TicketSigner
from tests.test_migrations import POSTGRES_URL, _postgres_or_skip
from web.api_json import session_json

FIXTURE = Path(__file__).parent / "fixtures" / "ics" / "outlook_free_reminder_and_meeting.ics"
NOW = datetime(2027, 1, 10, 12, 0, tzinfo=UTC)  # two days before the fixture's events
T = datetime(2027, 1, 12, 9, 0, tzinfo=UTC)  # 10:00 in Paris, the events' start
END = T + timedelta(hours=1)
LEAD = 60  # the importer's lead
SETTINGS = BookingSettings()
SOURCE = "file:outlook"
REMINDER_UID = b"040000008200E00074C5B7101A82E00800000000A1B2C3D4-reminder"
MEETING_UID = b"040000008200E00074C5B7101A82E00800000000A1B2C3D4-meeting"
CALL_STATES = (lifecycle.PREPARING, lifecycle.LIVE, lifecycle.ENDING)
M = TypeVar("M")


# --- the world ------------------------------------------------------------------------


@dataclass
class FakeControl:
    calls: list[object] = field(default_factory=list)

    async def push_schedule(self, schedule: RoomSchedule) -> None:
        self.calls.append(schedule)

    async def session_transition(self, transition: SessionTransition) -> None:
        self.calls.append(transition)

    async def set_room_credential(self, credential: RoomCredential) -> None:
        self.calls.append(credential)

    async def revoke_tickets(self, revocation: TicketRevocation) -> None:
        self.calls.append(revocation)

    def of(self, kind: type[M]) -> list[M]:
        return [c for c in self.calls if isinstance(c, kind)]


@dataclass
class Net:
    db: Database
    rooms: list[str]  # Salle Bleue (Fontainebleau), Salle du Fleuve (Montréal)
    clock: FakeClock = field(default_factory=lambda: FakeClock(NOW.timestamp()))
    control: FakeControl = field(default_factory=FakeControl)
    latest: dict[str, RoomSchedule] = field(default_factory=dict)

    def scheduler(self) -> Scheduler:
        return Scheduler(self.db, self.control, TicketSigner.generate(), self.clock)

    def import_ics(self, data: bytes) -> importer.ImportReport:
        source = ImportSource(SOURCE, rooms=tuple(self.rooms))
        now = datetime.fromtimestamp(self.clock.now(), UTC)
        return self.db.run_sync(
            lambda s: importer.import_calendar(s, data, source, now=now, settings=SETTINGS)
        )

    def session_of(self, uid: bytes) -> Session:
        def load(s: DbSession) -> Session:
            return s.exec(
                select(Session)
                .join(Booking, col(Booking.id) == col(Session.booking_id))
                .where(col(Booking.uid) == uid.decode())
            ).one()

        return self.db.run_sync(load)

    def states(self, session_id: str) -> list[tuple[str, datetime]]:
        def load(s: DbSession) -> list[tuple[str, datetime]]:
            rows = s.exec(
                select(SessionTransitionRecord)
                .where(col(SessionTransitionRecord.session_id) == session_id)
                .order_by(col(SessionTransitionRecord.seq))
            ).all()
            return [(r.state, r.at) for r in rows]

        return self.db.run_sync(load)

    def scheduled_ids(self) -> set[str]:
        """Every session any room was ever given a ticket for."""
        return {i.session_id for s in self.control.of(RoomSchedule) for i in s.items}

    def told(self, session_id: str) -> list[str]:
        return [t.state for t in self.control.of(SessionTransition) if t.session_id == session_id]

    async def walk(self, scheduler: Scheduler, *instants: datetime) -> None:
        """Step the scheduler at each instant, checking the invariant after each step."""
        for at in instants:
            await self.clock.set(at.timestamp())
            await scheduler.step()
            self.check_one_call_per_room()

    def check_one_call_per_room(self) -> None:
        """No room holds two overlapping calls: in what its agent was last told (its
        schedule: what it joins by itself), nor in the database's call states."""
        for schedule in self.control.of(RoomSchedule):
            self.latest[schedule.room_id] = schedule
        for schedule in self.latest.values():
            items = [(i.start, i.end) for i in schedule.items]
            assert not _overlapping(items), (schedule.room_id, schedule.items)

        def in_calls(s: DbSession) -> dict[str, list[tuple[float, float]]]:
            rows = s.connection().execute(
                sa.select(col(BookingRoom.room_id), col(Session.start_utc), col(Session.end_utc))
                .join(Session, col(Session.booking_id) == col(BookingRoom.booking_id))
                .where(col(Session.state).in_(CALL_STATES))
            )
            found: dict[str, list[tuple[float, float]]] = {}
            for room_id, start, end in rows:
                found.setdefault(room_id, []).append((start.timestamp(), end.timestamp()))
            return found

        for room_id, spans in self.db.run_sync(in_calls).items():
            assert not _overlapping(spans), (room_id, spans)


def _overlapping(spans: list[tuple[float, float]]) -> bool:
    ordered = sorted(spans)
    return any(b[0] < a[1] for a, b in itertools.pairwise(ordered))


def _rooms(db: Database) -> list[str]:
    def setup(s: DbSession) -> list[str]:
        suffix = uuid.uuid4().hex[:6]
        paris = centres.add_centre(s, f"Fontainebleau {suffix}", "Europe/Paris")
        montreal = centres.add_centre(s, f"Montréal {suffix}", "America/Montreal")
        return [
            centres.add_room(s, paris.id, "Salle Bleue")[0].id,
            centres.add_room(s, montreal.id, "Salle du Fleuve")[0].id,
        ]

    return db.run_sync(setup)


@pytest.fixture(params=["sqlite", "postgresql"])
def net(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Net]:
    if request.param == "sqlite":
        db = Database.for_data_dir(tmp_path)
        db.migrate()
        try:
            yield Net(db, _rooms(db))
        finally:
            db.close_sync()
        return
    _postgres_or_skip()
    schema = f"telecentre_calls_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    url = sa.make_url(POSTGRES_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    db = Database(url.render_as_string(hide_password=False))
    try:
        db.migrate()
        yield Net(db, _rooms(db))
    finally:
        db.close_sync()
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()


def _event(uid: bytes, *, transparent: bool, sequence: int = 0) -> bytes:
    """One event of the fixture, its TRANSP and SEQUENCE set as given."""
    data = FIXTURE.read_bytes()
    head, rest = data.split(b"BEGIN:VEVENT", 1)
    events = [b"BEGIN:VEVENT" + e for e in rest.split(b"BEGIN:VEVENT")]
    [event] = [e for e in events if b"UID:" + uid + b"\r\n" in e]
    event = event.split(b"END:VCALENDAR")[0]
    event = event.replace(b"TRANSP:TRANSPARENT", b"TRANSP:OPAQUE").replace(
        b"TRANSP:OPAQUE", b"TRANSP:TRANSPARENT" if transparent else b"TRANSP:OPAQUE"
    )
    event = event.replace(b"SEQUENCE:0", b"SEQUENCE:%d" % sequence)
    return head + event + b"END:VCALENDAR\r\n"


THROUGH = (
    T - timedelta(hours=3),  # the schedules reach the rooms
    T - timedelta(seconds=LEAD),  # preparing
    T,  # live
    END - timedelta(minutes=5),  # ending
    END - timedelta(minutes=1),  # final warning
    END,  # ended
)


# --- the acceptance test ----------------------------------------------------------------


async def test_a_free_reminder_and_a_meeting_in_one_slot_make_one_call(net: Net) -> None:
    report = net.import_ics(FIXTURE.read_bytes())
    assert (report.created, report.skipped, report.conflicts) == (2, [], [])
    reminder, meeting = net.session_of(REMINDER_UID), net.session_of(MEETING_UID)
    assert (reminder.start_utc, meeting.start_utc) == (T, T)
    # The room's panel lists the meeting only: the reminder leaves the room free.
    view = net.db.run_sync(lambda s: panels.panel_view(s, net.rooms[0], T - timedelta(hours=1)))
    assert [s.session_id for s in view.sessions] == [meeting.id]

    await net.walk(net.scheduler(), *THROUGH)

    # The meeting connects, on time, in both rooms.
    assert [s for s, _ in net.states(meeting.id)] == [
        "scheduled",
        "preparing",
        "live",
        "ending",
        "ending",
        "ended",
    ]
    assert net.states(meeting.id)[1][1] == T - timedelta(seconds=LEAD)
    assert net.told(meeting.id)[:2] == ["preparing", "live"]
    assert meeting.id in net.scheduled_ids()
    # The reminder: no ticket, no schedule entry, no call; it ends with its hour.
    assert reminder.id not in net.scheduled_ids()
    assert [s for s, _ in net.states(reminder.id)] == ["scheduled", "ended"]
    assert net.states(reminder.id)[1][1] == END
    assert not set(net.told(reminder.id)) & set(CALL_STATES)


# --- transparency changing on a re-import (item 3) ---------------------------------------


async def test_a_meeting_turned_free_loses_its_call_before_it_starts(net: Net) -> None:
    net.import_ics(_event(MEETING_UID, transparent=False))
    meeting = net.session_of(MEETING_UID)
    scheduler = net.scheduler()
    await net.walk(scheduler, T - timedelta(hours=3))
    assert meeting.id in net.scheduled_ids()
    ticket_ids = {
        i.ticket
        for s in net.control.of(RoomSchedule)
        for i in s.items
        if i.session_id == meeting.id
    }
    assert len(ticket_ids) == 2  # one per room

    net.control.calls.clear()
    report = net.import_ics(_event(MEETING_UID, transparent=True, sequence=1))
    assert report.updated == 1
    await net.walk(scheduler, T - timedelta(hours=2))
    assert {s.room_id for s in net.control.of(RoomSchedule)} == set(net.rooms)
    assert all(not s.items for s in net.control.of(RoomSchedule))
    [revocation] = net.control.of(TicketRevocation)
    assert len(revocation.ticket_ids) == 2

    await net.walk(scheduler, *THROUGH[1:])
    assert [s for s, _ in net.states(meeting.id)] == ["scheduled", "ended"]


async def test_a_reminder_turned_busy_gets_its_call_where_the_room_is_free(net: Net) -> None:
    net.import_ics(_event(REMINDER_UID, transparent=True))
    reminder = net.session_of(REMINDER_UID)
    scheduler = net.scheduler()
    await net.walk(scheduler, T - timedelta(hours=3))
    assert reminder.id not in net.scheduled_ids()

    report = net.import_ics(_event(REMINDER_UID, transparent=False, sequence=1))
    assert (report.updated, report.conflicts) == (1, [])
    now_busy = net.session_of(REMINDER_UID)
    await net.walk(scheduler, *THROUGH)
    assert now_busy.id in net.scheduled_ids()
    assert [s for s, _ in net.states(now_busy.id)][:3] == ["scheduled", "preparing", "live"]


async def test_a_reminder_turned_busy_in_a_taken_hour_is_skipped_not_doubled(net: Net) -> None:
    net.import_ics(FIXTURE.read_bytes())  # the reminder and the meeting
    meeting = net.session_of(MEETING_UID)
    scheduler = net.scheduler()
    await net.walk(scheduler, T - timedelta(hours=3))

    report = net.import_ics(_event(REMINDER_UID, transparent=False, sequence=1))
    assert report.updated == 1 and len(report.conflicts) == 2  # one per room, reported
    await net.walk(scheduler, *THROUGH)
    reminder = net.session_of(REMINDER_UID)
    assert reminder.state == lifecycle.CANCELLED  # skipped: it holds nothing
    assert reminder.id not in net.scheduled_ids()
    assert [s for s, _ in net.states(meeting.id)][:3] == ["scheduled", "preparing", "live"]


# --- the invariant against writes past every check of ours --------------------------------


def _intrude(net: Net, start: datetime, end: datetime) -> str:
    """A booking and its session in the first room over ``[start, end)``, written with
    plain inserts as no command of ours would (no conflict test, no slot)."""

    def write(s: DbSession) -> str:
        booking_id, session_id = uuid.uuid4().hex, uuid.uuid4().hex
        wall = start.replace(tzinfo=None)
        s.connection().execute(
            sa.insert(Booking).values(
                id=booking_id,
                title="Intrus",
                start_utc=start,
                end_utc=end,
                start_local=wall,
                end_local=wall + (end - start),
                timezone="UTC",
                uid=f"{booking_id}@intruder",
                created_at=NOW,
                updated_at=NOW,
            )
        )
        s.connection().execute(
            sa.insert(BookingRoom).values(booking_id=booking_id, room_id=net.rooms[0])
        )
        s.connection().execute(
            sa.insert(Session).values(
                id=session_id,
                booking_id=booking_id,
                start_utc=start,
                end_utc=end,
                recurrence_id=start,
                created_at=NOW,
                updated_at=NOW,
            )
        )
        s.connection().execute(
            sa.insert(Participation).values(session_id=session_id, room_id=net.rooms[0])
        )
        return session_id

    return net.db.run_sync(write)


def _insert_slot(net: Net, session_id: str, start: datetime, end: datetime) -> None:
    with net.db.engine.begin() as conn:
        conn.execute(
            sa.insert(RoomSlot).values(
                room_id=net.rooms[0], session_id=session_id, start_utc=start, end_utc=end
            )
        )


async def test_an_overlapping_session_written_directly_never_becomes_a_call(net: Net) -> None:
    spec = SeriesSpec(
        uid="held",
        title="Comité",
        timezone="Europe/Paris",
        start_local=datetime(2027, 1, 12, 10, 0),
        duration=timedelta(hours=1),
    )
    held = net.db.run_sync(lambda s: commands.create_series(s, spec, net.rooms, now=NOW))
    [held_id] = held.session_ids
    intruder = _intrude(net, T + timedelta(minutes=30), END + timedelta(minutes=30))
    # The database itself refuses the intruder's slot, on either backend.
    with pytest.raises(sa.exc.IntegrityError) as refused:
        _insert_slot(net, intruder, T + timedelta(minutes=30), END + timedelta(minutes=30))
    assert is_slot_overlap(refused.value)

    scheduler = net.scheduler()
    await net.walk(scheduler, *THROUGH)
    assert intruder not in net.scheduled_ids()
    assert [s for s, _ in net.states(intruder)] == ["failed"]  # its only transition
    failed = net.db.run_sync(lambda s: s.get(Session, intruder))
    assert failed is not None and failed.failure == calls.ROOM_NOT_HELD
    assert net.told(intruder) == ["failed"]  # before its first step was due, reported
    assert [s for s, _ in net.states(held_id)][:3] == ["scheduled", "preparing", "live"]


async def test_a_session_whose_slot_was_never_written_fails_with_a_reason(net: Net) -> None:
    alone = _intrude(net, T, END)  # no competitor: the slot is simply missing
    scheduler = net.scheduler()
    await net.walk(scheduler, T - timedelta(hours=3))
    assert alone not in net.scheduled_ids()
    refused = net.db.run_sync(lambda s: s.get(Session, alone))
    assert refused is not None
    assert (refused.state, refused.failure) == (lifecycle.FAILED, calls.ROOM_NOT_HELD)
    # Staff see the reason where the API lists sessions.
    listed = net.db.run_sync(lambda s: detail.list_sessions(s, T, END))
    assert [(x["id"], x["failure"]) for x in map(session_json, listed)] == [
        (alone, "room-not-held")
    ]


def test_sqlite_refuses_an_overlapping_slot_as_postgresql_does(tmp_path: Path) -> None:
    """Migration 0007's triggers: the SQLite twin of ``ex_room_slot_no_overlap``
    (tests/test_booking_race.py shows PostgreSQL's), past every check of ours."""
    db = Database.for_data_dir(tmp_path)
    db.migrate()
    net = Net(db, _rooms(db))
    try:
        spec = SeriesSpec("held", "Comité", "Europe/Paris", datetime(2027, 1, 12, 10), END - T)
        db.run_sync(lambda s: commands.create_series(s, spec, net.rooms[:1], now=NOW))
        later = _intrude(net, END, END + timedelta(hours=1))
        with pytest.raises(sa.exc.IntegrityError) as refused:
            _insert_slot(net, later, END - timedelta(seconds=1), END + timedelta(hours=1))
        assert is_slot_overlap(refused.value)
        # Half-open: touching the end is no overlap.
        _insert_slot(net, later, END, END + timedelta(hours=1))
        # Growing a slot into another is refused; shrinking one is not checked.
        with pytest.raises(sa.exc.IntegrityError) as grown:
            with db.engine.begin() as conn:
                conn.execute(
                    sa.update(RoomSlot)
                    .where(col(RoomSlot.session_id) == later)
                    .values(start_utc=END - timedelta(minutes=1))
                )
        assert is_slot_overlap(grown.value)
        with db.engine.begin() as conn:
            conn.execute(
                sa.update(RoomSlot)
                .where(col(RoomSlot.session_id) == later)
                .values(end_utc=END + timedelta(minutes=30))
            )
    finally:
        db.close_sync()


# --- the rule, pure ----------------------------------------------------------------------


def test_a_reminder_only_ends_and_a_call_under_way_runs_on() -> None:
    start, end, lead = 1000.0, 4600.0, 60.0
    for now in (start - lead, start, end - 300, end - 1):
        assert lifecycle.due_transitions("scheduled", start, end, lead, now, call=False) == []
    assert lifecycle.due_transitions("scheduled", start, end, lead, end, call=False) == [
        ("ended", end)
    ]
    assert lifecycle.next_wake("scheduled", start, end, lead, call=False) == end
    # Turned transparent once under way: the call goes on to its end as before.
    assert lifecycle.due_transitions("preparing", start, end, lead, start, call=False) == [
        ("live", start)
    ]
    assert calls.is_reminder(True, "scheduled")
    assert not calls.is_reminder(True, "live") and not calls.is_reminder(False, "scheduled")
