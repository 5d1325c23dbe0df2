"""The port the orchestrator calls to drive the real-time plane, in its own terms.

The orchestrator never imports ``signalling``; ``web`` adapts this port onto the
signalling hub. Every command is a frozen, JSON-serialisable dataclass carrying a
sequence number, and applying the same command twice has the effect of once, so
the same objects can later travel on a node bus between processes.

What a schedule holds and what a room credential says are common/schedule.py's
(``ScheduleEntry``, ``RoomRecord``): the port carries them as signalling will send
and store them, so the adapter in ``web`` passes them on without copying.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from common.schedule import RoomRecord, ScheduleEntry
from common.sessions import Topology


@dataclass(frozen=True, slots=True)
class RoomSchedule:
    """Everything a room must know about its coming sessions (each item with the join
    ticket minted for that room); replaces what it had."""

    seq: int
    room_id: str
    generated_at: float
    items: tuple[ScheduleEntry, ...]


@dataclass(frozen=True, slots=True)
class SessionTransition:
    """A session entered ``state`` at ``at``; open, warn, extend and close are transitions.
    ``topology``: the topology the orchestrator plans for the session (mesh or sfu,
    ``orchestrator.sessions.topology``), on every transition to an open state; None on a
    terminal one."""

    seq: int
    session_id: str
    state: str
    at: float
    start: float
    end: float
    room_ids: tuple[str, ...]
    topology: Topology | None = None


@dataclass(frozen=True, slots=True)
class RoomCredential(RoomRecord):
    """A room's credential record sent as a command: the record signalling keeps (the
    hash of the key and its generation; a higher generation revokes older keys) with
    the sequence number every command carries."""

    seq: int = field(kw_only=True)


@dataclass(frozen=True, slots=True)
class TicketRevocation:
    seq: int
    ticket_ids: tuple[str, ...]
    until: float  # the revocation can be forgotten after every ticket has expired


class SessionControl(Protocol):
    """What the orchestrator asks of the real-time plane."""

    async def push_schedule(self, schedule: RoomSchedule) -> None: ...

    async def session_transition(self, transition: SessionTransition) -> None: ...

    async def set_room_credential(self, credential: RoomCredential) -> None: ...

    async def revoke_tickets(self, revocation: TicketRevocation) -> None: ...
