"""Issue 10: guests are invited only to a call. A transparent booking's sessions are
reminders that never connect a room, so a guest added to one could only ever open an
empty page; ``guests.add_guest`` itself refuses (``invitations-closed``), whichever
door asks (the booking form, the booking page, the API), and a link made before the
booking turned transparent resolves to ``guest-link-no-call``.

The rule over plain values (``invitations.closed_reason``), then the commands on a
real SQLite file with the time given.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from orchestrator import centres, transitions
from orchestrator.booking import commands as bookings
from orchestrator.booking.values import SeriesSpec
from orchestrator.db import Database, DbSession
from orchestrator.errors import DomainError
from orchestrator.models import Booking, Guest, Session
from orchestrator.sessions import guests
from orchestrator.sessions.invitations import CLOSED, NEEDS_CALL, InvitationsClosed, closed_reason

NOW = datetime(2027, 3, 10, 9, 0, tzinfo=UTC)
START = datetime(2027, 3, 11, 9, 0, tzinfo=UTC)  # 10:00 in Paris, the day after NOW
HOUR = timedelta(hours=1)


def test_a_booking_whose_sessions_ahead_are_reminders_takes_no_guest() -> None:
    soon, gone = NOW + HOUR, NOW - HOUR

    def reason(
        occurrences: list[tuple[str, datetime]], transparent: bool, mode: str = "automatic"
    ) -> str | None:
        return closed_reason(occurrences, NOW, transparent=transparent, connect_mode=mode)

    assert reason([("scheduled", soon)], transparent=False) is None
    # Free time in a calendar: its sessions not begun are reminders, no call.
    assert reason([("scheduled", soon)], transparent=True) == "reminders"
    assert reason([("scheduled", soon), ("ended", gone)], transparent=True) == "reminders"
    # A session that began as a call before the booking turned transparent keeps it.
    assert reason([("live", soon), ("scheduled", soon + HOUR)], transparent=True) is None
    assert reason([("ended", gone)], transparent=True) == "over"
    assert reason([], transparent=False) == "over"
    # Reserve-only rooms are held and never connect: no call either.
    assert reason([("scheduled", soon)], False, "reserve-only") == "reserve-only"
    assert reason([("scheduled", soon)], False, "one-button") is None
    assert reason([("scheduled", soon)], False, "manual") is None


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database.for_data_dir(tmp_path)
    database.migrate()
    yield database
    database.close_sync()


def book(db: Database, *, transparent: bool, connect_mode: str = "automatic") -> tuple[str, str]:
    """(booking id, session id) of a one-hour meeting of two rooms tomorrow."""

    def work(s: DbSession) -> tuple[str, str]:
        paris = centres.add_centre(s, "Fontainebleau", "Europe/Paris")
        rooms = [centres.add_room(s, paris.id, name)[0].id for name in ("Salle Bleue", "Verte")]
        spec = SeriesSpec(
            uid=f"meeting-{transparent}",
            title="Delegation",
            timezone="Europe/Paris",
            start_local=datetime(2027, 3, 11, 10, 0),
            duration=HOUR,
            transparent=transparent,
        )
        result = bookings.create_series(s, spec, rooms, connect_mode=connect_mode, now=NOW)
        return result.booking_id, result.session_ids[0]

    return db.run_sync(work)


def add(db: Database, booking_id: str, now: datetime = NOW) -> tuple[Guest, str]:
    return db.run_sync(lambda s: guests.add_guest(s, booking_id, "Ada Lovelace", now=now))


def guests_of(db: Database, booking_id: str) -> list[str]:
    return [g.name for g in db.run_sync(lambda s: guests.list_guests(s, booking_id))]


def test_add_guest_refuses_a_transparent_booking_itself(db: Database) -> None:
    booking_id, _ = book(db, transparent=True)
    with pytest.raises(InvitationsClosed) as caught:
        add(db, booking_id)
    assert caught.value.code == CLOSED and caught.value.reason == "reminders"
    assert "reminders" in caught.value.message
    assert guests_of(db, booking_id) == []


def test_add_guest_refuses_a_reserve_only_booking_and_an_unknown_one(db: Database) -> None:
    booking_id, _ = book(db, transparent=False, connect_mode="reserve-only")
    with pytest.raises(DomainError) as caught:
        add(db, booking_id)
    assert caught.value.code == NEEDS_CALL
    with pytest.raises(DomainError) as missing:
        add(db, "0" * 32)
    assert missing.value.code == "not-found"


def test_an_opaque_booking_takes_guests_until_its_last_session_ends(db: Database) -> None:
    booking_id, _ = book(db, transparent=False)
    guest, token = add(db, booking_id)
    assert guest.name == "Ada Lovelace" and token.startswith("tcg_")
    with pytest.raises(InvitationsClosed) as caught:
        add(db, booking_id, now=START + HOUR)
    assert caught.value.code == CLOSED and caught.value.reason == "over"
    assert guests_of(db, booking_id) == ["Ada Lovelace"]


def turn_transparent(db: Database, booking_id: str) -> None:
    """As a re-import of the event marked free does to a booking."""

    def work(s: DbSession) -> None:
        booking = s.get(Booking, booking_id)
        assert booking is not None
        booking.transparent = True
        s.add(booking)

    db.run_sync(work)


def test_a_link_of_a_reminder_opens_no_call(db: Database) -> None:
    """A guest invited while the meeting was a call; the booking then turned
    transparent: in the link's window the page says there is no call."""
    booking_id, _ = book(db, transparent=False)
    _, token = add(db, booking_id)
    turn_transparent(db, booking_id)
    for now in (START - timedelta(minutes=15), START, START + HOUR - timedelta(seconds=1), NOW):
        with pytest.raises(DomainError) as caught:
            db.run_sync(lambda s, now=now: guests.resolve_link(s, token, now))
        assert caught.value.code == guests.NO_CALL, now
    # Once it has ended, the link is closed as any other.
    with pytest.raises(DomainError) as late:
        db.run_sync(lambda s: guests.resolve_link(s, token, START + HOUR))
    assert late.value.code == "guest-link-outside-window"


def test_a_call_under_way_when_its_booking_turned_transparent_keeps_its_guests(
    db: Database,
) -> None:
    booking_id, session_id = book(db, transparent=False)
    _, token = add(db, booking_id)

    def live(s: DbSession) -> None:
        session = s.get(Session, session_id)
        assert session is not None
        transitions.record_transition(s, session, "preparing", START - timedelta(minutes=1))
        transitions.record_transition(s, session, "live", START)

    db.run_sync(live)
    turn_transparent(db, booking_id)
    access = db.run_sync(lambda s: guests.resolve_link(s, token, START + timedelta(minutes=5)))
    assert access.session_id == session_id
    guest, _ = add(db, booking_id, now=START + timedelta(minutes=5))
    assert guest.booking_id == booking_id
