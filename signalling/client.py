"""The Python client of the signalling protocol, used by room agents, tests and load tools.

It authenticates, keeps the heartbeat, estimates the offset between the local
clock and the server's from ping/pong round trips (the sample with the smallest
round trip wins, as in NTP), and matches replies to requests by message id.
Reconnecting is the caller's business: a client object is one connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp

from common.tasks import TaskSet
from signalling import protocol as p

# The round trip the welcome's one-way clock sample is filed under: any measured one wins.
ROUGH_RTT = 10.0


class SignallingError(Exception):
    """The server refused something; ``code`` is a stable protocol error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class ConnectionLost(SignallingError):
    def __init__(self, message: str = "connection lost") -> None:
        super().__init__("connection-lost", message)


@dataclass(slots=True)
class ClockOffset:
    """server_time - local_time, from the round trip with the smallest delay."""

    samples: deque[tuple[float, float]] = field(default_factory=lambda: deque(maxlen=16))

    def add(self, sent: float, received: float, server_time: float) -> None:
        rtt = max(0.0, received - sent)
        self.samples.append((rtt, server_time - (sent + received) / 2))

    def add_rough(self, received: float, server_time: float) -> None:
        """A one-way sample (the welcome): used only until a round trip is measured."""
        if not self.samples:
            self.samples.append((ROUGH_RTT, server_time - received))

    @property
    def measured(self) -> bool:
        """Whether a round trip was measured (not only the welcome's one-way sample)."""
        return self.best_rtt is not None and self.best_rtt < ROUGH_RTT

    @property
    def offset(self) -> float:
        if not self.samples:
            return 0.0
        return min(self.samples)[1]

    @property
    def best_rtt(self) -> float | None:
        return min(self.samples)[0] if self.samples else None


class SignallingClient:
    """One connection: a room authenticates with ``key``, a browser guest (or a test
    standing in for one) with its guest ``ticket``."""

    def __init__(
        self,
        http: aiohttp.ClientSession,
        url: str,
        *,
        key: str | None = None,
        ticket: str | None = None,
        room_id: str | None = None,
        agent: str = "telecentre-python",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._http = http
        self._url = url
        self._room_id = room_id
        if (key is None) == (ticket is None):
            raise ValueError("a room connects with its key, a guest with its ticket: give one")
        self._key = key
        self._ticket = ticket
        self._agent = agent
        self._clock = clock
        self._ids = itertools.count(1)
        self._pending: dict[str, asyncio.Future[p.ServerMessage]] = {}
        self._inbox: asyncio.Queue[p.ServerMessage | None] = asyncio.Queue()
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._tasks = TaskSet()
        self._last_received = 0.0
        self.clock_offset = ClockOffset()
        self.welcome: p.Welcome | None = None
        self.closed = asyncio.Event()
        self.close_reason: str | None = None

    def server_now(self) -> float:
        """The server's clock as this peer estimates it."""
        return self._clock() + self.clock_offset.offset

    def next_id(self) -> str:
        return f"c{next(self._ids)}"

    async def connect(self, timeout: float = 10.0) -> p.Welcome:
        """Open the WebSocket and authenticate; raises SignallingError on refusal."""
        try:
            self._ws = await self._http.ws_connect(
                self._url,
                timeout=aiohttp.ClientWSTimeout(ws_close=2.0),
                heartbeat=None,
                max_msg_size=4 * 1024 * 1024,
            )
        except (aiohttp.ClientError, OSError) as exc:
            raise ConnectionLost(f"cannot connect: {exc.__class__.__name__}") from None
        self._tasks.spawn(self._read())
        hello = p.Hello(
            protocol=p.PROTOCOL_VERSION,
            room_id=self._room_id,
            key=self._key,
            ticket=self._ticket,
            agent=self._agent,
            id=self.next_id(),
        )
        reply = await self.request(hello, timeout)
        if not isinstance(reply, p.Welcome):
            raise SignallingError("bad-message", f"expected welcome, got {reply.type}")
        self.welcome = reply
        self.clock_offset.add_rough(self._clock(), reply.server_time)
        self._tasks.spawn(self._heartbeat(reply.heartbeat_interval, reply.heartbeat_timeout))
        return reply

    async def send(self, message: object) -> None:
        await self.send_text(p.encode(message))

    async def send_text(self, text: str) -> None:
        """Send one frame as it is (load and test tools send what no model builds)."""
        if self._ws is None or self._ws.closed:
            raise ConnectionLost()
        try:
            await self._ws.send_str(text)
        except (ConnectionError, RuntimeError, aiohttp.ClientError):
            raise ConnectionLost() from None

    async def request(self, message: object, timeout: float = 10.0) -> p.ServerMessage:
        """Send a message that has an ``id`` and wait for the reply that refers to it."""
        ref = getattr(message, "id", None)
        if not isinstance(ref, str):
            raise ValueError("a request needs an id")
        future: asyncio.Future[p.ServerMessage] = asyncio.get_running_loop().create_future()
        self._pending[ref] = future
        try:
            await self.send(message)
            reply = await asyncio.wait_for(future, timeout)
        finally:
            self._pending.pop(ref, None)
        if isinstance(reply, p.Error):
            raise SignallingError(reply.code, reply.message)
        return reply

    async def join(self, session_id: str, ticket: str, timeout: float = 10.0) -> p.Joined:
        reply = await self.request(
            p.Join(session_id=session_id, ticket=ticket, id=self.next_id()), timeout
        )
        if not isinstance(reply, p.Joined):
            raise SignallingError("bad-message", f"expected joined, got {reply.type}")
        return reply

    async def ping(self, timeout: float = 5.0) -> float:
        """One measured round trip, in seconds."""
        rtt, _ = await self.ping_for_ice(timeout, ice=False)
        return rtt

    async def ping_for_ice(
        self, timeout: float = 5.0, *, ice: bool = True
    ) -> tuple[float, list[p.IceServer] | None]:
        """One measured round trip, and (``ice``) the room's ICE servers with a fresh
        TURN check credential (None from a server that does not send them)."""
        sent = self._clock()
        reply = await self.request(p.Ping(t=sent, id=self.next_id(), ice=ice), timeout)
        received = self._clock()
        if isinstance(reply, p.Pong):
            self.clock_offset.add(reply.t, received, reply.server_time)
            return received - sent, reply.ice_servers
        return received - sent, None

    async def recv(self) -> p.ServerMessage:
        """The next message that is not a reply to a request; raises ConnectionLost."""
        message = await self._inbox.get()
        if message is None:
            self._inbox.put_nowait(None)  # keep later callers informed too
            raise ConnectionLost(self.close_reason or "connection closed")
        return message

    async def _read(self) -> None:
        assert self._ws is not None
        try:
            async for msg in self._ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    continue
                self._last_received = time.monotonic()
                try:
                    message = p.decode_server(msg.data)
                except p.ProtocolError:
                    continue  # a newer server's message we do not know: ignore it
                if isinstance(message, p.Pong) and message.ref not in self._pending:
                    self.clock_offset.add(message.t, self._clock(), message.server_time)
                    continue
                ref = getattr(message, "ref", None)
                future = self._pending.get(ref) if isinstance(ref, str) else None
                if future is not None and not future.done():
                    future.set_result(message)
                    continue
                if isinstance(message, p.Error) and message.code in (
                    p.ErrorCode.REPLACED,
                    p.ErrorCode.KEY_REVOKED,
                    p.ErrorCode.HEARTBEAT_TIMEOUT,
                ):
                    self.close_reason = message.code
                self._inbox.put_nowait(message)
        finally:
            if self.close_reason is None and self._ws.close_code is not None:
                self.close_reason = f"closed ({self._ws.close_code})"
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(ConnectionLost(self.close_reason or "connection closed"))
            self._inbox.put_nowait(None)
            self.closed.set()

    async def _heartbeat(self, interval: float, timeout: float) -> None:
        """Ping every ``interval``; a server silent for ``timeout`` means a dead link,
        closed at that deadline (not at the next ping), so the caller reconnects at
        once instead of waiting for TCP to give up."""
        self._last_received = time.monotonic()
        next_ping = self._last_received + interval
        while self._ws is not None and not self._ws.closed:
            now = time.monotonic()
            if now - self._last_received >= timeout:
                self.close_reason = "heartbeat-timeout"
                await self._ws.close()
                return
            if now >= next_ping:
                next_ping = now + interval
                with contextlib.suppress(SignallingError):
                    await self.send(p.Ping(t=self._clock()))
            deadline = min(next_ping, self._last_received + timeout)
            await asyncio.sleep(max(0.0, deadline - time.monotonic()))

    async def close(self) -> None:
        if self._ws is not None and not self._ws.closed:
            await self._ws.close()
        await self._tasks.close()
        self.closed.set()
