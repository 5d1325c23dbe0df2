"""TURN credentials without a TURN server: the username's form, the HMAC, the window
(the join ticket's), which credential a session's calls may use, the ICE policy and
the settings that configure it all."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from aiortc.rtcconfiguration import RTCIceTransportPolicy

from common import turn
from room_agents.ice import (
    effective_policy,
    filter_sdp,
    order_turn_urls,
    rtc_configuration,
    session_ice_servers,
)
from room_agents.readiness import allocation_refusal, turn_targets
from signalling import protocol as p
from signalling.candidates import parse_networks, refused_in_sdp
from signalling.turn import TurnConfig, ice_servers_for
from tests.signalling_fixtures import signalling_harness
from web.app import turn_config
from web.settings import Settings

SECRET = "north-wind"


def test_the_password_is_coturns_hmac_of_the_username() -> None:
    # Evidence computed apart from our code:
    #   printf '%s' 1700000000:s1:room:a | openssl dgst -sha1 -hmac north-wind -binary | base64
    username = turn.turn_username(1_700_000_000, "s1", "room:a")
    assert username == "1700000000:s1:room:a"
    assert turn.turn_password(SECRET, username) == "54GwYLcLhIwbx5ziza3Ha7Oz8F4="
    assert turn.mint(SECRET, 1_699_999_999.2, "s1", "room:a") == (
        username,
        "54GwYLcLhIwbx5ziza3Ha7Oz8F4=",
    )


def test_a_username_reads_back_and_refuses_what_is_not_ours() -> None:
    parts = turn.parse_turn_username("1700000000:s1:guest:g:1")
    assert parts == turn.TurnUsername(1_700_000_000, "s1", "guest:g:1")
    check = turn.parse_turn_username(turn.turn_username(5, turn.NO_SESSION, "room:a"))
    assert check == turn.TurnUsername(5, "", "room:a")
    for bad in ("", "alice", "12ab:s1:room:a", "1700000000:s1", "1700000000:s1:", "-1:s:p"):
        assert turn.parse_turn_username(bad) is None, bad
    with pytest.raises(ValueError):
        turn.turn_username(1, "a:b", "room:a")
    with pytest.raises(ValueError):
        turn.turn_password("", "x")


def test_a_credential_serves_only_its_session_and_peer_until_it_expires() -> None:
    username = turn.turn_username(1000, "s1", "room:a")
    assert turn.usable_for_session(username, "s1", "room:a", 999.5) is None
    assert turn.usable_for_session(username, "s2", "room:a", 999.5) == "minted for another session"
    assert turn.usable_for_session(username, "s1", "room:b", 999.5) == "minted for another peer"
    assert turn.usable_for_session(username, "s1", "room:a", 1000) == "expired"
    check = turn.turn_username(1000, turn.NO_SESSION, "room:a")
    assert turn.usable_for_session(check, "s1", "room:a", 10) == "minted for another session"


def test_session_servers_keep_stun_and_the_session_s_own_credential() -> None:
    stun = p.IceServer(urls=["stun:127.0.0.1:3478"])
    mine = p.IceServer(urls=["turn:t"], username="2000:s1:room:a", credential="x")
    other = p.IceServer(urls=["turn:t"], username="2000:s2:room:a", credential="y")
    check = p.IceServer(urls=["turn:t"], username="2000::room:a", credential="z")
    kept, dropped = session_ice_servers([stun, check, other, mine], "s1", "room:a", 1500)
    assert kept == [stun, mine]
    assert dropped == ["minted for another session", "minted for another session"]
    kept, dropped = session_ice_servers([mine], "s1", "room:a", 2000)
    assert kept == [] and dropped == ["expired"]
    assert "x" not in repr(mine) and "y" not in repr(other)


def test_turn_urls_are_ordered_for_the_policy_as_aiortc_takes_the_first() -> None:
    urls = ["turns:t:443", "turn:t:3478?transport=tcp", "stun:s", "turn:t:3478?transport=udp"]
    assert order_turn_urls(urls, "all") == [
        "stun:s",
        "turn:t:3478?transport=udp",
        "turn:t:3478?transport=tcp",
        "turns:t:443",
    ]
    assert order_turn_urls(urls, "relay") == [
        "stun:s",
        "turns:t:443",
        "turn:t:3478?transport=tcp",
        "turn:t:3478?transport=udp",
    ]
    servers = [p.IceServer(urls=urls, username="u", credential="c")]
    relay = rtc_configuration(servers, "relay")
    assert relay.iceTransportPolicy == RTCIceTransportPolicy.RELAY
    assert relay.iceServers is not None and relay.iceServers[0].urls[1] == "turns:t:443"
    assert rtc_configuration(servers).iceTransportPolicy == RTCIceTransportPolicy.ALL
    assert rtc_configuration().iceServers == []  # never None: no public STUN
    assert effective_policy("all", "relay") == "relay" == effective_policy("relay", "all")
    assert effective_policy("all", "all") == "all"


def test_minted_servers_follow_the_config() -> None:
    static = (p.IceServer(urls=["stun:127.0.0.1:3478"]),)
    assert ice_servers_for(static, TurnConfig(), "room:a", "s1", 10) == list(static)
    config = TurnConfig(urls=("turn:127.0.0.1:3478",), secret=SECRET)
    assert SECRET not in repr(config)
    servers = ice_servers_for(static, config, "room:a", "s1", 1_700_000_000)
    assert servers[1] == p.IceServer(
        urls=["turn:127.0.0.1:3478"],
        username="1700000000:s1:room:a",
        credential="54GwYLcLhIwbx5ziza3Ha7Oz8F4=",
    )


async def test_joined_carries_the_session_credential_expiring_with_the_ticket() -> None:
    config = TurnConfig(urls=("turn:127.0.0.1:3478",), secret=SECRET, check_seconds=600)
    async with signalling_harness(turn=config) as h:
        h.add_room("a")
        c = await h.client("a")
        assert c.welcome is not None
        [check] = c.welcome.ice_servers
        assert check.username is not None
        parts = turn.parse_turn_username(check.username)
        assert parts is not None and parts.session_id == "" and parts.peer_id == "room:a"
        assert abs(parts.expires - (time.time() + 600)) < 5
        exp = int(time.time()) + 900
        joined = await c.join("s1", h.minter.mint("room:a", "s1", exp=exp))
        [session] = joined.ice_servers
        assert session.username == f"{exp}:s1:room:a"
        assert session.credential == turn.turn_password(SECRET, f"{exp}:s1:room:a")
        # Another session's join gets its own credential, with its own ticket's expiry.
        joined2 = await c.join("s2", h.minter.mint("room:a", "s2", exp=exp + 60))
        assert joined2.ice_servers[0].username == f"{exp + 60}:s2:room:a"
        # No join, no session credential: a ticket not yet valid is refused.
        with pytest.raises(Exception, match="ticket"):
            await c.join("s3", h.minter.mint("room:a", "s3", nbf=time.time() + 300))
        await c.close()


async def test_a_guest_s_welcome_carries_no_turn_credential() -> None:
    config = TurnConfig(urls=("turn:127.0.0.1:3478",), secret=SECRET)
    async with signalling_harness(turn=config) as h:
        ticket = h.minter.mint("guest:g1", "s1", role="guest", name="Ada")
        c = await h.guest(ticket)
        assert c.welcome is not None and c.welcome.ice_servers == []
        joined = await c.join("s1", ticket)
        assert joined.ice_servers[0].username is not None
        assert joined.ice_servers[0].username.endswith(":s1:guest:g1")
        await c.close()


def test_readiness_probes_with_the_credential_until_it_expires() -> None:
    server = p.IceServer(
        urls=["turn:h:3478", "turns:h:443", "stun:h"], username="1000::room:a", credential="pw"
    )
    targets = turn_targets([server], now=999)
    assert [(t.url, t.tls, t.username) for t in targets] == [
        ("turn:h:3478", False, "1000::room:a"),
        ("turns:h:443", True, "1000::room:a"),
    ]
    assert "pw" not in repr(targets)
    assert {t.username for t in turn_targets([server], now=1000)} == {None}
    assert allocation_refusal(401) == "credential refused (401)"
    assert allocation_refusal(403) == "allocation refused (403)"


def test_settings_read_the_ice_servers_and_the_secret(tmp_path: Path) -> None:
    secret_file = tmp_path / "turn-secret"
    secret_file.write_text(SECRET + "\n")
    settings = Settings.from_env(
        {
            "TELECENTRE_STUN_URLS": "stun:turn.example.org:3478",
            "TELECENTRE_TURN_URLS": "turn:turn.example.org:3478, turns:turn.example.org:443",
            "TELECENTRE_TURN_SECRET_FILE": str(secret_file),
            "TELECENTRE_TURN_RELAY_NETWORKS": "203.0.113.7/32",
        }
    )
    assert settings.turn_urls == ("turn:turn.example.org:3478", "turns:turn.example.org:443")
    assert settings.allowed_candidate_networks == ("127.0.0.1/32", "203.0.113.7/32")
    config = turn_config(settings)
    assert config.secret == SECRET and config.enabled
    assert SECRET not in repr(settings) and SECRET not in repr(config)
    with pytest.raises(ValueError, match="go together"):
        turn_config(Settings(turn_urls=("turn:t",)))
    assert SECRET not in repr(Settings(turn_secret=SECRET))
    empty = tmp_path / "empty"
    empty.write_text("")
    with pytest.raises(ValueError, match="empty"):
        Settings(turn_secret_file=empty).read_turn_secret()


def test_the_candidate_filter_lets_relay_addresses_in_and_keeps_the_rest_out() -> None:
    settings = Settings(
        candidate_networks=("10.77.0.0/16",), turn_relay_networks=("203.0.113.7/32",)
    )
    networks = parse_networks(settings.allowed_candidate_networks)
    relay = "a=candidate:1 1 udp 16777215 203.0.113.7 49170 typ relay raddr 0.0.0.0 rport 0"
    lan = "a=candidate:2 1 udp 2130706431 10.77.0.5 50000 typ host"
    other = "a=candidate:3 1 udp 16777215 203.0.113.8 49170 typ relay raddr 0.0.0.0 rport 0"
    sdp = "v=0\r\n" + "\r\n".join((relay, lan, other)) + "\r\n"
    assert refused_in_sdp("v=0\r\n" + relay + "\r\n" + lan + "\r\n", networks) is None
    assert refused_in_sdp(sdp, networks) is not None
    kept, removed = filter_sdp(sdp, networks)
    assert removed == ["203.0.113.8"] and relay in kept and lan in kept


async def test_a_room_s_ping_can_fetch_a_fresh_check_credential() -> None:
    config = TurnConfig(urls=("turn:127.0.0.1:3478",), secret=SECRET, check_seconds=60)
    clock = [1_800_000_000.0]
    async with signalling_harness(clock=lambda: clock[0], turn=config) as h:
        h.add_room("a")
        c = await h.client("a")
        assert c.welcome is not None and c.welcome.ice_servers[0].username == ("1800000060::room:a")
        clock[0] += 3600  # an hour later, the welcome's credential has long expired
        _, fresh = await c.ping_for_ice(5.0)
        assert fresh is not None and fresh[0].username == "1800003660::room:a"
        assert fresh[0].credential == turn.turn_password(SECRET, "1800003660::room:a")
        assert (await c.ping_for_ice(5.0, ice=False))[1] is None
        await c.close()
        ticket = h.minter.mint("guest:g1", "s1", role="guest", name="Ada", exp=clock[0] + 60)
        # A guest never gets a check credential.
        guest = await h.guest(ticket)
        assert (await guest.ping_for_ice(5.0))[1] is None
        await guest.close()
