"""The conflict rule, as a pure function: no database, no clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from orchestrator.booking.conflicts import (
    Busy,
    SlotRequest,
    conflicting,
    find_conflicts,
    held,
    overlaps,
)
from orchestrator.booking.values import CANCELLED, Occurrence

T = datetime(2027, 3, 29, 9, 0, tzinfo=UTC)
H = timedelta(hours=1)
M = timedelta(minutes=1)


def occ(start: datetime, end: datetime, **kw: object) -> Occurrence:
    wall = start.replace(tzinfo=None)
    return Occurrence(start, start, end, wall, end.replace(tzinfo=None), **kw)  # type: ignore[arg-type]


def req(start: datetime, end: datetime, *rooms: str, **kw: object) -> SlotRequest:
    return SlotRequest(occ(start, end, **kw), rooms or ("a",))


def taken(start: datetime, end: datetime, room: str = "a", sid: str = "s1") -> Busy:
    return Busy(room, start, end, sid, "b1", "Taken")


@pytest.mark.parametrize(
    ("start", "end", "hit"),
    [
        (T - H, T, False),  # ends when the other starts: half-open
        (T + H, T + 2 * H, False),  # starts when the other ends
        (T - H, T + M, True),
        (T + H - M, T + 2 * H, True),
        (T + 10 * M, T + 20 * M, True),  # inside
        (T - H, T + 2 * H, True),  # around
    ],
)
def test_half_open_intervals(start: datetime, end: datetime, hit: bool) -> None:
    found = find_conflicts([req(start, end)], [taken(T, T + H)])
    assert bool(found) is hit
    if hit:
        assert found[0].room_id == "a"
        assert found[0].session_id == "s1" and found[0].booking_id == "b1"
        assert found[0].occurrence.start == start


def test_a_buffer_is_the_least_gap_in_either_order() -> None:
    buffers = {"a": timedelta(minutes=15)}
    busy = [taken(T, T + H)]
    # After the busy one: needs 15 minutes.
    assert find_conflicts([req(T + H + 14 * M, T + 2 * H)], busy, buffers)
    assert not find_conflicts([req(T + H + 15 * M, T + 2 * H)], busy, buffers)
    # Before it, symmetrically: the request's own buffer runs into the busy one.
    assert find_conflicts([req(T - H, T - 14 * M)], busy, buffers)
    assert not find_conflicts([req(T - H, T - 15 * M)], busy, buffers)
    # Another room's buffer does not apply.
    assert not find_conflicts([req(T + H, T + 2 * H, "a")], busy, {"b": timedelta(hours=5)})


def test_the_buffer_never_changes_the_reported_times() -> None:
    found = find_conflicts([req(T + H + M, T + 2 * H)], [taken(T, T + H)], {"a": 5 * M})
    assert (found[0].busy.start, found[0].busy.end) == (T, T + H)
    assert (found[0].occurrence.start, found[0].occurrence.end) == (T + H + M, T + 2 * H)
    assert held(T, T + H, 5 * M) == (T, T + H + 5 * M)
    with pytest.raises(ValueError):
        held(T, T + H, -M)


def test_cancelled_and_transparent_requests_never_conflict() -> None:
    busy = [taken(T, T + H)]
    assert not find_conflicts([req(T, T + H, status=CANCELLED)], busy)
    assert not find_conflicts([req(T, T + H, transparent=True)], busy)


def test_multi_room_is_all_or_nothing_and_names_each_busy_room() -> None:
    busy = {"b": [taken(T, T + H, "b", "s2")], "c": [taken(T + 30 * M, T + H, "c", "s3")]}
    found = find_conflicts([req(T, T + H, "a", "b", "c")], busy)
    assert [(c.room_id, c.session_id) for c in found] == [("b", "s2"), ("c", "s3")]
    assert conflicting(found) == {T}


def test_requested_occurrences_are_tested_against_each_other() -> None:
    first = req(T, T + H, "a")
    second = req(T + 30 * M, T + 2 * H, "a", "b")
    found = find_conflicts([second, first], [])
    assert len(found) == 1
    assert found[0].occurrence == second.occurrence
    assert found[0].busy.session_id is None  # the other occurrence is part of the request
    # A skipped (conflicting) occurrence does not block the ones after it.
    found = find_conflicts(
        [req(T, T + H), req(T + 30 * M, T + 2 * H), req(T + H, T + 3 * H)], [taken(T, T + H)]
    )
    assert [c.occurrence.start for c in found] == [T, T + 30 * M]


def test_many_busy_entries_are_searched_not_scanned() -> None:
    busy = [taken(T + i * H, T + i * H + 50 * M, sid=f"s{i}") for i in range(5000)]
    busy.append(taken(T - 24 * H, T + 10_000 * H, sid="long"))  # one very long hold
    found = find_conflicts([req(T + 2500 * H + 55 * M, T + 2501 * H)], busy)
    assert {c.session_id for c in found} == {"long"}
    found = find_conflicts([req(T + 2500 * H + 10 * M, T + 2500 * H + 20 * M)], busy)
    assert {c.session_id for c in found} == {"long", "s2500"}


def test_overlaps_is_symmetric() -> None:
    a, b = (T, T + H), (T + H - M, T + 2 * H)
    assert overlaps(a, b) and overlaps(b, a)
    assert not overlaps((T, T + H), (T + H, T + 2 * H))


def test_conflicts_describe_themselves() -> None:
    found = find_conflicts([req(T, T + H)], [taken(T, T + H)])
    assert "room a is taken" in str(found[0]) and "Taken" in str(found[0])
