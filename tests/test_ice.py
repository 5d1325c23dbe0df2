"""Candidate address filter and the aioice host-address pin, with real aiortc peers."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Iterator

import aioice.ice
import pytest
from aiortc import RTCDataChannel, RTCPeerConnection, RTCSessionDescription

from room_agents.ice import (
    CandidateNotAllowed,
    address_allowed,
    candidate_address,
    check_sdp,
    filter_sdp,
    local_addresses_in,
    parse_networks,
    pin_host_addresses,
    pinned_host_addresses,
    rtc_configuration,
    sdp_candidate_addresses,
    unpin_host_addresses,
)
from signalling.protocol import ErrorCode, IceServer

LOOPBACK = parse_networks(["127.0.0.1/32"])

SDP = (
    "v=0\r\n"
    "o=- 1 1 IN IP4 0.0.0.0\r\n"
    "s=-\r\n"
    "t=0 0\r\n"
    "m=application 9 DTLS/SCTP 5000\r\n"
    "c=IN IP4 127.0.0.1\r\n"
    "a=candidate:1 1 UDP 2130706431 127.0.0.1 50000 typ host\r\n"
    "a=candidate:2 1 UDP 2130706431 10.0.0.1 50001 typ host\r\n"
    "a=candidate:3 1 UDP 1694498815 203.0.113.7 50002 typ srflx raddr 10.0.0.1 rport 50001\r\n"
    "a=candidate:4 1 UDP 2130706431 3f2a8c1e-0000-4000-8000-000000000000.local 50003 typ host\r\n"
    "a=end-of-candidates\r\n"
)


@pytest.fixture
def pinned_loopback() -> Iterator[None]:
    pin_host_addresses(["127.0.0.1"])
    try:
        yield
    finally:
        unpin_host_addresses()


def test_parse_networks_and_address_allowed() -> None:
    networks = parse_networks(["127.0.0.1", "10.0.0.0/8", "::1/128", "192.168.1.7/24"])
    assert [str(n) for n in networks] == ["127.0.0.1/32", "10.0.0.0/8", "::1/128", "192.168.1.0/24"]
    assert address_allowed("127.0.0.1", networks)
    assert address_allowed("10.200.3.4", networks)
    assert address_allowed("::1", networks)
    assert address_allowed("[::1]", networks)
    assert not address_allowed("127.0.0.2", networks)
    assert not address_allowed("fe80::1%eth0", networks)
    assert not address_allowed("abcd.local", networks)
    assert not address_allowed("", networks)
    with pytest.raises(ValueError):
        parse_networks(["not-a-network"])


def test_candidate_address_reads_sdp_lines_and_trickled_strings() -> None:
    line = "a=candidate:1 1 UDP 2130706431 127.0.0.1 50000 typ host"
    assert candidate_address(line) == "127.0.0.1"
    assert candidate_address(line[2:]) == "127.0.0.1"
    assert candidate_address("a=candidate:1 1 UDP") is None
    assert candidate_address("a=mid:0") is None
    assert sdp_candidate_addresses(SDP) == [
        "127.0.0.1",
        "10.0.0.1",
        "203.0.113.7",
        "3f2a8c1e-0000-4000-8000-000000000000.local",
    ]


def test_filter_sdp_drops_candidates_outside_the_networks() -> None:
    filtered, removed = filter_sdp(SDP, LOOPBACK)
    assert removed == ["10.0.0.1", "203.0.113.7", "3f2a8c1e-0000-4000-8000-000000000000.local"]
    assert sdp_candidate_addresses(filtered) == ["127.0.0.1"]
    assert "10.0.0.1" not in filtered
    assert filtered.endswith("a=end-of-candidates\r\n")
    assert filtered.count("\r\n") == SDP.count("\r\n") - 3
    assert filter_sdp(filtered, LOOPBACK) == (filtered, [])


def test_check_sdp_raises_with_a_stable_code() -> None:
    check_sdp(filter_sdp(SDP, LOOPBACK)[0], LOOPBACK)
    with pytest.raises(CandidateNotAllowed) as info:
        check_sdp(SDP, LOOPBACK)
    assert info.value.code == ErrorCode.CANDIDATE_NOT_ALLOWED
    assert info.value.addresses[0] == "10.0.0.1"


def test_rtc_configuration_always_passes_a_list() -> None:
    # aiortc adds Google's STUN server when iceServers is None.
    assert rtc_configuration([]).iceServers == []
    assert rtc_configuration().iceServers == []
    config = rtc_configuration(
        [
            IceServer(urls=["stun:stun.example.org:3478"]),
            IceServer(urls=["turn:turn.example.org:3478"], username="u", credential="c"),
        ]
    )
    assert config.iceServers is not None
    assert [s.urls for s in config.iceServers] == [
        ["stun:stun.example.org:3478"],
        ["turn:turn.example.org:3478"],
    ]
    assert (config.iceServers[1].username, config.iceServers[1].credential) == ("u", "c")


def test_local_addresses_include_loopback_only_when_allowed() -> None:
    assert local_addresses_in(LOOPBACK) == ["127.0.0.1"]
    assert "::1" in local_addresses_in(parse_networks(["::1/128"]))
    # No interface holds a multicast address (MCAST-TEST-NET).
    assert local_addresses_in(parse_networks(["233.252.0.0/24"])) == []
    everything = local_addresses_in(parse_networks(["0.0.0.0/0"]))
    assert "127.0.0.1" in everything


def test_pin_is_idempotent_and_unpin_restores_aioice() -> None:
    original = aioice.ice.get_host_addresses
    assert list(inspect.signature(original).parameters) == ["use_ipv4", "use_ipv6"]
    try:
        pin_host_addresses(["127.0.0.1"])
        pin_host_addresses(["127.0.0.1", "::1"])
        assert pinned_host_addresses() == ["127.0.0.1", "::1"]
        assert aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=False) == ["127.0.0.1"]
        assert aioice.ice.get_host_addresses(use_ipv4=False, use_ipv6=True) == ["::1"]
        with pytest.raises(ValueError):
            pin_host_addresses(["not-an-address"])
    finally:
        unpin_host_addresses()
    assert aioice.ice.get_host_addresses is original
    assert pinned_host_addresses() is None
    unpin_host_addresses()  # a no-op when not pinned
    assert aioice.ice.get_host_addresses is original


async def test_two_peers_connect_on_loopback_only(pinned_loopback: None) -> None:
    offerer = RTCPeerConnection(rtc_configuration([]))
    answerer = RTCPeerConnection(rtc_configuration([]))
    try:
        got_offerer: asyncio.Queue[str] = asyncio.Queue()
        got_answerer: asyncio.Queue[str] = asyncio.Queue()
        channel = offerer.createDataChannel("ping")

        @channel.on("message")
        def _at_offerer(message: str) -> None:
            got_offerer.put_nowait(message)

        @answerer.on("datachannel")
        def _at_answerer(remote: RTCDataChannel) -> None:
            def _message(message: str) -> None:
                got_answerer.put_nowait(message)
                remote.send(f"pong {message}")

            remote.on("message", _message)

        await offerer.setLocalDescription(await offerer.createOffer())
        offer = offerer.localDescription
        await answerer.setRemoteDescription(RTCSessionDescription(offer.sdp, offer.type))
        await answerer.setLocalDescription(await answerer.createAnswer())
        answer = answerer.localDescription
        await offerer.setRemoteDescription(RTCSessionDescription(answer.sdp, answer.type))

        for sdp in (offer.sdp, answer.sdp):
            addresses = sdp_candidate_addresses(sdp)
            assert addresses and set(addresses) == {"127.0.0.1"}
            check_sdp(sdp, LOOPBACK)

        opened = asyncio.Event()
        channel.on("open", opened.set)
        if channel.readyState != "open":
            await asyncio.wait_for(opened.wait(), 10)
        channel.send("ping")
        assert await asyncio.wait_for(got_answerer.get(), 5) == "ping"
        assert await asyncio.wait_for(got_offerer.get(), 5) == "pong ping"
        assert offerer.iceConnectionState == "completed"
        for pc in (offerer, answerer):
            assert pc.sctp is not None
            gatherer = pc.sctp.transport.transport.iceGatherer  # the one behind the bundle
            assert {c.ip for c in gatherer.getLocalCandidates()} == {"127.0.0.1"}
            # aiortc 1.16 has no getConfiguration(); look where a default would land:
            # with iceServers None aiortc hands Google's STUN server to aioice.
            assert gatherer._connection.stun_server is None
            assert gatherer._connection.turn_server is None
    finally:
        await offerer.close()
        await answerer.close()


async def test_aioice_alone_leaves_out_loopback() -> None:
    """The evidence for the pin: unpinned, aioice never offers 127.0.0.1."""
    assert pinned_host_addresses() is None
    connection = aioice.ice.Connection(ice_controlling=True)
    try:
        await connection.gather_candidates()
        assert "127.0.0.1" not in {c.host for c in connection.local_candidates}
    finally:
        await connection.close()
