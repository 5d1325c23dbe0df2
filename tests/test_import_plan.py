"""The import plan: pure rules of what an iCalendar import changes."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from orchestrator.booking.values import CANCELLED, SeriesSpec
from orchestrator.calendars.ical_in.plan import (
    CANCEL,
    CREATE,
    UPDATE,
    Existing,
    ImportSource,
    Incoming,
    RoomNames,
    match_rooms,
    plan_import,
)

ROOMS = [
    RoomNames("r1", ("Salle Bleue", "IT77 Fontainebleau TelePresence")),
    RoomNames("r2", ("Smart Work Room",)),
]
FEED = ImportSource("feed:f1", rooms=("r1",), authoritative=True)
FILE = ImportSource("file:x")


def spec(uid: str, sequence: int = 0, title: str = "Meeting", **kw: object) -> SeriesSpec:
    return SeriesSpec(
        uid=uid,
        title=title,
        timezone="Europe/Paris",
        start_local=datetime(2027, 3, 1, 9, 0),
        duration=timedelta(hours=1),
        sequence=sequence,
        **kw,  # type: ignore[arg-type]
    )


def existing(*uids: str, future: bool = True) -> dict[str, Existing]:
    return {u: Existing(f"b-{u}", spec(u), ("r1",), future) for u in uids}


def test_rooms_match_by_name_or_alias_ignoring_case_accents_and_spaces() -> None:
    assert match_rooms(["salle  bleue"], ROOMS) == ("r1",)
    assert match_rooms(["SMART WORK ROOM", "Salle Bleue"], ROOMS) == ("r1", "r2")
    assert match_rooms(["it77 fontainebleau telepresence"], ROOMS) == ("r1",)
    assert match_rooms(["Sàlle Bleüe"], ROOMS) == ("r1",)
    assert match_rooms(["Unknown"], ROOMS) == ()


def test_a_new_event_is_created_and_reimporting_it_changes_nothing() -> None:
    plan = plan_import(FEED, [Incoming(spec("u1"))], {}, ROOMS)
    assert [(a.kind, a.uid, a.room_ids) for a in plan.actions] == [(CREATE, "u1", ("r1",))]
    again = plan_import(FEED, [Incoming(spec("u1"))], existing("u1"), ROOMS)
    assert again.actions == () and again.unchanged == 1


def test_a_higher_sequence_updates_and_an_older_one_is_skipped_with_its_reason() -> None:
    before = {"u1": Existing("b1", spec("u1", sequence=2), ("r1",), True)}
    newer = plan_import(FEED, [Incoming(spec("u1", 3, title="Moved"))], before, ROOMS)
    assert [(a.kind, a.booking_id) for a in newer.actions] == [(UPDATE, "b1")]
    older = plan_import(FEED, [Incoming(spec("u1", 1, title="Old"))], before, ROOMS)
    assert older.actions == () and [s.code for s in older.skipped] == ["older-sequence"]


def test_rooms_come_from_attendees_or_location_when_the_source_names_none() -> None:
    plan = plan_import(FILE, [Incoming(spec("u1"), ("Smart Work Room",))], {}, ROOMS)
    assert plan.actions[0].room_ids == ("r2",)
    nowhere = plan_import(FILE, [Incoming(spec("u2"), ("Mars base",))], {}, ROOMS)
    assert nowhere.actions == () and nowhere.skipped[0].code == "no-room"


def test_an_event_gone_from_a_feed_cancels_but_not_from_a_file() -> None:
    before = existing("u1", "u2", "u3", "u4")
    plan = plan_import(FEED, [Incoming(spec(u)) for u in ("u1", "u2", "u3")], before, ROOMS)
    assert [(a.kind, a.uid) for a in plan.actions] == [(CANCEL, "u4")]
    file_plan = plan_import(FILE, [Incoming(spec("u1"), ("Salle Bleue",))], before, ROOMS)
    assert all(a.kind != CANCEL for a in file_plan.actions)


def test_history_is_never_cancelled() -> None:
    before = existing("u1", "u2", "u3") | existing("old", future=False)
    plan = plan_import(FEED, [Incoming(spec(u)) for u in ("u1", "u2", "u3")], before, ROOMS)
    assert plan.actions == ()


def test_an_empty_feed_cancels_nothing_and_is_held_back() -> None:
    plan = plan_import(FEED, [], existing("u1", "u2"), ROOMS)
    assert plan.actions == ()
    assert plan.held_back is not None and plan.held_back.code == "empty-feed"


def test_a_feed_that_would_cancel_most_series_at_once_is_held_back() -> None:
    before = existing(*(f"u{i}" for i in range(10)))
    plan = plan_import(FEED, [Incoming(spec("u0")), Incoming(spec("u1"))], before, ROOMS)
    assert plan.actions == () and plan.held_back is not None
    assert plan.held_back.code == "mass-cancel"
    few = plan_import(FEED, [Incoming(spec(f"u{i}")) for i in range(8)], before, ROOMS)
    assert few.held_back is None and few.count(CANCEL) == 2


def test_a_cancelled_event_never_seen_before_is_skipped_and_duplicates_are_reported() -> None:
    plan = plan_import(
        FEED,
        [Incoming(spec("c", status=CANCELLED)), Incoming(spec("d")), Incoming(spec("d"))],
        {},
        ROOMS,
    )
    assert [a.uid for a in plan.actions] == ["d"]
    assert sorted(s.code for s in plan.skipped) == ["cancelled", "duplicate-uid"]


def test_a_changed_room_list_is_an_update() -> None:
    before = {"u1": Existing("b1", spec("u1"), ("r1",), True)}
    source = replace(FEED, rooms=("r1", "r2"))
    plan = plan_import(source, [Incoming(spec("u1"))], before, ROOMS)
    assert [a.kind for a in plan.actions] == [UPDATE]
