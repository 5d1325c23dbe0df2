"""The room screen's layout rules (room_agents.layout), tested directly: no window, no
clock, no tracks."""

from __future__ import annotations

from datetime import UTC, datetime
from itertools import combinations
from zoneinfo import ZoneInfo

import pytest

from room_agents.layout import (
    Booking,
    Rect,
    RoomView,
    Source,
    arrange,
    bookings_from_schedule,
    countdown_text,
    duration_text,
    end_warning,
    fit,
    grid,
    grid_shape,
    idle_view,
    plan_screen,
    screen_areas,
)
from signalling import protocol as p

PARIS = ZoneInfo("Europe/Paris")
BODY = Rect(0, 50, 1280, 670)


def at(text: str, tz: ZoneInfo = PARIS) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=tz).timestamp()


def inside(inner: Rect, outer: Rect) -> bool:
    return (
        inner.x >= outer.x
        and inner.y >= outer.y
        and inner.x + inner.w <= outer.x + outer.w
        and inner.y + inner.h <= outer.y + outer.h
    )


def overlap(a: Rect, b: Rect) -> bool:
    return a.x < b.x + b.w and b.x < a.x + a.w and a.y < b.y + b.h and b.y < a.y + a.h


# --- geometry ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "size", "shape"),
    [
        (1, (1280, 670), (1, 1)),
        (2, (1280, 670), (2, 1)),
        (3, (1280, 670), (2, 2)),
        (4, (1280, 670), (2, 2)),
        (5, (1280, 670), (3, 2)),
        (2, (720, 1280), (1, 2)),  # a portrait screen stacks them
    ],
)
def test_the_grid_gives_each_picture_the_largest_area(
    n: int, size: tuple[int, int], shape: tuple[int, int]
) -> None:
    assert grid_shape(n, *size) == shape


@pytest.mark.parametrize("n", range(1, 10))
def test_grid_tiles_are_16_9_inside_the_body_and_never_overlap(n: int) -> None:
    tiles = grid(n, BODY, gap=8)
    assert len(tiles) == n
    for tile in tiles:
        assert inside(tile, BODY)
        assert abs(tile.w / tile.h - 16 / 9) < 0.02
    assert not any(overlap(a, b) for a, b in combinations(tiles, 2))


def test_an_incomplete_last_row_is_centred() -> None:
    tiles = grid(3, BODY, gap=0)
    top, bottom = tiles[:2], tiles[2]
    left_margin = bottom.x - BODY.x
    right_margin = BODY.x + BODY.w - (bottom.x + bottom.w)
    assert abs(left_margin - right_margin) <= 1
    assert bottom.y > top[0].y


def test_fit_keeps_the_aspect_and_centres() -> None:
    box = Rect(10, 20, 400, 400)
    r = fit(640, 360, box)
    assert (r.w, r.h) == (400, 224)
    assert r.x == 10 and r.y == 20 + (400 - 224) // 2
    assert fit(0, 0, box).w == 0


def test_content_is_large_and_the_sites_go_to_a_strip_below_it() -> None:
    names = {"room:a": "Amsterdam", "room:b": "Bruxelles", "room:c": "Calais"}
    sources = [Source("room:b"), Source("room:a"), Source("room:a", content=True)]
    tiles = arrange(sources, names, BODY, gap=8)
    roles = [(t.site, t.role, t.content) for t in tiles]
    assert roles == [
        ("Amsterdam", "content", True),
        ("Amsterdam", "strip", False),
        ("Bruxelles", "strip", False),
    ]
    content, strips = tiles[0].rect, [t.rect for t in tiles[1:]]
    assert content.w == BODY.w and content.h > 2 * strips[0].h
    for r in strips:
        assert inside(r, BODY) and r.y > content.y + content.h - 1
    assert not any(overlap(a, b) for a, b in combinations([content, *strips], 2))


def test_content_alone_fills_the_body() -> None:
    tiles = arrange([Source("room:a", content=True)], {}, BODY)
    assert [(t.role, t.rect) for t in tiles] == [("content", BODY)]
    assert tiles[0].site == "room:a"  # no name known: the peer id


def test_without_content_every_site_is_main_in_the_grid_in_name_order() -> None:
    names = {"room:a": "Zagreb", "room:b": "Aarhus"}
    tiles = arrange([Source("room:a"), Source("room:b")], names, BODY)
    assert [(t.site, t.role) for t in tiles] == [("Aarhus", "main"), ("Zagreb", "main")]
    assert tiles[0].rect.x < tiles[1].rect.x


def test_the_header_takes_a_band_at_the_top() -> None:
    header, body = screen_areas(1280, 720)
    assert header == Rect(0, 0, 1280, 51) and body == Rect(0, 51, 1280, 669)
    assert screen_areas(640, 360)[0].h == 25


# --- words and times ----------------------------------------------------------------------


def test_durations_and_countdowns_read_as_people_say_them() -> None:
    assert duration_text(59.2) == "1:00"
    assert duration_text(61) == "1:01"
    assert duration_text(3599) == "59:59"
    assert duration_text(3600) == "1 h 00 min"
    assert duration_text(-5) == "0:00"
    now = at("2026-03-10T09:00:00")
    assert countdown_text(now + 125, now, PARIS) == "Starts in 2:05"
    assert countdown_text(now + 2 * 3600 + 300, now, PARIS) == "Starts in 2 h 05 min"
    assert countdown_text(now + 3 * 86400, now, PARIS) == "Starts Friday at 09:00"
    assert countdown_text(now - 1, now, PARIS) == "Starting now"


def test_end_warnings_come_at_five_and_one_minute() -> None:
    end = 10_000.0
    assert end_warning(end, end - 301) is None
    five = end_warning(end, end - 300)
    assert five is not None and five.level == 5 and five.text.endswith("5:00")
    still_five = end_warning(end, end - 60.5)
    assert still_five is not None and still_five.level == 5
    one = end_warning(end, end - 60)
    assert one is not None and one.level == 1 and one.text.endswith("1:00")
    assert end_warning(end, end) is None


def test_the_idle_view_shows_the_next_booking_in_local_time_with_a_countdown() -> None:
    now = at("2026-03-28T23:50:00")  # the night before Paris moves to summer time
    bookings = [
        Booking("s2", "Later one", at("2026-03-29T10:00:00"), at("2026-03-29T11:00:00")),
        Booking(
            "s1",
            "Board",
            at("2026-03-29T00:30:00"),
            at("2026-03-29T04:00:00"),
            ("Amsterdam", "Calais"),
        ),
        Booking("s0", "Over", now - 3600, now - 60),
    ]
    view = idle_view(bookings, now, PARIS)
    assert (view.clock, view.date) == ("23:50", "Saturday 28 March 2026")
    assert view.next_title == "Board"
    # 04:00 is summer time (CEST): the end is read in the zone at that instant.
    assert view.next_when == "Sun 29 Mar 00:30 – 04:00"
    assert view.next_sites == "with Amsterdam, Calais"
    assert view.countdown == "Starts in 40:00"
    assert view.later == ("Sun 29 Mar 10:00 – 11:00  Later one",)
    lines = view.lines()
    assert lines[:3] == ["23:50", "Saturday 28 March 2026", "Next session"]
    assert "Starts in 40:00" in lines and "Later" in lines


def test_an_empty_schedule_says_so() -> None:
    view = idle_view([], at("2026-03-10T09:00:00"), PARIS)
    assert view.next_title is None and "No sessions booked" in view.lines()


# --- the whole screen -------------------------------------------------------------------


def test_in_a_call_the_screen_shows_tiles_the_live_indicator_and_the_end_warning() -> None:
    now = at("2026-03-10T10:56:30")
    session = Booking("s1", "Board", at("2026-03-10T10:00:00"), at("2026-03-10T11:00:00"))
    view = RoomView(
        room_name="Fontainebleau",
        bookings=(session,),
        session_id="s1",
        live=True,
        names={"room:a": "Amsterdam"},
    )
    plan = plan_screen(view, [Source("room:a")], now, (1280, 720), PARIS)
    assert plan.mode == "call" and plan.idle is None
    assert [(t.site, t.role) for t in plan.tiles] == [("Amsterdam", "main")]
    assert plan.header.live and plan.header.clock == "10:56" and plan.header.session == "Board"
    assert plan.warning is not None and plan.warning.level == 5
    assert plan.header.countdown is None  # started
    early = plan_screen(view, [Source("room:a")], session.start - 42, (1280, 720), PARIS)
    assert early.header.countdown == "Starts in 0:42" and early.warning is None
    muted = plan_screen(
        RoomView(bookings=(session,), session_id="s1", live=True, privacy=True),
        [Source("room:a")],
        now,
        (1280, 720),
        PARIS,
    )
    assert muted.header.privacy and not muted.header.live  # privacy: nothing is sent


def test_in_a_session_with_nobody_there_yet_the_screen_waits_for_the_sites() -> None:
    now = at("2026-03-10T09:59:20")
    session = Booking(
        "s1", "Board", at("2026-03-10T10:00:00"), at("2026-03-10T11:00:00"), ("Amsterdam",)
    )
    plan = plan_screen(RoomView(bookings=(session,), session_id="s1"), [], now, (640, 360), PARIS)
    assert plan.mode == "idle" and plan.idle is None
    assert plan.waiting == "Board – waiting for Amsterdam – starts in 0:40"


def test_out_of_a_session_the_screen_is_idle_even_with_old_tracks() -> None:
    now = at("2026-03-10T09:00:00")
    plan = plan_screen(RoomView(room_name="F"), [Source("room:a")], now, (640, 360), PARIS)
    assert plan.mode == "idle" and plan.idle is not None and not plan.header.live


def test_bookings_from_the_schedule_leave_out_terminal_sessions_and_the_room_itself() -> None:
    rooms = [
        p.ScheduleRoom(room_id="f", name="Fontainebleau", centre="IT77"),
        p.ScheduleRoom(room_id="a", name="Amsterdam", centre="BCA"),
    ]

    def entry(session_id: str, state: str) -> p.ScheduleEntry:
        start = datetime(2026, 3, 10, 9, tzinfo=UTC).timestamp()
        return p.ScheduleEntry(
            session_id=session_id,
            booking_id="b",
            title=f"T {session_id}",
            start=start,
            end=start + 3600,
            lead=60,
            state=state,
            ticket="x",
            rooms=rooms,
        )

    out = bookings_from_schedule([entry("s1", "scheduled"), entry("s2", "cancelled")], "room:f")
    assert [(b.session_id, b.sites) for b in out] == [("s1", ("Amsterdam",))]
