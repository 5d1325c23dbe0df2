"""Two real room agents on loopback, policy ``relay``, through a real coturn: media flows,
the selected candidate pair is a relay on both sides, each session's calls use only
that session's credential, and no log line (signalling, agents, coturn) carries a
TURN password or the shared secret."""

from __future__ import annotations

import logging
import time
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest

from common import turn
from signalling.turn import TurnConfig
from tests.coturn_support import running_coturn
from tests.signalling_fixtures import Harness, eventually, running_agent, signalling_harness

SECRET = "relay-secret-5d1e"


def relay_agent(h: Harness, room_id: str) -> AbstractAsyncContextManager[Any]:
    """A room agent that sends media only through the TURN relay."""
    return running_agent(h, room_id, ice_policy="relay")


def _selected_pair(agent: Any, session_id: str, peer_id: str) -> tuple[str, str] | None:
    call = agent.sessions[session_id].calls.get(peer_id)
    if call is None:
        return None
    ice = call.pc.getTransceivers()[0].receiver.transport.transport
    pair = ice._connection._nominated.get(1)  # aioice's selected pair of component 1
    if pair is None:
        return None
    return pair.local_candidate.type, pair.remote_candidate.type


def _camera_frames(agent: Any, peer_id: str) -> int:
    return int(agent.screen.totals().get(peer_id, {}).get("camera_frames") or 0)


# "guarded": coturn denies relaying into a whole range (as docs/deploy.md denies private
# networks) and allows back only its own relay address, which relay-to-relay needs.
GUARDED = ("denied-peer-ip=127.0.0.0-127.255.255.255", "allowed-peer-ip=127.0.0.1")


@pytest.mark.parametrize("via", ["tcp", "tls", "guarded"])
async def test_two_relay_rooms_call_through_coturn_with_relay_pairs_and_quiet_logs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch, via: str
) -> None:
    """The deployment lists UDP first; a relay room hands aiortc TURN over TCP first, or
    over TLS when the deployment has it (the firewall that lets out only 443)."""
    caplog.set_level(logging.DEBUG)
    extra = GUARDED if via == "guarded" else ()
    with running_coturn(tmp_path, [SECRET], tls=via == "tls", extra=extra) as coturn:
        urls = (coturn.udp_url, coturn.tcp_url)
        if via == "tls":
            urls = (*urls, coturn.tls_url)
            monkeypatch.setenv("SSL_CERT_FILE", str(coturn.ca_file))  # the private CA
        config = TurnConfig(urls=urls, secret=SECRET)
        async with signalling_harness(turn=config) as h:
            h.add_room("a")
            h.add_room("b")
            async with relay_agent(h, "a") as a, relay_agent(h, "b") as b:
                now = time.time()
                h.push_session("s1", ["a", "b"], start=now - 1, end=now + 120)
                await eventually(lambda: _camera_frames(a, "room:b") >= 10, "a to see b", 30)
                await eventually(lambda: _camera_frames(b, "room:a") >= 10, "b to see a", 30)
                await eventually(
                    lambda: (
                        _selected_pair(a, "s1", "room:b") is not None
                        and _selected_pair(b, "s1", "room:a") is not None
                    ),
                    "both selected pairs",
                )
                assert _selected_pair(a, "s1", "room:b") == ("relay", "relay")
                assert _selected_pair(b, "s1", "room:a") == ("relay", "relay")
                # Only relay candidates were offered (the policy), and the filter passed them.
                for agent, peer in ((a, "room:b"), (b, "room:a")):
                    call = agent.sessions["s1"].calls[peer]
                    ice = call.pc.getTransceivers()[0].receiver.transport.transport
                    assert {c.type for c in ice.iceGatherer.getLocalCandidates()} == {"relay"}
                    assert {c.type for c in ice.getRemoteCandidates()} == {"relay"}
                    # The session's calls carry the session's credential, nothing else.
                    usernames = [s.username for s in agent.sessions["s1"]._ice_servers]
                    assert usernames and all(
                        u is not None
                        and (parts := turn.parse_turn_username(u)) is not None
                        and parts.session_id == "s1"
                        for u in usernames
                    )
                    # The relay policy put TURN over TCP (or TLS) first for aiortc.
                    assert (ice._connection.turn_transport, ice._connection.turn_ssl) == (
                        "tcp",
                        via == "tls",
                    )
                assert a.violations == [] and b.violations == []
                assert h.server.counters.candidate_violations == 0
                passwords = {
                    s.credential
                    for agent in (a, b)
                    for s in [*agent.sessions["s1"]._ice_servers, *agent.connection.ice_servers]
                    if s.credential
                }
        server_log = coturn.log_text()
    assert len(passwords) >= 4  # two rooms, each a check and a session credential
    assert "ALLOCATE processed, success" in server_log
    lines = [r.getMessage() for r in caplog.records] + server_log.splitlines()
    assert lines
    for secret in (SECRET, *passwords):
        assert not [line for line in lines if secret in line]


async def test_without_its_own_relay_address_allowed_coturn_forwards_nothing(
    tmp_path: Path,
) -> None:
    """The control for "guarded": the same catch-all ``denied-peer-ip`` without the
    ``allowed-peer-ip`` of coturn's own relay address refuses every relay-to-relay
    permission (403 Forbidden IP), so no frame ever arrives."""
    with running_coturn(tmp_path, [SECRET], extra=GUARDED[:1]) as coturn:
        config = TurnConfig(urls=(coturn.udp_url,), secret=SECRET)
        async with signalling_harness(turn=config) as h:
            h.add_room("a")
            h.add_room("b")
            async with relay_agent(h, "a") as a, relay_agent(h, "b") as b:
                now = time.time()
                h.push_session("s1", ["a", "b"], start=now - 1, end=now + 120)
                await eventually(
                    lambda: coturn.log_text().count("error 403: Forbidden IP") >= 2,
                    "coturn to refuse both rooms' permissions",
                    20,
                )
                assert _camera_frames(a, "room:b") == 0 and _camera_frames(b, "room:a") == 0
                assert _selected_pair(a, "s1", "room:b") is None
