"""The signalling endpoint: authentication, membership, relay, limits and bad input."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp
import pytest

from signalling import protocol as p
from signalling.client import SignallingClient, SignallingError
from signalling.ports import PeerJoinedSession, PeerLeftSession
from tests.signalling_fixtures import Harness, Minter, eventually, signalling_harness

SDP_LOOPBACK = "v=0\r\na=candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host\r\n"
SDP_PRIVATE = "v=0\r\na=candidate:1 1 udp 2130706431 10.1.2.3 5000 typ host\r\n"


async def raw_hello(h: Harness, room_id: str) -> aiohttp.ClientWebSocketResponse:
    ws = await h.http.ws_connect(h.url)
    await ws.send_str(
        json.dumps(
            {"type": "hello", "protocol": 1, "room_id": room_id, "key": h.keys[room_id], "id": "h"}
        )
    )
    welcome = json.loads((await ws.receive(timeout=5)).data)
    assert welcome["type"] == "welcome"
    return ws


async def next_of(ws: aiohttp.ClientWebSocketResponse, msg_type: str) -> dict[str, Any]:
    while True:
        msg = await ws.receive(timeout=5)
        assert msg.type == aiohttp.WSMsgType.TEXT, msg
        data: dict[str, Any] = json.loads(msg.data)
        if data["type"] == msg_type:
            return data


async def recv_type(c: SignallingClient, cls: type[Any]) -> Any:
    async def loop() -> Any:
        while True:
            m = await c.recv()
            if isinstance(m, cls):
                return m

    return await asyncio.wait_for(loop(), 5)


async def two_in_session(h: Harness) -> tuple[SignallingClient, SignallingClient]:
    h.add_room("a")
    h.add_room("b")
    a = await h.client("a")
    b = await h.client("b")
    await a.join("s1", h.minter.mint("room:a", "s1"))
    joined = await b.join("s1", h.minter.mint("room:b", "s1"))
    assert [peer.peer_id for peer in joined.peers] == ["room:a"]
    return a, b


async def test_welcome_carries_server_time_ice_servers_filter_and_limits() -> None:
    async with signalling_harness() as h:
        h.add_room("a")
        c = await h.client("a")
        w = c.welcome
        assert w is not None and w.peer_id == "room:a" and w.name == "Room a"
        assert abs(w.server_time - time.time()) < 5
        assert w.ice_servers == [] and w.candidate_filter.allow == ["127.0.0.1/32"]
        assert w.limits.max_message_bytes == 65536
        rtt = await c.ping()
        assert rtt < 1.0 and c.clock_offset.best_rtt is not None
        await c.close()


async def test_wrong_key_is_refused_with_auth_failed() -> None:
    async with signalling_harness() as h:
        h.add_room("a")
        c = SignallingClient(h.http, h.url, room_id="a", key="tck_wrong")
        with pytest.raises(SignallingError) as err:
            await c.connect()
        assert err.value.code == p.ErrorCode.AUTH_FAILED
        await c.close()


async def test_rotated_key_is_revoked_at_once_and_the_connection_closed() -> None:
    async with signalling_harness() as h:
        old = h.add_room("a", generation=1)
        c = await h.client("a")
        new = h.add_room("a", generation=2)
        await h.server.hub.disconnect_room(
            "a", 4403, p.Error(code=p.ErrorCode.KEY_REVOKED, message="x")
        )
        await asyncio.wait_for(c.closed.wait(), 5)
        stale = SignallingClient(h.http, h.url, room_id="a", key=old)
        with pytest.raises(SignallingError) as err:
            await stale.connect()
        assert err.value.code == p.ErrorCode.KEY_REVOKED
        fresh = await h.client("a", key=new)
        assert fresh.welcome is not None
        await asyncio.gather(c.close(), stale.close(), fresh.close())


async def test_later_joiner_gets_the_peers_and_earlier_ones_hear_of_it() -> None:
    async with signalling_harness() as h:
        a, b = await two_in_session(h)
        pj = await recv_type(a, p.PeerJoined)
        assert pj.peer.peer_id == "room:b" and pj.peer.room_id == "b"
        await b.send(p.Offer(session_id="s1", to="room:a", sdp=SDP_LOOPBACK, conn="k1"))
        offer = await recv_type(a, p.Offer)
        assert offer.from_ == "room:b" and offer.conn == "k1" and offer.to is None
        await a.send(p.Answer(session_id="s1", to="room:b", sdp=SDP_LOOPBACK, conn="k1"))
        answer = await recv_type(b, p.Answer)
        assert answer.from_ == "room:a"
        joined = [e for e in h.events.events if isinstance(e, PeerJoinedSession)]
        assert [e.room_id for e in joined] == ["a", "b"]
        await asyncio.gather(a.close(), b.close())


async def test_ticket_errors_each_have_their_code() -> None:
    async with signalling_harness() as h:
        h.add_room("a")
        h.add_room("b")
        a = await h.client("a")
        now = time.time()
        cases = {
            p.ErrorCode.TICKET_INVALID: Minter().mint("room:a", "s1"),  # forged: another key
            p.ErrorCode.TICKET_EXPIRED: h.minter.mint("room:a", "s1", nbf=now - 900, exp=now - 300),
            p.ErrorCode.TICKET_NOT_YET_VALID: h.minter.mint("room:a", "s1", nbf=now + 300),
            p.ErrorCode.TICKET_WRONG_SESSION: h.minter.mint("room:a", "s2"),
            p.ErrorCode.TICKET_WRONG_PEER: h.minter.mint("room:b", "s1"),
        }
        for code, ticket in cases.items():
            with pytest.raises(SignallingError) as err:
                await a.join("s1", ticket)
            assert err.value.code == code
        with pytest.raises(SignallingError) as err:
            await a.join("s1", "not.a.jwt")
        assert err.value.code == p.ErrorCode.TICKET_INVALID
        assert h.server.hub.members("s1") == []
        await a.close()


async def test_revoked_ticket_is_refused() -> None:
    async with signalling_harness() as h:
        h.add_room("a")
        a = await h.client("a")
        ticket = h.minter.mint("room:a", "s1")
        import jwt as pyjwt

        jti = pyjwt.decode(ticket, options={"verify_signature": False})["jti"]
        h.server.tickets.revoke((jti,), time.time() + 600)
        with pytest.raises(SignallingError) as err:
            await a.join("s1", ticket)
        assert err.value.code == p.ErrorCode.TICKET_REVOKED
        await a.close()


async def test_offer_to_a_peer_outside_the_session_is_refused() -> None:
    async with signalling_harness() as h:
        a, b = await two_in_session(h)
        h.add_room("c")
        c = await h.client("c")
        await c.join("s2", h.minter.mint("room:c", "s2"))
        await a.send(p.Offer(session_id="s1", to="room:c", sdp=SDP_LOOPBACK, conn="x", id="o1"))
        err = await recv_type(a, p.Error)
        assert err.code == p.ErrorCode.PEER_NOT_IN_SESSION and err.ref == "o1"
        await c.send(p.Offer(session_id="s1", to="room:a", sdp=SDP_LOOPBACK, conn="x", id="o2"))
        err = await recv_type(c, p.Error)
        assert err.code == p.ErrorCode.NOT_IN_SESSION and err.ref == "o2"
        await asyncio.gather(a.close(), b.close(), c.close())


async def test_sdp_with_a_candidate_outside_the_allowed_networks_is_not_relayed() -> None:
    async with signalling_harness() as h:
        a, b = await two_in_session(h)
        await b.send(p.Offer(session_id="s1", to="room:a", sdp=SDP_PRIVATE, conn="k", id="o"))
        err = await recv_type(b, p.Error)
        assert err.code == p.ErrorCode.CANDIDATE_NOT_ALLOWED and err.ref == "o"
        await b.send(
            p.Candidate(
                session_id="s1",
                to="room:a",
                conn="k",
                id="c",
                candidate="candidate:1 1 udp 1 192.168.1.9 9 typ host",
            )
        )
        err = await recv_type(b, p.Error)
        assert err.code == p.ErrorCode.CANDIDATE_NOT_ALLOWED
        assert list(h.server.counters.violation_examples) == ["10.1.2.3", "192.168.1.9"]
        assert h.server.counters.candidate_violations == 2
        await asyncio.gather(a.close(), b.close())


async def test_malformed_unknown_and_oversized_messages_get_their_codes() -> None:
    async with signalling_harness() as h:
        h.add_room("a")
        ws = await raw_hello(h, "a")
        await ws.send_str("{not json")
        assert (await next_of(ws, "error"))["code"] == p.ErrorCode.BAD_JSON
        await ws.send_str(json.dumps({"type": "teleport", "id": "t1"}))
        err = await next_of(ws, "error")
        assert err["code"] == p.ErrorCode.UNKNOWN_TYPE and err["ref"] == "t1"
        await ws.send_str(json.dumps({"type": "join", "id": "j1"}))
        err = await next_of(ws, "error")
        assert err["code"] == p.ErrorCode.BAD_MESSAGE and err["ref"] == "j1"
        await ws.send_str(json.dumps({"type": "ping", "t": 1, "pad": "x" * 70_000}))
        assert (await next_of(ws, "error"))["code"] == p.ErrorCode.TOO_LARGE
        # The connection survives all of it.
        await ws.send_str(json.dumps({"type": "ping", "t": 1.0, "id": "p"}))
        assert (await next_of(ws, "pong"))["ref"] == "p"
        await ws.close()


async def test_a_flood_is_rate_limited_while_others_keep_a_low_round_trip_and_can_join() -> None:
    async with signalling_harness() as h:
        h.add_room("flood")
        h.add_room("calm")
        h.add_room("late")
        flood = await raw_hello(h, "flood")
        calm = await h.client("calm")
        await calm.join("s1", h.minter.mint("room:calm", "s1"))
        stop = asyncio.Event()

        async def flooding() -> None:
            msg = json.dumps({"type": "ping", "t": 1.0})
            while not stop.is_set():
                for _ in range(100):
                    await flood.send_str(msg)
                await asyncio.sleep(0)

        errors: list[str] = []

        async def drain() -> None:
            async for m in flood:
                data = json.loads(m.data)
                if data["type"] == "error":
                    errors.append(data["code"])

        tasks = [asyncio.create_task(flooding()), asyncio.create_task(drain())]
        try:
            rtts = [await calm.ping() for _ in range(20)]
            late = await h.client("late")
            joined = await late.join("s1", h.minter.mint("room:late", "s1"))
            assert [x.peer_id for x in joined.peers] == ["room:calm"]
        finally:
            stop.set()
            await flood.close()
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        assert p.ErrorCode.RATE_LIMITED in errors
        assert h.server.counters.errors[p.ErrorCode.RATE_LIMITED] > 100
        # A behavioural bound, not a benchmark: the calm peer is never stuck behind the flood.
        assert max(rtts) < 1.0, rtts
        await asyncio.gather(calm.close(), late.close())


async def test_a_lost_websocket_keeps_the_peer_through_the_grace_period() -> None:
    async with signalling_harness(grace_seconds=0.5) as h:
        a, b = await two_in_session(h)
        assert h.server.hub.members("s1") == ["room:a", "room:b"]
        await b.close()
        b2 = await h.client("b")
        joined = await b2.join("s1", h.minter.mint("room:b", "s1"))
        assert [x.peer_id for x in joined.peers] == ["room:a"]
        assert h.server.hub.members("s1") == ["room:a", "room:b"]
        left = [e for e in h.events.events if isinstance(e, PeerLeftSession)]
        assert left == []
        await b2.close()
        pl = await recv_type(a, p.PeerLeft)
        assert pl.peer_id == "room:b" and pl.reason == "timeout"
        await a.close()


async def test_a_new_connection_of_the_same_room_replaces_the_old_one() -> None:
    async with signalling_harness() as h:
        h.add_room("a")
        first = await h.client("a")
        second = await h.client("a")
        await asyncio.wait_for(first.closed.wait(), 5)
        assert first.close_reason == p.ErrorCode.REPLACED
        assert await second.ping() < 1.0
        await second.close()


async def test_session_is_capped_at_the_mesh_limit() -> None:
    async with signalling_harness(mesh_cap=2) as h:
        a, b = await two_in_session(h)
        h.add_room("c")
        c = await h.client("c")
        with pytest.raises(SignallingError) as err:
            await c.join("s1", h.minter.mint("room:c", "s1"))
        assert err.value.code == p.ErrorCode.SESSION_FULL
        await asyncio.gather(a.close(), b.close(), c.close())


async def test_silent_peer_is_closed_with_heartbeat_timeout() -> None:
    async with signalling_harness(heartbeat_timeout=0.3) as h:
        h.add_room("a")
        ws = await raw_hello(h, "a")
        err = await next_of(ws, "error")
        assert err["code"] == p.ErrorCode.HEARTBEAT_TIMEOUT
        await ws.close()


async def closing_error(ws: aiohttp.ClientWebSocketResponse) -> tuple[dict[str, Any], int | None]:
    """The error a refused connection gets, and the close code that follows it."""
    err = await next_of(ws, "error")
    msg = await ws.receive(timeout=5)
    assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED), msg
    return err, ws.close_code


async def test_the_first_message_must_be_hello_or_the_connection_closes() -> None:
    async with signalling_harness() as h:
        ws = await h.http.ws_connect(h.url)
        await ws.send_str(json.dumps({"type": "ping", "t": 1, "id": "x"}))
        err, code = await closing_error(ws)
        assert err["code"] == p.ErrorCode.HELLO_REQUIRED and err["ref"] == "x" and code == 4401
        ws = await h.http.ws_connect(h.url)
        await ws.send_str(json.dumps({"type": "hello", "protocol": 99, "room_id": "a", "key": "k"}))
        err, code = await closing_error(ws)
        assert err["code"] == p.ErrorCode.UNSUPPORTED_VERSION and code == 4401
        await eventually(lambda: h.server.admission.pending == 0, "refused hellos to stop counting")


async def test_websocket_pings_do_not_keep_a_silent_peer_alive() -> None:
    async with signalling_harness(heartbeat_timeout=0.5) as h:
        h.add_room("a")
        ws = await raw_hello(h, "a")
        stop = asyncio.Event()

        async def pinging() -> None:
            while not stop.is_set():
                await ws.ping()
                await asyncio.sleep(0.05)

        task = asyncio.create_task(pinging())
        try:
            err = await next_of(ws, "error")
        finally:
            stop.set()
            await task
        assert err["code"] == p.ErrorCode.HEARTBEAT_TIMEOUT
        await ws.close()


async def test_an_unreadable_trickled_candidate_is_not_relayed() -> None:
    async with signalling_harness() as h:
        a, b = await two_in_session(h)
        await b.send(
            p.Candidate(session_id="s1", to="room:a", conn="k", id="c", candidate="garbage")
        )
        err = await recv_type(b, p.Error)
        assert err.code == p.ErrorCode.CANDIDATE_NOT_ALLOWED and err.ref == "c"
        assert h.server.counters.candidate_violations == 1
        await asyncio.gather(a.close(), b.close())


async def test_binary_frames_count_against_the_rate_limit() -> None:
    async with signalling_harness(rate_per_second=1, rate_burst=5) as h:
        h.add_room("a")
        ws = await raw_hello(h, "a")
        for _ in range(20):
            await ws.send_bytes(b"\x00")
        codes = set()
        for _ in range(6):
            codes.add((await next_of(ws, "error"))["code"])
        assert p.ErrorCode.RATE_LIMITED in codes
        await ws.close()


async def test_a_restarted_node_learns_session_states_from_the_schedules() -> None:
    async with signalling_harness() as h:
        h.add_room("a")
        a = await h.client("a")
        entry = p.ScheduleEntry(
            session_id="s1",
            booking_id="b1",
            title="t",
            start=time.time() - 10,
            end=time.time() + 60,
            lead=5,
            state="live",
            ticket="x",
            rooms=[],
        )
        h.server.hub.push_schedule(
            p.Schedule(room_id="a", generated_at=time.time(), sessions=[entry])
        )
        joined = await a.join("s1", h.minter.mint("room:a", "s1"))
        assert joined.state == "live"
        state = await recv_type(a, p.SessionState)
        assert state.state == "live" and state.session_id == "s1"
        await a.close()
