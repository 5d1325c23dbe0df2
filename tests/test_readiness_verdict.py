"""A room's readiness in one word (``readiness.verdict``): the rule the dashboard shows,
pure, over kept checks."""

from __future__ import annotations

from datetime import UTC, datetime

from orchestrator.sessions.readiness import NON_BLOCKING_CHECKS, Check, ReadinessView, verdict

AT = datetime(2027, 1, 4, 9, 0, tzinfo=UTC)


def _view(*failing: str, ok: bool | None = None) -> ReadinessView:
    names = ("camera", "microphone", "signalling", "turn", "clock")
    checks = tuple(Check(name, name not in failing, "") for name in names)
    return ReadinessView(
        ok=not failing if ok is None else ok, checks=checks, checked_at=AT, received_at=AT
    )


def test_a_room_whose_checks_all_pass_is_ready() -> None:
    assert verdict(_view()) == "ready"


def test_only_turn_or_clock_failing_leaves_a_room_degraded() -> None:
    assert NON_BLOCKING_CHECKS == {"turn", "clock"}
    assert verdict(_view("turn")) == "degraded"
    assert verdict(_view("clock")) == "degraded"
    assert verdict(_view("turn", "clock")) == "degraded"


def test_any_other_failing_check_makes_it_failing() -> None:
    assert verdict(_view("camera")) == "failing"
    assert verdict(_view("microphone", "turn")) == "failing"


def test_the_agents_overall_answer_decides_ready() -> None:
    """The agent's ``ok`` is the word for ready; a failure without a named check (a
    verdict the room sent with no failing check) counts as degraded, not failing."""
    assert verdict(_view("camera", ok=True)) == "ready"
    assert verdict(_view(ok=False)) == "degraded"
