"""The Janus API client: against a fake Janus that misbehaves (garbage, silence, a huge
frame, a dropped socket) and against a real one (tests/janus_support.py): every failure
is a JanusError, never a hang or a traceback, and every waiting request fails at once
when the connection ends."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import WSMsgType, web

from signalling.janus.client import (
    GONE,
    MAX_FRAME,
    TIMEOUT,
    JanusConnection,
    JanusError,
    JanusGone,
    parse_frame,
)
from tests.janus_support import JanusProcess, running_janus

Behaviour = Callable[[web.WebSocketResponse, dict[str, Any]], Any]


class FakeJanus:
    """A WebSocket server that answers ``create`` and ``attach`` like Janus, and does
    what ``behaviour`` says with any other request."""

    def __init__(self, behaviour: Behaviour) -> None:
        self.behaviour = behaviour
        self.sockets: list[web.WebSocketResponse] = []
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def handler(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(protocols=("janus-protocol",))
        await ws.prepare(request)
        self.sockets.append(ws)
        async for frame in ws:
            if frame.type != WSMsgType.TEXT:
                break
            message = json.loads(frame.data)
            if message["janus"] in ("create", "attach"):
                await ws.send_json(
                    {"janus": "success", "transaction": message["transaction"], "data": {"id": 5}}
                )
            else:
                await self.behaviour(ws, message)
        return ws

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/", self.handler)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"ws://127.0.0.1:{port}/"

    async def stop(self) -> None:
        assert self.runner is not None
        await self.runner.cleanup()


@pytest.fixture
async def fake() -> AsyncIterator[Callable[[Behaviour], Any]]:
    servers: list[FakeJanus] = []

    async def make(behaviour: Behaviour) -> FakeJanus:
        server = FakeJanus(behaviour)
        await server.start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        await server.stop()


def test_frames_that_are_not_janus_messages_are_refused() -> None:
    for text in ("", "not json", "[]", "3", '{"no": "kind"}', '{"janus": 4}', "[" * 100000):
        assert parse_frame(text) is None
    assert parse_frame('{"janus": "ack", "transaction": "x"}') == {
        "janus": "ack",
        "transaction": "x",
    }


async def test_garbage_is_dropped_and_a_silent_janus_times_out(fake: Any) -> None:
    async def garbage(ws: web.WebSocketResponse, message: dict[str, Any]) -> None:
        for text in ("nonsense", "[1, 2]", '{"janus": "event", "sender": "x"}', "{" * 5000):
            await ws.send_str(text)
        await ws.send_bytes(b"\x00\x01")
        # An answer to another transaction, and an ack that never becomes an event.
        await ws.send_json({"janus": "success", "transaction": "other"})
        await ws.send_json({"janus": "ack", "transaction": message["transaction"]})

    server = await fake(garbage)
    connection = await JanusConnection.connect(server.url, timeout=0.5, keepalive=60)
    try:
        handle = await connection.attach()
        with pytest.raises(JanusError) as waited:
            await handle.message({"request": "join"}, timeout=0.5)
        assert waited.value.code == TIMEOUT and not isinstance(waited.value, JanusGone)
        assert connection.garbage == 4  # the event for no handle is valid, and ignored
        assert not connection.closed.is_set()
        assert connection.pending == 0
    finally:
        await connection.close()


async def test_a_huge_frame_ends_the_connection_and_fails_what_waits(fake: Any) -> None:
    async def huge(ws: web.WebSocketResponse, message: dict[str, Any]) -> None:
        await ws.send_json({"janus": "ack", "transaction": message["transaction"]})
        await ws.send_str('{"janus": "event", "pad": "' + "x" * (MAX_FRAME + 10) + '"}')

    server = await fake(huge)
    connection = await JanusConnection.connect(server.url, timeout=5, keepalive=60)
    try:
        handle = await connection.attach()
        loop = asyncio.get_running_loop()
        began = loop.time()
        with pytest.raises(JanusGone) as gone:
            await handle.message({"request": "join"}, timeout=30)
        assert gone.value.code == GONE
        assert loop.time() - began < 5  # at once, not at the request's timeout
        assert connection.closed.is_set()
        with pytest.raises(JanusGone):
            await connection.attach()
    finally:
        await connection.close()


async def test_every_waiting_request_fails_at_once_when_the_socket_drops(fake: Any) -> None:
    async def hang_up(ws: web.WebSocketResponse, message: dict[str, Any]) -> None:
        if message["body"].get("request") == "last":
            await ws.close()

    server = await fake(hang_up)
    connection = await JanusConnection.connect(server.url, timeout=5, keepalive=60)
    try:
        handle = await connection.attach()
        # Started in this order: the three are sent before the one that ends the socket.
        waiting = [
            asyncio.ensure_future(handle.message({"request": "wait"}, timeout=30)) for _ in range(3)
        ]
        last = asyncio.ensure_future(handle.message({"request": "last"}, timeout=30))
        results = await asyncio.wait_for(asyncio.gather(*waiting, last, return_exceptions=True), 5)
        assert all(isinstance(result, JanusGone) for result in results), results
    finally:
        await connection.close()


async def test_a_keepalive_without_answer_closes_the_connection(fake: Any) -> None:
    async def mute(ws: web.WebSocketResponse, message: dict[str, Any]) -> None:
        pass

    server = await fake(mute)
    connection = await JanusConnection.connect(server.url, timeout=0.3, keepalive=0.2)
    try:
        await asyncio.wait_for(connection.closed.wait(), 3)
    finally:
        await connection.close()


async def test_nobody_listening_is_a_janus_error() -> None:
    with pytest.raises(JanusGone):
        await JanusConnection.connect("ws://127.0.0.1:9/", timeout=1)


async def test_a_server_that_never_answers_the_handshake_times_out() -> None:
    accepted: list[asyncio.StreamWriter] = []

    async def mute(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)  # holds the socket open and says nothing

    server = await asyncio.start_server(mute, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        loop = asyncio.get_running_loop()
        began = loop.time()
        with pytest.raises(JanusGone):
            await JanusConnection.connect(f"ws://127.0.0.1:{port}/", timeout=0.5)
        assert loop.time() - began < 3
        assert accepted
    finally:
        for writer in accepted:
            writer.close()
        server.close()
        await server.wait_closed()


@pytest.fixture
def janus(tmp_path: Path) -> Iterator[JanusProcess]:
    with running_janus(tmp_path / "janus") as process:
        yield process


async def test_real_janus_refusals_are_janus_errors(janus: JanusProcess) -> None:
    # Without the API secret Janus refuses the session (403, unauthorized).
    with pytest.raises(JanusError) as refused:
        await JanusConnection.connect(janus.url, timeout=2)
    assert refused.value.code == 403
    connection = await JanusConnection.connect(janus.url, api_secret=janus.config.api_secret)
    try:
        assert (await connection.info())["version_string"] == "1.1.2"
        with pytest.raises(JanusError) as no_plugin:
            await connection.attach("janus.plugin.echotest")  # disabled by deploy/janus
        assert no_plugin.value.code == 460  # JANUS_ERROR_PLUGIN_NOT_FOUND
        handle = await connection.attach()
        # A plugin's own refusal: no such room (VideoRoom's 426).
        with pytest.raises(JanusError) as no_room:
            await handle.request({"request": "destroy", "room": 424242, "secret": "x"})
        assert no_room.value.code == 426
        with pytest.raises(JanusError) as no_room_async:
            await handle.message({"request": "join", "ptype": "publisher", "room": 424242})
        assert no_room_async.value.code == 426
        await handle.detach()
    finally:
        await connection.close()


async def test_a_killed_janus_fails_waiting_requests_at_once(janus: JanusProcess) -> None:
    connection = await JanusConnection.connect(janus.url, api_secret=janus.config.api_secret)
    try:
        await connection.attach()
        janus.kill9()
        await asyncio.wait_for(connection.closed.wait(), 1.0)
        with pytest.raises(JanusGone):
            await connection.info()
    finally:
        await connection.close()


@pytest.fixture
def impatient_janus(tmp_path: Path) -> Iterator[JanusProcess]:
    """A Janus that drops a session after 2 s without a request."""
    with running_janus(tmp_path / "janus", {"janus.jcfg": {"session_timeout": "2"}}) as process:
        yield process


async def test_keepalives_hold_the_session_and_without_them_janus_drops_it(
    impatient_janus: JanusProcess,
) -> None:
    janus = impatient_janus
    kept = await JanusConnection.connect(
        janus.url, keepalive=0.5, api_secret=janus.config.api_secret
    )
    left = await JanusConnection.connect(
        janus.url, keepalive=60, api_secret=janus.config.api_secret
    )
    try:
        # Janus' watchdog drops the silent session (a "timeout" event): it is closed.
        await asyncio.wait_for(left.closed.wait(), 10)
        assert not kept.closed.is_set()
        handle = await kept.attach()
        assert (await handle.request({"request": "exists", "room": 1}))["exists"] is False
    finally:
        await kept.close()
        await left.close()
