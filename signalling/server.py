"""The WebSocket endpoint: authentication, limits, heartbeats, dispatch to the hub.

Every broken rule becomes an ``error`` message with a stable code and the
offending message's id; only authentication failures, heartbeat timeouts and
hopelessly slow readers close the connection. One misbehaving peer never delays
the others: its messages are parsed and answered on its own task, and sending to
it goes through its own bounded queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import WSMsgType, web

from signalling import protocol as p
from signalling.auth import CredentialStore, RoomRecord, TicketClaims, TicketVerifier
from signalling.candidates import (
    address_allowed,
    candidate_address,
    disallowed_addresses,
    parse_networks,
)
from signalling.hub import Hub, HubSettings
from signalling.ports import SessionEvents
from signalling.ratelimit import TokenBucket

log = logging.getLogger(__name__)

CLOSE_AUTH = 4401
CLOSE_HEARTBEAT = 4408
CLOSE_SLOW = 4429
CLOSE_REVOKED = 4403
# A hello refused with one of these closes the connection (4401).
HELLO_REFUSALS = frozenset(
    {
        p.ErrorCode.AUTH_FAILED,
        p.ErrorCode.KEY_REVOKED,
        p.ErrorCode.UNSUPPORTED_VERSION,
        p.ErrorCode.TICKET_INVALID,
        p.ErrorCode.TICKET_EXPIRED,
        p.ErrorCode.TICKET_NOT_YET_VALID,
        p.ErrorCode.TICKET_REVOKED,
    }
)
DEFAULT_GUEST_NAME = "Guest"


@dataclass(frozen=True, slots=True)
class SignallingSettings:
    """Limits and parameters of the endpoint; defaults are documented in docs/protocol.md."""

    max_message_bytes: int = 64 * 1024
    # Larger frames are refused by aiohttp itself (close 1009) before we read them.
    hard_max_message_bytes: int = 1024 * 1024
    rate_per_second: float = 50.0
    rate_burst: int = 200
    heartbeat_interval: float = 5.0
    heartbeat_timeout: float = 15.0
    hello_timeout: float = 10.0
    grace_seconds: float = 30.0
    mesh_cap: int = 4
    send_queue_limit: int = 1024
    ice_servers: tuple[p.IceServer, ...] = ()
    candidate_networks: tuple[str, ...] = ("127.0.0.1/32",)


class _WebSocketLink:
    """A peer's WebSocket with its own send queue and writer task."""

    def __init__(self, ws: web.WebSocketResponse, limit: int) -> None:
        self.ws = ws
        self._queue: asyncio.Queue[str | None] = asyncio.Queue()
        self._limit = limit
        self.rate_errors = 0
        self.writer = asyncio.create_task(self._write())

    def send(self, message: object) -> None:
        if self._queue.qsize() >= self._limit:
            log.warning("peer too slow to read; closing")
            self._queue.put_nowait(None)
            return
        self._queue.put_nowait(p.encode(message))

    async def _write(self) -> None:
        while True:
            text = await self._queue.get()
            if text is None:
                await self.ws.close(code=CLOSE_SLOW, message=b"too slow")
                return
            try:
                await self.ws.send_str(text)
            except (ConnectionError, RuntimeError):
                return

    async def close(self, code: int, reason: str) -> None:
        # Let queued messages (an error explaining why) go out first.
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._drain(), 1.0)
        await self.ws.close(code=code, message=reason.encode()[:120])

    async def _drain(self) -> None:
        while not self._queue.empty() and not self.writer.done():  # noqa: ASYNC110 - bounded by close()
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        self.writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.writer


@dataclass(frozen=True, slots=True)
class _Identity:
    """Who a connection authenticated as; a guest also keeps the ticket it said hello with."""

    info: p.PeerInfo
    guest_ticket: TicketClaims | None = None


@dataclass(slots=True)
class ServerCounters:
    messages: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    candidate_violations: list[str] = field(default_factory=list)


class SignallingServer:
    def __init__(
        self,
        settings: SignallingSettings,
        events: SessionEvents,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.credentials = CredentialStore()
        self.tickets = TicketVerifier(clock)
        self.hub = Hub(
            events,
            clock,
            HubSettings(mesh_cap=settings.mesh_cap, grace_seconds=settings.grace_seconds),
        )
        self.networks = parse_networks(settings.candidate_networks)
        self.counters = ServerCounters()
        self._sockets: set[web.WebSocketResponse] = set()

    async def revoke_peer(self, peer_id: str, until: float) -> None:
        """A withdrawn guest: every ticket made out to it is refused until ``until``,
        and it leaves its sessions now (its connection is closed with 4403)."""
        self.tickets.revoke_subject(peer_id, until)
        await self.hub.eject(
            peer_id,
            CLOSE_REVOKED,
            p.Error(code=p.ErrorCode.TICKET_REVOKED, message="your access was withdrawn"),
        )

    def set_room(self, record: RoomRecord) -> bool:
        """Store a room credential; True when an older key was revoked by it."""
        return self.credentials.set(record)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(
            max_msg_size=self.settings.hard_max_message_bytes, autoping=True, heartbeat=None
        )
        await ws.prepare(request)
        self._sockets.add(ws)
        link = _WebSocketLink(ws, self.settings.send_queue_limit)
        peer_id: str | None = None
        try:
            identity = await self._authenticate(ws, link)
            if identity is not None:
                peer_id = identity.info.peer_id
                await self.hub.attach(link, identity.info)
                await self._serve(ws, link, identity)
        finally:
            if peer_id is not None:
                await self.hub.detach(link, peer_id)
            await link.stop()
            self._sockets.discard(ws)
            if not ws.closed:
                await ws.close()
        return ws

    async def _authenticate(
        self, ws: web.WebSocketResponse, link: _WebSocketLink
    ) -> _Identity | None:
        bucket = TokenBucket(self.settings.rate_per_second, self.settings.rate_burst)
        deadline = asyncio.get_running_loop().time() + self.settings.hello_timeout
        while True:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                await self._refuse(link, p.ProtocolError(p.ErrorCode.HELLO_REQUIRED, "no hello"))
                return None
            try:
                async with asyncio.timeout_at(deadline):  # WebSocket pings do not extend it
                    msg = await ws.receive()
            except TimeoutError:
                continue
            if msg.type != WSMsgType.TEXT:
                return None
            try:
                message = self._parse(msg.data, bucket)
                if message is None:
                    continue
                if not isinstance(message, p.Hello):
                    raise p.ProtocolError(
                        p.ErrorCode.HELLO_REQUIRED, "say hello first", getattr(message, "id", None)
                    )
                identity = self._check_hello(message)
            except p.ProtocolError as exc:
                if exc.code in HELLO_REFUSALS:
                    await self._refuse(link, exc)
                    return None
                self._error(link, exc)
                continue
            link.send(
                p.Welcome(
                    protocol=p.PROTOCOL_VERSION,
                    peer_id=identity.info.peer_id,
                    name=identity.info.name,
                    server_time=self.clock(),
                    heartbeat_interval=self.settings.heartbeat_interval,
                    heartbeat_timeout=self.settings.heartbeat_timeout,
                    ice_servers=list(self.settings.ice_servers),
                    candidate_filter=p.CandidateFilter(
                        allow=list(self.settings.candidate_networks)
                    ),
                    limits=p.Limits(
                        max_message_bytes=self.settings.max_message_bytes,
                        rate_per_second=self.settings.rate_per_second,
                        rate_burst=self.settings.rate_burst,
                    ),
                    ref=message.id,
                )
            )
            return identity

    def _check_hello(self, hello: p.Hello) -> _Identity:
        """A room authenticates with its key; a guest (no key) with its guest ticket."""
        if hello.protocol != p.PROTOCOL_VERSION:
            raise p.ProtocolError(
                p.ErrorCode.UNSUPPORTED_VERSION,
                f"this server speaks protocol {p.PROTOCOL_VERSION}",
                hello.id,
            )
        try:
            if hello.key is not None:
                record = self.credentials.verify(hello.room_id, hello.key)
                info = p.PeerInfo(
                    peer_id=f"room:{record.room_id}",
                    name=record.name,
                    room_id=record.room_id,
                    centre=record.centre,
                )
                return _Identity(info)
            if hello.ticket is not None:
                claims = self.tickets.verify_guest(hello.ticket)
                info = p.PeerInfo(peer_id=claims.peer_id, name=claims.name or DEFAULT_GUEST_NAME)
                return _Identity(info, guest_ticket=claims)
        except p.ProtocolError as exc:
            raise p.ProtocolError(exc.code, exc.message, hello.id) from None
        raise p.ProtocolError(
            p.ErrorCode.AUTH_FAILED, "a room key or a guest ticket is required", hello.id
        )

    async def _serve(
        self, ws: web.WebSocketResponse, link: _WebSocketLink, identity: _Identity
    ) -> None:
        bucket = TokenBucket(self.settings.rate_per_second, self.settings.rate_burst)
        loop = asyncio.get_running_loop()
        while True:
            # The deadline counts protocol messages only: aiohttp answers WebSocket
            # pings inside receive(), and they must not keep a silent peer alive.
            deadline = loop.time() + self.settings.heartbeat_timeout
            try:
                async with asyncio.timeout_at(deadline):
                    msg = await ws.receive()
            except TimeoutError:
                await self._refuse(
                    link,
                    p.ProtocolError(
                        p.ErrorCode.HEARTBEAT_TIMEOUT, "no message within the heartbeat timeout"
                    ),
                    CLOSE_HEARTBEAT,
                )
                return
            if msg.type == WSMsgType.BINARY:
                if not bucket.take(time.monotonic()):
                    self._error(link, p.ProtocolError(p.ErrorCode.RATE_LIMITED, "slow down"))
                    continue
                self._error(
                    link, p.ProtocolError(p.ErrorCode.BAD_MESSAGE, "binary frames are not used")
                )
                continue
            if msg.type != WSMsgType.TEXT:
                return  # closed, closing or a transport error
            try:
                message = self._parse(msg.data, bucket)
                if message is not None:
                    await self._dispatch(identity, message)
            except p.ProtocolError as exc:
                self._error(link, exc)

    def _parse(self, data: str, bucket: TokenBucket) -> p.ClientMessage | None:
        self.counters.messages += 1
        if not bucket.take(time.monotonic()):
            # Refused before parsing, so a flood costs us as little as possible.
            raise p.ProtocolError(p.ErrorCode.RATE_LIMITED, "too many messages; slow down")
        if len(data) > self.settings.max_message_bytes or (
            len(data) * 4 > self.settings.max_message_bytes
            and len(data.encode("utf-8")) > self.settings.max_message_bytes
        ):
            raise p.ProtocolError(
                p.ErrorCode.TOO_LARGE,
                f"messages are limited to {self.settings.max_message_bytes} bytes",
            )
        return p.decode_client(data)

    async def _dispatch(self, identity: _Identity, message: p.ClientMessage) -> None:
        info = identity.info
        peer_id = info.peer_id
        if isinstance(message, p.Ping):
            link = self.hub.link(peer_id)
            if link is not None:
                link.send(p.Pong(t=message.t, server_time=self.clock(), ref=message.id))
        elif isinstance(message, p.Offer | p.Answer):
            self._check_candidates(disallowed_addresses(message.sdp, self.networks), message.id)
            self.hub.relay(peer_id, message)
        elif isinstance(message, p.Candidate):
            if message.candidate:
                # An unreadable candidate cannot be checked, so it is not relayed either.
                address = candidate_address(message.candidate) or message.candidate[:60]
                if not address_allowed(address, self.networks):
                    self._check_candidates([address], message.id)
            self.hub.relay(peer_id, message)
        elif isinstance(message, p.Join):
            try:
                claims = self.tickets.verify(
                    message.ticket, peer_id=peer_id, session_id=message.session_id
                )
            except p.ProtocolError as exc:
                raise p.ProtocolError(exc.code, exc.message, message.id) from None
            guest = identity.guest_ticket
            if guest is not None and claims.ticket_id != guest.ticket_id:
                raise p.ProtocolError(
                    p.ErrorCode.TICKET_INVALID,
                    "a guest joins with the ticket it said hello with",
                    message.id,
                )
            await self.hub.join(peer_id, message.session_id, message.id)
        elif isinstance(message, p.Leave):
            await self.hub.leave(peer_id, message.session_id, message.id)
        elif isinstance(message, p.Stats):
            await self.hub.stats(peer_id, message)
        elif isinstance(message, p.Readiness):
            if info.room_id is None:
                raise p.ProtocolError(
                    p.ErrorCode.BAD_MESSAGE, "only rooms send readiness", message.id
                )
            await self.hub.readiness(info.room_id, message)
        elif isinstance(message, p.ControlResult | p.RoomState):
            if info.room_id is None:
                raise p.ProtocolError(
                    p.ErrorCode.BAD_MESSAGE, f"only rooms send {message.type}", message.id
                )
            if isinstance(message, p.ControlResult):
                self.hub.control_result(info.room_id, message)
            else:
                self.hub.report_room_state(info.room_id, message)
        elif isinstance(message, p.Hello):
            raise p.ProtocolError(p.ErrorCode.BAD_MESSAGE, "already authenticated", message.id)

    def _check_candidates(self, addresses: list[str], ref: str | None) -> None:
        if addresses:
            self.counters.candidate_violations.extend(addresses)
            raise p.ProtocolError(
                p.ErrorCode.CANDIDATE_NOT_ALLOWED,
                f"{len(addresses)} candidate address(es) outside the allowed networks",
                ref,
            )

    def _error(self, link: _WebSocketLink, exc: p.ProtocolError) -> None:
        self.counters.errors[exc.code] += 1
        if exc.code == p.ErrorCode.RATE_LIMITED:
            link.rate_errors += 1
            if link.rate_errors % 50 != 1:
                # Answering every message of a flood would double it; one in 50 is enough.
                return
        link.send(p.Error(code=exc.code, message=exc.message, ref=exc.ref))

    async def _refuse(
        self, link: _WebSocketLink, exc: p.ProtocolError, code: int = CLOSE_AUTH
    ) -> None:
        self.counters.errors[exc.code] += 1
        link.send(p.Error(code=exc.code, message=exc.message, ref=exc.ref))
        await link.close(code, exc.code)

    async def close(self) -> None:
        await self.hub.close()
        for ws in list(self._sockets):
            await ws.close(code=1001, message=b"server shutdown")
