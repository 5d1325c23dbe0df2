"""Bad input at the signalling endpoint: every case gets its documented code (and close
code), the log gets at most one line per case and never a traceback, and the next
connection or message is served. Issue 9, items 2 to 5."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

from signalling import protocol as p
from signalling.ports import MediaMilestone, MediaReport, RoomReadiness
from tests.signalling_fixtures import Harness, eventually, signalling_harness

LOOPBACK_CANDIDATE = "candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host"
NESTED = "[" * 50_000 + "]" * 50_000
HUGE = "9" * 400


def stats_flood_message(entries: int = 250) -> str:
    """A pre-hello message of about 56 KB: what a stranger sent in the report."""
    media = [{"peer_id": f"room:{i:032x}", "fps": 30.0, "frames": 60} for i in range(entries)]
    return json.dumps({"type": "stats", "session_id": "s" * 32, "media": media})


async def hello(h: Harness, room_id: str) -> aiohttp.ClientWebSocketResponse:
    ws = await h.http.ws_connect(h.url)
    await ws.send_str(
        json.dumps({"type": "hello", "protocol": 1, "room_id": room_id, "key": h.keys[room_id]})
    )
    welcome = json.loads((await ws.receive(timeout=5)).data)
    assert welcome["type"] == "welcome", welcome
    return ws


async def next_message(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    msg = await ws.receive(timeout=5)
    assert msg.type == aiohttp.WSMsgType.TEXT, msg
    data: dict[str, Any] = json.loads(msg.data)
    return data


async def served(ws: aiohttp.ClientWebSocketResponse) -> None:
    """The connection still answers: a ping gets its pong."""
    await ws.send_str(json.dumps({"type": "ping", "t": 1.0, "id": "alive"}))
    while True:
        data = await next_message(ws)
        if data["type"] == "pong":
            assert data["ref"] == "alive"
            return


def no_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    with_trace = [r for r in caplog.records if r.exc_info or r.stack_info]
    assert not with_trace, [r.getMessage() for r in with_trace]


async def send_raw_text(ws: aiohttp.ClientWebSocketResponse, payload: bytes) -> None:
    """A text frame with these exact bytes (invalid UTF-8 included)."""
    await ws.send_frame(payload, aiohttp.WSMsgType.TEXT)


# --- before hello -----------------------------------------------------------------------

Sender = Callable[[aiohttp.ClientWebSocketResponse], Any]

PRE_HELLO: list[tuple[str, Sender, str | None, int]] = [
    ("a 56 KB stats", lambda ws: ws.send_str(stats_flood_message()), p.ErrorCode.TOO_LARGE, 4401),
    (
        "another message first",
        lambda ws: ws.send_str('{"type":"ping","t":1}'),
        p.ErrorCode.HELLO_REQUIRED,
        4401,
    ),
    ("a binary frame", lambda ws: ws.send_bytes(b"\x00\x01"), p.ErrorCode.BAD_MESSAGE, 4401),
    ("not JSON", lambda ws: ws.send_str("{hello"), p.ErrorCode.BAD_JSON, 4401),
    ("nested too deep", lambda ws: ws.send_str("[" * 4000), p.ErrorCode.BAD_JSON, 4401),
    (
        "a 400-digit protocol",
        lambda ws: ws.send_str('{"type":"hello","protocol":' + HUGE + "}"),
        p.ErrorCode.BAD_MESSAGE,
        4401,
    ),
    (
        "a lone surrogate in the key",
        lambda ws: ws.send_str('{"type":"hello","protocol":1,"key":"tck_\\ud800"}'),
        p.ErrorCode.BAD_MESSAGE,
        4401,
    ),
    (
        "a lone surrogate in a ticket",
        lambda ws: ws.send_str('{"type":"hello","protocol":1,"ticket":"a.\\udfff.c"}'),
        p.ErrorCode.BAD_MESSAGE,
        4401,
    ),
    (
        "a surrogate in the type",
        lambda ws: ws.send_str('{"type":"\\ud83d"}'),
        p.ErrorCode.UNKNOWN_TYPE,
        4401,
    ),
    (
        "a wrong key",
        lambda ws: ws.send_str('{"type":"hello","protocol":1,"key":"x"}'),
        "auth-failed",
        4401,
    ),
    ("invalid UTF-8", lambda ws: send_raw_text(ws, b'{"type":"\xff\xfe"}'), None, 1007),
]


@pytest.mark.parametrize(
    ("first", "code", "close"),
    [(s, c, k) for _, s, c, k in PRE_HELLO],
    ids=[name for name, *_ in PRE_HELLO],
)
async def test_a_bad_first_frame_is_refused_and_closes_the_connection(
    first: Sender, code: str | None, close: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="signalling")
    async with signalling_harness(refusal_hold=0.0) as h:
        h.add_room("a")
        ws = await h.http.ws_connect(h.url)
        await first(ws)
        msg = await ws.receive(timeout=5)
        if code is not None:
            assert msg.type == aiohttp.WSMsgType.TEXT, msg
            error = json.loads(msg.data)
            assert error["type"] == "error" and error["code"] == code, error
            msg = await ws.receive(timeout=5)
        assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED), msg
        assert ws.close_code == close
        await eventually(lambda: h.server.admission.pending == 0, "the stranger to stop counting")
        # The next connection is served, the log has one line for the case, no traceback.
        await served(await hello(h, "a"))
        lines = [r for r in caplog.records if r.name.startswith("signalling")]
        assert len(lines) == 1, [r.getMessage() for r in lines]
        no_tracebacks(caplog)


async def test_a_refused_stranger_is_held_counting_then_closed() -> None:
    async with signalling_harness(refusal_hold=0.5) as h:
        loop = asyncio.get_running_loop()
        ws = await h.http.ws_connect(h.url)
        await ws.send_str(stats_flood_message())
        refused_at = loop.time()
        assert (await next_message(ws))["code"] == p.ErrorCode.TOO_LARGE
        # Held: it still counts, and what it sends meanwhile is not read.
        assert h.server.admission.pending == 1
        for _ in range(3):
            await ws.send_str(stats_flood_message())
        msg = await ws.receive(timeout=5)
        assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED), msg
        assert ws.close_code == 4401 and loop.time() - refused_at >= 0.45
        await eventually(lambda: h.server.admission.pending == 0, "the stranger to stop counting")
        assert h.server.counters.messages == 1


async def test_silence_after_the_upgrade_is_closed_at_the_hello_timeout() -> None:
    async with signalling_harness(hello_timeout=0.3) as h:
        ws = await h.http.ws_connect(h.url)
        error = await next_message(ws)
        assert error["code"] == p.ErrorCode.HELLO_REQUIRED
        await ws.receive(timeout=5)
        assert ws.close_code == 4401


async def test_strangers_are_limited_per_address_and_in_total() -> None:
    async with signalling_harness(unauthenticated_per_address=3, unauthenticated_total=5) as h:
        h.add_room("a")

        def session_from(address: str) -> aiohttp.ClientSession:
            return aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(address, 0)))

        first, second, third = (session_from(f"127.0.0.{i}") for i in (2, 3, 4))
        try:
            held = [await first.ws_connect(h.url) for _ in range(3)]
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await first.ws_connect(h.url)
            assert refused.value.status == 503
            await eventually(lambda: h.server.admission.pending == 3, "three strangers")
            # Another address is still admitted, until the total is reached.
            held += [await second.ws_connect(h.url) for _ in range(2)]
            with pytest.raises(aiohttp.WSServerHandshakeError) as full:
                await third.ws_connect(h.url)
            assert full.value.status == 503
            async with third.get(h.url.replace("ws://", "http://")) as response:
                body = await response.json()
                assert response.status == 503 and response.headers["Retry-After"] == "1"
                assert body["error"]["code"] == p.ErrorCode.TOO_MANY_CONNECTIONS
            # A stranger that says hello stops counting: room a gets in from 127.0.0.2.
            await held[0].send_str(
                json.dumps({"type": "hello", "protocol": 1, "room_id": "a", "key": h.keys["a"]})
            )
            assert (await next_message(held[0]))["type"] == "welcome"
            await eventually(lambda: h.server.admission.pending == 4, "the room to stop counting")
            held.append(await third.ws_connect(h.url))
            for ws in held:
                await ws.close()
            await eventually(lambda: h.server.admission.pending == 0, "every stranger gone")
            assert h.server.counters.errors[p.ErrorCode.TOO_MANY_CONNECTIONS] == 3
        finally:
            for s in (first, second, third):
                await s.close()


# --- after hello --------------------------------------------------------------------------

SESSION = "s1"


def _stats(**fields: Any) -> str:
    return json.dumps({"type": "stats", "session_id": SESSION, **fields})


def _candidate(candidate: str) -> str:
    return json.dumps(
        {
            "type": "candidate",
            "session_id": SESSION,
            "conn": "k",
            "to": "room:b",
            "candidate": candidate,
        }
    )


def _offer(sdp: str) -> str:
    return json.dumps(
        {"type": "offer", "session_id": SESSION, "conn": "k", "to": "room:b", "sdp": sdp}
    )


SDP_HEAD = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"
AUTHENTICATED: list[tuple[str, str, str]] = [
    ("nested JSON", NESTED[:60_000], p.ErrorCode.BAD_JSON),
    ("a 400-digit float", '{"type":"ping","t":' + HUGE + "}", p.ErrorCode.BAD_MESSAGE),
    (
        "a 400-digit integer",
        _candidate(LOOPBACK_CANDIDATE)[:-1] + ',"sdp_mline_index":' + HUGE + "}",
        p.ErrorCode.BAD_MESSAGE,
    ),
    ("a float beyond double", '{"type":"ping","t":1e400}', p.ErrorCode.BAD_MESSAGE),
    ("5000 digits", '{"type":"ping","t":' + "1" * 5000 + "}", p.ErrorCode.BAD_JSON),
    (
        "a surrogate in a session id",
        _stats().replace('"s1"', '"s\\ud800"'),
        p.ErrorCode.BAD_MESSAGE,
    ),
    (
        "a surrogate in an SDP",
        _offer(SDP_HEAD + "a=x:\\udc00\r\n").replace("\\\\udc00", "\\udc00"),
        p.ErrorCode.BAD_MESSAGE,
    ),
    (
        "a surrogate in a readiness detail",
        json.dumps(
            {
                "type": "readiness",
                "ok": False,
                "at": 1.8e9,
                "checks": [{"name": "camera", "ok": False, "detail": "X"}],
            }
        ).replace('"X"', '"\\udbff"'),
        p.ErrorCode.BAD_MESSAGE,
    ),
    (
        "a surrogate in a ticket",
        json.dumps({"type": "join", "session_id": SESSION, "ticket": "T"}).replace(
            '"T"', '"a.\\ud800.b"'
        ),
        p.ErrorCode.BAD_MESSAGE,
    ),
    ("a milestone in year 10^300", _stats(event="live", at=1e300), p.ErrorCode.BAD_MESSAGE),
    (
        "a milestone before 2000",
        _stats(event="live", at=-86400.0 * 365 * 3000),
        p.ErrorCode.BAD_MESSAGE,
    ),
    (
        "a readiness at 0",
        json.dumps(
            {"type": "readiness", "ok": True, "at": 0, "checks": [{"name": "camera", "ok": True}]}
        ),
        p.ErrorCode.BAD_MESSAGE,
    ),
    (
        "33 media entries",
        _stats(media=[{"peer_id": f"room:{i}"} for i in range(33)]),
        p.ErrorCode.BAD_MESSAGE,
    ),
    (
        "17 readiness checks",
        json.dumps(
            {
                "type": "readiness",
                "ok": True,
                "at": 1.8e9,
                "checks": [{"name": "c", "ok": True}] * 17,
            }
        ),
        p.ErrorCode.BAD_MESSAGE,
    ),
    (
        "an id of 65 characters",
        json.dumps({"type": "ping", "t": 1, "id": "x" * 65}),
        p.ErrorCode.BAD_MESSAGE,
    ),
    (
        "a tab-separated candidate",
        _candidate("candidate:1 1 udp 2130706431 127.0.0.1\t10.0.0.9 5000 typ host"),
        p.ErrorCode.CANDIDATE_NOT_ALLOWED,
    ),
    (
        "a tab before the address",
        _candidate("candidate:1 1 udp 2130706431\t10.0.0.9 127.0.0.1 5000 typ host"),
        p.ErrorCode.CANDIDATE_NOT_ALLOWED,
    ),
    (
        "a private related address",
        _candidate("candidate:1 1 udp 1 127.0.0.1 5000 typ srflx raddr 192.168.1.7 rport 5000"),
        p.ErrorCode.CANDIDATE_NOT_ALLOWED,
    ),
    (
        "two candidates in one",
        _candidate(LOOPBACK_CANDIDATE + "\r\na=candidate:2 1 udp 1 10.0.0.9 9 typ host"),
        p.ErrorCode.CANDIDATE_NOT_ALLOWED,
    ),
    (
        "double spaces",
        _candidate("candidate:1 1 udp 1  127.0.0.1 5000 typ host"),
        p.ErrorCode.CANDIDATE_NOT_ALLOWED,
    ),
    (
        "an SDP connection line",
        _offer(SDP_HEAD + "c=IN IP4 10.0.0.9\r\na=" + LOOPBACK_CANDIDATE + "\r\n"),
        p.ErrorCode.CANDIDATE_NOT_ALLOWED,
    ),
    (
        "an SDP related address",
        _offer(SDP_HEAD + "a=candidate:1 1 udp 1 127.0.0.1 9 typ srflx raddr 10.0.0.9 rport 9\r\n"),
        p.ErrorCode.CANDIDATE_NOT_ALLOWED,
    ),
    (
        "101 candidates",
        _offer(SDP_HEAD + ("a=" + LOOPBACK_CANDIDATE + "\r\n") * 101),
        p.ErrorCode.CANDIDATE_NOT_ALLOWED,
    ),
    (
        "an SDP candidate with a tab",
        _offer(SDP_HEAD + "a=candidate:1 1 udp 1 127.0.0.1\t10.0.0.9 9 typ host\r\n"),
        p.ErrorCode.CANDIDATE_NOT_ALLOWED,
    ),
]


@pytest.mark.parametrize(
    ("raw", "code"), [(r, c) for _, r, c in AUTHENTICATED], ids=[n for n, *_ in AUTHENTICATED]
)
async def test_bad_input_from_a_room_gets_its_code_and_the_room_is_still_served(
    raw: str, code: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="signalling")
    async with signalling_harness() as h:
        h.add_room("a")
        h.add_room("b")
        ws = await hello(h, "a")
        other = await hello(h, "b")
        for sock, room in ((ws, "a"), (other, "b")):
            await sock.send_str(
                json.dumps(
                    {
                        "type": "join",
                        "session_id": SESSION,
                        "ticket": h.minter.mint(f"room:{room}", SESSION),
                    }
                )
            )
            while (await next_message(sock))["type"] != "joined":
                pass
        await ws.send_str(raw)
        while True:
            data = await next_message(ws)
            if data["type"] == "error":
                break
        assert data["code"] == code, data
        await served(ws)
        no_tracebacks(caplog)
        assert h.server.counters.errors[code] == 1


async def test_invalid_utf8_from_a_room_closes_with_1007_and_it_reconnects() -> None:
    async with signalling_harness() as h:
        h.add_room("a")
        ws = await hello(h, "a")
        await send_raw_text(ws, b'{"type":"ping","t":1,"id":"\xc3\x28"}')
        msg = await ws.receive(timeout=5)
        assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        assert ws.close_code == 1007
        await served(await hello(h, "a"))
        await eventually(lambda: h.server.counters.unreadable_frames == 1, "the count")


async def test_a_flood_of_bad_messages_writes_a_few_log_lines(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="signalling")
    async with signalling_harness(rate_per_second=10_000, rate_burst=10_000) as h:
        h.add_room("a")
        ws = await hello(h, "a")
        for _ in range(300):
            await ws.send_str('{"type":"ping","t":' + HUGE + "}")
        await served(ws)
        assert h.server.counters.errors[p.ErrorCode.BAD_MESSAGE] == 300
        lines = [r for r in caplog.records if r.name.startswith("signalling")]
        assert 1 <= len(lines) <= 5, len(lines)
        no_tracebacks(caplog)


# --- what a peer's reports may cost -----------------------------------------------------------


async def joined_pair(
    h: Harness,
) -> tuple[aiohttp.ClientWebSocketResponse, aiohttp.ClientWebSocketResponse]:
    h.add_room("a")
    h.add_room("b")
    a, b = await hello(h, "a"), await hello(h, "b")
    for sock, room in ((a, "a"), (b, "b")):
        ticket = h.minter.mint(f"room:{room}", SESSION)
        await sock.send_str(json.dumps({"type": "join", "session_id": SESSION, "ticket": ticket}))
        while (await next_message(sock))["type"] != "joined":
            pass
    return a, b


async def test_fast_stats_are_merged_and_figures_about_strangers_dropped() -> None:
    async with signalling_harness(stats_interval=0.5, rate_per_second=1000, rate_burst=1000) as h:
        a, _b = await joined_pair(h)
        loop = asyncio.get_running_loop()
        started = loop.time()
        sent = 0
        while loop.time() - started < 1.2:
            media = [{"peer_id": "room:b", "frames": 10, "fps": 30.0, "freezes": 1}]
            media += [{"peer_id": f"room:invented{i}", "frames": 10} for i in range(30)]
            await a.send_str(_stats(media=media, event="first-frame", at=1.8e9))
            sent += 1
            await asyncio.sleep(0.01)
        await served(a)
        await eventually(
            lambda: sum(isinstance(e, MediaReport) for e in h.events.events) >= 3, "the last report"
        )
        reports = [e for e in h.events.events if isinstance(e, MediaReport)]
        milestones = [e for e in h.events.events if isinstance(e, MediaMilestone)]
        # 1.2 s at one report per 0.5 s: the first at once, then one per interval.
        assert sent > 50 and 3 <= len(reports) <= 4, (sent, len(reports))
        assert len(milestones) == 1
        assert all([m.peer_id for m in r.media] == ["room:b"] for r in reports)
        await eventually(
            lambda: (
                sum(
                    m.frames for e in h.events.events if isinstance(e, MediaReport) for m in e.media
                )
                == 10 * sent
            ),
            "every frame counted once",
        )
        assert (
            sum(m.freezes for e in h.events.events if isinstance(e, MediaReport) for m in e.media)
            == sent
        )


async def test_a_waiting_report_goes_out_before_the_peer_leaves() -> None:
    async with signalling_harness(stats_interval=30.0) as h:
        a, _b = await joined_pair(h)
        for _ in range(3):
            await a.send_str(_stats(media=[{"peer_id": "room:b", "frames": 5}]))
        await a.send_str(json.dumps({"type": "leave", "session_id": SESSION}))
        await served(a)
        kinds = [type(e).__name__ for e in h.events.events]
        reports = [e for e in h.events.events if isinstance(e, MediaReport)]
        assert [sum(m.frames for m in r.media) for r in reports] == [5, 10]
        assert kinds.index("PeerLeftSession") > max(
            i for i, k in enumerate(kinds) if k == "MediaReport"
        )


async def test_readiness_reports_are_rate_limited_per_room() -> None:
    async with signalling_harness(readiness_burst=4, readiness_per_second=0.01) as h:
        h.add_room("a")
        ws = await hello(h, "a")
        report = json.dumps(
            {
                "type": "readiness",
                "ok": True,
                "at": 1.8e9,
                "checks": [{"name": "camera", "ok": True}],
            }
        )
        for _ in range(6):
            await ws.send_str(report)
        error = await next_message(ws)
        assert error["code"] == p.ErrorCode.RATE_LIMITED
        await served(ws)
        assert sum(isinstance(e, RoomReadiness) for e in h.events.events) == 4


def test_the_sdp_filter_stops_at_the_first_reason_and_caps_the_candidates() -> None:
    from signalling.candidates import MAX_SDP_CANDIDATES, parse_networks, refused_in_sdp

    loopback = parse_networks(["127.0.0.1/32"])
    line = "a=" + LOOPBACK_CANDIDATE + "\r\n"
    assert refused_in_sdp(SDP_HEAD + line * MAX_SDP_CANDIDATES, loopback) is None
    assert refused_in_sdp(SDP_HEAD + line * (MAX_SDP_CANDIDATES + 1), loopback) == (
        f"more than {MAX_SDP_CANDIDATES} candidates"
    )
    bad = "".join(f"a=candidate:{i} 1 udp 1 10.0.0.{i} 9 typ host\r\n" for i in range(1, 50))
    assert refused_in_sdp(SDP_HEAD + line + bad, loopback) == "10.0.0.1"
    assert (
        refused_in_sdp(SDP_HEAD + "c=IN IP4 0.0.0.0\r\na=rtcp:9 IN IP4 0.0.0.0\r\n", loopback)
        is None
    )
    assert refused_in_sdp(SDP_HEAD + "a=rtcp:9 IN IP4 192.168.1.1\r\n", loopback) == "192.168.1.1"


def test_the_service_settings_reach_the_endpoint(tmp_path: Any) -> None:
    from web.app import build_services
    from web.settings import Settings

    settings = Settings.from_env(
        {
            "TELECENTRE_UNAUTHENTICATED_PER_ADDRESS": "8",
            "TELECENTRE_UNAUTHENTICATED_TOTAL": "100",
            "TELECENTRE_HELLO_TIMEOUT": "2.5",
        },
        data_dir=tmp_path,
    )
    server = build_services(settings).signalling
    assert (server.admission.per_address, server.admission.total) == (8, 100)
    assert server.settings.hello_timeout == 2.5
