"""An incoming check answers our own check in progress at once (RFC 8445 section 7.3.1.4).

Through TURN, a peer's first connectivity check is lost whenever it reaches the other
peer's allocation before that peer has a permission for it (coturn drops it, RFC 8656
section 9): both rooms start checking within a millisecond, and the permission exists
only once the other side has sent its own check. RFC 8445 then has the incoming check
*trigger* a check of the same pair: "If the state of that pair is In-Progress, the
agent cancels the In-Progress transaction ... and [triggers] a new connectivity check".
aioice 0.13 starts triggered checks only for Frozen, Waiting and Failed pairs: an
In-Progress pair waits for the STUN retransmission timer (500 ms), so a call relayed on
both sides spent about 550 ms more in set-up than a direct one (measured on loopback
through coturn: 580 ms median instead of 65 ms).

``install_triggered_checks`` wraps ``Connection.check_incoming``: after aioice handled
the incoming check, a pair still In-Progress has its pending request sent again at
once. The same transaction (same id), so whichever copy is answered completes it; its
retransmission timer runs on unchanged. On loopback host pairs nothing changes (their
first check is never lost).

This is the agent's third aioice patch (room_agents.ice pins the host addresses,
room_agents.ice_pacing removes the trailing wait); it relies on aioice's private
``_check_list`` and the name-mangled request and address of ``stun.Transaction``, and
leaves an aioice without them unpatched (aioice's range is pinned in pyproject.toml).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any, Final

import aioice.ice
import aioice.stun

log = logging.getLogger(__name__)

_INCOMING: Final = "check_incoming"
_REQUEST: Final = "_Transaction__request"
_ADDRESS: Final = "_Transaction__addr"
IN_PROGRESS: Final = aioice.ice.CandidatePair.State.IN_PROGRESS

Incoming = Callable[[Any, Any, tuple[str, int], Any], None]


def pending_request(transactions: Iterable[Any], addr: tuple[str, int]) -> Any | None:
    """The request of the first transaction in progress towards ``addr``, if any."""
    for transaction in transactions:
        if getattr(transaction, _ADDRESS, None) == addr:
            return getattr(transaction, _REQUEST, None)
    return None


def retransmit_in_progress(connection: Any, addr: tuple[str, int], protocol: Any) -> bool:
    """Send again the request of the pair (``protocol``, ``addr``) if its check is in
    progress; True when it was sent."""
    for pair in connection._check_list:
        if pair.protocol is protocol and pair.remote_addr == addr and pair.state == IN_PROGRESS:
            request = pending_request(list(protocol.transactions.values()), addr)
            if request is None:
                return False
            protocol.send_stun(request, addr)
            return True
    return False


class _TriggeredIncoming:
    """Stands in for ``Connection.check_incoming``; remembers what it replaced."""

    def __init__(self, original: Incoming) -> None:
        self.original = original

    def __get__(self, connection: Any, owner: type | None = None) -> Any:
        if connection is None:
            return self
        return lambda message, addr, protocol: self(connection, message, addr, protocol)

    def __call__(self, connection: Any, message: Any, addr: tuple[str, int], protocol: Any) -> None:
        self.original(connection, message, addr, protocol)
        retransmit_in_progress(connection, addr, protocol)


def triggered_checks_installed() -> bool:
    return isinstance(aioice.ice.Connection.__dict__.get(_INCOMING), _TriggeredIncoming)


def _internals_present() -> bool:
    """``stun.Transaction`` still keeps its request and address under these names."""
    names = aioice.stun.Transaction.__init__.__code__.co_names
    return _REQUEST in names and _ADDRESS in names


def install_triggered_checks() -> bool:
    """Patch aioice (idempotent, whole process); False when this aioice has not the
    internals the patch relies on, and is left unpatched."""
    connection = aioice.ice.Connection
    if triggered_checks_installed():
        return True
    original = connection.__dict__.get(_INCOMING)
    if not callable(original) or not _internals_present():
        log.warning("aioice's internals changed: in-progress checks keep their 500 ms retry")
        return False
    setattr(connection, _INCOMING, _TriggeredIncoming(original))
    return True


def uninstall_triggered_checks() -> None:
    """Give aioice back its own ``check_incoming`` (no-op when not installed)."""
    current = aioice.ice.Connection.__dict__.get(_INCOMING)
    if isinstance(current, _TriggeredIncoming):
        setattr(aioice.ice.Connection, _INCOMING, current.original)
