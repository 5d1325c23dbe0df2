"""room_agents/ice_relay_pairs.py: our relay candidate is not paired with the host
candidates of a peer that has a relay of its own (a TURN server asked to send to a LAN
address it cannot reach drops the whole allocation: coturn 4.6 in the lab's WAN). The
lab test of the call it fixes is tests/test_lab_relay_pairs.py."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aioice.ice
import pytest
from aioice import Candidate

from room_agents.ice_relay_pairs import (
    install_relay_pair_rule,
    pairs_to_prune,
    pointless_relay_pair,
    relay_pair_rule_installed,
    uninstall_relay_pair_rule,
)

State = aioice.ice.CandidatePair.State


def candidate(kind: str, host: str, port: int) -> Candidate:
    return Candidate(
        foundation=f"{kind}{port}",
        component=1,
        transport="udp",
        priority={"host": 3, "srflx": 2, "relay": 1}[kind] << 24,
        host=host,
        port=port,
        type=kind,
    )


@dataclass
class FakeProtocol:
    """What pairing reads of a local socket: its candidate."""

    local_candidate: Candidate

    async def close(self) -> None:
        """Nothing to close: no socket."""


def test_only_our_relay_towards_the_host_of_a_peer_with_a_relay_is_left_out() -> None:
    assert pointless_relay_pair("relay", "host", peer_has_relay=True)
    assert not pointless_relay_pair("relay", "host", peer_has_relay=False)  # a public server
    for local, remote in [("relay", "srflx"), ("relay", "relay"), ("relay", "prflx"),
                          ("host", "host"), ("host", "relay"), ("srflx", "host")]:  # fmt: skip
        assert not pointless_relay_pair(local, remote, peer_has_relay=True)


def test_a_started_check_is_never_pruned() -> None:
    relay = FakeProtocol(candidate("relay", "198.51.100.1", 40000))
    pair = aioice.ice.CandidatePair(relay, candidate("host", "192.168.1.2", 5000))  # type: ignore[arg-type]
    assert pairs_to_prune([pair], ["host", "relay"]) == [pair]
    pair.state = State.WAITING
    assert pairs_to_prune([pair], ["host", "relay"]) == [pair]
    for state in (State.IN_PROGRESS, State.SUCCEEDED, State.FAILED):
        pair.state = state
        assert pairs_to_prune([pair], ["host", "relay"]) == []
    pair.state = State.WAITING
    pair.task = object()  # type: ignore[assignment]  # scheduled, about to go In-Progress
    assert pairs_to_prune([pair], ["host", "relay"]) == []


@pytest.fixture
def rule() -> Any:
    was_installed = relay_pair_rule_installed()
    install_relay_pair_rule()
    yield
    if not was_installed:
        uninstall_relay_pair_rule()


def pairs(connection: aioice.ice.Connection) -> set[tuple[str, str]]:
    return {(p.local_candidate.type, p.remote_candidate.type) for p in connection._check_list}


async def test_aioice_drops_relay_to_host_pairs_once_the_peer_offers_a_relay(rule: Any) -> None:
    """Through aioice itself: candidates added one by one (as aiortc does from an SDP,
    and as a browser trickles them), host first."""
    connection = aioice.ice.Connection(ice_controlling=True)
    connection._protocols = [
        FakeProtocol(candidate("host", "10.0.0.2", 5000)),  # type: ignore[list-item]
        FakeProtocol(candidate("relay", "198.51.100.1", 40000)),  # type: ignore[list-item]
    ]
    try:
        await connection.add_remote_candidate(candidate("host", "192.168.1.2", 6000))
        await connection.add_remote_candidate(candidate("srflx", "203.0.113.9", 6000))
        # No relay offered yet: aioice's pairs, ours towards the peer's host included.
        assert ("relay", "host") in pairs(connection)
        await connection.add_remote_candidate(candidate("relay", "198.51.100.1", 40002))
        assert pairs(connection) == {
            ("host", "host"), ("host", "srflx"), ("host", "relay"),
            ("relay", "srflx"), ("relay", "relay"),
        }  # fmt: skip
    finally:
        await connection.close()


async def test_a_peer_without_a_relay_keeps_every_pair(rule: Any) -> None:
    """A server on a public address (an SFU) is reached through our relay at its host."""
    connection = aioice.ice.Connection(ice_controlling=False)
    connection._protocols = [FakeProtocol(candidate("relay", "198.51.100.1", 40000))]  # type: ignore[list-item]
    try:
        await connection.add_remote_candidate(candidate("host", "203.0.113.7", 8000))
        assert pairs(connection) == {("relay", "host")}
    finally:
        await connection.close()


def test_the_patch_installs_once_and_uninstalls() -> None:
    was_installed = relay_pair_rule_installed()
    try:
        uninstall_relay_pair_rule()
        plain = aioice.ice.Connection.__dict__["_pair_remote_candidate"]
        assert install_relay_pair_rule() and install_relay_pair_rule()
        assert relay_pair_rule_installed()
        assert aioice.ice.Connection.__dict__["_pair_remote_candidate"].original is plain
        uninstall_relay_pair_rule()
        assert aioice.ice.Connection.__dict__["_pair_remote_candidate"] is plain
    finally:
        (install_relay_pair_rule if was_installed else uninstall_relay_pair_rule)()
    assert relay_pair_rule_installed() == was_installed


async def test_a_room_s_calls_install_the_rule() -> None:
    from room_agents.calls import SessionCalls

    uninstall_relay_pair_rule()

    async def send(message: object) -> None:
        raise AssertionError("nothing is sent")

    SessionCalls("s1", "room:a", send, None, None, [], [], lambda _: None)  # type: ignore[arg-type]
    assert relay_pair_rule_installed()
