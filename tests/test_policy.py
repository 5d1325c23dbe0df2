"""Booking policy, as pure functions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from orchestrator.booking import policy
from orchestrator.booking.policy import BookingSettings, PolicyError, RoomPolicy

NOW = datetime(2027, 1, 4, 8, 0, tzinfo=UTC)


def _code(fn: object, *args: object, **kw: object) -> str:
    with pytest.raises(PolicyError) as exc:
        fn(*args, **kw)  # type: ignore[operator]
    return exc.value.code


def test_connect_modes_and_the_manual_alias() -> None:
    assert policy.connect_mode("automatic") == "automatic"
    assert policy.connect_mode("one-button") == "one-button"
    assert policy.connect_mode("reserve-only") == "reserve-only"
    assert policy.connect_mode("manual") == "one-button"
    assert _code(policy.connect_mode, "telepathic") == "invalid-connect-mode"


def test_all_day_occurrences_never_auto_connect() -> None:
    for mode in ("automatic", "one-button", "manual", "reserve-only"):
        assert policy.connect_mode(mode, all_day=True) == "reserve-only"


def test_who_is_expected_to_join() -> None:
    assert policy.joins_call("automatic") and policy.joins_call("manual")
    assert not policy.joins_call("reserve-only")


@pytest.mark.parametrize(("lead", "ok"), [(0, True), (3600, True), (-1, False), (3601, False)])
def test_lead_is_between_0_and_3600_seconds(lead: int, ok: bool) -> None:
    if ok:
        assert policy.check_lead(lead) == lead
    else:
        assert _code(policy.check_lead, lead) == "invalid-lead"


def test_settings_defaults_and_validation() -> None:
    settings = BookingSettings()
    assert (settings.horizon_days, settings.max_occurrences, settings.no_show_seconds) == (
        180,
        1000,
        600,
    )
    for bad in ({"horizon_days": 0}, {"max_occurrences": 0}, {"no_show_seconds": -1}):
        with pytest.raises(ValueError):
            BookingSettings(**bad)


def test_the_horizon_is_never_shorter_than_a_room_booking_window() -> None:
    settings = BookingSettings(horizon_days=30)
    assert policy.horizon(settings) == timedelta(days=30)
    assert policy.horizon(settings, [7, 14]) == timedelta(days=30)
    assert policy.horizon(settings, [7, 365]) == timedelta(days=365)


def test_room_maximum_duration() -> None:
    rooms = [RoomPolicy("a"), RoomPolicy("b", max_duration_seconds=7200)]
    policy.check_duration(timedelta(hours=2), rooms)
    assert _code(policy.check_duration, timedelta(hours=2, seconds=1), rooms) == "too-long"
    assert _code(policy.check_duration, timedelta(0), rooms) == "invalid-time"


def test_room_booking_window() -> None:
    rooms = [RoomPolicy("a"), RoomPolicy("b", max_advance_days=30)]
    policy.check_advance(NOW + timedelta(days=30), rooms, NOW)
    assert _code(policy.check_advance, NOW + timedelta(days=31), rooms, NOW) == "too-far-ahead"
    assert RoomPolicy("c").max_advance_days == 180


def test_no_show_deadline() -> None:
    assert policy.no_show_deadline(NOW, BookingSettings()) == NOW + timedelta(minutes=10)
    assert RoomPolicy("a", buffer_seconds=900).buffer == timedelta(minutes=15)
