"""Series expansion in wall-clock time: DST, the gap/overlap rule, RRULE parts,
exceptions, overrides and the bounds that keep expansion finite.

Dates: in 2027 the EU changes on 28 March and 31 October, the US and Canada on
14 March and 7 November, so Paris and Montreal are 5 hours apart for two weeks in
March and one week in autumn, and 6 hours apart otherwise.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from itertools import islice
from zoneinfo import ZoneInfo

import pytest
from dateutil.rrule import rrulestr

from orchestrator.booking.recurrence import (
    Expansion,
    RecurrenceError,
    expand,
    expand_with_info,
    localize,
    to_wall,
)
from orchestrator.booking.rrule import ScanBudget, parse_rule, walk_rule
from orchestrator.booking.values import CANCELLED, CONFIRMED, Occurrence, OverrideSpec, SeriesSpec

PARIS = "Europe/Paris"
MONTREAL = "America/Montreal"
HOUR = timedelta(hours=1)
YEAR_2027 = (datetime(2027, 1, 1, tzinfo=UTC), datetime(2028, 1, 1, tzinfo=UTC))


def series(start: datetime, *rrules: str, zone: str = PARIS, **kw: object) -> SeriesSpec:
    return SeriesSpec(
        uid="u1",
        title="Point hebdomadaire",
        timezone=zone,
        start_local=start,
        duration=kw.pop("duration", HOUR),  # type: ignore[arg-type]
        rrules=rrules,
        **kw,  # type: ignore[arg-type]
    )


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%MZ")


def starts(occurrences: list[Occurrence]) -> list[str]:
    return [stamp(o.start) for o in occurrences]


def in_year(spec: SeriesSpec, max_count: int = 500) -> list[Occurrence]:
    return expand(spec, *YEAR_2027, max_count)


# --------------------------------------------------------------------------- DST


def test_weekly_nine_oclock_paris_stays_at_nine_across_the_march_and_october_changes() -> None:
    spec = series(datetime(2027, 3, 15, 9), "FREQ=WEEKLY;BYDAY=MO;UNTIL=20271108T235959Z")
    found = in_year(spec)
    assert {o.start_local.time().isoformat() for o in found} == {"09:00:00"}
    assert {o.end_local.time().isoformat() for o in found} == {"10:00:00"}
    by_date = {o.start_local.date().isoformat(): stamp(o.start) for o in found}
    assert by_date["2027-03-15"] == "2027-03-15T08:00Z"
    assert by_date["2027-03-22"] == "2027-03-22T08:00Z"  # last Monday in CET
    assert by_date["2027-03-29"] == "2027-03-29T07:00Z"  # first Monday in CEST
    assert by_date["2027-10-25"] == "2027-10-25T07:00Z"  # last Monday in CEST
    assert by_date["2027-11-01"] == "2027-11-01T08:00Z"  # back to CET
    assert by_date["2027-11-08"] == "2027-11-08T08:00Z"
    assert len(found) == 35
    assert all(o.end - o.start == HOUR for o in found)


@pytest.mark.parametrize(
    ("monday", "utc_start", "montreal", "hours_apart"),
    [
        ("2027-03-08", "2027-03-08T08:00Z", "2027-03-08T03:00", 6),  # CET / EST
        ("2027-03-15", "2027-03-15T08:00Z", "2027-03-15T04:00", 5),  # CET / EDT
        ("2027-03-22", "2027-03-22T08:00Z", "2027-03-22T04:00", 5),  # CET / EDT
        ("2027-03-29", "2027-03-29T07:00Z", "2027-03-29T03:00", 6),  # CEST / EDT
        ("2027-10-25", "2027-10-25T07:00Z", "2027-10-25T03:00", 6),  # CEST / EDT
        ("2027-11-01", "2027-11-01T08:00Z", "2027-11-01T04:00", 5),  # CET / EDT
        ("2027-11-08", "2027-11-08T08:00Z", "2027-11-08T03:00", 6),  # CET / EST
    ],
)
def test_paris_booking_seen_from_a_montreal_room(
    monday: str, utc_start: str, montreal: str, hours_apart: int
) -> None:
    spec = series(datetime(2027, 3, 1, 9), "FREQ=WEEKLY;BYDAY=MO")
    found = {o.start_local.date().isoformat(): o for o in in_year(spec)}
    occurrence = found[monday]
    assert stamp(occurrence.start) == utc_start
    assert occurrence.start_local == datetime.fromisoformat(f"{monday}T09:00")
    seen = occurrence.start.astimezone(ZoneInfo(MONTREAL)).replace(tzinfo=None)
    assert seen.isoformat(timespec="minutes") == montreal
    assert occurrence.start_local - seen == timedelta(hours=hours_apart)
    seen_end = to_wall(occurrence.end, MONTREAL)
    assert seen_end - seen == HOUR


@pytest.mark.parametrize(
    ("wall", "zone", "instant"),
    [
        # Spring gap: read with the offset before the gap, i.e. moved forward by it.
        ("2027-03-28T02:30", PARIS, "2027-03-28T01:30Z"),  # = 03:30 CEST
        ("2027-03-28T02:00", PARIS, "2027-03-28T01:00Z"),  # = 03:00 CEST
        ("2027-03-28T01:59", PARIS, "2027-03-28T00:59Z"),
        ("2027-03-28T03:00", PARIS, "2027-03-28T01:00Z"),
        ("2027-03-14T02:30", MONTREAL, "2027-03-14T07:30Z"),  # = 03:30 EDT
        ("2027-10-03T02:15", "Australia/Lord_Howe", "2027-10-02T15:45Z"),  # 30-minute gap
        # Autumn overlap: the first of the two, the earlier instant.
        ("2027-10-31T02:30", PARIS, "2027-10-31T00:30Z"),  # 02:30 CEST, not CET
        ("2027-10-31T02:00", PARIS, "2027-10-31T00:00Z"),
        ("2027-10-31T03:00", PARIS, "2027-10-31T02:00Z"),
        ("2027-11-07T01:30", MONTREAL, "2027-11-07T05:30Z"),  # 01:30 EDT, not EST
        # Ordinary times.
        ("2027-07-01T09:00", PARIS, "2027-07-01T07:00Z"),
        ("2027-01-01T09:00", "UTC", "2027-01-01T09:00Z"),
    ],
)
def test_gap_and_overlap_rule(wall: str, zone: str, instant: str) -> None:
    assert stamp(localize(datetime.fromisoformat(wall), zone)) == instant


def test_localize_refuses_unknown_zones_and_aware_times() -> None:
    for zone in ("Mars/Olympus_Mons", "", "../etc/passwd", "Europe/"):
        with pytest.raises(RecurrenceError) as caught:
            localize(datetime(2027, 3, 1, 9), zone)
        assert caught.value.code == "unknown-timezone"
        assert isinstance(caught.value, ValueError)
    with pytest.raises(RecurrenceError) as caught:
        localize(datetime(2027, 3, 1, 9, tzinfo=UTC), PARIS)
    assert caught.value.code == "aware-wall-time"


def test_daily_series_through_the_gap_and_the_overlap() -> None:
    spec = series(datetime(2027, 3, 27, 2, 30), "FREQ=DAILY;COUNT=3")
    found = in_year(spec)
    assert [(stamp(o.start), o.start_local.isoformat()) for o in found] == [
        ("2027-03-27T01:30Z", "2027-03-27T02:30:00"),
        ("2027-03-28T01:30Z", "2027-03-28T03:30:00"),  # the gap: one hour later locally
        ("2027-03-29T00:30Z", "2027-03-29T02:30:00"),
    ]
    assert stamp(found[1].recurrence_id) == "2027-03-28T01:30Z"

    autumn = series(datetime(2027, 10, 30, 2, 30), "FREQ=DAILY;COUNT=3")
    found = in_year(autumn)
    assert [
        (stamp(o.start), o.start_local.isoformat(), o.end_local.isoformat()) for o in found
    ] == [
        ("2027-10-30T00:30Z", "2027-10-30T02:30:00", "2027-10-30T03:30:00"),
        # The first 02:30 (CEST); an hour later it is 02:30 again, in CET.
        ("2027-10-31T00:30Z", "2027-10-31T02:30:00", "2027-10-31T02:30:00"),
        ("2027-11-01T01:30Z", "2027-11-01T02:30:00", "2027-11-01T03:30:00"),
    ]


def test_all_day_series_occupies_local_midnight_to_midnight() -> None:
    spec = series(
        datetime(2027, 3, 27), "FREQ=DAILY;COUNT=3", all_day=True, duration=timedelta(days=1)
    )
    found = in_year(spec)
    assert [(stamp(o.start), stamp(o.end)) for o in found] == [
        ("2027-03-26T23:00Z", "2027-03-27T23:00Z"),
        ("2027-03-27T23:00Z", "2027-03-28T22:00Z"),  # the 23-hour day
        ("2027-03-28T22:00Z", "2027-03-29T22:00Z"),
    ]
    assert {o.start_local.time().isoformat() for o in found} == {"00:00:00"}
    assert {o.end_local.time().isoformat() for o in found} == {"00:00:00"}


# --------------------------------------------------------------------------- RRULE parts


@pytest.mark.parametrize(
    ("start", "rule", "expected"),
    [
        ("2027-03-01T09:00", "FREQ=DAILY;COUNT=3", ["2027-03-01", "2027-03-02", "2027-03-03"]),
        (
            "2027-03-01T09:00",
            "FREQ=DAILY;INTERVAL=3;COUNT=4",
            ["2027-03-01", "2027-03-04", "2027-03-07", "2027-03-10"],
        ),
        # UNTIL as a floating wall time is inclusive.
        (
            "2027-03-01T09:00",
            "FREQ=DAILY;UNTIL=20270303T090000",
            ["2027-03-01", "2027-03-02", "2027-03-03"],
        ),
        # UNTIL in UTC with a TZID start (RFC 5545 requires this form): 09:00 CET is 08:00Z.
        (
            "2027-03-01T09:00",
            "FREQ=DAILY;UNTIL=20270303T080000Z",
            ["2027-03-01", "2027-03-02", "2027-03-03"],
        ),
        ("2027-03-01T09:00", "FREQ=DAILY;UNTIL=20270303T075959Z", ["2027-03-01", "2027-03-02"]),
        # UNTIL as a date covers that whole local day.
        (
            "2027-03-01T09:00",
            "FREQ=DAILY;UNTIL=20270303",
            ["2027-03-01", "2027-03-02", "2027-03-03"],
        ),
        # After the change, 09:00 CEST is 07:00Z: a UTC UNTIL is compared as an instant.
        ("2027-03-29T09:00", "FREQ=DAILY;UNTIL=20270330T070000Z", ["2027-03-29", "2027-03-30"]),
        (
            "2027-01-12T18:00",
            "FREQ=MONTHLY;BYDAY=2TU;COUNT=4",
            ["2027-01-12", "2027-02-09", "2027-03-09", "2027-04-13"],
        ),
        (
            "2027-01-29T18:00",
            "FREQ=MONTHLY;BYDAY=-1FR;COUNT=3",
            ["2027-01-29", "2027-02-26", "2027-03-26"],
        ),
        # Day 31 only in the months that have one (RFC 5545: invalid dates are ignored).
        (
            "2027-01-31T10:00",
            "FREQ=MONTHLY;COUNT=4",
            ["2027-01-31", "2027-03-31", "2027-05-31", "2027-07-31"],
        ),
        # The last weekday of the month.
        (
            "2027-01-29T10:00",
            "FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1;COUNT=3",
            ["2027-01-29", "2027-02-26", "2027-03-31"],
        ),
        (
            "2027-03-01T10:00",
            "FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,TH;COUNT=4",
            ["2027-03-01", "2027-03-04", "2027-03-15", "2027-03-18"],
        ),
        ("2027-02-28T10:00", "FREQ=YEARLY;COUNT=2", ["2027-02-28", "2028-02-28"]),
    ],
)
def test_rrule_parts(start: str, rule: str, expected: list[str]) -> None:
    spec = series(datetime.fromisoformat(start), rule)
    found = expand(spec, datetime(2027, 1, 1, tzinfo=UTC), datetime(2029, 1, 1, tzinfo=UTC), 50)
    assert [o.start_local.date().isoformat() for o in found] == expected
    assert {o.start_local.time() for o in found} == {datetime.fromisoformat(start).time()}


def test_several_rrules_are_a_union_without_duplicates() -> None:
    spec = series(
        datetime(2027, 1, 12, 18), "FREQ=MONTHLY;BYDAY=2TU;COUNT=3", "FREQ=WEEKLY;BYDAY=TU;COUNT=2"
    )
    assert [o.start_local.date().isoformat() for o in in_year(spec)] == [
        "2027-01-12",
        "2027-01-19",
        "2027-02-09",
        "2027-03-09",
    ]


def test_dtstart_always_counts_as_the_first_occurrence() -> None:
    """RFC 5545 3.3.10 COUNT: "The DTSTART property value always counts as the first
    occurrence", even when the rule would not pick it (a Wednesday start, Monday rule)."""
    spec = series(datetime(2027, 3, 3, 9), "FREQ=WEEKLY;BYDAY=MO;COUNT=3")
    assert [o.start_local.date().isoformat() for o in in_year(spec)] == [
        "2027-03-03",
        "2027-03-08",
        "2027-03-15",
    ]


def test_exdate_and_rdate() -> None:
    spec = series(
        datetime(2027, 3, 1, 9),
        "FREQ=WEEKLY;COUNT=4",
        exdates=(datetime(2027, 3, 8, 9), datetime(2027, 3, 1, 9), datetime(2027, 3, 9, 9)),
        rdates=(datetime(2027, 3, 10, 14), datetime(2027, 3, 15, 9)),
    )
    assert [o.start_local.isoformat() for o in in_year(spec)] == [
        "2027-03-10T14:00:00",  # RDATE
        "2027-03-15T09:00:00",  # rule and RDATE: once
        "2027-03-22T09:00:00",
    ]


def test_exdate_matches_the_instant_of_a_gap_start() -> None:
    # The rule's 02:30 on the spring day is 03:30 CEST; an EXDATE written as 03:30 removes it.
    spec = series(
        datetime(2027, 3, 27, 2, 30), "FREQ=DAILY;COUNT=3", exdates=(datetime(2027, 3, 28, 3, 30),)
    )
    assert [o.start_local.date().isoformat() for o in in_year(spec)] == ["2027-03-27", "2027-03-29"]


# --------------------------------------------------------------------------- overrides


def override(rid: datetime, start: datetime, **kw: object) -> OverrideSpec:
    return OverrideSpec(
        recurrence_id=rid,
        start_local=start,
        duration=kw.pop("duration", HOUR),  # type: ignore[arg-type]
        **kw,  # type: ignore[arg-type]
    )


def rows(found: list[Occurrence]) -> list[tuple[str, str, str, str, str | None]]:
    return [
        (
            stamp(o.recurrence_id),
            o.start_local.isoformat(),
            o.end_local.isoformat(),
            o.status,
            o.title,
        )
        for o in found
    ]


def test_override_moves_retitles_and_cancels_single_occurrences() -> None:
    spec = series(
        datetime(2027, 3, 1, 9),
        "FREQ=WEEKLY;COUNT=4",
        overrides=(
            override(datetime(2027, 3, 8, 9), datetime(2027, 3, 9, 14), title="Moved"),
            override(datetime(2027, 3, 15, 9), datetime(2027, 3, 15, 9), status=CANCELLED),
            # Not in the set: still an occurrence, as the explicit VEVENT exists.
            override(datetime(2027, 3, 3, 9), datetime(2027, 3, 3, 11), title="Extra"),
        ),
    )
    found = in_year(spec)
    assert rows(found) == [
        (
            "2027-03-01T08:00Z",
            "2027-03-01T09:00:00",
            "2027-03-01T10:00:00",
            CONFIRMED,
            "Point hebdomadaire",
        ),
        ("2027-03-03T08:00Z", "2027-03-03T11:00:00", "2027-03-03T12:00:00", CONFIRMED, "Extra"),
        ("2027-03-08T08:00Z", "2027-03-09T14:00:00", "2027-03-09T15:00:00", CONFIRMED, "Moved"),
        (
            "2027-03-15T08:00Z",
            "2027-03-15T09:00:00",
            "2027-03-15T10:00:00",
            CANCELLED,
            "Point hebdomadaire",
        ),
        (
            "2027-03-22T08:00Z",
            "2027-03-22T09:00:00",
            "2027-03-22T10:00:00",
            CONFIRMED,
            "Point hebdomadaire",
        ),
    ]
    assert [o.blocks for o in found] == [True, True, True, False, True]


def test_override_moved_into_the_window_from_outside_and_out_of_it() -> None:
    spec = series(
        datetime(2027, 3, 1, 9),
        "FREQ=WEEKLY;COUNT=10",
        overrides=(
            override(datetime(2027, 5, 3, 9), datetime(2027, 3, 2, 9)),  # May -> March
            override(datetime(2027, 3, 8, 9), datetime(2027, 6, 8, 9)),  # March -> June
        ),
    )
    march = expand(spec, utc("2027-03-01T00:00"), utc("2027-04-01T00:00"), 50)
    assert [(stamp(o.recurrence_id), o.start_local.isoformat()) for o in march] == [
        ("2027-03-01T08:00Z", "2027-03-01T09:00:00"),
        ("2027-05-03T07:00Z", "2027-03-02T09:00:00"),
        ("2027-03-15T08:00Z", "2027-03-15T09:00:00"),
        ("2027-03-22T08:00Z", "2027-03-22T09:00:00"),
        ("2027-03-29T07:00Z", "2027-03-29T09:00:00"),
    ]


def test_this_and_future_shifts_every_later_occurrence() -> None:
    spec = series(
        datetime(2027, 9, 2, 14),
        "FREQ=WEEKLY;COUNT=10",
        overrides=(
            override(
                datetime(2027, 10, 7, 14),
                datetime(2027, 10, 7, 16),
                duration=timedelta(minutes=90),
                title="New time",
                this_and_future=True,
            ),
            # A later single override still wins for its own occurrence.
            override(datetime(2027, 10, 28, 14), datetime(2027, 10, 29, 9), title="Friday"),
        ),
    )
    found = in_year(spec)
    assert rows(found)[5:] == [
        ("2027-10-07T12:00Z", "2027-10-07T16:00:00", "2027-10-07T17:30:00", CONFIRMED, "New time"),
        ("2027-10-14T12:00Z", "2027-10-14T16:00:00", "2027-10-14T17:30:00", CONFIRMED, "New time"),
        ("2027-10-21T12:00Z", "2027-10-21T16:00:00", "2027-10-21T17:30:00", CONFIRMED, "New time"),
        ("2027-10-28T12:00Z", "2027-10-29T09:00:00", "2027-10-29T10:00:00", CONFIRMED, "Friday"),
        # After the autumn change the shift stays two wall-clock hours.
        ("2027-11-04T13:00Z", "2027-11-04T16:00:00", "2027-11-04T17:30:00", CONFIRMED, "New time"),
    ]
    assert [o.start_local.isoformat() for o in found[:5]] == [
        "2027-09-02T14:00:00",
        "2027-09-09T14:00:00",
        "2027-09-16T14:00:00",
        "2027-09-23T14:00:00",
        "2027-09-30T14:00:00",
    ]


def test_a_second_this_and_future_takes_over_from_its_date() -> None:
    spec = series(
        datetime(2027, 3, 1, 9),
        "FREQ=WEEKLY;COUNT=5",
        overrides=(
            override(datetime(2027, 3, 8, 9), datetime(2027, 3, 8, 10), this_and_future=True),
            override(
                datetime(2027, 3, 22, 9),
                datetime(2027, 3, 22, 8),
                this_and_future=True,
                status=CANCELLED,
            ),
        ),
    )
    found = in_year(spec)
    assert [(o.start_local.isoformat(timespec="minutes"), o.status) for o in found] == [
        ("2027-03-01T09:00", CONFIRMED),
        ("2027-03-08T10:00", CONFIRMED),
        ("2027-03-15T10:00", CONFIRMED),
        ("2027-03-22T08:00", CANCELLED),
        ("2027-03-29T08:00", CANCELLED),
    ]


def test_cancelled_and_transparent_series_never_block() -> None:
    spec = series(datetime(2027, 3, 1, 9), "FREQ=DAILY;COUNT=2", status=CANCELLED)
    assert [(o.status, o.blocks) for o in in_year(spec)] == [(CANCELLED, False)] * 2
    spec = series(datetime(2027, 3, 1, 9), "FREQ=DAILY;COUNT=2", transparent=True)
    assert [(o.status, o.transparent, o.blocks) for o in in_year(spec)] == [
        (CONFIRMED, True, False)
    ] * 2


# --------------------------------------------------------------------------- bounds


def test_window_is_half_open_and_catches_straddling_occurrences() -> None:
    spec = series(datetime(2027, 3, 1, 9), "FREQ=DAILY;COUNT=5")  # 08:00-09:00Z each day
    assert starts(expand(spec, utc("2027-03-02T08:30"), utc("2027-03-04T08:00"), 10)) == [
        "2027-03-02T08:00Z",  # ends after since: overlaps
        "2027-03-03T08:00Z",
    ]  # 03-04 starts at until: out
    assert starts(expand(spec, utc("2027-03-02T09:00"), utc("2027-03-03T08:00:01"), 10)) == [
        "2027-03-03T08:00Z"
    ]  # 03-02 ends at since: out


def test_max_count_keeps_the_first_and_says_it_cut() -> None:
    spec = series(datetime(2027, 3, 1, 9), "FREQ=DAILY")
    cut = expand_with_info(spec, *YEAR_2027, 5)
    assert isinstance(cut, Expansion)
    assert starts(list(cut.occurrences)) == [f"2027-03-0{d}T08:00Z" for d in range(1, 6)]
    assert cut.truncated
    whole = expand_with_info(replace(spec, rrules=("FREQ=DAILY;COUNT=5",)), *YEAR_2027, 5)
    assert len(whole.occurrences) == 5 and not whole.truncated
    assert expand_with_info(spec, *YEAR_2027, 0) == Expansion((), True)


def _counting_steps(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the walk's budget steps: the work an expansion does, which (unlike its
    wall time on a loaded machine) a test can bound. Speed is bench/calendar's."""
    spent = [0]
    spend = ScanBudget.spend

    def counted(self: ScanBudget) -> bool:
        spent[0] += 1
        return spend(self)

    monkeypatch.setattr(ScanBudget, "spend", counted)
    return spent


def test_an_old_daily_series_jumps_to_the_window(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = series(datetime(1990, 1, 1, 9), "FREQ=DAILY")
    spent = _counting_steps(monkeypatch)
    found = expand(spec, utc("2027-07-01T00:00"), utc("2027-07-03T00:00"), 10)
    assert spent[0] < 100  # not the ~13,700 days since 1990 (13 steps today)
    assert starts(found) == ["2027-07-01T07:00Z", "2027-07-02T07:00Z"]


@pytest.mark.parametrize(
    "rule",
    [
        "FREQ=SECONDLY",
        "FREQ=MINUTELY;COUNT=1000000000",
        "FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30",  # never matches: dateutil walks to year 9999
        "FREQ=SECONDLY;BYMONTH=2;BYMONTHDAY=30",
        "FREQ=DAILY;BYSETPOS=2",
        "FREQ=YEARLY;BYYEARDAY=366;BYMONTH=1",
    ],
)
@pytest.mark.timeout(60)  # a hang guard, not a speed figure
def test_unbounded_or_impossible_rules_end_quickly(
    rule: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = series(datetime(1990, 3, 1, 9), rule)
    spent = _counting_steps(monkeypatch)
    result = expand_with_info(spec, *YEAR_2027, 1000)
    # The scan budget: 20,000 steps plus 10 per occurrence asked for, and one refused.
    assert spent[0] <= 20_000 + 10 * 1000 + 1
    assert len(result.occurrences) <= 1000
    if result.occurrences:
        assert result.truncated


def test_secondly_rule_near_the_window_is_cut_with_a_correct_prefix() -> None:
    spec = series(datetime(2027, 3, 1, 9), "FREQ=SECONDLY", duration=timedelta(seconds=1))
    result = expand_with_info(spec, utc("2027-03-01T08:00"), utc("2027-03-02T08:00"), 100)
    assert result.truncated
    assert [o.start for o in result.occurrences] == [
        utc("2027-03-01T08:00") + timedelta(seconds=s) for s in range(100)
    ]


def test_errors_carry_codes() -> None:
    with pytest.raises(RecurrenceError) as caught:
        expand(series(datetime(2027, 3, 1, 9), "FREQ=FORTNIGHTLY"), *YEAR_2027, 5)
    assert caught.value.code == "bad-rrule"
    with pytest.raises(RecurrenceError) as caught:
        expand(series(datetime(2027, 3, 1, 9), zone="Mars/Olympus_Mons"), *YEAR_2027, 5)
    assert caught.value.code == "unknown-timezone"
    with pytest.raises(RecurrenceError) as caught:
        expand(series(datetime(2027, 3, 1, 9)), datetime(2027, 1, 1), datetime(2028, 1, 1), 5)
    assert caught.value.code == "bad-window"


@pytest.mark.parametrize(
    "rule",
    [
        "",
        "COUNT=3",
        "FREQ=WEEKLY;FREQ=DAILY",
        "FREQ=DAILY;COUNT=0",
        "FREQ=DAILY;INTERVAL=0",
        "FREQ=DAILY;BYHOUR=24",
        "FREQ=MONTHLY;BYMONTHDAY=0",
        "FREQ=MONTHLY;BYDAY=9XX",
        "FREQ=MONTHLY;BYDAY=54MO",
        "FREQ=DAILY;UNTIL=20271301",
        "FREQ=DAILY;UNTIL=tomorrow",
        "FREQ=DAILY;WKST=XX",
        "FREQ=DAILY;BYSETPOS=400",
        "FREQ=DAILY;COUNT",
        "FREQ=DAILY;RSCALE=HEBREW",
    ],
)
def test_bad_rrules_are_refused(rule: str) -> None:
    with pytest.raises(RecurrenceError) as caught:
        parse_rule(rule)
    assert caught.value.code == "bad-rrule"


# --------------------------------------------------------------------------- RFC 5545 examples


RFC_EXAMPLES = [
    ("19970902T090000", "FREQ=DAILY;COUNT=10"),
    ("19970902T090000", "FREQ=DAILY;UNTIL=19971224T000000"),
    ("19970902T090000", "FREQ=DAILY;INTERVAL=2"),
    ("19970902T090000", "FREQ=DAILY;INTERVAL=10;COUNT=5"),
    ("19980101T090000", "FREQ=YEARLY;UNTIL=20000131T140000;BYMONTH=1;BYDAY=SU,MO,TU,WE,TH,FR,SA"),
    ("19980101T090000", "FREQ=DAILY;UNTIL=20000131T140000;BYMONTH=1"),
    ("19970902T090000", "FREQ=WEEKLY;COUNT=10"),
    ("19970902T090000", "FREQ=WEEKLY;INTERVAL=2;WKST=SU"),
    ("19970902T090000", "FREQ=WEEKLY;UNTIL=19971007T000000;WKST=SU;BYDAY=TU,TH"),
    ("19970901T090000", "FREQ=WEEKLY;INTERVAL=2;UNTIL=19971224T000000;WKST=SU;BYDAY=MO,WE,FR"),
    ("19970902T090000", "FREQ=WEEKLY;INTERVAL=2;COUNT=8;WKST=SU;BYDAY=TU,TH"),
    ("19970905T090000", "FREQ=MONTHLY;COUNT=10;BYDAY=1FR"),
    ("19970907T090000", "FREQ=MONTHLY;INTERVAL=2;COUNT=10;BYDAY=1SU,-1SU"),
    ("19970922T090000", "FREQ=MONTHLY;COUNT=6;BYDAY=-2MO"),
    ("19970928T090000", "FREQ=MONTHLY;BYMONTHDAY=-3"),
    ("19970902T090000", "FREQ=MONTHLY;COUNT=10;BYMONTHDAY=2,15"),
    ("19970930T090000", "FREQ=MONTHLY;COUNT=10;BYMONTHDAY=1,-1"),
    ("19970910T090000", "FREQ=MONTHLY;INTERVAL=18;COUNT=10;BYMONTHDAY=10,11,12,13,14,15"),
    ("19970902T090000", "FREQ=MONTHLY;INTERVAL=2;BYDAY=TU"),
    ("19970610T090000", "FREQ=YEARLY;COUNT=10;BYMONTH=6,7"),
    ("19970310T090000", "FREQ=YEARLY;INTERVAL=2;COUNT=10;BYMONTH=1,2,3"),
    ("19970101T090000", "FREQ=YEARLY;INTERVAL=3;COUNT=10;BYYEARDAY=1,100,200"),
    ("19970519T090000", "FREQ=YEARLY;BYDAY=20MO"),
    ("19970512T090000", "FREQ=YEARLY;BYWEEKNO=20;BYDAY=MO"),
    ("19970313T090000", "FREQ=YEARLY;BYMONTH=3;BYDAY=TH"),
    ("19970605T090000", "FREQ=YEARLY;BYDAY=TH;BYMONTH=6,7,8"),
    ("19980213T090000", "FREQ=MONTHLY;BYDAY=FR;BYMONTHDAY=13"),
    ("19970913T090000", "FREQ=MONTHLY;BYDAY=SA;BYMONTHDAY=7,8,9,10,11,12,13"),
    ("19961105T090000", "FREQ=YEARLY;INTERVAL=4;BYMONTH=11;BYDAY=TU;BYMONTHDAY=2,3,4,5,6,7,8"),
    ("19970904T090000", "FREQ=MONTHLY;COUNT=3;BYDAY=TU,WE,TH;BYSETPOS=3"),
    ("19970929T090000", "FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-2"),
    ("19970902T090000", "FREQ=HOURLY;INTERVAL=3;UNTIL=19970902T170000"),
    ("19970902T090000", "FREQ=MINUTELY;INTERVAL=15;COUNT=6"),
    ("19970902T090000", "FREQ=MINUTELY;INTERVAL=90;COUNT=4"),
    ("19970902T090000", "FREQ=DAILY;BYHOUR=9,10,11,12,13,14,15,16;BYMINUTE=0,20,40"),
    ("19970902T090000", "FREQ=MINUTELY;INTERVAL=20;BYHOUR=9,10,11,12,13,14,15,16"),
    ("19970805T090000", "FREQ=WEEKLY;INTERVAL=2;COUNT=4;BYDAY=TU,SU;WKST=MO"),
    ("19970805T090000", "FREQ=WEEKLY;INTERVAL=2;COUNT=4;BYDAY=TU,SU;WKST=SU"),
    ("20070115T090000", "FREQ=MONTHLY;BYMONTHDAY=15,30;COUNT=5"),
]


@pytest.mark.parametrize(("dtstart", "rule"), RFC_EXAMPLES)
def test_rfc_5545_examples_match_dateutil(dtstart: str, rule: str) -> None:
    """The RFC 5545 3.8.5.3 examples (UNTIL floating, forever rules cut at 100), checked
    against python-dateutil as an independent reading of the RFC."""
    first = datetime.strptime(dtstart, "%Y%m%dT%H%M%S")
    reference = list(islice(rrulestr(rule, dtstart=first), 100))
    assert reference[0] == first, "the example's DTSTART is synchronised with its rule"
    parsed = parse_rule(rule)
    until = parsed.until

    def past_until(wall: datetime) -> bool:
        return isinstance(until, datetime) and wall > until

    walk = walk_rule(
        parsed,
        first,
        start_from=first,
        stop_after=datetime(2500, 1, 1),
        past_until=past_until,
        budget=ScanBudget(100_000),
    )
    assert list(islice(walk, 100)) == reference
