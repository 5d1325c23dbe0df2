"""The port the orchestrator calls to drive the real-time plane, in its own terms.

The orchestrator never imports ``signalling``; ``web`` adapts this port onto the
signalling hub. Every command is a frozen, JSON-serialisable dataclass carrying a
sequence number, and applying the same command twice has the effect of once, so
the same objects can later travel on a node bus between processes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True, slots=True)
class ScheduledRoom:
    room_id: str
    name: str
    centre: str


@dataclass(frozen=True, slots=True)
class ScheduleItem:
    """One session of a room's schedule, with the join ticket minted for that room."""

    session_id: str
    booking_id: str
    title: str
    start: float  # epoch seconds, UTC
    end: float
    lead: float  # seconds before start when the rooms connect
    state: str
    ticket: str = field(repr=False)
    rooms: tuple[ScheduledRoom, ...]
    connect_mode: str = "automatic"


@dataclass(frozen=True, slots=True)
class RoomSchedule:
    """Everything a room must know about its coming sessions; replaces what it had."""

    seq: int
    room_id: str
    generated_at: float
    items: tuple[ScheduleItem, ...]


@dataclass(frozen=True, slots=True)
class SessionTransition:
    """A session entered ``state`` at ``at``; open, warn, extend and close are transitions."""

    seq: int
    session_id: str
    state: str
    at: float
    start: float
    end: float
    room_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RoomCredential:
    """The hash of a room's key and its generation; a higher generation revokes older keys."""

    seq: int
    room_id: str
    name: str
    centre: str
    key_hash: str = field(repr=False)
    generation: int


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
