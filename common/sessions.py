"""A session's states, a booking's connect modes and a session's topologies: the words
the orchestrator writes, signalling passes on and the room agent acts upon
(docs/protocol.md, ``state``, ``connect_mode`` and ``topology``). The rules over them
stay with their planes: orchestrator/lifecycle.py (the state machine),
orchestrator/booking/policy.py (which mode a booking may ask for),
orchestrator/sessions/topology.py (which topology a session is planned on),
room_agents/schedule.py (when a room joins).
"""

from __future__ import annotations

from typing import Final, Literal

# --- session states ---------------------------------------------------------------------

SCHEDULED: Final = "scheduled"
PREPARING: Final = "preparing"
LIVE: Final = "live"
ENDING: Final = "ending"
ENDED: Final = "ended"
CANCELLED: Final = "cancelled"
FAILED: Final = "failed"

STATES: Final = (SCHEDULED, PREPARING, LIVE, ENDING, ENDED, CANCELLED, FAILED)
TERMINAL_STATES: Final = frozenset({ENDED, CANCELLED, FAILED})
"""States after which nobody joins; a ``session-state`` with one of them ends the session."""
OPEN_STATES: Final = tuple(s for s in STATES if s not in TERMINAL_STATES)

# --- connect modes ----------------------------------------------------------------------

AUTOMATIC: Final = "automatic"
"""The rooms join by themselves at ``start - lead``."""
ONE_BUTTON: Final = "one-button"
"""The room's panel shows a join button."""
RESERVE_ONLY: Final = "reserve-only"
"""The rooms are held; no call is set up."""
MANUAL: Final = "manual"
"""An older name of one-button, still accepted and still found in stored bookings."""
CONNECT_MODE_NAMES: Final = (AUTOMATIC, ONE_BUTTON, RESERVE_ONLY)
"""The connect modes in the order forms and the API document list them."""
CONNECT_MODES: Final = frozenset(CONNECT_MODE_NAMES)
CONNECT_MODE_ALIASES: Final = {MANUAL: ONE_BUTTON}
CALL_MODES: Final = frozenset({AUTOMATIC, ONE_BUTTON})
"""Connect modes in which the rooms take part in a call (not reserve-only)."""


def canonical_connect_mode(mode: str) -> str:
    """``mode`` under its present name (``manual`` is ``one-button``); others unchanged."""
    return CONNECT_MODE_ALIASES.get(mode, mode)


# --- topologies -------------------------------------------------------------------------

MESH: Final = "mesh"
"""Every peer of the session sends its streams to every other."""
SFU: Final = "sfu"
"""Every peer sends its streams once, to an SFU (Janus), which forwards them."""
Topology = Literal["mesh", "sfu"]
