"""Usage per centre and month: the counting rules (pure), the CSV export and the SVG
charts of the page (over HTTP)."""

from __future__ import annotations

import csv
import io
import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiohttp import ClientSession

from orchestrator import transitions
from orchestrator.booking import one_off
from orchestrator.centres import add_centre, add_room
from orchestrator.clock import FakeClock
from orchestrator.db import DbSession
from orchestrator.people import accounts
from orchestrator.reports.usage import (
    CentreRef,
    MonthUsage,
    RoomPart,
    UsageReport,
    UsageSession,
    aggregate,
)
from orchestrator.sessions import participation
from tests.dashboard_support import logged_in
from tests.ui_support import PASSWORD, running_app
from web.settings import Settings
from web.ui.usage import csv_text
from web.ui.usage_chart import nice_step

pytestmark = pytest.mark.wall_clock

SVG = "{http://www.w3.org/2000/svg}"
PARIS = CentreRef("paris", "Fontainebleau", "Europe/Paris")
MONTREAL = CentreRef("mtl", "Montréal", "America/Toronto")
ADAM = CentreRef("adam", "Amsterdam Bright City", "Europe/Amsterdam")
CENTRES = (PARIS, MONTREAL, ADAM)
LATER = datetime(2030, 1, 1, tzinfo=UTC)  # "now", after every session


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def session(
    start: datetime,
    minutes: int,
    *rooms: RoomPart,
    state: str = "ended",
    reached_live: bool = True,
    sid: str = "s1",
) -> UsageSession:
    return UsageSession(
        sid, start, start + timedelta(minutes=minutes), state, rooms, reached_live=reached_live
    )


def month(report: UsageReport, centre: CentreRef, m: int) -> MonthUsage:
    found = next(c for c in report.centres if c.centre.id == centre.id)
    return found.months[m - 1]


def nonzero(report: UsageReport) -> dict[tuple[str, int], tuple[int, int, int]]:
    return {
        (r.centre_id, r.month): (r.sessions, r.minutes, r.rooms_used)
        for r in report.rows()
        if r.sessions or r.minutes or r.rooms_used
    }


# --- the counting rules ---------------------------------------------------------------


def test_a_session_at_a_month_boundary_counts_in_each_centre_s_own_month() -> None:
    # 23:30 UTC on 31 January: 00:30 on 1 February in Paris, 18:30 on 31 January in Montréal.
    s = session(
        utc(2025, 1, 31, 23, 30), 60, RoomPart("r-paris", "paris"), RoomPart("r-mtl", "mtl")
    )
    report = aggregate([s], CENTRES, 2025, LATER)
    assert nonzero(report) == {("paris", 2): (1, 60, 1), ("mtl", 1): (1, 60, 1)}
    # Across the network it is one session of two rooms.
    assert (report.sessions, report.minutes, report.rooms_used) == (1, 120, 2)


def test_a_session_at_new_year_belongs_to_the_year_of_the_centre_s_zone() -> None:
    # 23:30 UTC on 31 December 2024 is already 2025 in Paris, still 2024 in Montréal.
    s = session(
        utc(2024, 12, 31, 23, 30), 30, RoomPart("r-paris", "paris"), RoomPart("r-mtl", "mtl")
    )
    assert nonzero(aggregate([s], CENTRES, 2025, LATER)) == {("paris", 1): (1, 30, 1)}
    assert nonzero(aggregate([s], CENTRES, 2024, LATER)) == {("mtl", 12): (1, 30, 1)}


def test_summer_time_moves_the_month_boundary_an_hour_earlier_in_utc() -> None:
    paris = RoomPart("r-paris", "paris")
    # Paris is UTC+2 in summer: 22:30 UTC on 30 June is 00:30 on 1 July; in winter it
    # is UTC+1: 22:30 UTC on 31 October is still 23:30 on 31 October (CET since the 26th).
    summer = session(utc(2025, 6, 30, 22, 30), 30, paris, sid="summer")
    winter = session(utc(2025, 10, 31, 22, 30), 30, paris, sid="winter")
    after_winter_midnight = session(utc(2025, 10, 31, 23, 30), 30, paris, sid="november")
    report = aggregate([summer, winter, after_winter_midnight], CENTRES, 2025, LATER)
    assert nonzero(report) == {
        ("paris", 7): (1, 30, 1),
        ("paris", 10): (1, 30, 1),
        ("paris", 11): (1, 30, 1),
    }


def test_minutes_across_the_spring_forward_night_are_real_minutes() -> None:
    # 01:30 CET to 04:30 CEST on 30 March 2025 reads as three hours on the wall clock
    # but lasts two.
    start = datetime(2025, 3, 30, 0, 30, tzinfo=UTC)
    s = UsageSession(
        "dst",
        start,
        datetime(2025, 3, 30, 2, 30, tzinfo=UTC),
        "ended",
        (
            RoomPart("r-paris", "paris"),
            RoomPart("r-adam", "adam", joined_at=start, left_at=start + timedelta(hours=2)),
        ),
    )
    assert nonzero(aggregate([s], CENTRES, 2025, LATER)) == {
        ("paris", 3): (1, 120, 1),
        ("adam", 3): (1, 120, 1),
    }


def test_a_session_of_two_centres_counts_once_for_each_and_room_minutes_add_up() -> None:
    s = session(
        utc(2025, 5, 12, 8, 0),
        90,
        RoomPart("r-paris-1", "paris"),
        RoomPart("r-paris-2", "paris"),
        RoomPart("r-adam", "adam"),
    )
    other = session(utc(2025, 5, 13, 8, 0), 30, RoomPart("r-paris-1", "paris"), sid="s2")
    report = aggregate([s, other], CENTRES, 2025, LATER)
    assert nonzero(report) == {("paris", 5): (2, 210, 2), ("adam", 5): (1, 90, 1)}
    assert (report.sessions, report.minutes, report.rooms_used) == (2, 300, 3)
    paris = next(c for c in report.centres if c.centre.id == "paris")
    assert (paris.sessions, paris.minutes, paris.rooms_used) == (2, 210, 2)


def test_minutes_come_from_participations_clipped_to_the_session_else_booked() -> None:
    start = utc(2025, 9, 1, 9, 0)
    s = session(
        start,
        60,
        # Joined in pre-roll and left after the end: clipped to the 60 booked minutes.
        RoomPart(
            "early",
            "paris",
            joined_at=start - timedelta(seconds=50),
            left_at=start + timedelta(minutes=70),
        ),
        # Joined 10 minutes late, left 15 minutes early: 35 minutes.
        RoomPart(
            "late",
            "adam",
            joined_at=start + timedelta(minutes=10),
            left_at=start + timedelta(minutes=45),
        ),
        # No join on record (reserve-only, lost reports): the booked 60 minutes.
        RoomPart("reserved", "mtl"),
    )
    assert nonzero(aggregate([s], CENTRES, 2025, LATER)) == {
        ("paris", 9): (1, 60, 1),
        ("adam", 9): (1, 35, 1),
        ("mtl", 9): (1, 60, 1),
    }


def test_rooms_that_did_not_take_part_count_for_nothing() -> None:
    start = utc(2025, 9, 2, 9, 0)
    released = session(
        start, 60, RoomPart("gone", "paris", released_at=start + timedelta(minutes=10)), sid="a"
    )
    never_live = session(start, 60, RoomPart("r", "paris"), reached_live=False, sid="b")
    cancelled = session(start, 60, RoomPart("r", "paris"), state="cancelled", sid="c")
    left_in_pre_roll = session(
        start,
        60,
        RoomPart("r", "paris", joined_at=start - timedelta(seconds=40), left_at=start),
        state="cancelled",
        sid="d",
    )
    report = aggregate([released, never_live, cancelled, left_in_pre_roll], CENTRES, 2025, LATER)
    assert nonzero(report) == {}
    assert report.sessions == 0


def test_a_cancelled_session_keeps_the_minutes_a_room_was_measured_in_it() -> None:
    start = utc(2025, 9, 3, 9, 0)
    s = session(
        start,
        60,
        RoomPart("r", "paris", joined_at=start, left_at=start + timedelta(minutes=20)),
        state="cancelled",
    )
    assert nonzero(aggregate([s], CENTRES, 2025, LATER)) == {("paris", 9): (1, 20, 1)}


def test_a_session_under_way_counts_its_minutes_up_to_now() -> None:
    start = utc(2025, 9, 4, 9, 0)
    s = session(
        start,
        60,
        RoomPart("r", "paris", joined_at=start - timedelta(seconds=30)),
        RoomPart("s", "adam"),
        state="live",
    )
    now = start + timedelta(minutes=25)
    assert nonzero(aggregate([s], CENTRES, 2025, now)) == {
        ("paris", 9): (1, 25, 1),
        ("adam", 9): (1, 25, 1),
    }


def test_totals_are_the_sum_of_their_parts_during_a_live_session() -> None:
    # Issue 10: three centres 7 min 45 s into a live session showed 8 + 8 + 8 beside a
    # network total of 23 (each sum was rounded on its own).
    start = utc(2025, 9, 5, 9, 0)
    live = session(
        start,
        60,
        RoomPart("r-paris", "paris", joined_at=start),
        RoomPart("r-adam", "adam", joined_at=start),
        RoomPart("r-mtl", "mtl"),
        state="live",
    )
    now = start + timedelta(minutes=7, seconds=45)
    report = aggregate([live], CENTRES, 2025, now)
    assert [c.minutes for c in report.centres] == [8, 8, 8]
    assert report.minutes == 24
    # A centre's year is the sum of its months, however its sessions' seconds fall.
    earlier = [
        session(utc(2025, m, 2, 9, 0), 60, RoomPart("r-paris", "paris"), sid=f"p{m}")
        for m in (6, 7)
    ]
    short = [
        UsageSession(s.id, s.start, s.start + timedelta(minutes=7, seconds=40), "ended", s.rooms)
        for s in earlier
    ]
    report = aggregate([*short, live], CENTRES, 2025, now)
    paris = next(c for c in report.centres if c.centre.id == "paris")
    assert [m.minutes for m in paris.months if m.minutes] == [8, 8, 8]
    assert paris.minutes == sum(m.minutes for m in paris.months) == 24
    assert report.minutes == sum(c.minutes for c in report.centres) == 40


def test_every_centre_has_twelve_months_sorted_by_name() -> None:
    report = aggregate([], CENTRES, 2025, LATER)
    assert [c.centre.name for c in report.centres] == [
        "Amsterdam Bright City",
        "Fontainebleau",
        "Montréal",
    ]
    assert all(c.months[0].label == "2025-01" for c in report.centres)
    assert len(report.rows()) == 36 and nonzero(report) == {}


def test_tick_steps_are_round() -> None:
    assert [nice_step(v) for v in (0, 3, 4, 9, 40, 130, 2200)] == [1, 1, 1, 5, 10, 50, 1000]


# --- CSV ---------------------------------------------------------------------------------


def test_csv_quotes_a_centre_name_with_a_comma_and_quotes() -> None:
    odd = CentreRef("odd", 'Montréal, "Vieux-Port"', "America/Toronto")
    s = session(utc(2025, 2, 10, 15, 0), 45, RoomPart("r", "odd"))
    text = csv_text(aggregate([s], (odd, PARIS), 2025, LATER))
    lines = text.split("\r\n")
    assert lines[0] == "centre,month,sessions,minutes,rooms_used"
    assert lines[1] == "Fontainebleau,2025-01,0,0,0"
    assert '"Montréal, ""Vieux-Port""",2025-02,1,45,1' in lines
    assert text.endswith("\r\n") and "\n" not in text.replace("\r\n", "")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert rows[0] == ["centre", "month", "sessions", "minutes", "rooms_used"]
    assert ['Montréal, "Vieux-Port"', "2025-02", "1", "45", "1"] in rows
    assert len(rows) == 1 + 2 * 12


# --- over HTTP ------------------------------------------------------------------------


def seed(s: DbSession) -> None:
    """Two centres (one with an awkward name), three sessions in 2025."""
    paris = add_centre(s, "Fontainebleau", "Europe/Paris")
    mtl = add_centre(s, 'Montréal, "QC"', "America/Toronto")
    a, _ = add_room(s, paris.id, "Salle Bleue")
    b, _ = add_room(s, mtl.id, "Salle du Vieux-Port")
    accounts.create_user(s, "organiser@example.org", "Olga", PASSWORD, "organiser", paris.id)
    for title, start, minutes, went_live in (
        ("January", utc(2025, 1, 31, 23, 30), 60, True),
        ("March", utc(2025, 3, 12, 9, 0), 30, True),
        ("Missed", utc(2025, 4, 1, 9, 0), 30, False),
    ):
        _, sess = one_off.book(s, title, start, start + timedelta(minutes=minutes), [a.id, b.id])
        if went_live:
            transitions.record_transition(s, sess, "live", start)
        transitions.record_transition(s, sess, "ended", start + timedelta(minutes=minutes))
        if title == "March":
            participation.record_joined(
                s, sess.id, a.id, (start + timedelta(minutes=5)).timestamp()
            )
            participation.record_left(s, sess.id, a.id, (start + timedelta(minutes=25)).timestamp())


async def test_the_usage_page_draws_well_formed_svg_charts_and_the_csv_matches(
    tmp_path: Path,
) -> None:
    async with running_app(Settings(data_dir=tmp_path)) as app:
        await app.services.db.run(seed)
        async with await logged_in(app, "organiser@example.org") as http:
            async with http.get(app.url + "/usage?year=2025") as r:
                assert r.status == 200
                page = await r.text()
            async with http.get(app.url + "/usage.csv?year=2025") as r:
                assert r.status == 200
                assert r.headers["Content-Type"] == "text/csv; charset=utf-8"
                assert "telecentre-usage-2025.csv" in r.headers["Content-Disposition"]
                raw = await r.read()
    text = raw.decode("utf-8")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert rows[0] == ["centre", "month", "sessions", "minutes", "rooms_used"]
    figures = {(c, m): (int(x), int(y), int(z)) for c, m, x, y, z in rows[1:]}
    assert {k: v for k, v in figures.items() if v != (0, 0, 0)} == {
        # Paris: 1 February 00:30; the March room measured 20 of its 30 minutes.
        ("Fontainebleau", "2025-02"): (1, 60, 1),
        ("Fontainebleau", "2025-03"): (1, 20, 1),
        # Montréal: 31 January 18:30; no join on record in March, so the booked 30.
        ('Montréal, "QC"', "2025-01"): (1, 60, 1),
        ('Montréal, "QC"', "2025-03"): (1, 30, 1),
    }
    assert '"Montréal, ""QC""",2025-01,1,60,1\r\n' in text

    svgs = re.findall(r"<svg\b.*?</svg>", page, flags=re.S)
    assert len(svgs) == 3
    for svg in svgs:
        root = ET.fromstring(svg)
        assert root.tag == SVG + "svg" and root.get("role") == "img"
        title, desc = root.find(SVG + "title"), root.find(SVG + "desc")
        assert title is not None and desc is not None and title.text and desc.text
        assert root.get("aria-labelledby") == f"{title.get('id')} {desc.get('id')}"
        texts = [t.text for t in root.iter(SVG + "text")]
        assert "Month" in texts and "Jan" in texts and "Dec" in texts
        assert "Fontainebleau" in texts and 'Montréal, "QC"' in texts
    sessions_svg = ET.fromstring(svgs[0])
    bars = {
        b.findtext(SVG + "title")
        for b in sessions_svg.iter(SVG + "rect")
        if b.find(SVG + "title") is not None
    }
    assert bars == {
        "Fontainebleau, February: 1",
        "Fontainebleau, March: 1",
        'Montréal, "QC", January: 1',
        'Montréal, "QC", March: 1',
    }
    # Beside each chart, the same figures in a table with headers for screen readers.
    assert page.count("<table>") == 3
    assert page.count('<th scope="col">Fontainebleau</th>') == 3
    assert '<th scope="row">January</th>' in page


def live_in_three_centres(s: DbSession, start: datetime) -> None:
    """A session of three centres' rooms, live since ``start``; two rooms joined at
    the start, the third (reserve-only) has no join on record."""
    rooms = []
    for name, zone in (
        ("Fontainebleau", "Europe/Paris"),
        ("Montréal", "America/Toronto"),
        ("Amsterdam", "Europe/Amsterdam"),
    ):
        centre = add_centre(s, name, zone)
        rooms.append(add_room(s, centre.id, f"Salle {name}")[0].id)
        if name == "Fontainebleau":
            accounts.create_user(
                s, "organiser@example.org", "Olga", PASSWORD, "organiser", centre.id
            )
    _, sess = one_off.book(s, "Live", start, start + timedelta(hours=1), rooms)
    transitions.record_transition(s, sess, "live", start)
    for room in rooms[:2]:
        participation.record_joined(s, sess.id, room, start.timestamp())


def year_figures(page: str, measure: str) -> tuple[int, list[int]]:
    """The network's total of ``measure`` and the centres' year totals below its table."""
    summary = re.search(rf"<dt>{measure}</dt><dd>([\d\s\u202f\u00a0,.]+)</dd>", page)
    assert summary is not None
    chart_id = "chart-" + measure.lower().replace(" ", "-")
    table = page[page.index(f'id="caption-{chart_id}"') :]
    footer = table[table.index("<tfoot>") : table.index("</tfoot>")]

    def number(text: str) -> int:
        return int(re.sub(r"\D", "", text))

    return number(summary.group(1)), [number(v) for v in re.findall(r"<td>([^<]*)</td>", footer)]


async def test_the_page_s_network_minutes_add_up_during_a_live_session(tmp_path: Path) -> None:
    start = utc(2026, 2, 10, 14, 0)
    clock = FakeClock((start + timedelta(minutes=7, seconds=45)).timestamp())
    async with running_app(Settings(data_dir=tmp_path), clock=clock) as app:
        await app.services.db.run(lambda s: live_in_three_centres(s, start))
        async with await logged_in(app, "organiser@example.org") as http:
            async with http.get(app.url + "/usage?year=2026") as r:
                assert r.status == 200
                page = await r.text()
            async with http.get(app.url + "/usage.csv?year=2026") as r:
                rows = list(csv.reader(io.StringIO(await r.text(), newline="")))
    total, centres = year_figures(page, "Minutes")
    assert centres == [8, 8, 8]
    assert total == sum(centres) == 24
    assert sum(int(row[3]) for row in rows[1:]) == total


async def test_the_usage_page_speaks_french_and_refuses_a_bad_year(tmp_path: Path) -> None:
    async with running_app(Settings(data_dir=tmp_path)) as app:
        await app.services.db.run(seed)
        async with await logged_in(app, "organiser@example.org") as http:
            async with http.get(
                app.url + "/usage?year=2025", headers={"Accept-Language": "fr-FR"}
            ) as r:
                page = await r.text()
            async with http.get(app.url + "/usage?year=20x5") as r:
                bad_status, bad = r.status, await r.text()
            async with http.get(app.url + "/usage.csv?year=1999") as r:
                csv_status, csv_error = r.status, await r.json()
    svg = ET.fromstring(re.findall(r"<svg\b.*?</svg>", page, flags=re.S)[0])
    texts = [t.text for t in svg.iter(SVG + "text")]
    assert "Mois" in texts and "janv." in texts
    assert bad_status == 400 and 'role="alert"' in bad and "invalid-year" in bad
    assert "20x5" in bad and 'aria-invalid="true"' in bad
    assert csv_status == 400 and csv_error["error"]["code"] == "invalid-year"


async def test_usage_needs_a_login(tmp_path: Path) -> None:
    async with running_app(Settings(data_dir=tmp_path)) as app:
        async with ClientSession() as http:
            for path in ("/usage", "/usage.csv?year=2025"):
                async with http.get(app.url + path, allow_redirects=False) as r:
                    assert r.status == 303, path
                    assert r.headers["Location"].startswith("/login?next=")
