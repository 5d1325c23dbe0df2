"""ICE checks without aioice's trailing wait: a call connects as soon as its last check does.

aioice's ``Connection.connect`` starts one connectivity check every 20 ms (the Ta
pacing of RFC 8445 section 6.1.4.2) for as long as ``_check_periodic`` says there is
more to start, and only then waits for the check list to complete. After starting the
*last* check it still sleeps one full period before it looks at the result: on
loopback, where a check and its answer take about a millisecond, every call spent
about 20 ms of its set-up in that sleep, on each side (the controlled side's ICE ends
20 ms after its own check even when the controlling side nominated the pair long
before), so DTLS and the first frame started late.

``install_check_pacing`` wraps ``_check_periodic`` so that it says "nothing more to
start" right after starting the last one: when no pair is left Waiting or Frozen and
no more remote candidates are expected (``_remote_candidates_expected``: a browser
still trickling keeps the loop going, as before). connect() then awaits the check
list's outcome at once. Checks between pairs keep their 20 ms pacing, triggered checks
(peer-reflexive candidates) start as they always do, and a check list that fails
fails as before: only the idle wait after the last start is gone.

This is the agent's second aioice patch (room_agents.ice pins the host addresses); it
is installed by the room agent's calls, never by the raw-aiortc floors of bench/. An
aioice without the two private methods (outside the pinned range) is left as it is.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any, Final

import aioice.ice

log = logging.getLogger(__name__)

_PERIODIC: Final = "_check_periodic"
_EXPECTED: Final = "_remote_candidates_expected"
# The pair states from which connect()'s loop would still start a check.
STARTABLE: Final = (aioice.ice.CandidatePair.State.WAITING, aioice.ice.CandidatePair.State.FROZEN)

Periodic = Callable[[Any], bool]


def more_to_start(pairs: Iterable[tuple[object, bool]], candidates_expected: bool) -> bool:
    """Whether connect()'s pacing loop still has a check to start after this one: a
    pair (state, has its check task) still Waiting or Frozen without a task (the check
    just started has its task, though it has not run yet to mark itself In-Progress),
    or remote candidates still to come."""
    return candidates_expected or any(
        state in STARTABLE and not started for state, started in pairs
    )


class _PacedPeriodic:
    """Stands in for ``Connection._check_periodic``; remembers what it replaced."""

    def __init__(self, original: Periodic) -> None:
        self.original = original

    def __get__(self, connection: Any, owner: type | None = None) -> Any:
        if connection is None:
            return self
        return lambda: self(connection)

    def __call__(self, connection: Any) -> bool:
        started = self.original(connection)
        if not started:
            return False
        expected: bool = getattr(connection, _EXPECTED)()
        pairs = ((pair.state, pair.task is not None) for pair in connection._check_list)
        return more_to_start(pairs, expected)


def check_pacing_installed() -> bool:
    return isinstance(aioice.ice.Connection.__dict__.get(_PERIODIC), _PacedPeriodic)


def install_check_pacing() -> bool:
    """Patch aioice (idempotent, whole process); False when this aioice has not the
    methods the patch relies on, and is left unpatched."""
    connection = aioice.ice.Connection
    if check_pacing_installed():
        return True
    original = connection.__dict__.get(_PERIODIC)
    if not callable(original) or not callable(getattr(connection, _EXPECTED, None)):
        log.warning(
            "aioice %s has no %s: ICE checks keep their trailing wait", _PERIODIC, _EXPECTED
        )
        return False
    setattr(connection, _PERIODIC, _PacedPeriodic(original))
    return True


def uninstall_check_pacing() -> None:
    """Give aioice back its own ``_check_periodic`` (no-op when not installed)."""
    current = aioice.ice.Connection.__dict__.get(_PERIODIC)
    if isinstance(current, _PacedPeriodic):
        setattr(aioice.ice.Connection, _PERIODIC, current.original)
