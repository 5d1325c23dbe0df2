"""The session lifecycle as pure functions of (state, start, end, lead, now).

``scheduled -> preparing -> live -> ending -> ended``, plus the terminal
``cancelled`` and ``failed`` set by commands, never by the clock.

- preparing at ``start - lead``: agents join and negotiate behind a "starting" card;
- live at ``start``: cameras on;
- ending at ``max(start, end - 300)``: the first end-of-meeting warning;
- ended at ``end``: agents leave.

The final warning at ``end - 60`` is a second *notification* in state ``ending``,
not a state of its own: ``due_transitions`` yields it as ``("ending", end - 60)``
once the session is ``ending`` (callers record it as a second ``ending``
transition and pass ``final_warning_sent``). It is left out when it would not
come after the first warning (sessions of a minute or less).

Rules when the clock has run past several planned points (a restart, a late
poll): every due step is returned in order, so a session that should be live goes
through preparing to live at once; but once ``end`` has passed, the only step is
``ended``, since opening a meeting that is already over helps nobody. States never
go backwards and terminal states yield nothing.

A *reminder* (``call=False``: a transparent occurrence, free time in someone's
calendar, see ``orchestrator.sessions.calls``) never becomes a call: from ``scheduled`` its
only step is ``ended`` at its end, with no preparing, live or warnings. Once a
session has begun (a call already), ``call`` no longer matters: a call under way
runs to its end.
"""

from __future__ import annotations

from typing import Final

# The states are named once for every plane (common/sessions.py); the rules are here.
from common.sessions import CANCELLED as CANCELLED
from common.sessions import ENDED as ENDED
from common.sessions import ENDING as ENDING
from common.sessions import FAILED as FAILED
from common.sessions import LIVE as LIVE
from common.sessions import PREPARING as PREPARING
from common.sessions import SCHEDULED as SCHEDULED
from common.sessions import STATES as STATES
from common.sessions import TERMINAL_STATES as TERMINAL_STATES

_ORDER: Final = {SCHEDULED: 0, PREPARING: 1, LIVE: 2, ENDING: 3, ENDED: 4}

FIRST_WARNING_SECONDS: Final = 300.0
FINAL_WARNING_SECONDS: Final = 60.0


def _check(start: float, end: float, lead: float) -> None:
    if end <= start:
        raise ValueError(f"a session ends after it starts (start={start}, end={end})")
    if lead < 0:
        raise ValueError(f"lead must not be negative (got {lead})")


def _check_state(state: str) -> None:
    if state not in STATES:
        raise ValueError(f"unknown session state {state!r}")


def is_terminal(state: str) -> bool:
    _check_state(state)
    return state in TERMINAL_STATES


def planned_transitions(start: float, end: float, lead: float) -> list[tuple[str, float]]:
    """The four clock-driven transitions of a session, in order, with their planned times."""
    _check(start, end, lead)
    return [
        (PREPARING, start - lead),
        (LIVE, start),
        (ENDING, first_warning_at(start, end)),
        (ENDED, end),
    ]


def final_warning_at(start: float, end: float) -> float | None:
    """When the second ``ending`` notification is due, or None if it would add nothing."""
    if end <= start:
        raise ValueError(f"a session ends after it starts (start={start}, end={end})")
    at = end - FINAL_WARNING_SECONDS
    return at if at > first_warning_at(start, end) else None


def first_warning_at(start: float, end: float) -> float:
    """When ``ending`` (the first end-of-meeting warning) is due."""
    return max(start, end - FIRST_WARNING_SECONDS)


def _plan(
    state: str,
    start: float,
    end: float,
    lead: float,
    final_warning_sent: bool,
    first_warning_sent: bool = True,
    call: bool = True,
) -> list[tuple[str, float]]:
    """The steps still ahead of ``state``, warnings included, in order.

    ``first_warning_sent=False`` in state ``ending`` means the session was extended
    after its warnings went out: the first warning for the new end is due again (as
    a repeated ``ending``), then the final one. ``call=False``: a reminder (see the
    module doc).
    """
    _check(start, end, lead)
    _check_state(state)
    if state in TERMINAL_STATES:
        return []
    if state == SCHEDULED and not call:
        return [(ENDED, end)]
    position = _ORDER[state]
    steps = [(s, at) for s, at in planned_transitions(start, end, lead) if _ORDER[s] > position]
    if state == ENDING and not first_warning_sent:
        steps.insert(0, (ENDING, first_warning_at(start, end)))
    warning = final_warning_at(start, end)
    if warning is not None and not final_warning_sent:
        steps.insert(len(steps) - 1, (ENDING, warning))  # just before ``ended``
    return steps


def due_transitions(
    state: str,
    start: float,
    end: float,
    lead: float,
    now: float,
    *,
    final_warning_sent: bool = False,
    first_warning_sent: bool = True,
    call: bool = True,
) -> list[tuple[str, float]]:
    """The steps to take now, from ``state``, as ``(state, planned_at)`` in order."""
    steps = _plan(state, start, end, lead, final_warning_sent, first_warning_sent, call)
    if not steps:
        return []
    if now >= end:
        return [(ENDED, end)]
    return [(s, at) for s, at in steps if at <= now]


def next_wake(
    state: str,
    start: float,
    end: float,
    lead: float,
    *,
    final_warning_sent: bool = False,
    first_warning_sent: bool = True,
    call: bool = True,
) -> float | None:
    """The planned time of the next step after ``state``, or None once terminal."""
    steps = _plan(state, start, end, lead, final_warning_sent, first_warning_sent, call)
    return steps[0][1] if steps else None


def transition_time(planned_at: float, now: float, tolerance: float) -> float:
    """The time to record for a step: its planned time if taken within ``tolerance``
    of it, else ``now`` (the step was late - a restart - and the record says so)."""
    return planned_at if 0 <= now - planned_at <= tolerance else now
