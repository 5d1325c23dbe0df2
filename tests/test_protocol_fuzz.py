"""Fuzzing the message grammar of docs/protocol.md (issue 9, acceptance 6).

Messages are generated from the protocol's own models (every client message type,
each field given a value of its type, a value of another type, an extreme, or left
out; unknown fields added) and from mutations of their JSON text. Whatever comes in:

- ``decode_client`` returns a message or raises ``ProtocolError`` with a code listed
  in docs/protocol.md §14, nothing else;
- a live server answers each one, on a connection that stays open, with nothing or
  with an ``error`` whose code is documented, logs no traceback, and still answers
  a ``ping`` after it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import re
import threading
import typing
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from signalling import protocol as p
from signalling.auth import TicketVerifier
from signalling.candidates import parse_networks, refused_candidate, refused_in_sdp
from tests.signalling_fixtures import Harness, signalling_harness

DOCS = Path(__file__).resolve().parents[1] / "docs" / "protocol.md"
EXAMPLES = 2000
LIVE_EXAMPLES = 1000


def documented_codes() -> set[str]:
    """The codes of the table in §14 (Error codes) of docs/protocol.md."""
    text = DOCS.read_text()
    section = text[text.index("## 14. Error codes") : text.index("## 15. Close codes")]
    table = section[: section.index("**Room control codes.**")]
    return set(re.findall(r"^\| `([a-z-]+)` \|", table, flags=re.M))


DOCUMENTED = documented_codes()


def test_every_error_code_of_the_code_is_documented() -> None:
    codes = {v for k, v in vars(p.ErrorCode).items() if k.isupper() and isinstance(v, str)} - {
        "room-offline",
        "control-timeout",
        "not-joinable",
        "no-content-source",
    }
    assert codes <= DOCUMENTED, codes - DOCUMENTED


# --- strategies ---------------------------------------------------------------------------

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.integers().map(lambda i: i * 10**300),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0, -1, 1e15, 1e16, 2**53, 2**53 + 1, 946684799.9, 1.8e9, 4102444800.5]),
    st.text(max_size=40),
    st.text(alphabet=st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), max_size=3),
    st.sampled_from(["", "x" * 70, "x" * 5000, "\t", "a\nb", "10.0.0.1", "room:a", "s1"]),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)

CANDIDATES = st.one_of(
    st.builds(
        "candidate:{} 1 udp {} {} {} typ {}{}".format,
        st.integers(0, 9),
        st.integers(0, 2**32),
        st.sampled_from(["127.0.0.1", "10.0.0.1", "::1", "x.local", "", "127.0.0.1\t10.0.0.1"]),
        st.integers(0, 70000),
        st.sampled_from(["host", "srflx", "relay"]),
        st.sampled_from(["", " raddr 0.0.0.0 rport 0", " raddr 192.168.1.1 rport 9", " raddr"]),
    ),
    st.text(max_size=80),
)
SDPS = st.lists(
    st.one_of(
        CANDIDATES.map("a={}".format),
        st.sampled_from(
            ["c=IN IP4 10.0.0.1", "c=IN IP4 0.0.0.0", "a=rtcp:9 IN IP4 8.8.8.8", "c=bad", "v=0"]
        ),
    ),
    max_size=6,
).map("\r\n".join)


def field_values(tp: Any, name: str) -> st.SearchStrategy[Any]:
    """Values of the field's own type (extremes included) or of any other JSON type."""
    origin = typing.get_origin(tp)
    own: st.SearchStrategy[Any]
    if name == "sdp":
        own = SDPS
    elif name == "candidate":
        own = CANDIDATES
    elif name in ("session_id", "to", "conn"):
        own = st.sampled_from(["s1", "room:b", "room:a", "k", "s2"])
    elif tp is float:
        own = st.floats(allow_nan=False) | st.sampled_from([1.8e9, 10**400])
    elif tp is int:
        own = st.integers() | st.just(10**400)
    elif tp is bool:
        own = st.booleans()
    elif tp is str:
        own = st.text(max_size=100)
    elif origin is typing.Literal:
        own = st.sampled_from(typing.get_args(tp))
    elif origin is list:
        (item,) = typing.get_args(tp)
        own = st.lists(field_values(item, ""), max_size=40)
    elif dataclasses.is_dataclass(tp):
        own = model_objects(typing.cast(type[Any], tp))
    elif origin in (typing.Union, __import__("types").UnionType):
        own = st.one_of([field_values(a, name) for a in typing.get_args(tp)])
    elif tp is type(None):
        own = st.none()
    else:
        own = json_values
    return st.one_of(own, own, json_values)


def model_objects(cls: type[Any]) -> st.SearchStrategy[dict[str, Any]]:
    hints = typing.get_type_hints(cls)
    parts: dict[str, st.SearchStrategy[Any]] = {}
    for f in dataclasses.fields(cls):
        wire = "from" if f.name == "from_" else f.name
        parts[wire] = field_values(hints[f.name], f.name)

    @st.composite
    def build(draw: st.DrawFn) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for wire, strategy in parts.items():
            if draw(st.integers(0, 9)) > 0:  # a field left out one time in ten
                out[wire] = draw(strategy)
        if draw(st.booleans()):
            out.update(draw(st.dictionaries(st.text(max_size=8), json_values, max_size=2)))
        return out

    return build()


@st.composite
def client_messages(draw: st.DrawFn) -> str:
    msg_type = draw(st.sampled_from([*sorted(p.CLIENT_TYPES), "welcome", "nope", 7, None]))
    cls = p.CLIENT_TYPES.get(msg_type) if isinstance(msg_type, str) else None
    body = (
        draw(model_objects(cls))
        if cls is not None
        else draw(st.dictionaries(st.text(max_size=8), json_values, max_size=4))
    )
    body["type"] = msg_type
    if draw(st.booleans()):
        body["id"] = draw(st.one_of(st.text(max_size=70), json_scalars))
    text = json.dumps(body)
    mutation = draw(st.integers(0, 9))
    if mutation == 0:
        text = text[: draw(st.integers(0, len(text)))]  # truncated
    elif mutation == 1:
        text = "[" * draw(st.integers(1, 30_000)) + text
    elif mutation == 2:
        text = draw(st.text(max_size=200))
    return text


# --- the decoder, directly --------------------------------------------------------------------

NETWORKS = parse_networks(["127.0.0.1/32"])


@settings(max_examples=EXAMPLES, deadline=None)
@given(client_messages())
def test_decoding_any_message_ends_in_a_message_or_a_documented_code(text: str) -> None:
    try:
        message = p.decode_client(text)
    except p.ProtocolError as exc:
        assert exc.code in DOCUMENTED, exc
        return
    # What the server does next with a decoded message must not raise either.
    if isinstance(message, p.Offer | p.Answer):
        refused_in_sdp(message.sdp, NETWORKS)
    elif isinstance(message, p.Candidate) and message.candidate:
        refused_candidate(message.candidate, NETWORKS)
    elif isinstance(message, p.Readiness):
        p.check_readiness(message)
    elif isinstance(message, p.Hello | p.Join):
        ticket = message.ticket
        if ticket is not None:
            with pytest.raises(p.ProtocolError) as refused:
                TicketVerifier(lambda: 1.8e9).verify(ticket, peer_id=None, session_id=None)
            assert refused.value.code in DOCUMENTED
    json.dumps(p.to_dict(message))  # it can be relayed: valid Unicode, finite numbers


# --- a live server ----------------------------------------------------------------------------


class LiveServer:
    """A signalling harness on its own event loop thread, with room a (the fuzzer) and
    room b (a reader) in session s1, so hypothesis's synchronous examples reach it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self._stop: asyncio.Event | None = None
        self._done: Future[None] = Future()
        ready: Future[None] = Future()
        asyncio.run_coroutine_threadsafe(self._serve(ready), self.loop)
        ready.result(30)

    async def _serve(self, ready: Future[None]) -> None:
        try:
            async with signalling_harness(rate_per_second=100_000, rate_burst=100_000) as h:
                self.h = h
                self.a = await self._member(h, "a")
                b = await self._member(h, "b")
                drain = asyncio.create_task(self._drain(b))
                self._stop = asyncio.Event()
                self._pings = 0
                ready.set_result(None)
                await self._stop.wait()
                drain.cancel()
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(exc)
            raise
        finally:
            self._done.set_result(None)

    async def _member(self, h: Harness, room: str) -> aiohttp.ClientWebSocketResponse:
        h.add_room(room)
        ws = await h.http.ws_connect(h.url, max_msg_size=0)
        await ws.send_str(json.dumps({"type": "hello", "protocol": 1, "key": h.keys[room]}))
        ticket = h.minter.mint(f"room:{room}", "s1", exp=4e9)
        await ws.send_str(json.dumps({"type": "join", "session_id": "s1", "ticket": ticket}))
        while json.loads((await ws.receive(timeout=5)).data)["type"] != "joined":
            pass
        return ws

    @staticmethod
    async def _drain(ws: aiohttp.ClientWebSocketResponse) -> None:
        async for _ in ws:
            pass

    async def _exchange(self, text: str) -> list[dict[str, Any]]:
        """Send ``text``, then a ping; return what came back before the pong."""
        self._pings += 1
        ref = f"fuzz-{self._pings}"
        await self.a.send_str(text)
        await self.a.send_str(json.dumps({"type": "ping", "t": 1.0, "id": ref}))
        replies = []
        while True:
            msg = await self.a.receive(timeout=10)
            assert msg.type == aiohttp.WSMsgType.TEXT, f"connection lost after {text[:200]!r}"
            data = json.loads(msg.data)
            if data.get("type") == "pong" and data.get("ref") == ref:
                return replies
            replies.append(data)

    def exchange(self, text: str) -> list[dict[str, Any]]:
        return asyncio.run_coroutine_threadsafe(self._exchange(text), self.loop).result(30)

    def close(self) -> None:
        if self._stop is not None:
            self.loop.call_soon_threadsafe(self._stop.set)
        self._done.result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture(scope="module")
def live() -> Iterator[LiveServer]:
    server = LiveServer()
    try:
        yield server
    finally:
        server.close()


class TracebackCatcher(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.tracebacks: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info or record.stack_info:
            self.tracebacks.append(record.getMessage())


@pytest.fixture(scope="module")
def tracebacks() -> Iterator[TracebackCatcher]:
    catcher = TracebackCatcher()
    root = logging.getLogger()
    root.addHandler(catcher)
    try:
        yield catcher
    finally:
        root.removeHandler(catcher)


@settings(
    max_examples=LIVE_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(text=client_messages())
def test_a_live_server_answers_any_message_with_a_documented_code_and_keeps_serving(
    live: LiveServer, tracebacks: TracebackCatcher, text: str
) -> None:
    if len(text.encode("utf-8", "surrogatepass")) > 60_000:
        return  # over the size limit: one case, covered elsewhere
    for reply in live.exchange(text):
        if reply.get("type") == "error":
            assert reply["code"] in DOCUMENTED, reply
    assert not tracebacks.tracebacks, tracebacks.tracebacks
