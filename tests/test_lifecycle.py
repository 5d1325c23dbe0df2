"""The session lifecycle rules, tested as the pure functions they are."""

from __future__ import annotations

import pytest

from orchestrator import lifecycle
from orchestrator.lifecycle import (
    CANCELLED,
    ENDED,
    ENDING,
    FAILED,
    LIVE,
    PREPARING,
    SCHEDULED,
    due_transitions,
    final_warning_at,
    next_wake,
    planned_transitions,
    transition_time,
)

T = 1_800_000_000.0  # start
HOUR = 3600.0


def test_planned_transitions_of_an_hour_long_session() -> None:
    assert planned_transitions(T, T + HOUR, 60) == [
        (PREPARING, T - 60),
        (LIVE, T),
        (ENDING, T + HOUR - 300),
        (ENDED, T + HOUR),
    ]


def test_first_warning_never_comes_before_the_start() -> None:
    # A 2-minute session: the 5-minute warning would fall before T, so it comes at T.
    assert planned_transitions(T, T + 120, 30) == [
        (PREPARING, T - 30),
        (LIVE, T),
        (ENDING, T),
        (ENDED, T + 120),
    ]


def test_zero_lead_prepares_at_the_start() -> None:
    assert planned_transitions(T, T + HOUR, 0)[:2] == [(PREPARING, T), (LIVE, T)]


@pytest.mark.parametrize(("start", "end"), [(T, T), (T, T - 1)])
def test_end_not_after_start_is_rejected(start: float, end: float) -> None:
    with pytest.raises(ValueError):
        planned_transitions(start, end, 60)
    with pytest.raises(ValueError):
        due_transitions(SCHEDULED, start, end, 60, T)
    with pytest.raises(ValueError):
        next_wake(SCHEDULED, start, end, 60)
    with pytest.raises(ValueError):
        final_warning_at(start, end)


def test_negative_lead_and_unknown_state_are_rejected() -> None:
    with pytest.raises(ValueError):
        planned_transitions(T, T + HOUR, -1)
    with pytest.raises(ValueError):
        due_transitions("paused", T, T + HOUR, 60, T)


def test_final_warning_one_minute_before_the_end() -> None:
    assert final_warning_at(T, T + HOUR) == T + HOUR - 60
    assert final_warning_at(T, T + 90) == T + 30  # after the first warning at T
    assert final_warning_at(T, T + 60) is None  # would coincide with the first warning
    assert final_warning_at(T, T + 30) is None


def _walk(start: float, end: float, lead: float, times: list[float]) -> list[tuple[str, float]]:
    """Drive a session through ``times`` as a scheduler would; returns every step."""
    state, sent, steps = SCHEDULED, 0, []
    for now in times:
        for new, at in due_transitions(state, start, end, lead, now, final_warning_sent=sent >= 2):
            steps.append((new, at))
            sent += new == ENDING
            state = new
    return steps


def test_on_time_walk_takes_every_step_once_in_order() -> None:
    end = T + HOUR
    polls = [T - 61 + 0.5 * i for i in range(int((HOUR + 70) / 0.5))]
    assert _walk(T, end, 60, polls) == [
        (PREPARING, T - 60),
        (LIVE, T),
        (ENDING, end - 300),
        (ENDING, end - 60),
        (ENDED, end),
    ]


def test_nothing_is_due_before_the_lead() -> None:
    assert due_transitions(SCHEDULED, T, T + HOUR, 60, T - 60.001) == []
    assert due_transitions(SCHEDULED, T, T + HOUR, 60, T - 60) == [(PREPARING, T - 60)]


def test_resuming_late_goes_live_at_once() -> None:
    # The scheduler was down through T - lead and T: preparing and live, both due now.
    assert due_transitions(SCHEDULED, T, T + HOUR, 60, T + 600) == [
        (PREPARING, T - 60),
        (LIVE, T),
    ]
    assert due_transitions(PREPARING, T, T + HOUR, 60, T + 600) == [(LIVE, T)]


def test_resuming_inside_the_warning_period_warns() -> None:
    assert due_transitions(SCHEDULED, T, T + HOUR, 60, T + HOUR - 30) == [
        (PREPARING, T - 60),
        (LIVE, T),
        (ENDING, T + HOUR - 300),
        (ENDING, T + HOUR - 60),
    ]


def test_resuming_after_the_end_only_ends() -> None:
    for state in (SCHEDULED, PREPARING, LIVE, ENDING):
        assert due_transitions(state, T, T + HOUR, 60, T + HOUR) == [(ENDED, T + HOUR)]
        assert due_transitions(state, T, T + HOUR, 60, T + 10 * HOUR) == [(ENDED, T + HOUR)]


@pytest.mark.parametrize("state", [ENDED, CANCELLED, FAILED])
def test_terminal_states_yield_nothing(state: str) -> None:
    assert lifecycle.is_terminal(state)
    assert due_transitions(state, T, T + HOUR, 60, T + 2 * HOUR) == []
    assert due_transitions(state, T, T + HOUR, 60, T - HOUR) == []
    assert next_wake(state, T, T + HOUR, 60) is None


def test_never_goes_backwards() -> None:
    # A live session whose start was moved later is not sent back to preparing.
    assert due_transitions(LIVE, T + HOUR, T + 2 * HOUR, 60, T) == []
    assert due_transitions(ENDING, T, T + HOUR, 60, T + 1, final_warning_sent=True) == []


def test_final_warning_is_sent_once() -> None:
    now = T + HOUR - 30
    assert due_transitions(ENDING, T, T + HOUR, 60, now) == [(ENDING, T + HOUR - 60)]
    assert due_transitions(ENDING, T, T + HOUR, 60, now, final_warning_sent=True) == []


def test_an_extended_session_in_ending_is_warned_again_for_its_new_end() -> None:
    end = T + HOUR + 1800  # extended by 30 minutes after both warnings went out
    kw = {"final_warning_sent": False, "first_warning_sent": False}
    assert due_transitions(ENDING, T, end, 60, T + HOUR, **kw) == []
    assert next_wake(ENDING, T, end, 60, **kw) == end - 300
    assert due_transitions(ENDING, T, end, 60, end - 300, **kw) == [(ENDING, end - 300)]
    # A late step catches up with both, in order.
    assert due_transitions(ENDING, T, end, 60, end - 30, **kw) == [
        (ENDING, end - 300),
        (ENDING, end - 60),
    ]
    first_sent = {"final_warning_sent": False, "first_warning_sent": True}
    assert due_transitions(ENDING, T, end, 60, end - 300, **first_sent) == []


def test_tiny_session_goes_live_and_warns_at_the_start() -> None:
    start, end = T, T + 90
    assert due_transitions(PREPARING, start, end, 10, start) == [(LIVE, start), (ENDING, start)]
    polls = [start - 11 + 0.5 * i for i in range(250)]
    assert _walk(start, end, 10, polls) == [
        (PREPARING, start - 10),
        (LIVE, start),
        (ENDING, start),
        (ENDING, start + 30),
        (ENDED, end),
    ]


def test_one_second_session() -> None:
    polls = [T - 2 + 0.25 * i for i in range(20)]
    assert _walk(T, T + 1, 1, polls) == [
        (PREPARING, T - 1),
        (LIVE, T),
        (ENDING, T),
        (ENDED, T + 1),
    ]


def test_next_wake_follows_the_plan() -> None:
    end = T + HOUR
    assert next_wake(SCHEDULED, T, end, 60) == T - 60
    assert next_wake(PREPARING, T, end, 60) == T
    assert next_wake(LIVE, T, end, 60) == end - 300
    assert next_wake(ENDING, T, end, 60) == end - 60
    assert next_wake(ENDING, T, end, 60, final_warning_sent=True) == end
    assert next_wake(ENDING, T, T + 60, 60) == T + 60  # no final warning to wait for


def test_transition_time_is_planned_when_on_time_else_now() -> None:
    assert transition_time(T, T + 0.4, tolerance=1.0) == T
    assert transition_time(T, T + 1.0, tolerance=1.0) == T
    assert transition_time(T, T + 30, tolerance=1.0) == T + 30
    assert transition_time(T, T - 1, tolerance=1.0) == T - 1  # early: what happened
