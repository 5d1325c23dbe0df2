"""Our TURN relay never checks a peer's host address when that peer has a relay of its own.

With policy ``all`` aioice pairs every local candidate with every remote one, so our
relay candidate is also paired with the peer's *host* candidates: the TURN server is
asked to send our checks to the peer's LAN address (10.x, 192.168.x behind its NAT).
A TURN server with no route there fails that send, and coturn 4.6 then drops the whole
allocation (its log: ``udp send: Network is unreachable``, then the session is closed):
every later check and every packet through our relay, relay-to-relay included, is
refused, and the relay pairs fail only when their STUN retransmissions run out (about
64 s). Two rooms behind home NATs, which can reach each other only through TURN, then
neither connected nor failed for a minute (bench/network ``a_to_guest_any_via_udp``),
while the same call with policy ``relay`` (relay candidates only, so the relay is only
ever asked to send to the peer's relay) connected in 1.5 s. A coturn that refuses
private peers (``denied-peer-ip``, docs/deploy.md) answers the channel binding with 403
and keeps the allocation, but a server whose egress is firewalled or unrouted does not.

The pair adds nothing when the peer offers a relay candidate: a host address our TURN
server can reach is one the peer's own relay reaches as well, and relay-to-relay
through the deployment's TURN server always works. So ``install_relay_pair_rule``
wraps ``Connection._pair_remote_candidate`` (called for every remote candidate, at
``connect()`` and whenever one is trickled): once the peer has offered a relay
candidate, pairs of a local relay candidate with a remote host candidate are removed
from the check list before their check starts. A peer without a relay candidate (a
server on a public address, an SFU) keeps every pair, and our host candidates keep
theirs. A check already started (a browser trickling its host candidates before its
relay) runs on.

This is the agent's fourth aioice patch (room_agents.ice pins the host addresses,
room_agents.ice_pacing and room_agents.ice_triggered speed up the checks), installed by
the room agent's calls; it relies on aioice's private ``_check_list``,
``_remote_candidates`` and ``_pair_remote_candidate``, and leaves an aioice without
them unpatched (aioice's range is pinned in pyproject.toml).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any, Final

import aioice.ice

log = logging.getLogger(__name__)

_PAIR: Final = "_pair_remote_candidate"
# Pairs whose check has not started: only these may be removed.
UNSTARTED: Final = (aioice.ice.CandidatePair.State.FROZEN, aioice.ice.CandidatePair.State.WAITING)

Pairing = Callable[[Any, Any], None]


def pointless_relay_pair(local_type: str, remote_type: str, peer_has_relay: bool) -> bool:
    """Whether a pair of our ``local_type`` candidate and the peer's ``remote_type`` one
    is left out: our relay towards the peer's host address, when the peer has a relay."""
    return peer_has_relay and local_type == "relay" and remote_type == "host"


def pairs_to_prune(pairs: Iterable[Any], remote_types: Iterable[str]) -> list[Any]:
    """The pairs of a check list to remove under ``pointless_relay_pair``: only those
    whose check has not started (no task, Frozen or Waiting)."""
    peer_has_relay = "relay" in remote_types
    return [
        pair
        for pair in pairs
        if pair.task is None
        and pair.state in UNSTARTED
        and pointless_relay_pair(
            pair.local_candidate.type, pair.remote_candidate.type, peer_has_relay
        )
    ]


class _RelayAwarePairing:
    """Stands in for ``Connection._pair_remote_candidate``; remembers what it replaced."""

    def __init__(self, original: Pairing) -> None:
        self.original = original

    def __get__(self, connection: Any, owner: type | None = None) -> Any:
        if connection is None:
            return self
        return lambda remote_candidate: self(connection, remote_candidate)

    def __call__(self, connection: Any, remote_candidate: Any) -> None:
        self.original(connection, remote_candidate)
        remote_types = [candidate.type for candidate in connection._remote_candidates]
        for pair in pairs_to_prune(connection._check_list, remote_types):
            log.debug("%s: no check of %s: the peer has a relay of its own", connection, pair)
            connection._check_list.remove(pair)


def relay_pair_rule_installed() -> bool:
    return isinstance(aioice.ice.Connection.__dict__.get(_PAIR), _RelayAwarePairing)


def install_relay_pair_rule() -> bool:
    """Patch aioice (idempotent, whole process); False when this aioice has not the
    method the patch relies on, and is left unpatched."""
    connection = aioice.ice.Connection
    if relay_pair_rule_installed():
        return True
    original = connection.__dict__.get(_PAIR)
    if not callable(original):
        log.warning("aioice has no %s: our relay may check the peers' host addresses", _PAIR)
        return False
    setattr(connection, _PAIR, _RelayAwarePairing(original))
    return True


def uninstall_relay_pair_rule() -> None:
    """Give aioice back its own ``_pair_remote_candidate`` (no-op when not installed)."""
    current = aioice.ice.Connection.__dict__.get(_PAIR)
    if isinstance(current, _RelayAwarePairing):
        setattr(aioice.ice.Connection, _PAIR, current.original)
