"""room_agents/turn_tls.py: the agent's ``turn_ca_file`` makes ``turns:`` trust a private
CA besides the system's (issue 12: "a private CA must be configurable"), for aioice's
relayed gathering and the readiness check alike."""

from __future__ import annotations

import dataclasses
import ssl
import time
from pathlib import Path
from typing import Any

import aioice.turn
import pytest

from common import turn
from room_agents.config import ConfigError, merge
from room_agents.readiness import allocate_turn, parse_turn_url
from room_agents.turn_tls import (
    TurnCaError,
    install_turn_ca,
    turn_tls_context,
    uninstall_turn_ca,
)
from tests.certificates import self_signed
from tests.coturn_support import running_coturn

SECRET = "tls-secret-4b7e"


@pytest.fixture(autouse=True)
def _unpatched(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)  # only the setting trusts the CA
    uninstall_turn_ca()
    yield
    uninstall_turn_ca()


async def test_turns_refuses_a_private_ca_until_turn_ca_file_names_it(tmp_path: Path) -> None:
    with running_coturn(tmp_path, [SECRET], tls=True) as coturn:
        assert coturn.ca_file is not None
        target = parse_turn_url(coturn.tls_url)
        assert target is not None
        username, password = turn.mint(SECRET, time.time() + 120, "s1", "room:a")
        target = dataclasses.replace(target, username=username, password=password)
        refused = await allocate_turn(target)
        assert refused is not None and "CERTIFICATE_VERIFY_FAILED" in refused
        install_turn_ca(coturn.ca_file)
        assert await allocate_turn(target) is None
        uninstall_turn_ca()
        assert await allocate_turn(target) == refused


async def test_only_a_plain_true_becomes_the_context(tmp_path: Path) -> None:
    seen: list[Any] = []

    async def endpoint(*args: Any, **kwargs: Any) -> Any:
        seen.append(kwargs.get("ssl"))
        return None

    cert, _ = self_signed(tmp_path, common_name="private", ca=True)
    original = aioice.turn.create_turn_endpoint
    aioice.turn.create_turn_endpoint = endpoint  # type: ignore[assignment]
    try:
        context = install_turn_ca(cert)
        again = install_turn_ca(cert)  # idempotent: wraps the original, not itself
        explicit = ssl.create_default_context()
        await aioice.turn.create_turn_endpoint(ssl=True)
        await aioice.turn.create_turn_endpoint(ssl=explicit)
        await aioice.turn.create_turn_endpoint(ssl=False)
        await aioice.turn.create_turn_endpoint()
        assert seen == [again, explicit, False, None] and again is not context
        uninstall_turn_ca()
        assert aioice.turn.create_turn_endpoint is endpoint
    finally:
        aioice.turn.create_turn_endpoint = original  # type: ignore[assignment]


def test_the_context_keeps_the_system_authorities_and_adds_the_file(tmp_path: Path) -> None:
    cert, _ = self_signed(tmp_path, common_name="private", ca=True)
    system = turn_tls_context(None).cert_store_stats()["x509_ca"]
    assert turn_tls_context(cert).cert_store_stats()["x509_ca"] == system + 1
    with pytest.raises(TurnCaError, match="cannot read TURN CA file"):
        turn_tls_context(tmp_path / "missing.pem")


def test_turn_ca_file_is_an_agent_setting(tmp_path: Path) -> None:
    loaded = merge({"server": "https://x", "turn_ca_file": str(tmp_path / "ca.pem")}, {})
    assert loaded.config.turn_ca_file == tmp_path / "ca.pem"
    env = {"TELECENTRE_AGENT_TURN_CA_FILE": "/etc/ca.pem"}
    assert merge({"server": "https://x"}, env).config.turn_ca_file == Path("/etc/ca.pem")


def test_an_unreadable_turn_ca_file_stops_the_agent_at_start(tmp_path: Path) -> None:
    from room_agents.agent import RoomAgent

    config = merge({"server": "https://x", "turn_ca_file": str(tmp_path / "nope.pem")}, {})
    with pytest.raises(ConfigError, match="cannot read TURN CA file"):
        RoomAgent(config.config)
