"""``telecentre booking list`` tells a room's occurrences apart (booking UID,
recurrence id, all-day and transparency flags), says why one no longer holds the
room (cancelled by its organiser or by its calendar, left out for a conflict,
released as a no-show) and writes an all-day reservation as "all day" (issue 10).

The bookings are written through the domain functions at fixed instants; the CLI
runs in this process and reads them over an explicit window, so nothing depends on
the real date."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlmodel import col, select

from orchestrator import centres, transitions
from orchestrator.booking import commands
from orchestrator.booking.horizon import release_no_shows
from orchestrator.booking.policy import BookingSettings
from orchestrator.booking.values import CANCELLED, OverrideSpec, SeriesSpec
from orchestrator.db import Database, DbSession
from orchestrator.migrations import alembic_config
from orchestrator.models import Booking, Session
from orchestrator.sessions import actions
from web.cli import main

NOW = datetime(2027, 1, 4, 7, 0, tzinfo=UTC)  # Monday 4 January, 08:00 in Paris
NO_SHOW_AT = datetime(2027, 1, 5, 8, 0, tzinfo=UTC)  # Tuesday, 09:00 in Paris
H = timedelta(hours=1)
PARIS = "Europe/Paris"


@dataclasses.dataclass(frozen=True)
class World:
    data_dir: Path
    paris: str  # the room listed
    montreal: str


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """One week of bookings, read by every test of the module (none writes)."""
    data_dir = tmp_path_factory.mktemp("booking-list")
    db = Database.for_data_dir(data_dir)
    db.migrate()
    try:
        yield _book_a_week(db, data_dir)
    finally:
        db.close_sync()


def meeting(uid: str, start_local: datetime, **kw: Any) -> SeriesSpec:
    spec = SeriesSpec(uid=uid, title=uid, timezone=PARIS, start_local=start_local, duration=H)
    return dataclasses.replace(spec, **kw)


def _book_a_week(db: Database, data_dir: Path) -> World:
    def rooms(s: DbSession) -> tuple[str, str]:
        paris = centres.add_centre(s, "Paris", PARIS)
        montreal = centres.add_centre(s, "Montréal", "America/Montreal")
        return (
            centres.add_room(s, paris.id, "Salle A")[0].id,
            centres.add_room(s, montreal.id, "Salon")[0].id,
        )

    a, mtl = db.run_sync(rooms)

    def create(spec: SeriesSpec, room_ids: list[str], **kw: Any) -> commands.BookingResult:
        return db.run_sync(lambda s: commands.create_series(s, spec, room_ids, now=NOW, **kw))

    daily = create(meeting("daily", datetime(2027, 1, 4, 10), rrules=("FREQ=DAILY;COUNT=3",)), [a])
    # Cancelled by a person: the second day.
    db.run_sync(lambda s: actions.cancel_occurrence(s, daily.session_ids[1], NOW))
    # Cancelled by its calendar: a feed's series whose second day says STATUS:CANCELLED;
    # its third day cancelled by a person here all the same.
    cancelled_day = OverrideSpec(datetime(2027, 1, 8, 12), datetime(2027, 1, 8, 12), H, CANCELLED)
    feed = meeting(
        "feed", datetime(2027, 1, 7, 12), rrules=("FREQ=DAILY;COUNT=3",), overrides=(cancelled_day,)
    )
    third = create(feed, [a], source="feed:f", on_conflict="skip").session_ids[-1]
    db.run_sync(lambda s: actions.cancel_occurrence(s, third, NOW))
    # Left out for a conflict at import.
    create(meeting("blocker", datetime(2027, 1, 9, 10)), [a])
    create(meeting("late", datetime(2027, 1, 9, 10, 30)), [a], source="file:x", on_conflict="skip")
    # Released as a no-show.
    no_show = create(meeting("absent", datetime(2027, 1, 5, 9)), [a]).session_ids[0]

    def go_live(s: DbSession) -> None:
        session = s.get(Session, no_show)
        assert session is not None
        for state in ("preparing", "live"):
            assert transitions.record_transition(s, session, state, NO_SHOW_AT, now=NO_SHOW_AT)

    db.run_sync(go_live)
    later = NO_SHOW_AT + timedelta(minutes=11)
    assert db.run_sync(lambda s: release_no_shows(s, later, BookingSettings())) == [(no_show, a)]
    # All-day reservations: one transparent day, then two days in Paris and Montréal.
    day = timedelta(days=1)
    create(
        meeting("fair", datetime(2027, 1, 10), duration=day, all_day=True, transparent=True), [a]
    )
    create(meeting("works", datetime(2027, 1, 11), duration=2 * day, all_day=True), [a, mtl])
    return World(data_dir, a, mtl)


def listing(world: World, room: str, *flags: str) -> None:
    window = ["--from", "2027-01-04T00:00", "--to", "2027-01-13T00:00"]
    argv = ["booking", "list", "--room", room, *window, "--data-dir", str(world.data_dir)]
    assert main([*argv, *flags]) == 0


def test_each_occurrence_says_which_it_is_and_why_it_no_longer_holds_the_room(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    listing(world, world.paris, "--json")
    rows = json.loads(capsys.readouterr().out)["occurrences"]
    assert [
        (r["uid"], r["start_local"], r["state"], r["cancel_reason"], r["all_day"], r["transparent"])
        for r in rows
    ] == [
        ("daily", "2027-01-04T10:00:00", "scheduled", None, False, False),
        ("absent", "2027-01-05T09:00:00", "live", "no-show", False, False),
        ("daily", "2027-01-05T10:00:00", "cancelled", "organiser", False, False),
        ("daily", "2027-01-06T10:00:00", "scheduled", None, False, False),
        ("feed", "2027-01-07T12:00:00", "scheduled", None, False, False),
        ("feed", "2027-01-08T12:00:00", "cancelled", "calendar", False, False),
        ("blocker", "2027-01-09T10:00:00", "scheduled", None, False, False),
        ("late", "2027-01-09T10:30:00", "cancelled", "conflict", False, False),
        ("feed", "2027-01-09T12:00:00", "cancelled", "organiser", False, False),
        ("fair", "2027-01-10T00:00:00", "scheduled", None, True, True),
        ("works", "2027-01-11T00:00:00", "scheduled", None, True, False),
    ]
    # The occurrences of one series share its UID and differ by recurrence id.
    daily = [r["recurrence_id"] for r in rows if r["uid"] == "daily"]
    assert daily == [
        "2027-01-04T09:00:00+00:00",
        "2027-01-05T09:00:00+00:00",
        "2027-01-06T09:00:00+00:00",
    ]


def test_the_text_view_writes_all_day_reservations_as_all_day(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    listing(world, world.paris)
    lines = capsys.readouterr().out.splitlines()
    fair = next(line for line in lines if " fair " in line)
    works = next(line for line in lines if " works " in line)
    assert "  2027-01-10 all day Europe/Paris  scheduled" in fair and "(transparent)" in fair
    assert "  2027-01-11 to 2027-01-12 all day Europe/Paris  scheduled" in works
    assert not any("00:00-00:00" in line for line in lines)
    assert "(cancelled: conflict)" in next(line for line in lines if " late " in line)
    assert "(released: no-show)" in next(line for line in lines if " absent " in line)
    # Montréal is six hours behind Paris: the reservation is not its midnight to midnight.
    listing(world, world.montreal)
    (seen,) = capsys.readouterr().out.splitlines()
    assert "2027-01-10 23:00Z-2027-01-12 23:00Z" in seen
    assert "2027-01-10 18:00-2027-01-12 18:00 America/Montreal (all day in Europe/Paris)" in seen


def test_sessions_cancelled_before_the_record_existed_go_by_their_source(tmp_path: Path) -> None:
    """Migration 0008 gives a session cancelled before it what the list said until then."""
    db = Database.for_data_dir(tmp_path)
    db.migrate()
    try:
        world = _book_a_week(db, tmp_path)
        with db.engine.begin() as conn:
            command.downgrade(alembic_config(conn), "0007")
            command.upgrade(alembic_config(conn), "0008")
        found = db.run_sync(
            lambda s: s.exec(
                select(Booking.uid, Session.cancelled_by)
                .join(Session, col(Session.booking_id) == col(Booking.id))
                .where(Session.state == CANCELLED)
                .order_by(col(Session.start_utc))
            ).all()
        )
        assert [tuple(row) for row in found] == [
            ("daily", "organiser"),
            ("feed", "calendar"),
            ("late", None),  # skipped for a conflict: no room, no one cancelled it
            ("feed", "calendar"),  # a person did, which nothing said before 0008
        ]
        assert world.paris
    finally:
        db.close_sync()
