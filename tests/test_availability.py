"""The availability finder's pure rules: windows across DST, common free slots across
Paris and Montreal, buffers counted as busy, and titles shown only to who may see them."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from orchestrator.booking.availability import (
    BUFFER,
    BUSY,
    CLOSED,
    FREE,
    PAST,
    Hold,
    RoomSite,
    WorkingHours,
    availability,
    common_free_slots,
    day_bounds,
    day_grid,
    site_times,
    visible_title,
    window,
)
from orchestrator.people import access
from orchestrator.people.accounts import Principal

PARIS = RoomSite("r-paris", "Salle Bleue", "c-fbl", "Fontainebleau", "Europe/Paris")
MONTREAL = RoomSite("r-mtl", "Salle du Fleuve", "c-mtl", "Montréal", "America/Montreal")
HOUR = timedelta(hours=1)
PARIS_TZ = ZoneInfo("Europe/Paris")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def person(role: str = "organiser", centre: str | None = "c-fbl", id_: str = "u1") -> Principal:
    return Principal(id_, f"{id_}@example.org", id_, role, centre, None, None)


def test_a_spring_forward_day_has_23_hours_and_an_autumn_day_25() -> None:
    since, until = day_bounds(date(2026, 3, 29), "Europe/Paris")
    assert (since, until) == (utc(2026, 3, 28, 23), utc(2026, 3, 29, 22))
    since, until = day_bounds(date(2026, 10, 25), "Europe/Paris")
    assert until - since == timedelta(hours=25)
    # A whole week in the organiser's zone holds the short day.
    since, until = window(date(2026, 3, 23), 7, "Europe/Paris")
    assert until - since == timedelta(days=7) - HOUR


def test_the_dst_day_grid_shows_the_site_hours_in_real_time() -> None:
    grid = day_grid(date(2026, 3, 29), "Europe/Paris", [PARIS], [], viewer=None)
    # 08:00-19:00 local is eleven real hours even on the short day: 44 quarter hours.
    assert len(grid.columns) == 44
    assert grid.columns[0] == utc(2026, 3, 29, 6)
    [row] = grid.rows
    assert [(r.state, r.span) for r in row.runs] == [(FREE, 44)]
    # The organiser's header first, then the site's; hours group four columns each.
    assert [h.name for h in grid.headers] == ["Europe/Paris", "Fontainebleau"]
    assert [s.span for s in grid.headers[1].spans] == [4] * 11


def test_the_autumn_day_shows_the_repeated_hour_twice_in_the_header() -> None:
    night = WorkingHours(time(0, 0), time(4, 0))
    grid = day_grid(
        date(2026, 10, 25), "Europe/Paris", [PARIS], [], viewer=None, hours={"c-fbl": night}
    )
    # 00:00-04:00 local on the day clocks go back is five real hours.
    assert len(grid.columns) == 20
    spans = grid.headers[1].spans
    assert [s.span for s in spans] == [4] * 5
    offsets = [s.start.astimezone(PARIS_TZ).utcoffset() for s in spans]
    assert offsets[2] == timedelta(hours=2) and offsets[3] == timedelta(hours=1)


def test_a_week_across_paris_and_montreal_proposes_the_shared_afternoon() -> None:
    # Montreal moved to summer time on 8 March, Paris only on 29 March: five hours
    # apart on weekdays of that week, six on the Sunday.
    result = availability(
        date(2026, 3, 23),
        7,
        "Europe/Paris",
        [PARIS, MONTREAL],
        [],
        HOUR,
        viewer=None,
        limit=20,
    )
    starts = [s.start for s in result.proposals]
    assert starts[0] == utc(2026, 3, 23, 12)  # 13:00 in Paris, 08:00 in Montreal
    monday = [s for s in result.proposals if s.start.date() == date(2026, 3, 23)]
    # 13:00-19:00 Paris is common: six one-hour meetings that do not overlap.
    assert [s.start.hour for s in monday] == [12, 13, 14, 15, 16, 17]
    sunday = [s for s in result.proposals if s.start.date() == date(2026, 3, 29)]
    assert sunday == []  # the limit of 20 stops before Sunday
    week_end = availability(
        date(2026, 3, 29), 1, "Europe/Paris", [PARIS, MONTREAL], [], HOUR, viewer=None
    )
    assert week_end.proposals[0].start == utc(2026, 3, 29, 12)  # 14:00 Paris, 08:00 Montreal
    # Each site's own hours head the grid: Montreal's first column is 08:00 there.
    grid = week_end.days[0]
    montreal = next(h for h in grid.headers if h.centre_id == "c-mtl")
    first = montreal.spans[0].start.astimezone(ZoneInfo("America/Montreal"))
    assert grid.columns[0] == utc(2026, 3, 29, 6)
    assert first.hour == 2  # the grid starts at Paris 08:00, 02:00 in Montreal
    # The columns end with the organiser's day, whatever hours Montreal keeps.
    assert grid.columns[-1] < day_bounds(date(2026, 3, 29), "Europe/Paris")[1]
    [_, montreal_row] = grid.rows
    assert montreal_row.runs[0].state == CLOSED and montreal_row.runs[0].span == 6 * 4


def test_site_times_name_each_centre_once_with_its_date_shift() -> None:
    late = site_times(
        utc(2026, 3, 23, 3), utc(2026, 3, 23, 4), "Europe/Paris", [PARIS, MONTREAL, PARIS]
    )
    assert [(t.centre, t.start_local.hour, t.day_shift) for t in late] == [
        ("Fontainebleau", 4, 0),
        ("Montréal", 23, -1),
    ]


def test_buffers_count_as_busy_on_both_sides() -> None:
    buffered = RoomSite(
        "r-b", "Salle Verte", "c-fbl", "Fontainebleau", "Europe/Paris", timedelta(minutes=15)
    )
    hold = Hold("r-b", utc(2026, 3, 24, 9), utc(2026, 3, 24, 10), "b1", "Comité")
    slots = common_free_slots(
        [buffered],
        [hold],
        utc(2026, 3, 24, 8),
        utc(2026, 3, 24, 12),
        HOUR,
        hours={"c-fbl": WorkingHours(time(9), time(13))},
        limit=3,
    )
    # Open 09:00 local (08:00 UTC); 08:00-09:00 UTC would leave no gap before the hold
    # (its buffer starts 08:45), so the first slot starts a buffer after it ends.
    assert [(s.start, s.end) for s in slots] == [
        (utc(2026, 3, 24, 10, 15), utc(2026, 3, 24, 11, 15))
    ]
    grid = day_grid(
        date(2026, 3, 24),
        "Europe/Paris",
        [buffered],
        [hold],
        viewer=None,
        hours={"c-fbl": WorkingHours(time(9), time(13))},
    )
    states = [(r.state, r.span) for r in grid.rows[0].runs]
    assert states == [(FREE, 3), (BUFFER, 1), (BUSY, 4), (BUFFER, 1), (FREE, 7)]


def test_a_hold_at_one_site_blocks_the_common_slot() -> None:
    hold = Hold("r-mtl", utc(2026, 3, 23, 12), utc(2026, 3, 23, 13, 30), "b2", "Conseil")
    slots = common_free_slots(
        [PARIS, MONTREAL], [hold], utc(2026, 3, 22, 23), utc(2026, 3, 23, 23), HOUR, limit=2
    )
    assert [s.start for s in slots] == [utc(2026, 3, 23, 13, 30), utc(2026, 3, 23, 14, 30)]


def test_nothing_is_proposed_before_now_and_past_cells_show() -> None:
    now = utc(2026, 3, 23, 14, 10)
    slots = common_free_slots(
        [PARIS, MONTREAL], [], utc(2026, 3, 22, 23), utc(2026, 3, 23, 23), HOUR, now=now, limit=1
    )
    assert slots[0].start == utc(2026, 3, 23, 14, 15)
    grid = day_grid(date(2026, 3, 23), "Europe/Paris", [PARIS], [], viewer=None, now=now)
    assert grid.rows[0].runs[0].state == PAST


def test_working_hours_are_per_site_and_must_end_after_they_start() -> None:
    early = {"c-mtl": WorkingHours(time(6, 0), time(19, 0))}
    slots = common_free_slots(
        [PARIS, MONTREAL],
        [],
        utc(2026, 3, 22, 23),
        utc(2026, 3, 23, 23),
        HOUR,
        hours=early,
        limit=1,
    )
    assert slots[0].start == utc(2026, 3, 23, 10)  # 11:00 Paris, 06:00 Montreal
    with pytest.raises(ValueError):
        WorkingHours(time(19), time(8))


def test_titles_show_only_to_people_who_may_see_the_booking() -> None:
    hold = Hold(
        "r-mtl",
        utc(2026, 3, 23, 14),
        utc(2026, 3, 23, 15),
        "b3",
        "Négociation confidentielle",
        owner_id="u-mtl",
        owner_centre_id="c-mtl",
        room_centre_ids=("c-mtl",),
    )
    outsider = person(centre="c-fbl")
    assert visible_title(hold, outsider) == access.BUSY
    assert visible_title(hold, None) == access.BUSY
    assert visible_title(hold, person(centre="c-mtl", id_="u2")) == hold.title
    assert visible_title(hold, person("admin", None, "root")) == hold.title
    assert visible_title(hold, person(centre=None, id_="u-mtl")) == hold.title
    grid = day_grid(date(2026, 3, 23), "Europe/Paris", [MONTREAL], [hold], viewer=outsider)
    busy = [r for r in grid.rows[0].runs if r.state == BUSY]
    assert [(r.label, r.booking_id) for r in busy] == [(access.BUSY, None)]
    grid = day_grid(
        date(2026, 3, 23), "Europe/Paris", [MONTREAL], [hold], viewer=person(centre="c-mtl")
    )
    busy = [r for r in grid.rows[0].runs if r.state == BUSY]
    assert [(r.label, r.booking_id) for r in busy] == [("Négociation confidentielle", "b3")]


def test_two_holds_back_to_back_stay_two_runs() -> None:
    holds = [
        Hold("r-paris", utc(2026, 3, 23, 9), utc(2026, 3, 23, 10), "a", "A"),
        Hold("r-paris", utc(2026, 3, 23, 10), utc(2026, 3, 23, 11), "b", "B"),
    ]
    grid = day_grid(date(2026, 3, 23), "Europe/Paris", [PARIS], holds, viewer=person("admin", None))
    busy = [(r.label, r.span) for r in grid.rows[0].runs if r.state == BUSY]
    assert busy == [("A", 4), ("B", 4)]
