"""Cross-centre approvals on a real SQLite file: a pending room holds its slot but does
not join, an approved one joins, a declined one leaves the booking (freeing its slot)
and the organiser is told; a booking left with one room becomes reserve-only."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import col, select

from orchestrator import centres, lifecycle, transitions
from orchestrator.booking import approvals, commands
from orchestrator.booking.store import BookingConflict, booking_room_ids
from orchestrator.booking.values import SeriesSpec
from orchestrator.clock import FakeClock
from orchestrator.db import Database, DbSession
from orchestrator.errors import DomainError
from orchestrator.models import (
    Approval,
    Booking,
    OutboxMail,
    Participation,
    RoomSlot,
    Session,
)
from orchestrator.people import accounts
from orchestrator.people.accounts import Principal
from orchestrator.ports import RoomSchedule
from orchestrator.sessions.scheduler import Scheduler
from orchestrator.sessions.schedules import ScheduleEntry, room_ids_of_sessions, schedule_entries
from orchestrator.sessions.tickets import TicketSigner
from tests.test_scheduler import FakeControl

T = datetime(2027, 1, 5, 8, 0, tzinfo=UTC)  # 09:00 in Paris and Amsterdam
NOW = T - timedelta(days=1)
PASSWORD = "correct horse battery"


@dataclasses.dataclass
class World:
    db: Database
    paris_room: str
    paris_other: str
    amsterdam_room: str  # requires approval
    organiser: Principal  # Paris
    paris_staff: Principal
    amsterdam_staff: Principal
    admin: Principal


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    db = Database.for_data_dir(tmp_path)
    db.migrate()

    def setup(s: DbSession) -> World:
        paris = centres.add_centre(s, "Paris", "Europe/Paris")
        amsterdam = centres.add_centre(s, "Amsterdam", "Europe/Amsterdam")
        a = centres.add_room(s, paris.id, "Fontainebleau")[0]
        c = centres.add_room(s, paris.id, "Melun")[0]
        x = centres.add_room(s, amsterdam.id, "Bright City")[0]
        x.requires_approval = True
        s.add(x)

        def person(
            email: str, role: str, centre: str | None, locale: str | None = None
        ) -> Principal:
            user = accounts.create_user(
                s, email, email.split("@")[0], PASSWORD, role, centre, locale=locale
            )
            return accounts.principal(user)

        return World(
            db,
            a.id,
            c.id,
            x.id,
            person("org@paris.fr", "organiser", paris.id, "fr"),
            person("staff@paris.fr", "staff", paris.id),
            person("staff@amsterdam.nl", "staff", amsterdam.id),
            person("admin@net.org", "admin", None),
        )

    yield db.run_sync(setup)
    db.close_sync()


def spec(uid: str, start_local: datetime, **kw: object) -> SeriesSpec:
    base = SeriesSpec(
        uid=uid,
        title=f"Meeting {uid}",
        timezone="Europe/Paris",
        start_local=start_local,
        duration=timedelta(hours=1),
    )
    return dataclasses.replace(base, **kw)  # type: ignore[arg-type]


def book_with_approval(w: World, rooms: list[str], series: SeriesSpec | None = None) -> str:
    """What the booking form writes: the organiser's booking, and a pending approval
    for the room whose centre asks for one."""

    def write(s: DbSession) -> str:
        result = commands.create_series(
            s, series or spec("m1", datetime(2027, 1, 5, 9, 0)), rooms, now=NOW
        )
        booking = s.get(Booking, result.booking_id)
        assert booking is not None
        booking.owner_id, booking.owner_centre_id = w.organiser.id, w.organiser.centre_id
        s.add(booking)
        s.add(Approval(booking_id=booking.id, room_id=w.amsterdam_room, requested_at=NOW))
        return booking.id

    return w.db.run_sync(write)


def decide(w: World, booking_id: str, approve: bool, who: Principal, note: str | None = None):  # type: ignore[no-untyped-def]
    return w.db.run_sync(
        lambda s: approvals.decide(
            s,
            booking_id,
            w.amsterdam_room,
            approve,
            who,
            NOW + timedelta(hours=1),
            note,
            booking_url="https://tc.example/bookings/" + booking_id,
        )
    )


def schedules(w: World) -> dict[str, tuple[ScheduleEntry, ...]]:
    return w.db.run_sync(lambda s: schedule_entries(s, T.timestamp() - 3600))


def session_ids(w: World, booking_id: str) -> list[str]:
    return list(
        w.db.run_sync(
            lambda s: s.exec(
                select(Session.id)
                .where(Session.booking_id == booking_id)
                .order_by(col(Session.start_utc))
            ).all()
        )
    )


def test_a_pending_room_holds_its_slot_but_does_not_join(world: World) -> None:
    w = world
    booking_id = book_with_approval(w, [w.paris_room, w.amsterdam_room])
    [sid] = session_ids(w, booking_id)

    with pytest.raises(BookingConflict):  # the slot is held for the booking
        w.db.run_sync(
            lambda s: commands.create_series(
                s, spec("other", datetime(2027, 1, 5, 9, 30)), [w.amsterdam_room], now=NOW
            )
        )
    found = schedules(w)
    assert w.amsterdam_room not in found  # no schedule entry, so no ticket: it cannot join
    [entry] = found[w.paris_room]
    assert [r.room_id for r in entry.rooms] == [w.paris_room]
    rooms = w.db.run_sync(lambda s: room_ids_of_sessions(s, {sid}))
    assert rooms == {sid: (w.paris_room,)}
    states = w.db.run_sync(lambda s: approvals.booking_approval_states(s, booking_id))
    assert states == {w.amsterdam_room: "pending"}


def test_approving_makes_the_room_join(world: World) -> None:
    w = world
    booking_id = book_with_approval(w, [w.paris_room, w.amsterdam_room])

    decision = decide(w, booking_id, True, w.amsterdam_staff, "Welcome")

    assert decision.state == "approved" and decision.notified == "org@paris.fr"
    found = schedules(w)
    [entry] = found[w.amsterdam_room]
    assert {r.room_id for r in entry.rooms} == {w.paris_room, w.amsterdam_room}
    assert found[w.paris_room] == found[w.amsterdam_room]
    approval = w.db.run_sync(lambda s: s.get(Approval, (booking_id, w.amsterdam_room)))
    assert approval is not None and approval.decided_by == w.amsterdam_staff.id
    assert approval.note == "Welcome"
    booking = w.db.run_sync(lambda s: s.get(Booking, booking_id))
    assert booking is not None and booking.connect_mode == "automatic"


async def test_the_scheduler_pushes_the_approved_room_its_session(world: World) -> None:
    w = world
    booking_id = book_with_approval(w, [w.paris_room, w.amsterdam_room])
    [sid] = session_ids(w, booking_id)
    control = FakeControl()
    scheduler = Scheduler(w.db, control, TicketSigner.generate(), FakeClock(T.timestamp() - 600))
    await scheduler.step()
    pushed = {s.room_id: s for s in control.of(RoomSchedule)}
    assert pushed[w.amsterdam_room].items == ()
    assert [i.session_id for i in pushed[w.paris_room].items] == [sid]
    control.take()

    decide(w, booking_id, True, w.amsterdam_staff)
    await scheduler.step()

    pushed = {s.room_id: s for s in control.of(RoomSchedule)}
    assert [i.session_id for i in pushed[w.amsterdam_room].items] == [sid]
    assert pushed[w.amsterdam_room].items[0].ticket  # it may join now
    assert {r.room_id for r in pushed[w.paris_room].items[0].rooms} == {
        w.paris_room,
        w.amsterdam_room,
    }


def test_declining_frees_the_slot_tells_the_organiser_and_leaves_one_room_reserve_only(
    world: World,
) -> None:
    w = world
    daily = spec("daily", datetime(2027, 1, 5, 9, 0), rrules=("FREQ=DAILY;COUNT=3",))
    booking_id = book_with_approval(w, [w.paris_room, w.amsterdam_room], daily)
    sequence = w.db.run_sync(lambda s: s.get(Booking, booking_id)).sequence  # type: ignore[union-attr]

    decision = decide(w, booking_id, False, w.amsterdam_staff, "Closed for works")

    assert decision.state == "declined" and decision.reserve_only and not decision.cancelled
    booking = w.db.run_sync(lambda s: s.get(Booking, booking_id))
    assert booking is not None
    assert booking.connect_mode == "reserve-only" and booking.sequence == sequence + 1
    assert w.db.run_sync(lambda s: booking_room_ids(s, booking_id)) == (w.paris_room,)
    slots = w.db.run_sync(lambda s: s.exec(select(RoomSlot.room_id)).all())
    assert sorted(slots) == [w.paris_room] * 3
    parts = w.db.run_sync(lambda s: s.exec(select(Participation.room_id)).all())
    assert sorted(parts) == [w.paris_room] * 3
    # The slot is free for someone else now.
    w.db.run_sync(
        lambda s: commands.create_series(
            s, spec("other", datetime(2027, 1, 5, 9, 30)), [w.amsterdam_room], now=NOW
        )
    )
    [mail] = w.db.run_sync(lambda s: s.exec(select(OutboxMail)).all())
    assert mail.recipient == "org@paris.fr" and mail.kind == "approval-decision"
    assert "declined" in mail.subject and "Bright City" in mail.subject
    assert "Closed for works" in mail.body and "reserve" in mail.body
    assert f"https://tc.example/bookings/{booking_id}" in mail.body
    states = w.db.run_sync(lambda s: approvals.booking_approval_states(s, booking_id))
    assert states == {w.amsterdam_room: "declined"}


def test_a_three_room_booking_declined_by_one_keeps_its_call(world: World) -> None:
    w = world
    booking_id = book_with_approval(w, [w.paris_room, w.paris_other, w.amsterdam_room])
    decision = decide(w, booking_id, False, w.amsterdam_staff)
    assert not decision.reserve_only
    booking = w.db.run_sync(lambda s: s.get(Booking, booking_id))
    assert booking is not None and booking.connect_mode == "automatic"
    [entry] = schedules(w)[w.paris_room]
    assert {r.room_id for r in entry.rooms} == {w.paris_room, w.paris_other}


def test_declining_keeps_what_has_begun(world: World) -> None:
    w = world
    daily = spec("daily", datetime(2027, 1, 5, 9, 0), rrules=("FREQ=DAILY;COUNT=2",))
    booking_id = book_with_approval(w, [w.paris_room, w.amsterdam_room], daily)
    first, second = session_ids(w, booking_id)

    def begin(s: DbSession) -> None:
        session = s.get(Session, first)
        assert session is not None
        assert transitions.record_transition(s, session, lifecycle.PREPARING, T, now=T)

    w.db.run_sync(begin)
    w.db.run_sync(
        lambda s: approvals.decide(
            s, booking_id, w.amsterdam_room, False, w.amsterdam_staff, T + timedelta(minutes=5)
        )
    )
    parts = w.db.run_sync(
        lambda s: s.exec(select(Participation.session_id, Participation.room_id)).all()
    )
    assert sorted(parts) == sorted(
        [(first, w.paris_room), (first, w.amsterdam_room), (second, w.paris_room)]
    )


def test_only_staff_of_the_rooms_centre_decide_and_only_once(world: World) -> None:
    w = world
    booking_id = book_with_approval(w, [w.paris_room, w.amsterdam_room])
    for who in (w.organiser, w.paris_staff):
        with pytest.raises(DomainError) as refused:
            decide(w, booking_id, True, who)
        assert refused.value.code == "forbidden"
    with pytest.raises(DomainError) as long_note:
        decide(w, booking_id, True, w.amsterdam_staff, "x" * 501)
    assert long_note.value.code == "invalid-note"
    decide(w, booking_id, True, w.admin)
    with pytest.raises(DomainError) as again:
        decide(w, booking_id, False, w.amsterdam_staff)
    assert again.value.code == "decided"
    with pytest.raises(DomainError) as unknown:
        w.db.run_sync(lambda s: approvals.decide(s, booking_id, w.paris_room, True, w.admin, NOW))
    assert unknown.value.code == "not-found"


def test_pending_requests_reach_the_rooms_centre_only(world: World) -> None:
    w = world
    booking_id = book_with_approval(w, [w.paris_room, w.amsterdam_room])
    [request] = w.db.run_sync(lambda s: approvals.pending_for(s, w.amsterdam_staff))
    assert (request.booking_id, request.room_id) == (booking_id, w.amsterdam_room)
    assert request.organiser_email == "org@paris.fr" and request.organiser_centre == "Paris"
    assert request.centre_timezone == "Europe/Amsterdam" and request.title == "Meeting m1"
    assert w.db.run_sync(lambda s: approvals.pending_for(s, w.admin)) == [request]
    assert w.db.run_sync(lambda s: approvals.pending_for(s, w.paris_staff)) == []
    assert w.db.run_sync(lambda s: approvals.pending_for(s, w.organiser)) == []
    decide(w, booking_id, True, w.amsterdam_staff)
    assert w.db.run_sync(lambda s: approvals.pending_for(s, w.amsterdam_staff)) == []


def test_declining_the_last_room_cancels_the_booking(world: World) -> None:
    w = world
    booking_id = book_with_approval(w, [w.amsterdam_room])
    decision = decide(w, booking_id, False, w.amsterdam_staff)
    assert decision.cancelled
    booking = w.db.run_sync(lambda s: s.get(Booking, booking_id))
    assert booking is not None and booking.status == "cancelled"
    [sid] = session_ids(w, booking_id)
    assert w.db.run_sync(lambda s: s.get(Session, sid)).state == "cancelled"  # type: ignore[union-attr]
