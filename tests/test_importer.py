"""Importing calendars into the booking store: idempotent, all or nothing, reported."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import func, select

from orchestrator import centres
from orchestrator.booking import commands
from orchestrator.booking.policy import BookingSettings
from orchestrator.calendars.ical_in import importer
from orchestrator.calendars.ical_in.parse import CalendarError, parse_calendar
from orchestrator.calendars.ical_in.plan import ImportSource
from orchestrator.db import Database, DbSession
from orchestrator.models import Booking, RoomSlot, Session

FIXTURES = Path(__file__).parent / "fixtures" / "ics"
GOOD = [
    "outlook_romance_weekly.ics",
    "google_export.ics",
    "google_invited_instances.ics",
    "apple_several_rules.ics",
    "evolution_global_tzid.ics",
    "broken_folding.ics",
    "exchange_spaced_byday.ics",
    "google_no_summary.ics",
]
NOW = datetime(2027, 1, 10, tzinfo=UTC)  # the fixtures' events lie in the months after
SETTINGS = BookingSettings()

WEEKLY = b"""BEGIN:VCALENDAR\r
VERSION:2.0\r
PRODID:-//test//EN\r
BEGIN:VEVENT\r
UID:%(uid)s\r
DTSTAMP:20270101T000000Z\r
DTSTART;TZID=Europe/Paris:20270201T090000\r
DTEND;TZID=Europe/Paris:20270201T100000\r
RRULE:FREQ=WEEKLY;COUNT=6\r
SUMMARY:%(title)s\r
SEQUENCE:%(seq)d\r
END:VEVENT\r
END:VCALENDAR\r
"""


def weekly(uid: str = "w1", title: str = "Weekly", seq: int = 0, hour: int = 9) -> bytes:
    data = WEEKLY % {b"uid": uid.encode(), b"title": title.encode(), b"seq": seq}
    return data.replace(b"T090000", b"T%02d0000" % hour).replace(
        b"T100000", b"T%02d0000" % (hour + 1)
    )


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    database.migrate()
    yield database
    database.close_sync()


@pytest.fixture
def room(db: Database) -> str:
    def make(s: DbSession) -> str:
        centre = centres.add_centre(s, "Fontainebleau", "Europe/Paris")
        return centres.add_room(s, centre.id, "Salle Bleue")[0].id

    return str(db.run_sync(make))


def run(db: Database, data: bytes, source: ImportSource) -> importer.ImportReport:
    return db.run_sync(
        lambda s: importer.import_calendar(s, data, source, now=NOW, settings=SETTINGS)
    )


def counts(db: Database) -> tuple[int, int, int]:
    def count(s: DbSession) -> tuple[int, int, int]:
        return (
            s.exec(select(func.count()).select_from(Booking)).one(),
            s.exec(select(func.count()).select_from(Session)).one(),
            s.exec(select(func.count()).select_from(RoomSlot)).one(),
        )

    return db.run_sync(count)


@pytest.mark.parametrize("name", GOOD)
def test_reimporting_a_calendar_changes_nothing(db: Database, room: str, name: str) -> None:
    data = (FIXTURES / name).read_bytes()
    source = ImportSource("file:test", rooms=(room,))
    first = run(db, data, source)
    assert first.created >= 1
    after_first = counts(db)
    again = run(db, data, source)
    assert (again.created, again.updated, again.cancelled) == (0, 0, 0)
    assert again.unchanged == first.created
    assert counts(db) == after_first


def test_an_import_reports_what_it_created_and_why_it_skipped(db: Database, room: str) -> None:
    data = (FIXTURES / "thunderbird_lengths.ics").read_bytes()
    report = run(db, data, ImportSource("file:test", rooms=(room,)))
    codes = {s.code for s in report.skipped}
    assert {"zero-length", "end-before-start"} <= codes
    assert all(s.reason for s in report.skipped)


def test_an_exchange_rule_with_spaces_is_imported_and_the_report_says_so(
    db: Database, room: str
) -> None:
    data = (FIXTURES / "exchange_spaced_byday.ics").read_bytes()
    report = run(db, data, ImportSource("file:exchange", rooms=(room,)))
    assert report.created == 2
    assert sorted((w.uid[-4:], w.code) for w in report.warnings if w.uid) == [
        ("CC01", "lenient-rrule"),
        ("CC02", "lenient-rrule"),
    ]
    assert [(s.uid and s.uid[-4:], s.code) for s in report.skipped] == [("CC03", "bad-rrule")]
    shown = report.as_dict()["warnings"]
    assert isinstance(shown, list) and {w["code"] for w in shown} == {"lenient-rrule"}
    assert counts(db)[1] == 6 + 2  # Monday to Wednesday twice, Thursday and Friday once


def test_events_without_summary_are_imported_under_a_made_up_title(db: Database, room: str) -> None:
    data = (FIXTURES / "google_no_summary.ics").read_bytes()
    report = run(db, data, ImportSource("file:google", rooms=(room,)))
    assert (report.created, report.skipped) == (6, [])
    assert [w.code for w in report.warnings] == ["made-up-title"] * 5
    titles = db.run_sync(lambda s: sorted(s.exec(select(Booking.title)).all()))
    assert titles == [
        "Busy",
        "Jeanne Dupont",
        "Point d'équipe",
        "Salle Fontainebleau",
        "Smart Work Room",
        "accueil@it77.fr",
    ]


def test_a_conflict_names_the_room_the_booking_and_the_interval(db: Database, room: str) -> None:
    one_off = weekly("blocker", title="Blocker", hour=9).replace(
        b"RRULE:FREQ=WEEKLY;COUNT=6\r\n", b""
    )
    one_off = one_off.replace(b"20270201T", b"20270208T")
    first = run(db, one_off, ImportSource("file:blocker", rooms=(room,)))
    assert first.created == 1
    blocker = db.run_sync(lambda s: commands.find_booking(s, "file:blocker", "blocker"))
    assert blocker is not None
    report = run(db, weekly("w1"), ImportSource("file:weekly", rooms=(room,)))
    assert report.created == 1
    (conflict,) = report.conflicts
    assert (conflict.uid, conflict.room_id, conflict.booking_id) == ("w1", room, blocker.id)
    # 8 February, 09:00-10:00 in Paris (CET).
    assert (conflict.start, conflict.end) == (
        datetime(2027, 2, 8, 8, tzinfo=UTC),
        datetime(2027, 2, 8, 9, tzinfo=UTC),
    )
    (shown,) = report.as_dict()["conflicts"]  # type: ignore[misc]
    assert shown == {
        "uid": "w1",
        "code": "conflict",
        "room_id": room,
        "booking_id": blocker.id,
        "session_id": conflict.session_id,
        "recurrence_id": "2027-02-08T08:00:00+00:00",
        "start": "2027-02-08T08:00:00+00:00",
        "end": "2027-02-08T09:00:00+00:00",
    }
    assert conflict.session_id is not None


def test_malformed_files_get_a_clear_error_and_write_nothing(db: Database, room: str) -> None:
    for name in ("binary_junk.ics",):
        with pytest.raises(CalendarError) as err:
            run(db, (FIXTURES / name).read_bytes(), ImportSource("file:x", rooms=(room,)))
        assert err.value.code in ("not-icalendar", "malformed")
    with pytest.raises(CalendarError) as err:
        db.run_sync(
            lambda s: importer.import_calendar(
                s,
                parse_calendar(b"x" * (10 * 1024 * 1024 + 1)),
                ImportSource("file:x"),
                now=NOW,
                settings=SETTINGS,
            )
        )
    assert err.value.code == "too-large"
    assert counts(db) == (0, 0, 0)


def test_a_failure_half_way_leaves_nothing_behind(
    db: Database, room: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = (FIXTURES / "google_export.ics").read_bytes()
    real = commands.create_series
    calls = {"n": 0}

    def failing(*args: object, **kwargs: object) -> commands.BookingResult:
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("disk full")
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(commands, "create_series", failing)
    with pytest.raises(RuntimeError):
        run(db, data, ImportSource("file:test", rooms=(room,)))
    assert calls["n"] == 3
    assert counts(db) == (0, 0, 0)


def test_a_higher_sequence_updates_the_booking_and_its_sessions(db: Database, room: str) -> None:
    feed = ImportSource("feed:f", rooms=(room,), authoritative=True)
    run(db, weekly(), feed)
    report = run(db, weekly(title="Weekly, renamed", seq=1), feed)
    assert report.updated == 1
    booking = db.run_sync(lambda s: commands.find_booking(s, "feed:f", "w1"))
    assert booking is not None and booking.title == "Weekly, renamed" and booking.sequence == 1
    older = run(db, weekly(title="Stale", seq=0), feed)
    assert [s.code for s in older.skipped] == ["older-sequence"]


def test_an_event_gone_from_a_feed_cancels_its_future_and_an_empty_feed_cancels_nothing(
    db: Database, room: str
) -> None:
    feed = ImportSource("feed:f", rooms=(room,), authoritative=True)
    both = (
        weekly("a").replace(b"END:VCALENDAR\r\n", b"")
        + weekly("b", hour=14).split(b"PRODID:-//test//EN\r\n")[1]
    )
    assert len(parse_calendar(both).events) == 2
    run(db, both, feed)
    empty = b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nEND:VCALENDAR\r\n"
    held = run(db, empty, feed)
    assert held.held_back is not None and held.held_back.code == "empty-feed"
    assert held.cancelled == 0
    gone = run(db, weekly("a"), feed)
    assert gone.cancelled == 1
    b = db.run_sync(lambda s: commands.find_booking(s, "feed:f", "b"))
    assert b is not None and b.status == "cancelled"


def mutate(data: bytes, ops: list[tuple[int, int, int]]) -> bytes:
    out = bytearray(data)
    for kind, pos, value in ops:
        if not out:
            break
        i = pos % len(out)
        if kind == 0:
            out[i] = value
        elif kind == 1:
            del out[i : i + value % 40]
        else:
            out[i:i] = out[max(0, i - value % 80) : i]
    return bytes(out)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    name=st.sampled_from(GOOD),
    ops=st.lists(
        st.tuples(st.integers(0, 2), st.integers(0, 10**6), st.integers(0, 255)), max_size=6
    ),
)
def test_mutated_calendars_never_crash_the_importer_or_leave_a_partial_import(
    db: Database, room: str, name: str, ops: list[tuple[int, int, int]]
) -> None:
    data = mutate((FIXTURES / name).read_bytes(), ops)
    before = counts(db)
    try:
        report = run(db, data, ImportSource(f"file:{len(ops)}-{name}", rooms=(room,)))
    except CalendarError:
        assert counts(db) == before  # refused whole: nothing written
        return
    after = counts(db)
    assert after[0] - before[0] == report.created
