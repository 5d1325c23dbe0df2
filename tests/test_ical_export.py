"""iCalendar out: feeds, free/busy, invitations and VTIMEZONEs, as pure functions
and through the loaders on a real SQLite file."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from icalendar import Calendar, Component, Timezone
from sqlmodel import select

from orchestrator import centres
from orchestrator.booking import one_off
from orchestrator.calendars import tokens as calendar_tokens
from orchestrator.calendars.ical_out.export import (
    BUSY,
    DEFAULT_ORGANISER,
    PRODID,
    BookingInfo,
    BusyPeriod,
    FeedData,
    FeedScope,
    RoomInfo,
    SessionInfo,
    busy_periods,
    cancellation_ics,
    etag,
    feed_document,
    feed_ics,
    freebusy_ics,
    invitation_ics,
    load_booking,
    load_busy,
    load_centre_feed,
    load_freebusy,
    load_room_feed,
    room_address,
    room_id_from_address,
    site_times,
)
from orchestrator.calendars.ical_out.timezones import vtimezone
from orchestrator.db import Database, DbSession
from orchestrator.errors import DomainError
from orchestrator.models import Booking, Participation, Session

PARIS = ZoneInfo("Europe/Paris")
STAMP = datetime(2026, 2, 1, 12, 0, tzinfo=UTC)
REVISED = datetime(2026, 1, 15, 8, 30, tzinfo=UTC)
BLEUE = RoomInfo("room-bleue", "Salle Bleue", "Fontainebleau", "Europe/Paris")
MONTREAL = RoomInfo("room-mtl", "Salle Saint-Laurent", "Montréal", "America/Toronto")
SYDNEY = RoomInfo("room-syd", "Harbour", "Sydney", "Australia/Sydney")


def paris(*args: int) -> datetime:
    """An aware UTC instant from a Paris wall-clock time."""
    return datetime(*args, tzinfo=PARIS).astimezone(UTC)  # type: ignore[misc]


def weekly_session(week: int, **changes: Any) -> SessionInfo:
    """The week-th Monday 09:00-10:00 Paris of a series starting 2026-03-02."""
    start = datetime(2026, 3, 2, 9) + timedelta(weeks=week)
    instant = start.replace(tzinfo=PARIS).astimezone(UTC)
    session = SessionInfo(instant, instant, instant + timedelta(hours=1), updated_at=REVISED)
    return replace(session, **changes)


def series(**changes: Any) -> BookingInfo:
    """A weekly Monday 09:00 Paris meeting of Fontainebleau and Montréal, 10 times,
    across Europe's and America's spring DST changes."""
    sessions = tuple(weekly_session(week) for week in range(10))
    booking = BookingInfo(
        id="b1",
        uid="weekly-1@telecentre",
        title="Délégation; Seine-et-Marne, Montréal",
        timezone="Europe/Paris",
        start_local=datetime(2026, 3, 2, 9),
        end_local=datetime(2026, 3, 2, 10),
        rooms=(BLEUE, MONTREAL),
        sessions=sessions,
        rrules=("FREQ=WEEKLY;COUNT=10;BYDAY=MO",),
        organiser="claire@it77.example",
        sequence=2,
        updated_at=REVISED,
    )
    return replace(booking, **changes)


def with_sessions(booking: BookingInfo, **by_week: SessionInfo) -> BookingInfo:
    sessions = list(booking.sessions)
    for key, session in by_week.items():
        sessions[int(key.removeprefix("w"))] = session
    return replace(booking, sessions=tuple(sessions))


def parse(data: bytes) -> Calendar:
    cal = Calendar.from_ical(data)
    assert isinstance(cal, Calendar)
    return cal


def events(cal: Calendar) -> list[Component]:
    return list(cal.walk("VEVENT"))


def stable(data: bytes) -> Calendar:
    """Parse, and check that emitting the parse gives the same bytes (so parse ->
    emit -> parse is a fixed point)."""
    cal = parse(data)
    assert cal.to_ical() == data
    assert parse(cal.to_ical()).to_ical() == data
    return cal


def feed(bookings: list[BookingInfo], *, busy_only: bool = False) -> Calendar:
    scope = FeedScope("Salle Bleue (Fontainebleau)", "Europe/Paris")
    return stable(feed_ics(scope, bookings, busy_only=busy_only))


def prop(component: Component, name: str) -> str:
    return str(component[name])


def line(data: bytes, prefix: str) -> list[str]:
    """The unfolded content lines that start with ``prefix``, outside VTIMEZONEs."""
    rows, in_zone = [], False
    for row in data.decode().replace("\r\n ", "").split("\r\n"):
        if row in ("BEGIN:VTIMEZONE", "END:VTIMEZONE"):
            in_zone = row.startswith("BEGIN")
        elif row.startswith(prefix) and not in_zone:
            rows.append(row)
    return rows


# --- feeds ---------------------------------------------------------------------------


def test_a_series_is_one_vevent_in_its_own_zone_with_its_rule() -> None:
    data = feed_ics(FeedScope("Salle Bleue (Fontainebleau)", "Europe/Paris"), [series()])
    cal = stable(data)
    assert prop(cal, "PRODID") == PRODID and prop(cal, "VERSION") == "2.0"
    assert prop(cal, "X-WR-CALNAME") == "Salle Bleue (Fontainebleau)"
    assert prop(cal, "X-WR-TIMEZONE") == "Europe/Paris"
    [master] = events(cal)
    assert line(data, "DTSTART;") == ["DTSTART;TZID=Europe/Paris:20260302T090000"]
    assert line(data, "DTEND;") == ["DTEND;TZID=Europe/Paris:20260302T100000"]
    assert line(data, "RRULE") == ["RRULE:FREQ=WEEKLY;COUNT=10;BYDAY=MO"]
    assert prop(master, "UID") == "weekly-1@telecentre"
    assert master["SEQUENCE"] == 2
    assert prop(master, "STATUS") == "CONFIRMED" and prop(master, "TRANSP") == "OPAQUE"
    assert prop(master, "SUMMARY") == "Délégation; Seine-et-Marne, Montréal"
    assert prop(master, "LOCATION") == "Salle Bleue (Fontainebleau), Salle Saint-Laurent (Montréal)"
    assert prop(master, "ORGANIZER") == "mailto:claire@it77.example"
    assert master["DTSTAMP"].dt == REVISED  # a feed's DTSTAMP: when it was last revised
    assert line(data, "ATTENDEE") == [
        'ATTENDEE;CN="Salle Bleue";CUTYPE=ROOM:mailto:room-bleue@rooms.telecentre.invalid',
        'ATTENDEE;CN="Salle Saint-Laurent";CUTYPE=ROOM:mailto:room-mtl@rooms.telecentre.invalid',
    ]
    # Every site reads its own time; the note says whose date it is.
    assert prop(master, "DESCRIPTION").splitlines() == [
        "Fontainebleau 09:00 (Europe/Paris) / Montréal 03:00 (America/Toronto)",
        "Local times of the first occurrence, 2026-03-02.",
    ]
    # A VTIMEZONE for the zone the times use, defined before they are read.
    assert [str(tz["TZID"]) for tz in cal.walk("VTIMEZONE")] == ["Europe/Paris"]
    assert data.index(b"BEGIN:VTIMEZONE") < data.index(b"BEGIN:VEVENT")


def test_occurrences_that_left_the_rule_get_their_own_vevent() -> None:
    week1, week3, week5 = weekly_session(1), weekly_session(3), weekly_session(5)
    moved = replace(
        week1, start=week1.start + timedelta(hours=5), end=week1.end + timedelta(hours=5)
    )
    booking = with_sessions(
        series(),
        w1=moved,
        w3=replace(week3, title="Séance spéciale"),
        w5=replace(week5, state="cancelled", updated_at=STAMP),
    )
    cal = feed([booking])
    master, *overrides = events(cal)
    assert "RECURRENCE-ID" not in master and "EXDATE" not in master
    by_id = {o["RECURRENCE-ID"].dt: o for o in overrides}
    assert sorted(by_id) == [
        datetime(2026, 3, 9, 9, tzinfo=PARIS),
        datetime(2026, 3, 23, 9, tzinfo=PARIS),
        datetime(2026, 4, 6, 9, tzinfo=PARIS),
    ]
    moved_event = by_id[datetime(2026, 3, 9, 9, tzinfo=PARIS)]
    assert moved_event["DTSTART"].dt == datetime(2026, 3, 9, 14, tzinfo=PARIS)
    assert moved_event["DTEND"].dt == datetime(2026, 3, 9, 15, tzinfo=PARIS)
    assert prop(moved_event, "STATUS") == "CONFIRMED"
    assert prop(moved_event, "UID") == "weekly-1@telecentre"
    retitled = by_id[datetime(2026, 3, 23, 9, tzinfo=PARIS)]
    assert prop(retitled, "SUMMARY") == "Séance spéciale"
    assert retitled["DTSTART"].dt == datetime(2026, 3, 23, 9, tzinfo=PARIS)
    # Cancelled while the series is not: STATUS:CANCELLED under its RECURRENCE-ID.
    cancelled = by_id[datetime(2026, 4, 6, 9, tzinfo=PARIS)]
    assert prop(cancelled, "STATUS") == "CANCELLED"
    assert cancelled["DTSTAMP"].dt == STAMP
    # Each override's site times are its own: Montréal is on summer time already.
    assert prop(retitled, "DESCRIPTION").startswith(
        "Fontainebleau 09:00 (Europe/Paris) / Montréal 04:00 (America/Toronto)"
    )


def test_a_series_keeps_its_wall_clock_across_both_dst_changes() -> None:
    """Weekly 09:00 Paris from March to November: one DTSTART at 09:00 with TZID,
    and the VTIMEZONE gives +01:00 before 29 March and after 25 October, +02:00 between."""
    booking = series(
        rrules=("FREQ=WEEKLY;UNTIL=20261130T080000Z;BYDAY=MO",),
        sessions=(),
    )
    data = feed_ics(FeedScope("x", "Europe/Paris"), [booking])
    cal = stable(data)
    [vtz] = cal.walk("VTIMEZONE")
    renamed = Timezone.from_ical(vtz.to_ical().replace(b"Europe/Paris", b"Test/Paris-dst"))
    zone = renamed.to_tz()
    for day, offset in ((date(2026, 3, 23), 1), (date(2026, 3, 30), 2), (date(2026, 10, 19), 2)):
        wall = datetime.combine(day, datetime.min.time()).replace(hour=9, tzinfo=zone)
        assert wall.utcoffset() == timedelta(hours=offset)
    wall = datetime(2026, 10, 26, 9, tzinfo=zone)
    assert wall.utcoffset() == timedelta(hours=1)
    assert line(data, "DTSTART;TZID") == ["DTSTART;TZID=Europe/Paris:20260302T090000"]


def test_several_rrules_rdates_and_exdates_are_written_in_the_series_zone() -> None:
    booking = series(
        rrules=("FREQ=WEEKLY;COUNT=4;BYDAY=MO", "FREQ=MONTHLY;COUNT=2;BYMONTHDAY=15"),
        rdates=(datetime(2026, 5, 5, 9),),
        exdates=(datetime(2026, 3, 9, 9), datetime(2026, 3, 16, 9)),
        sessions=(),
    )
    data = feed_ics(FeedScope("x", "Europe/Paris"), [booking])
    stable(data)
    assert line(data, "RRULE") == [
        "RRULE:FREQ=WEEKLY;COUNT=4;BYDAY=MO",
        "RRULE:FREQ=MONTHLY;COUNT=2;BYMONTHDAY=15",
    ]
    assert line(data, "RDATE") == ["RDATE;TZID=Europe/Paris:20260505T090000"]
    assert line(data, "EXDATE") == ["EXDATE;TZID=Europe/Paris:20260309T090000,20260316T090000"]


def test_an_exdated_occurrence_needs_no_override_even_with_a_cancelled_session() -> None:
    week2 = weekly_session(2, state="cancelled")
    booking = with_sessions(series(exdates=(datetime(2026, 3, 16, 9),)), w2=week2)
    assert len(events(feed([booking]))) == 1


def test_all_day_bookings_are_dates() -> None:
    start = datetime(2026, 6, 1)
    booking = series(
        all_day=True,
        start_local=start,
        end_local=datetime(2026, 6, 2),
        rrules=("FREQ=DAILY;COUNT=3",),
        exdates=(datetime(2026, 6, 2),),
        sessions=(),
    )
    data = feed_ics(FeedScope("x", "Europe/Paris"), [booking])
    [event] = events(stable(data))
    assert line(data, "DTSTART") == ["DTSTART;VALUE=DATE:20260601"]
    assert line(data, "DTEND") == ["DTEND;VALUE=DATE:20260602"]
    assert line(data, "EXDATE") == ["EXDATE;VALUE=DATE:20260602"]
    assert "DESCRIPTION" not in event  # no clock time to show per site
    assert b"TZID=" not in data


def test_a_single_booking_folds_its_session_in() -> None:
    start = paris(2026, 12, 1, 9)
    session = SessionInfo(start, start, start + timedelta(hours=1), updated_at=REVISED)
    single = series(rrules=(), sessions=(session,), start_local=datetime(2026, 12, 1, 9))
    single = replace(single, end_local=datetime(2026, 12, 1, 10))
    [event] = events(feed([single]))
    assert "RRULE" not in event and prop(event, "STATUS") == "CONFIRMED"
    cancelled = replace(single, sessions=(replace(session, state="cancelled", updated_at=STAMP),))
    [event] = events(feed([cancelled]))
    assert prop(event, "STATUS") == "CANCELLED" and event["DTSTAMP"].dt == STAMP
    later = start + timedelta(hours=2)
    moved = replace(
        single, sessions=(replace(session, start=later, end=later + timedelta(hours=1)),)
    )
    [event] = events(feed([moved]))
    assert event["DTSTART"].dt == datetime(2026, 12, 1, 11, tzinfo=PARIS)
    assert "RECURRENCE-ID" not in event


def test_transparent_tentative_and_cancelled_series_say_so() -> None:
    data = feed_ics(
        FeedScope("x", "Europe/Paris"),
        [series(transparent=True, status="tentative"), series(uid="c@x", status="cancelled")],
    )
    second, first = events(stable(data))  # by start, then UID
    assert prop(first, "TRANSP") == "TRANSPARENT" and prop(first, "STATUS") == "TENTATIVE"
    assert prop(second, "STATUS") == "CANCELLED"


def test_busy_only_feeds_hide_what_the_meeting_is() -> None:
    week3 = replace(weekly_session(3), title="Budget secret")
    booking = with_sessions(series(), w3=week3)
    cal = feed([booking], busy_only=True)
    for event in events(cal):
        assert prop(event, "SUMMARY") == BUSY
        assert "ORGANIZER" not in event and "DESCRIPTION" not in event
        assert prop(event, "LOCATION").startswith("Salle Bleue")  # rooms and times stay
    assert b"Budget" not in cal.to_ical() and b"claire" not in cal.to_ical()


def test_an_unchanged_feed_is_byte_identical_and_keeps_its_etag() -> None:
    scope = FeedScope("x", "Europe/Paris")
    a = feed_document(FeedData(scope, (series(), series(uid="2@x", id="b2"))))
    b = feed_document(FeedData(scope, (series(uid="2@x", id="b2"), series())))
    assert a.body == b.body and a.etag == b.etag == etag(a.body)
    assert a.last_modified == REVISED
    changed = feed_document(FeedData(scope, (series(title="Autre"),)))
    assert changed.etag != a.etag


def test_an_empty_feed_parses() -> None:
    data = feed_ics(FeedScope("Vide", "Europe/Paris"), [])
    cal = stable(data)
    assert events(cal) == [] and list(cal.walk("VTIMEZONE")) == []


# --- site times ----------------------------------------------------------------------


def test_site_times_show_each_centre_its_own_clock() -> None:
    winter = paris(2026, 12, 1, 9)
    assert (
        site_times(winter, "Europe/Paris", [BLEUE, MONTREAL])
        == "Fontainebleau 09:00 (Europe/Paris) / Montréal 03:00 (America/Toronto)"
    )
    late = paris(2026, 12, 1, 23)
    assert (
        site_times(late, "Europe/Paris", [BLEUE, SYDNEY, BLEUE])
        == "Fontainebleau 23:00 (Europe/Paris) / Sydney 09:00 +1 day (Australia/Sydney)"
    )
    assert site_times(winter, "UTC", [BLEUE]) == "UTC 08:00 / Fontainebleau 09:00 (Europe/Paris)"


def test_room_addresses_name_the_room() -> None:
    assert room_address("abc") == "mailto:abc@rooms.telecentre.invalid"
    assert room_id_from_address(room_address("abc")) == "abc"
    assert room_id_from_address("mailto:abc@example.org") is None
    assert room_id_from_address("mailto:@rooms.telecentre.invalid") is None


# --- free/busy -----------------------------------------------------------------------


def test_busy_periods_are_clipped_merged_and_sorted() -> None:
    t = datetime(2026, 3, 2, 8, tzinfo=UTC)
    h = timedelta(hours=1)
    got = busy_periods(
        [
            BusyPeriod(t + 3 * h, t + 4 * h),
            BusyPeriod(t - h, t + h),  # clipped at the window's start
            BusyPeriod(t + h, t + 2 * h),  # touches the previous one: merged
            BusyPeriod(t + 3 * h, t + 5 * h, tentative=True),
            BusyPeriod(t + 9 * h, t + 12 * h),  # clipped at the end
            BusyPeriod(t + 20 * h, t + 21 * h),  # outside
        ],
        t,
        t + 10 * h,
    )
    assert got == [
        BusyPeriod(t, t + 2 * h),
        BusyPeriod(t + 3 * h, t + 4 * h),
        BusyPeriod(t + 3 * h, t + 5 * h, tentative=True),
        BusyPeriod(t + 9 * h, t + 10 * h),
    ]


def test_freebusy_publishes_utc_periods_per_room() -> None:
    since = datetime(2026, 3, 2, tzinfo=UTC)
    until = since + timedelta(days=7)
    busy = [BusyPeriod(paris(2026, 3, 2, 9), paris(2026, 3, 2, 10))]
    tentative = [BusyPeriod(paris(2026, 3, 3, 9), paris(2026, 3, 3, 10), tentative=True)]
    data = freebusy_ics([(BLEUE, busy), (MONTREAL, tentative)], since, until, stamp=STAMP)
    cal = stable(data)
    assert prop(cal, "METHOD") == "PUBLISH"
    first, second = cal.walk("VFREEBUSY")
    assert first["DTSTART"].dt == since and first["DTEND"].dt == until
    assert prop(first, "ORGANIZER") == room_address(BLEUE.id)
    assert first["ORGANIZER"].params["CN"] == "Salle Bleue"
    assert line(data, "FREEBUSY") == [
        "FREEBUSY;FBTYPE=BUSY;VALUE=PERIOD:20260302T080000Z/20260302T090000Z",
        "FREEBUSY;FBTYPE=BUSY-TENTATIVE;VALUE=PERIOD:20260303T080000Z/20260303T090000Z",
    ]
    assert second["ORGANIZER"].params["CN"] == "Salle Saint-Laurent"
    empty = freebusy_ics([(BLEUE, [])], since, until, stamp=STAMP)
    assert line(empty, "FREEBUSY") == [] and len(stable(empty).walk("VFREEBUSY")) == 1


# --- invitations ---------------------------------------------------------------------


def test_an_invitation_requests_the_rooms_with_the_join_link_and_every_zone() -> None:
    week4 = weekly_session(4)
    booking = with_sessions(
        series(),
        w1=replace(weekly_session(1), title="Autre sujet"),
        w4=replace(week4, state="cancelled"),
    )
    data = invitation_ics(booking, stamp=STAMP, join_url="https://telecentre.example/j/xyz")
    cal = stable(data)
    assert prop(cal, "METHOD") == "REQUEST"
    assert sorted(str(tz["TZID"]) for tz in cal.walk("VTIMEZONE")) == [
        "America/Toronto",
        "Europe/Paris",
    ]
    master, override = events(cal)
    assert master["DTSTAMP"].dt == STAMP and master["SEQUENCE"] == 2
    assert prop(master, "ORGANIZER") == "mailto:claire@it77.example"
    assert line(data, "ATTENDEE")[0] == (
        'ATTENDEE;CN="Salle Bleue";CUTYPE=ROOM;PARTSTAT=ACCEPTED;ROLE=REQ-PARTICIPANT;'
        "RSVP=FALSE:mailto:room-bleue@rooms.telecentre.invalid"
    )
    assert prop(master, "URL") == "https://telecentre.example/j/xyz"
    description = prop(master, "DESCRIPTION").splitlines()
    assert description[0] == "Fontainebleau 09:00 (Europe/Paris) / Montréal 03:00 (America/Toronto)"
    assert description[-1] == "Join: https://telecentre.example/j/xyz"
    # A REQUEST restates the series: the cancelled occurrence is an EXDATE.
    assert line(data, "EXDATE") == ["EXDATE;TZID=Europe/Paris:20260330T090000"]
    assert override["RECURRENCE-ID"].dt == datetime(2026, 3, 9, 9, tzinfo=PARIS)
    assert prop(override, "SUMMARY") == "Autre sujet"


def test_an_update_carries_the_next_sequence_and_a_default_organiser() -> None:
    data = invitation_ics(series(organiser=None), stamp=STAMP, sequence=3)
    [master] = events(stable(data))
    assert master["SEQUENCE"] == 3
    assert prop(master, "ORGANIZER") == DEFAULT_ORGANISER
    assert "URL" not in master
    assert "Join:" not in prop(master, "DESCRIPTION")


def test_cancelling_a_booking_and_one_occurrence() -> None:
    whole = stable(cancellation_ics(series(), stamp=STAMP, sequence=3))
    assert prop(whole, "METHOD") == "CANCEL"
    [event] = events(whole)
    assert prop(event, "STATUS") == "CANCELLED" and event["SEQUENCE"] == 3
    assert "RECURRENCE-ID" not in event and prop(event, "UID") == "weekly-1@telecentre"
    assert len(event.get("ATTENDEE", [])) == 2

    one = stable(
        cancellation_ics(series(), stamp=STAMP, occurrence=weekly_session(6).recurrence_id)
    )
    [event] = events(one)
    assert prop(event, "STATUS") == "CANCELLED" and event["SEQUENCE"] == 2
    assert event["RECURRENCE-ID"].dt == datetime(2026, 4, 13, 9, tzinfo=PARIS)
    assert event["DTSTART"].dt == datetime(2026, 4, 13, 9, tzinfo=PARIS)
    assert "RRULE" not in event

    # Past the stored sessions, the rule gives the occurrence its times.
    beyond = paris(2026, 6, 1, 9)
    [event] = events(stable(cancellation_ics(series(sessions=()), stamp=STAMP, occurrence=beyond)))
    assert event["DTEND"].dt == datetime(2026, 6, 1, 10, tzinfo=PARIS)


# --- VTIMEZONE -----------------------------------------------------------------------

ZONES = [
    "Europe/Paris",
    "Europe/Amsterdam",
    "America/Toronto",
    "America/Montreal",
    "Australia/Sydney",  # southern hemisphere: summer straddles the new year
    "Asia/Tokyo",  # no DST
    "UTC",
    "America/Sao_Paulo",  # gave up DST in 2019
    "America/Santiago",  # "first Sunday on or after the 2nd": no nth-weekday rule
    "Asia/Jerusalem",  # "Friday before the last Sunday"
    "Africa/Casablanca",  # Ramadan changes
    "Pacific/Chatham",  # +12:45 / +13:45
    "Europe/Dublin",  # negative DST in tzdata
    "Australia/Lord_Howe",  # half-hour DST
]


@pytest.mark.parametrize("zone", ZONES)
def test_vtimezones_agree_with_the_iana_database(zone: str) -> None:
    """Read back by icalendar under another TZID (so the component itself is used,
    not the zone it names), every wall-clock time from 2026 to 2052 gets tzdata's offset."""
    text = vtimezone(zone, 2026).to_ical()
    alias = "Test/" + zone.replace("/", "-")
    as_read = Timezone.from_ical(text.replace(zone.encode(), alias.encode())).to_tz()
    iana = ZoneInfo(zone)
    wall = datetime(2026, 1, 1, 0, 30)
    while wall < datetime(2053, 1, 1):
        real = wall.replace(tzinfo=iana)
        unambiguous = real.replace(fold=1).utcoffset() == real.utcoffset()
        exists = real.astimezone(UTC).astimezone(iana).replace(tzinfo=None) == wall
        if unambiguous and exists:
            assert wall.replace(tzinfo=as_read).utcoffset() == real.utcoffset(), wall
        wall += timedelta(hours=25, minutes=13)


def test_a_yearly_zone_is_written_with_rrules_and_the_onset_before_the_change() -> None:
    text = vtimezone("Europe/Paris", 2026).to_ical().decode()
    assert text.count("RRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=") == 2
    assert "RDATE" not in text
    # Spring: 02:00 in +01:00 (RFC 5545 §3.6.5 onset in TZOFFSETFROM), not 03:00.
    assert "DTSTART:20250330T020000" in text and "DTSTART:20251026T030000" in text
    chile = vtimezone("America/Santiago", 2026).to_ical().decode()
    assert "RRULE" not in chile.split("TZOFFSETTO:-0400")[0]  # no false "first Sunday"


# --- loaders over the database -------------------------------------------------------


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database.for_data_dir(tmp_path)
    database.migrate()
    yield database
    database.close_sync()


class Network:
    def __init__(self, db: Database) -> None:
        def setup(s: DbSession) -> tuple[str, ...]:
            fontainebleau = centres.add_centre(s, "Fontainebleau", "Europe/Paris")
            montreal = centres.add_centre(s, "Montréal", "America/Toronto")
            return (
                fontainebleau.id,
                montreal.id,
                centres.add_room(s, fontainebleau.id, "Salle Bleue")[0].id,
                centres.add_room(s, fontainebleau.id, "Salle Verte")[0].id,
                centres.add_room(s, montreal.id, "Salle Saint-Laurent")[0].id,
                centres.add_room(s, montreal.id, "Salle Jacques-Cartier")[0].id,
            )

        self.db = db
        (self.paris, self.montreal, self.bleue, self.verte, self.mtl, self.mtl2) = db.run_sync(
            setup
        )

    def book(self, title: str, start: datetime, rooms: list[str], hours: int = 1) -> str:
        booking, _ = self.db.run_sync(
            lambda s: one_off.book(s, title, start, start + timedelta(hours=hours), rooms)
        )
        return booking.id

    def make_weekly(self, booking_id: str, weeks: int) -> None:
        """Turn a single booking into a weekly series with a session per week."""

        def change(s: DbSession) -> None:
            booking = s.get(Booking, booking_id)
            assert booking is not None
            booking.rrule = f"FREQ=WEEKLY;COUNT={weeks}"
            booking.sequence = 1
            s.add(booking)
            for week in range(1, weeks):
                wall = booking.start_local + timedelta(weeks=week)
                start = wall.replace(tzinfo=ZoneInfo(booking.timezone)).astimezone(UTC)
                length = booking.end_utc - booking.start_utc
                s.add(
                    Session(
                        booking_id=booking_id,
                        recurrence_id=start,
                        start_utc=start,
                        end_utc=start + length,
                    )
                )

        self.db.run_sync(change)


@pytest.fixture
def net(db: Database) -> Network:
    return Network(db)


def test_room_and_centre_feeds_hold_the_bookings_of_their_rooms(net: Network) -> None:
    both = net.book("Délégation", paris(2026, 12, 1, 9), [net.bleue, net.mtl])
    other = net.book("Interne", paris(2026, 12, 2, 9), [net.verte, net.mtl])
    room = net.db.run_sync(lambda s: load_room_feed(s, net.bleue))
    assert room.scope == FeedScope("Salle Bleue (Fontainebleau)", "Europe/Paris")
    assert [b.id for b in room.bookings] == [both]
    [info] = room.bookings
    assert [r.name for r in info.rooms] == ["Salle Bleue", "Salle Saint-Laurent"]
    assert info.rooms[1].timezone == "America/Toronto" and len(info.sessions) == 1
    centre = net.db.run_sync(lambda s: load_centre_feed(s, net.paris))
    assert centre.scope == FeedScope("Fontainebleau", "Europe/Paris")
    assert [b.id for b in centre.bookings] == [both, other]
    montreal = net.db.run_sync(lambda s: load_centre_feed(s, net.montreal))
    cal = stable(feed_document(montreal).body)
    assert prop(cal, "X-WR-TIMEZONE") == "America/Toronto"
    assert len(events(cal)) == 2
    # Bookings over before ``since`` drop out.
    later = net.db.run_sync(lambda s: load_centre_feed(s, net.paris, since=paris(2026, 12, 2)))
    assert [b.id for b in later.bookings] == [other]


def test_a_stored_series_is_exported_with_its_overrides(net: Network) -> None:
    booking_id = net.book("Hebdo", paris(2026, 3, 2, 9), [net.bleue, net.mtl])
    net.make_weekly(booking_id, 6)

    def change(s: DbSession) -> None:
        booking = s.get(Booking, booking_id)
        assert booking is not None
        booking.exdates = json.dumps(["2026-03-30T09:00:00"])
        s.add(booking)
        found = s.exec(select(Session).where(Session.booking_id == booking_id))
        rows = {x.recurrence_id: x for x in found}
        moved = rows[paris(2026, 3, 9, 9)]
        moved.start_utc, moved.end_utc = paris(2026, 3, 10, 9), paris(2026, 3, 10, 10)
        rows[paris(2026, 3, 16, 9)].state = "cancelled"
        s.add_all(rows.values())

    net.db.run_sync(change)
    info = net.db.run_sync(lambda s: load_booking(s, booking_id))
    assert info.rrules == ("FREQ=WEEKLY;COUNT=6",) and info.exdates == (datetime(2026, 3, 30, 9),)
    data = feed_document(net.db.run_sync(lambda s: load_room_feed(s, net.bleue))).body
    cal = stable(data)
    master, *overrides = events(cal)
    assert line(data, "EXDATE") == ["EXDATE;TZID=Europe/Paris:20260330T090000"]
    assert master["SEQUENCE"] == 1
    assert [(o["RECURRENCE-ID"].dt, prop(o, "STATUS")) for o in overrides] == [
        (datetime(2026, 3, 9, 9, tzinfo=PARIS), "CONFIRMED"),
        (datetime(2026, 3, 16, 9, tzinfo=PARIS), "CANCELLED"),
    ]


def test_a_cancelled_single_booking_shows_cancelled(net: Network) -> None:
    booking_id = net.book("Annulée", paris(2026, 12, 1, 9), [net.bleue, net.mtl])
    net.db.run_sync(lambda s: one_off.cancel_booking(s, booking_id))
    [event] = events(
        stable(feed_document(net.db.run_sync(lambda s: load_room_feed(s, net.bleue))).body)
    )
    assert prop(event, "STATUS") == "CANCELLED"


def test_busy_times_leave_out_what_does_not_hold_the_room(net: Network) -> None:
    day = paris(2026, 12, 1, 0)
    held = net.book("Tenue", paris(2026, 12, 1, 9), [net.bleue, net.mtl])
    cancelled = net.book("Annulée", paris(2026, 12, 1, 11), [net.bleue, net.mtl])
    see_through = net.book("Transparente", paris(2026, 12, 1, 13), [net.bleue, net.mtl])
    released = net.book("Absente", paris(2026, 12, 1, 15), [net.bleue, net.mtl], hours=2)
    tentative = net.book("Peut-être", paris(2026, 12, 1, 18), [net.bleue, net.mtl])
    net.book("Ailleurs", paris(2026, 12, 1, 9), [net.verte, net.mtl2])

    def change(s: DbSession) -> None:
        one_off.cancel_booking(s, cancelled)
        for booking_id, field, value in (
            (see_through, "transparent", True),
            (tentative, "status", "tentative"),
        ):
            booking = s.get(Booking, booking_id)
            assert booking is not None
            setattr(booking, field, value)
            s.add(booking)
        session = s.exec(select(Session).where(Session.booking_id == released)).one()
        part = s.get(Participation, (session.id, net.bleue))
        assert part is not None
        part.released_at = paris(2026, 12, 1, 15, 10)
        s.add(part)

    net.db.run_sync(change)
    busy = net.db.run_sync(
        lambda s: load_busy(s, [net.bleue, net.mtl], day, day + timedelta(days=1))
    )
    assert held  # the booking ids above are only for readability
    assert sorted(busy[net.bleue], key=lambda p: p.start) == [
        BusyPeriod(paris(2026, 12, 1, 9), paris(2026, 12, 1, 10)),
        BusyPeriod(paris(2026, 12, 1, 15), paris(2026, 12, 1, 15, 10)),  # released at T+10
        BusyPeriod(paris(2026, 12, 1, 18), paris(2026, 12, 1, 19), tentative=True),
    ]
    # Montréal was not released: it holds the whole slot.
    assert BusyPeriod(paris(2026, 12, 1, 15), paris(2026, 12, 1, 17)) in busy[net.mtl]
    rooms = net.db.run_sync(
        lambda s: load_freebusy(s, [net.bleue, "nope"], day, day + timedelta(days=1))
    )
    assert [r.id for r, _ in rooms] == [net.bleue]
    stable(freebusy_ics(rooms, day, day + timedelta(days=1), stamp=STAMP))


def test_an_invitation_from_the_database_parses(net: Network) -> None:
    booking_id = net.book("Délégation", paris(2026, 12, 1, 9), [net.bleue, net.mtl])
    info = net.db.run_sync(lambda s: load_booking(s, booking_id))
    cal = stable(invitation_ics(info, stamp=STAMP, join_url="https://x.example/j"))
    [event] = events(cal)
    assert prop(event, "DESCRIPTION").startswith(
        "Fontainebleau 09:00 (Europe/Paris) / Montréal 03:00 (America/Toronto)"
    )
    assert prop(event, "UID") == info.uid


# --- calendar tokens -----------------------------------------------------------------


def test_calendar_tokens_open_one_scope_and_are_kept_hashed(net: Network, db: Database) -> None:
    room = db.run_sync(lambda s: calendar_tokens.create_room_token(s, net.bleue))
    centre = db.run_sync(lambda s: calendar_tokens.create_centre_token(s, net.paris))
    assert room.token.startswith("tcc_") and len(room.token) == 47
    assert db.run_sync(lambda s: calendar_tokens.resolve(s, room.token)) == room.scope
    assert db.run_sync(lambda s: calendar_tokens.resolve(s, centre.token)) == (
        calendar_tokens.CalendarScope(centre_id=net.paris)
    )
    for bad in ("", "tcc_", "tcc_" + "x" * 43, room.token + "x", "tca_" + room.token[4:]):
        assert db.run_sync(lambda s, bad=bad: calendar_tokens.resolve(s, bad)) is None
    raw = (db.url.removeprefix("sqlite:///"),)
    stored = Path(raw[0]).read_bytes()
    wal = Path(raw[0] + "-wal")
    stored += wal.read_bytes() if wal.exists() else b""
    assert room.token.encode() not in stored
    assert db.run_sync(lambda s: calendar_tokens.revoke(s, room.token)) is True
    assert db.run_sync(lambda s: calendar_tokens.resolve(s, room.token)) is None
    assert db.run_sync(lambda s: calendar_tokens.revoke(s, room.token)) is False
    assert db.run_sync(lambda s: calendar_tokens.revoke_id(s, centre.id)) is True
    assert db.run_sync(lambda s: calendar_tokens.resolve(s, centre.token)) is None


def test_tokens_for_unknown_rooms_and_centres_are_refused(net: Network, db: Database) -> None:
    with pytest.raises(DomainError) as err:
        db.run_sync(lambda s: calendar_tokens.create_room_token(s, "nope"))
    assert err.value.code == "not-found"
    with pytest.raises(DomainError):
        db.run_sync(lambda s: calendar_tokens.create_centre_token(s, net.bleue))


# --- round trip through the importer -------------------------------------------------


def _occurrences_of(data: bytes, booking: BookingInfo) -> list[tuple[Any, ...]]:
    from orchestrator.booking.recurrence import expand
    from orchestrator.calendars.ical_in import parse as ical_parse

    parsed = ical_parse.parse_calendar(data)
    [event] = [e for e in parsed.events if e.spec.uid == booking.uid]
    since, until = datetime(2026, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)
    return sorted(
        (o.recurrence_id, o.start, o.end, o.status, o.title or booking.title)
        for o in expand(event.spec, since, until, 1000)
    )


def test_export_then_import_gives_the_same_occurrences() -> None:
    """Acceptance 5: what the feed says is what the importer expands, override by override."""
    week1, week3, week5 = weekly_session(1), weekly_session(3), weekly_session(5)
    later = timedelta(hours=5)
    booking = with_sessions(
        series(),
        w1=replace(week1, start=week1.start + later, end=week1.end + later),
        w3=replace(week3, title="Séance spéciale"),
        w5=replace(week5, state="cancelled"),
    )
    data = feed_ics(FeedScope("x", "Europe/Paris"), [booking])
    expected = sorted(
        (
            s.recurrence_id,
            s.start,
            s.end,
            s.state if s.state == "cancelled" else "confirmed",
            s.title or booking.title,
        )
        for s in booking.sessions
    )
    assert _occurrences_of(data, booking) == expected


def test_export_then_import_keeps_exdates_rdates_and_all_day_dates() -> None:
    booking = series(
        rrules=("FREQ=WEEKLY;COUNT=4;BYDAY=MO",),
        rdates=(datetime(2026, 5, 5, 9),),
        exdates=(datetime(2026, 3, 9, 9),),
        sessions=(),
    )
    data = feed_ics(FeedScope("x", "Europe/Paris"), [booking])
    starts = [o[1] for o in _occurrences_of(data, booking)]
    assert starts == [
        paris(2026, 3, 2, 9),
        paris(2026, 3, 16, 9),
        paris(2026, 3, 23, 9),  # 09:00 at +01:00 ...
        paris(2026, 5, 5, 9),  # ... and at +02:00, after the change
    ]


def test_a_calendar_client_expands_the_feed_as_the_sessions_say() -> None:
    """recurring-ical-events (the expander the caldav client uses) as a stand-in for
    a subscriber: every session appears once, moved, retitled or cancelled as stored."""
    import recurring_ical_events as rie

    week1, week3, week5 = weekly_session(1), weekly_session(3), weekly_session(5)
    later = timedelta(hours=5)
    booking = with_sessions(
        series(),
        w1=replace(week1, start=week1.start + later, end=week1.end + later),
        w3=replace(week3, title="Séance spéciale"),
        w5=replace(week5, state="cancelled"),
    )
    cal = parse(feed_ics(FeedScope("x", "Europe/Paris"), [booking]))
    seen = sorted(
        (e["DTSTART"].dt, e["DTEND"].dt, str(e["STATUS"]), str(e["SUMMARY"]))
        for e in rie.of(cal).between(datetime(2026, 1, 1), datetime(2027, 1, 1))
    )
    assert seen == sorted(
        (
            s.start,
            s.end,
            "CANCELLED" if s.state == "cancelled" else "CONFIRMED",
            s.title or booking.title,
        )
        for s in booking.sessions
    )


def test_awkward_names_and_titles_survive_every_document() -> None:
    """Quotes, commas, semicolons, backslashes, line breaks and non-ASCII text in
    titles and room names come back as they went in, and long lines fold stably."""
    room = RoomInfo("r-odd", 'Salle "Études", 2e étage; côté cour', "Fontainebleau", "Europe/Paris")
    title = 'Réunion: budget; "T4", ligne\\nouverte\nsuite 🎥 ' + "x" * 80
    booking = series(title=title, rooms=(room, MONTREAL))
    since = datetime(2026, 3, 2, tzinfo=UTC)
    tentative = [BusyPeriod(since, since + timedelta(hours=1), tentative=True)]
    documents = [
        feed_ics(FeedScope(room.name, "Europe/Paris"), [booking]),
        invitation_ics(booking, stamp=STAMP, join_url="https://x.example/j?a=1&b=2,3"),
        cancellation_ics(booking, stamp=STAMP),
        freebusy_ics([(room, tentative)], since, since + timedelta(days=1), stamp=STAMP),
    ]
    for data in documents:
        cal = stable(data)
        assert all(len(row) <= 75 for row in data.split(b"\r\n"))
        for event in events(cal):
            assert prop(event, "SUMMARY") == title
            assert event["ATTENDEE"][0].params["CN"] == room.name
    [fb] = stable(documents[-1]).walk("VFREEBUSY")
    assert fb["ORGANIZER"].params["CN"] == room.name
