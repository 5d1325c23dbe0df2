"""room_agents/ice_triggered.py: an incoming check sends our own in-progress check of the
same pair again at once (RFC 8445 section 7.3.1.4), so a relayed check lost for want
of a TURN permission does not wait for the 500 ms retransmission."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import aioice.ice
import aioice.stun
import pytest

from room_agents.ice_triggered import (
    install_triggered_checks,
    pending_request,
    retransmit_in_progress,
    triggered_checks_installed,
    uninstall_triggered_checks,
)

State = aioice.ice.CandidatePair.State
PEER = ("127.0.0.1", 40000)
OTHER = ("127.0.0.1", 40002)


@dataclass
class FakeProtocol:
    transactions: dict[bytes, Any] = field(default_factory=dict)
    sent: list[tuple[Any, tuple[str, int]]] = field(default_factory=list)

    def send_stun(self, message: Any, addr: tuple[str, int]) -> None:
        self.sent.append((message, addr))


@dataclass
class FakePair:
    protocol: FakeProtocol
    remote_addr: tuple[str, int]
    state: Any


@dataclass
class FakeConnection:
    _check_list: list[FakePair]


def _transaction(addr: tuple[str, int]) -> tuple[aioice.stun.Message, aioice.stun.Transaction]:
    request = aioice.stun.Message(aioice.stun.Method.BINDING, aioice.stun.Class.REQUEST)
    protocol: Any = FakeProtocol()
    return request, aioice.stun.Transaction(request, addr, protocol)


async def test_an_in_progress_check_is_sent_again_and_nothing_else() -> None:
    request, transaction = _transaction(PEER)
    _, other_transaction = _transaction(OTHER)
    protocol = FakeProtocol({b"1": other_transaction, b"2": transaction})
    pair = FakePair(protocol, PEER, State.IN_PROGRESS)
    connection = FakeConnection([FakePair(protocol, OTHER, State.SUCCEEDED), pair])
    assert pending_request(protocol.transactions.values(), PEER) is request
    assert retransmit_in_progress(connection, PEER, protocol)
    assert protocol.sent == [(request, PEER)]  # the same request: the same transaction
    for state in (State.SUCCEEDED, State.WAITING, State.FAILED, State.FROZEN):
        pair.state = state
        assert not retransmit_in_progress(connection, PEER, protocol)
    pair.state = State.IN_PROGRESS
    assert not retransmit_in_progress(connection, PEER, FakeProtocol())  # another socket
    assert not retransmit_in_progress(connection, ("127.0.0.1", 1), protocol)
    assert len(protocol.sent) == 1


def test_the_patch_installs_once_and_uninstalls() -> None:
    was_installed = triggered_checks_installed()
    original = aioice.ice.Connection.__dict__["check_incoming"]
    try:
        uninstall_triggered_checks()
        plain = aioice.ice.Connection.__dict__["check_incoming"]
        assert install_triggered_checks() and install_triggered_checks()
        assert triggered_checks_installed()
        assert aioice.ice.Connection.__dict__["check_incoming"].original is plain
        uninstall_triggered_checks()
        assert aioice.ice.Connection.__dict__["check_incoming"] is plain
    finally:
        if was_installed:
            install_triggered_checks()
        else:
            uninstall_triggered_checks()
    assert triggered_checks_installed() == was_installed
    assert was_installed or aioice.ice.Connection.__dict__["check_incoming"] is original


@pytest.fixture
def patched() -> Any:
    was_installed = triggered_checks_installed()
    install_triggered_checks()
    yield
    if not was_installed:
        uninstall_triggered_checks()


async def test_the_patched_method_still_does_aioice_s_work_first(patched: Any) -> None:
    calls: list[str] = []

    def original(connection: Any, message: Any, addr: Any, protocol: Any) -> None:
        calls.append("aioice")

    wrapper = aioice.ice.Connection.__dict__["check_incoming"]
    saved = wrapper.original
    wrapper.original = original
    try:
        request, transaction = _transaction(PEER)
        protocol = FakeProtocol({b"1": transaction})
        connection = FakeConnection([FakePair(protocol, PEER, State.IN_PROGRESS)])
        wrapper(connection, None, PEER, protocol)
        assert calls == ["aioice"] and protocol.sent == [(request, PEER)]
    finally:
        wrapper.original = saved
