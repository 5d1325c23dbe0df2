"""The port the signalling plane calls to report what happens on it.

``web`` adapts it onto the orchestrator (which records participation and media
milestones). Events are frozen, JSON-serialisable dataclasses with a sequence
number; handling one twice has the effect of once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from signalling.protocol import MediaStats, ProcessStats, ReadinessCheck


@dataclass(frozen=True, slots=True)
class RoomOnline:
    seq: int
    room_id: str
    at: float


@dataclass(frozen=True, slots=True)
class RoomOffline:
    seq: int
    room_id: str
    at: float


@dataclass(frozen=True, slots=True)
class PeerJoinedSession:
    seq: int
    session_id: str
    peer_id: str
    room_id: str | None
    at: float


@dataclass(frozen=True, slots=True)
class PeerLeftSession:
    seq: int
    session_id: str
    peer_id: str
    room_id: str | None
    at: float
    reason: str


@dataclass(frozen=True, slots=True)
class MediaMilestone:
    """``first-frame``: the peer decoded its first remote frame; ``live``: its first
    remote camera frame. ``at`` is on the server's clock (the peer corrects its own)."""

    seq: int
    session_id: str
    peer_id: str
    room_id: str | None
    event: str
    at: float


@dataclass(frozen=True, slots=True)
class MediaReport:
    seq: int
    session_id: str
    peer_id: str
    room_id: str | None
    at: float
    media: tuple[MediaStats, ...]
    process: ProcessStats | None = None


@dataclass(frozen=True, slots=True)
class RoomReadiness:
    """A room's readiness check as it reported it: ``checked_at`` is when the agent
    ran it (server clock, as the agent estimates it), ``at`` when it arrived.
    ``session_id`` is the session it was run for, None for a check at connection."""

    seq: int
    room_id: str
    session_id: str | None
    ok: bool
    checks: tuple[ReadinessCheck, ...]
    checked_at: float
    at: float


@dataclass(frozen=True, slots=True)
class SessionTopology:
    """A session went onto an SFU (``reason`` "planned" or "mesh-limit") or moved to
    another Janus of the pool (``reason`` "janus-down", ``previous`` the dead one)."""

    seq: int
    session_id: str
    topology: str
    epoch: int
    server: str
    previous: str | None
    reason: str
    at: float


class SessionEvents(Protocol):
    """What the real-time plane tells whoever listens (the orchestrator, via web)."""

    async def room_online(self, event: RoomOnline) -> None: ...

    async def room_offline(self, event: RoomOffline) -> None: ...

    async def peer_joined(self, event: PeerJoinedSession) -> None: ...

    async def peer_left(self, event: PeerLeftSession) -> None: ...

    async def media_milestone(self, event: MediaMilestone) -> None: ...

    async def media_report(self, event: MediaReport) -> None: ...

    async def room_readiness(self, event: RoomReadiness) -> None: ...

    async def session_topology(self, event: SessionTopology) -> None: ...
