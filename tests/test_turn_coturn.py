"""Real coturn on loopback (tests/coturn_support.py): what it enforces of our credentials.

coturn checks the HMAC (against each ``static-auth-secret`` line) and the expiry in the
username; it knows nothing of sessions. So: a credential in its window is accepted,
an expired one refused (a session's credential expires with its join ticket, so it is
refused for any later session), one minted with a wrong or rotated-out secret refused,
and during a rotation both secrets are accepted. What coturn cannot refuse (a live
credential of session S presented for an overlapping session S') is refused where we
enforce it: tests/test_turn_relay.py and test_turn_credentials.py.
"""

from __future__ import annotations

import dataclasses
import re
import time
from pathlib import Path

import pytest

from common import turn
from room_agents.readiness import allocate_turn, parse_turn_url, probe_turn, turn_check
from signalling.turn import TurnConfig
from tests.coturn_support import running_coturn
from tests.signalling_fixtures import eventually, signalling_harness

OLD = "old-secret-7f3a"
NEW = "new-secret-91c2"


async def _allocate(url: str, secret: str, expires: float, session: str = "s1") -> str | None:
    target = parse_turn_url(url)
    assert target is not None
    username, password = turn.mint(secret, expires, session, "room:a")
    return await allocate_turn(dataclasses.replace(target, username=username, password=password))


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_coturn_accepts_a_credential_in_its_window_and_refuses_it_expired(
    tmp_path: Path, transport: str
) -> None:
    with running_coturn(tmp_path, [NEW]) as coturn:
        url = coturn.udp_url if transport == "udp" else coturn.tcp_url
        now = time.time()
        assert await _allocate(url, NEW, now + 120) is None
        # A credential of a session that ended (its ticket expired) is refused for the next.
        assert await _allocate(url, NEW, now - 2) == "credential refused (401)"


async def test_coturn_refuses_a_wrong_secret_and_accepts_both_during_a_rotation(
    tmp_path: Path,
) -> None:
    later = time.time() + 120
    with running_coturn(tmp_path / "rotating", [NEW, OLD]) as coturn:
        # The overlap: credentials minted with either secret work.
        assert await _allocate(coturn.udp_url, NEW, later) is None
        assert await _allocate(coturn.udp_url, OLD, later) is None
        assert await _allocate(coturn.udp_url, "guessed", later) == "credential refused (401)"
    with running_coturn(tmp_path / "rotated", [NEW]) as coturn:
        # The old secret rotated out: what it minted is refused, even within its window.
        assert await _allocate(coturn.udp_url, OLD, later) == "credential refused (401)"
        assert await _allocate(coturn.udp_url, NEW, later) is None


async def test_the_readiness_turn_check_allocates_for_real(tmp_path: Path) -> None:
    with running_coturn(tmp_path, [NEW]) as coturn:
        username, password = turn.mint(NEW, time.time() + 60, turn.NO_SESSION, "room:a")
        good = []
        for url in (coturn.udp_url, coturn.tcp_url):
            target = parse_turn_url(url)
            assert target is not None
            good.append(dataclasses.replace(target, username=username, password=password))
        answers = [await probe_turn(t, 3.0) for t in good]
        check = turn_check(list(zip(good, answers, strict=True)))
        assert check.ok and check.detail == f"reachable: {coturn.udp_url}, {coturn.tcp_url}"
        refused = dataclasses.replace(good[0], password="not-the-hmac")
        check = turn_check([(refused, await probe_turn(refused, 3.0))])
        assert not check.ok
        assert check.detail == f"unreachable: {coturn.udp_url}: credential refused (401)"
        assert password not in coturn.log_text() and NEW not in coturn.log_text()


@pytest.mark.parametrize("coturn_secret", [NEW, OLD], ids=["same-secret", "rotated-out"])
async def test_a_room_s_readiness_allocates_with_its_check_credential(
    tmp_path: Path, coturn_secret: str
) -> None:
    """The room's welcome carries a check credential; its readiness check allocates with
    it: passing when coturn holds the secret that minted it, failing with a stable
    detail when coturn no longer does."""
    from tests.test_readiness_agent import agent_for, readiness_events

    with running_coturn(tmp_path, [coturn_secret]) as coturn:
        config = TurnConfig(urls=(coturn.udp_url,), secret=NEW)
        async with signalling_harness(turn=config) as h:
            h.add_room("a")
            async with agent_for(h, "a"):
                await eventually(lambda: readiness_events(h), "the check at connection", 15)
    (event,) = readiness_events(h)
    check = next(c for c in event.checks if c.name == "turn")
    if coturn_secret == NEW:
        assert check.ok and check.detail == f"reachable: {coturn.udp_url}"
    else:
        assert not check.ok
        assert check.detail == f"unreachable: {coturn.udp_url}: credential refused (401)"


async def test_turn_over_tls_checks_the_certificate_and_takes_a_private_ca(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``turns:`` is TLS to coturn: a certificate the system does not trust is refused;
    the CA given (here with ``SSL_CERT_FILE``, OpenSSL's default verify path, which the
    readiness check and aioice's TURN client both use) makes it pass."""
    with running_coturn(tmp_path, [NEW], tls=True) as coturn:
        later = time.time() + 120
        monkeypatch.delenv("SSL_CERT_FILE", raising=False)
        refused = await _allocate(coturn.tls_url, NEW, later)
        assert refused is not None and refused.startswith("TLS: ")
        assert "CERTIFICATE_VERIFY_FAILED" in refused
        monkeypatch.setenv("SSL_CERT_FILE", str(coturn.ca_file))
        assert await _allocate(coturn.tls_url, NEW, later) is None
        assert await _allocate(coturn.tls_url, NEW, time.time() - 2) == ("credential refused (401)")


async def test_the_readiness_check_allocates_after_the_welcome_credential_expired(
    tmp_path: Path,
) -> None:
    """A room stays connected for days; its welcome's check credential lasts
    ``check_seconds``. The check's ping fetches a fresh one, so it still allocates."""
    from tests.test_readiness_agent import agent_for

    with running_coturn(tmp_path, [NEW]) as coturn:
        config = TurnConfig(urls=(coturn.udp_url,), secret=NEW, check_seconds=1)
        async with signalling_harness(turn=config) as h:
            h.add_room("a")
            async with agent_for(h, "a") as agent:
                (server,) = agent.ice_servers
                parts = turn.parse_turn_username(server.username or "")
                assert parts is not None
                await eventually(lambda: time.time() > parts.expires + 1, "it to expire", 5)
                assert agent.client is not None
                checks = await agent.readiness.check(agent.client, agent.devices.status())
                check = next(c for c in checks if c.name == "turn")
                assert check.ok and check.detail == f"reachable: {coturn.udp_url}"
        allocated = re.findall(r"username=<(\d+)::room:a>, lifetime", coturn.log_text())
        assert allocated and max(int(e) for e in allocated) > parts.expires
