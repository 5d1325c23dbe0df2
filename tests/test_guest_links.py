"""Guest links (orchestrator.sessions.guests.resolve_link) on a real SQLite file, with the time
given: a link opens a session from 15 minutes before its start to its end, never
once revoked or cancelled, and in a series the occurrence under way."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import col, select

from orchestrator import centres
from orchestrator.booking import commands, one_off
from orchestrator.booking.values import SeriesSpec
from orchestrator.db import Database, DbSession
from orchestrator.errors import DomainError
from orchestrator.models import Session
from orchestrator.sessions import guests
from orchestrator.sessions.guests import GuestAccess, GuestLinkClosed

START = datetime(2027, 3, 11, 9, 0, tzinfo=UTC)  # 10:00 in Paris
HOUR = timedelta(hours=1)
SECOND = timedelta(seconds=1)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database.for_data_dir(tmp_path)
    database.migrate()
    yield database
    database.close_sync()


def two_rooms(db: Database) -> list[str]:
    def work(s: DbSession) -> list[str]:
        paris = centres.add_centre(s, "Fontainebleau", "Europe/Paris")
        adam = centres.add_centre(s, "Amsterdam", "Europe/Amsterdam")
        return [
            centres.add_room(s, paris.id, "Salle Bleue")[0].id,
            centres.add_room(s, adam.id, "Smart Work Room")[0].id,
        ]

    return db.run_sync(work)


def booked_with_guest(db: Database, start: datetime = START) -> tuple[str, str, str, str]:
    """(booking id, session id, guest id, link token) of a one-hour meeting."""
    rooms = two_rooms(db)

    def work(s: DbSession) -> tuple[str, str, str, str]:
        booking, session = one_off.book(s, "Delegation", start, start + HOUR, rooms)
        guest, token = guests.add_guest(s, booking.id, "Ada Lovelace", "ada@example.org", now=start)
        return booking.id, session.id, guest.id, token

    return db.run_sync(work)


def resolve(db: Database, token: str, now: datetime) -> GuestAccess:
    return db.run_sync(lambda s: guests.resolve_link(s, token, now))


def refusal(db: Database, token: str, now: datetime) -> DomainError:
    with pytest.raises(DomainError) as caught:
        resolve(db, token, now)
    return caught.value


def test_the_link_opens_15_minutes_before_the_start_and_closes_at_the_end(db: Database) -> None:
    booking_id, session_id, guest_id, token = booked_with_guest(db)
    opens = START - timedelta(minutes=15)
    early = refusal(db, token, opens - SECOND)
    assert early.code == "guest-link-outside-window"
    assert isinstance(early, GuestLinkClosed) and early.opens == opens
    for now in (opens, START, START + HOUR - SECOND):
        access = resolve(db, token, now)
        assert (access.session_id, access.booking_id, access.guest_id) == (
            session_id,
            booking_id,
            guest_id,
        )
        assert access.name == "Ada Lovelace" and access.title == "Delegation"
        assert (access.start, access.end, access.lead_seconds) == (START, START + HOUR, 60)
    late = refusal(db, token, START + HOUR)
    assert late.code == "guest-link-outside-window"
    assert isinstance(late, GuestLinkClosed) and late.opens is None


def test_an_unknown_or_altered_link_is_invalid(db: Database) -> None:
    _, _, _, token = booked_with_guest(db)
    assert refusal(db, "tcg_nope", START).code == "guest-link-invalid"
    assert refusal(db, token[:-1], START).code == "guest-link-invalid"


def test_a_revoked_link_is_refused_even_inside_the_window(db: Database) -> None:
    _, _, guest_id, token = booked_with_guest(db)
    assert resolve(db, token, START).guest_id == guest_id
    db.run_sync(lambda s: guests.revoke_guest(s, guest_id, START))
    assert refusal(db, token, START).code == "guest-link-revoked"


def test_the_other_guests_of_the_booking_keep_their_links(db: Database) -> None:
    booking_id, _, guest_id, token = booked_with_guest(db)
    _, other = db.run_sync(lambda s: guests.add_guest(s, booking_id, "Grace Hopper", now=START))
    db.run_sync(lambda s: guests.revoke_guest(s, guest_id, START))
    assert resolve(db, other, START).name == "Grace Hopper"
    assert refusal(db, token, START).code == "guest-link-revoked"


def test_a_cancelled_booking_opens_nothing(db: Database) -> None:
    booking_id, _, _, token = booked_with_guest(db)
    db.run_sync(lambda s: one_off.cancel_booking(s, booking_id))
    closed = refusal(db, token, START)
    assert closed.code == "guest-link-outside-window"
    assert isinstance(closed, GuestLinkClosed) and closed.opens is None


def test_a_session_ended_early_closes_the_link_before_its_booked_end(db: Database) -> None:
    _, session_id, _, token = booked_with_guest(db)

    def end_now(s: DbSession) -> None:
        session = s.get(Session, session_id)
        assert session is not None
        session.state = "ended"
        s.add(session)

    db.run_sync(end_now)
    assert refusal(db, token, START + timedelta(minutes=20)).code == "guest-link-outside-window"


def test_in_a_series_the_link_opens_the_occurrence_under_way(db: Database) -> None:
    rooms = two_rooms(db)
    spec = SeriesSpec(
        uid="weekly-delegation",
        title="Daily stand-up",
        timezone="Europe/Paris",
        start_local=datetime(2027, 3, 11, 10, 0),
        duration=HOUR,
        rrules=("FREQ=DAILY;COUNT=3",),
    )

    def work(s: DbSession) -> tuple[list[str], str]:
        result = commands.create_series(s, spec, rooms, now=START - timedelta(days=1))
        booking_id = s.exec(select(Session.booking_id).where(Session.id == result.session_ids[0]))
        _, token = guests.add_guest(s, booking_id.one(), "Ada Lovelace", now=START)
        ordered = s.exec(
            select(Session.id)
            .where(col(Session.id).in_(result.session_ids))
            .order_by(col(Session.start_utc))
        ).all()
        return list(ordered), token

    sessions, token = db.run_sync(work)
    assert len(sessions) == 3
    day = timedelta(days=1)
    assert resolve(db, token, START + timedelta(minutes=30)).session_id == sessions[0]
    assert resolve(db, token, START + day - timedelta(minutes=10)).session_id == sessions[1]
    assert resolve(db, token, START + 2 * day + timedelta(minutes=59)).session_id == sessions[2]
    # Between two occurrences the link says when it opens next.
    between = refusal(db, token, START + 5 * HOUR)
    assert isinstance(between, GuestLinkClosed)
    assert between.opens == START + day - timedelta(minutes=15)
    assert refusal(db, token, START + 3 * day).code == "guest-link-outside-window"
