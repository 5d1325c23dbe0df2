"""Who may open a WebSocket before saying who they are: unauthenticated connections
are limited per source address and in total.

A connection counts from its upgrade until its ``hello`` succeeds or it ends; it
costs the server a socket, a task and the read of one frame. The limits keep
strangers from holding many of those at once: the rooms of one centre share an
address behind its NAT but say hello within milliseconds, so the per-address
limit is far above what a centre needs and far below what a flood needs; the total
bounds the memory of every pending hello together (``total`` times the frame
cap). Pure bookkeeping over the addresses it is given; the server refuses the
upgrade (HTTP 503, ``too-many-connections``) when ``admit`` says no.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class Admission:
    """Counts of unauthenticated connections; an address leaves the table when its
    count returns to zero, so the table never holds more than ``total`` entries."""

    per_address: int
    total: int
    _pending: dict[str, int] = field(default_factory=dict)
    _count: int = 0

    @property
    def pending(self) -> int:
        return self._count

    def pending_from(self, address: str) -> int:
        return self._pending.get(address, 0)

    def admit(self, address: str) -> str | None:
        """Count a new connection from ``address``; None when admitted, else the
        reason it is refused (and nothing is counted)."""
        if self._count >= self.total:
            return f"the server already has {self.total} connections waiting to say hello"
        held = self._pending.get(address, 0)
        if held >= self.per_address:
            return f"{self.per_address} connections from your address are waiting to say hello"
        self._pending[address] = held + 1
        self._count += 1
        return None

    def release(self, address: str) -> None:
        """The connection said hello or ended: it no longer counts."""
        held = self._pending.get(address, 0)
        if held <= 0:
            return
        if held == 1:
            del self._pending[address]
        else:
            self._pending[address] = held - 1
        self._count -= 1
