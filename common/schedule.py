"""A room's schedule entry and the room credential record: what the orchestrator reads
from its tables, pushes through its port (orchestrator/ports.py), signalling sends on
the wire (signalling/protocol.py, ``schedule``) and the room agent keeps and acts on.

One type flows through all of them, so nothing copies it field by field. The classes
are the wire's: frozen dataclasses of JSON types, their fields in wire order (the
signalling codec encodes them in field order; docs/protocol.md is the contract).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from common.sessions import AUTOMATIC

NO_TICKET: Final = ""
"""The ticket of an entry not yet made out to a room: the orchestrator compares such
entries to see whether a schedule changed, and mints each room's ticket only to send it."""


@dataclass(frozen=True, slots=True)
class ScheduleRoom:
    """A room taking part in a session, as the other rooms' screens name it."""

    room_id: str
    name: str
    centre: str  # the centre's name


@dataclass(frozen=True, slots=True)
class ScheduleEntry:
    """One session a room takes part in, with the ticket that lets it join.

    Times are epoch seconds (UTC) on the server's clock; ``lead`` is how long before
    ``start`` the rooms connect. Equal entries mean an unchanged schedule."""

    session_id: str
    booking_id: str
    title: str
    start: float
    end: float
    lead: float
    state: str
    ticket: str = field(repr=False)
    rooms: list[ScheduleRoom]
    connect_mode: str = AUTOMATIC


@dataclass(frozen=True, slots=True)
class RoomRecord:
    """A room as the credential store knows it: the hash of its key (never the key)
    and the key's generation; a higher generation revokes the older keys at once.
    ``ice_policy`` (``all`` or ``relay``) reaches the room with its ``welcome``."""

    room_id: str
    name: str
    centre: str  # the centre's name
    key_hash: str = field(repr=False)
    generation: int
    ice_policy: str = "all"
