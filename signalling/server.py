"""The WebSocket endpoint: authentication, limits, heartbeats, dispatch to the hub.

Every broken rule becomes an ``error`` message with a stable code and the
offending message's id; only authentication failures, heartbeat timeouts and
hopelessly slow readers close the connection. One misbehaving peer never delays
the others: its messages are parsed and answered on its own task, and sending to
it goes through its own bounded queue.

Before authentication a connection costs as little as possible: strangers are
admitted up to a per-address and a total limit (signalling.admission), and the
first frame must be a small ``hello``, read within the hello timeout; anything
else (a larger frame, another message, a binary frame, silence) is refused and
the connection closed, having parsed nothing but at most one small hello. Every
refusal is logged as one line, at most a few per minute per code
(signalling.quietlog).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import WSMsgType, web

from common import turn
from common.peers import is_sfu_peer, room_peer_id
from common.schedule import RoomRecord
from signalling import protocol as p
from signalling.admission import Admission
from signalling.auth import CredentialStore, TicketClaims, TicketVerifier
from signalling.candidates import parse_networks, refused_candidate, refused_in_sdp
from signalling.hub import Hub, HubSettings
from signalling.janus.pool import JanusPool, JanusServer
from signalling.ports import SessionEvents
from signalling.quietlog import QuietLog
from signalling.ratelimit import TokenBucket
from signalling.sfu import SfuBridge
from signalling.turn import TurnConfig, ice_servers_for

log = logging.getLogger(__name__)

CLOSE_AUTH = 4401
# Closed by aiohttp itself (no ``error`` first): a text frame that is not UTF-8, and
# a frame over the hard cap.
CLOSE_INVALID_TEXT = 1007
CLOSE_TOO_BIG = 1009
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
VIOLATION_EXAMPLES = 16
"""Refused SDPs and candidates are counted; only the latest few reasons (an address, a
line cut short) are kept, as examples."""
DEFAULT_GUEST_NAME = "Guest"


@dataclass(frozen=True, slots=True)
class SignallingSettings:
    """Limits and parameters of the endpoint; defaults are documented in docs/protocol.md."""

    max_message_bytes: int = 64 * 1024
    # Larger frames are refused by aiohttp itself (close 1009) before we read them;
    # a stranger's frame is read up to this size once, so it bounds pending memory.
    hard_max_message_bytes: int = 128 * 1024
    hello_max_bytes: int = 4096
    rate_per_second: float = 50.0
    rate_burst: int = 200
    heartbeat_interval: float = 5.0
    heartbeat_timeout: float = 15.0
    hello_timeout: float = 5.0
    # A refused stranger's connection is held this long (unread, still counting against
    # the limits) before it is closed, so reconnecting cannot make refusals a flood.
    refusal_hold: float = 2.0
    unauthenticated_per_address: int = 64
    unauthenticated_total: int = 1024
    # readiness reports per room: a burst (one per due session at connection) and a rate
    readiness_burst: int = 16
    readiness_per_second: float = 0.5
    stats_interval: float = 1.0
    grace_seconds: float = 30.0
    mesh_cap: int = 4
    mesh_limit: int = 2  # with a Janus pool: the largest mesh (see HubSettings)
    # The Janus pool for sessions past the mesh cap (docs/protocol.md 20); none: mesh only.
    janus_servers: tuple[JanusServer, ...] = ()
    sfu_cap: int = 12
    send_queue_limit: int = 1024
    ice_servers: tuple[p.IceServer, ...] = ()  # static: STUN, or TURN with fixed credentials
    # TURN with credentials minted per peer (signalling.turn)
    turn: TurnConfig = field(default_factory=TurnConfig)
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
    ice_policy: p.IcePolicy = "all"


@dataclass(slots=True)
class ServerCounters:
    messages: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    # How many SDPs and candidates the filter refused, and the latest few reasons.
    candidate_violations: int = 0
    violation_examples: deque[str] = field(default_factory=lambda: deque(maxlen=VIOLATION_EXAMPLES))
    # Connections closed by aiohttp for a frame it could not read (close 1007, 1009).
    unreadable_frames: int = 0


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
            HubSettings(
                mesh_cap=settings.mesh_cap,
                mesh_limit=settings.mesh_limit,
                sfu_cap=settings.sfu_cap,
                grace_seconds=settings.grace_seconds,
                stats_interval=settings.stats_interval,
            ),
        )
        self.networks = parse_networks(settings.candidate_networks)
        self.janus: JanusPool | None = None
        if settings.janus_servers:
            self.janus = JanusPool(list(settings.janus_servers))
            self.hub.use_sfu(
                SfuBridge(
                    self.janus,
                    self.hub.send_to,
                    self.hub.members,
                    self.networks,
                    on_move=self.hub.sfu_moved,
                )
            )
        self.counters = ServerCounters()
        self.admission = Admission(
            per_address=settings.unauthenticated_per_address,
            total=settings.unauthenticated_total,
        )
        self.quiet = QuietLog(log)
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
        address = request.remote or "unknown"
        refusal = self.admission.admit(address)
        if refusal is not None:
            code = p.ErrorCode.TOO_MANY_CONNECTIONS
            self.counters.errors[code] += 1
            self.quiet.warning(code, "refused a WebSocket from %s: %s", address, refusal)
            return web.json_response(
                {"error": {"code": code, "message": refusal}},
                status=503,
                headers={"Retry-After": "1"},
            )
        pending = True
        ws = web.WebSocketResponse(
            max_msg_size=self.settings.hard_max_message_bytes, autoping=True, heartbeat=None
        )
        link: _WebSocketLink | None = None
        peer_id: str | None = None
        try:
            await ws.prepare(request)
            self._sockets.add(ws)
            link = _WebSocketLink(ws, self.settings.send_queue_limit)
            identity = await self._authenticate(ws, link, address)
            self.admission.release(address)
            pending = False
            if identity is not None:
                peer_id = identity.info.peer_id
                await self.hub.attach(link, identity.info)
                await self._serve(ws, link, identity)
        finally:
            if pending:
                self.admission.release(address)
            if peer_id is not None and link is not None:
                await self.hub.detach(link, peer_id)
            if link is not None:
                await link.stop()
            self._sockets.discard(ws)
            if ws.prepared and not ws.closed:
                await ws.close()
        return ws

    async def _authenticate(
        self, ws: web.WebSocketResponse, link: _WebSocketLink, address: str
    ) -> _Identity | None:
        """Read one frame, within the hello timeout, that must be a small ``hello``
        that succeeds; anything else is refused and closes the connection (4401)."""
        try:
            # WebSocket pings are answered inside receive() and do not extend this.
            async with asyncio.timeout(self.settings.hello_timeout):
                msg = await ws.receive()
        except TimeoutError:
            await self._refuse(
                link,
                p.ProtocolError(
                    p.ErrorCode.HELLO_REQUIRED,
                    f"no hello within {self.settings.hello_timeout:g} s",
                ),
                address=address,
            )
            return None
        if msg.type == WSMsgType.BINARY:
            await self._refuse(
                link,
                p.ProtocolError(p.ErrorCode.BAD_MESSAGE, "binary frames are not used"),
                address=address,
                hold=self.settings.refusal_hold,
            )
            return None
        if msg.type != WSMsgType.TEXT:
            self._unreadable(ws, msg.type, address)
            return None
        try:
            data: str = msg.data
            self.counters.messages += 1
            if len(data) > self.settings.hello_max_bytes:
                # Refused unread: a stranger's large frame is never parsed.
                raise p.ProtocolError(
                    p.ErrorCode.TOO_LARGE,
                    f"a hello is at most {self.settings.hello_max_bytes} bytes",
                )
            message = p.decode_client(data)
            if not isinstance(message, p.Hello):
                raise p.ProtocolError(
                    p.ErrorCode.HELLO_REQUIRED,
                    "the first message must be hello",
                    getattr(message, "id", None),
                )
            identity = self._check_hello(message)
        except p.ProtocolError as exc:
            await self._refuse(link, exc, address=address, hold=self.settings.refusal_hold)
            return None
        link.send(
            p.Welcome(
                protocol=p.PROTOCOL_VERSION,
                peer_id=identity.info.peer_id,
                name=identity.info.name,
                server_time=self.clock(),
                heartbeat_interval=self.settings.heartbeat_interval,
                heartbeat_timeout=self.settings.heartbeat_timeout,
                ice_servers=self._welcome_ice_servers(identity),
                candidate_filter=p.CandidateFilter(allow=list(self.settings.candidate_networks)),
                limits=p.Limits(
                    max_message_bytes=self.settings.max_message_bytes,
                    rate_per_second=self.settings.rate_per_second,
                    rate_burst=self.settings.rate_burst,
                ),
                ref=message.id,
                ice_policy=identity.ice_policy,
            )
        )
        return identity

    def _welcome_ice_servers(self, identity: _Identity) -> list[p.IceServer]:
        """A room gets a TURN credential for its own checks; a guest only the static
        servers (its TURN credential comes with ``joined``)."""
        static = self.settings.ice_servers
        if identity.info.room_id is None:
            return list(static)
        expires = self.clock() + self.settings.turn.check_seconds
        return ice_servers_for(
            static, self.settings.turn, identity.info.peer_id, turn.NO_SESSION, expires
        )

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
                    peer_id=room_peer_id(record.room_id),
                    name=record.name,
                    room_id=record.room_id,
                    centre=record.centre,
                )
                return _Identity(
                    info, ice_policy="relay" if record.ice_policy == "relay" else "all"
                )
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
        readiness = TokenBucket(self.settings.readiness_per_second, self.settings.readiness_burst)
        loop = asyncio.get_running_loop()
        peer_id = identity.info.peer_id
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
                    address=peer_id,
                )
                return
            if msg.type == WSMsgType.BINARY:
                if not bucket.take(time.monotonic()):
                    self._error(
                        link, p.ProtocolError(p.ErrorCode.RATE_LIMITED, "slow down"), peer_id
                    )
                    continue
                self._error(
                    link,
                    p.ProtocolError(p.ErrorCode.BAD_MESSAGE, "binary frames are not used"),
                    peer_id,
                )
                continue
            if msg.type != WSMsgType.TEXT:
                self._unreadable(ws, msg.type, peer_id)
                return  # closed, closing or a transport error
            message: p.ClientMessage | None = None
            try:
                message = self._parse(msg.data, bucket)
                if isinstance(message, p.Readiness) and not readiness.take(time.monotonic()):
                    raise p.ProtocolError(
                        p.ErrorCode.RATE_LIMITED, "too many readiness reports", message.id
                    )
                await self._dispatch(identity, message)
            except p.ProtocolError as exc:
                self._error(link, exc, peer_id)
            except Exception:
                # A fault of ours, not the peer's: it gets ``internal``, the log gets the
                # traceback (a few per minute at most), and the connection goes on.
                kind = type(message).__name__ if message is not None else "message"
                self.quiet.exception(
                    p.ErrorCode.INTERNAL, "handling a %s from %s failed", kind, peer_id
                )
                ref = getattr(message, "id", None)
                self._error(
                    link,
                    p.ProtocolError(p.ErrorCode.INTERNAL, "the server failed on this message", ref),
                    peer_id,
                )

    def _unreadable(self, ws: web.WebSocketResponse, kind: WSMsgType, who: str) -> None:
        """aiohttp closed the connection on a frame it could not read: a text frame
        that is not UTF-8 (1007) or one over the hard cap (1009)."""
        if kind != WSMsgType.ERROR:
            return
        self.counters.unreadable_frames += 1
        self.quiet.info(
            "unreadable-frame",
            "closed %s's connection (%s): %s",
            who,
            ws.close_code,
            type(ws.exception()).__name__,
        )

    def _parse(self, data: str, bucket: TokenBucket) -> p.ClientMessage:
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
                # A room's readiness check asks for a fresh check credential: the one
                # in its welcome lasts turn.check_seconds, a room stays connected longer.
                servers = (
                    self._welcome_ice_servers(identity)
                    if message.ice and info.room_id is not None
                    else None
                )
                link.send(
                    p.Pong(
                        t=message.t, server_time=self.clock(), ref=message.id, ice_servers=servers
                    )
                )
        elif isinstance(message, p.Offer | p.Answer):
            self._check_candidates(refused_in_sdp(message.sdp, self.networks), message.id)
            await self._relay(peer_id, message)
        elif isinstance(message, p.Candidate):
            if message.candidate:
                self._check_candidates(
                    refused_candidate(message.candidate, self.networks), message.id
                )
            await self._relay(peer_id, message)
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
            # The session's TURN credential expires with the ticket that let the peer in.
            servers = ice_servers_for(
                self.settings.ice_servers,
                self.settings.turn,
                peer_id,
                message.session_id,
                claims.expires,
            )
            await self.hub.join(peer_id, message.session_id, message.id, ice_servers=servers)
        elif isinstance(message, p.Leave):
            await self.hub.leave(peer_id, message.session_id, message.id)
        elif isinstance(message, p.Subscribe):
            await self.hub.subscribe(peer_id, message)
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

    async def _relay(self, peer_id: str, message: p.Offer | p.Answer | p.Candidate) -> None:
        if message.to is not None and is_sfu_peer(message.to):
            await self.hub.relay_to_sfu(peer_id, message)
        else:
            self.hub.relay(peer_id, message)

    def _check_candidates(self, refused: str | None, ref: str | None) -> None:
        if refused is not None:
            self.counters.candidate_violations += 1
            self.counters.violation_examples.append(refused[:60])
            raise p.ProtocolError(
                p.ErrorCode.CANDIDATE_NOT_ALLOWED,
                "a candidate outside the allowed networks, or one that cannot be read",
                ref,
            )

    def _error(self, link: _WebSocketLink, exc: p.ProtocolError, who: str) -> None:
        self.counters.errors[exc.code] += 1
        if exc.code == p.ErrorCode.RATE_LIMITED:
            link.rate_errors += 1
            if link.rate_errors % 50 != 1:
                # Answering every message of a flood would double it; one in 50 is enough.
                return
        if exc.code != p.ErrorCode.INTERNAL:
            self.quiet.info(exc.code, "refused a message from %s: %s", who, exc)
        link.send(p.Error(code=exc.code, message=exc.message, ref=exc.ref))

    async def _refuse(
        self,
        link: _WebSocketLink,
        exc: p.ProtocolError,
        code: int = CLOSE_AUTH,
        *,
        address: str,
        hold: float = 0.0,
    ) -> None:
        """Send the error, then close with ``code``; a refused stranger's connection is
        first held for ``hold`` seconds (the error is on its way; the peer may close)."""
        self.counters.errors[exc.code] += 1
        self.quiet.info(exc.code, "closed the connection of %s (%d): %s", address, code, exc)
        link.send(p.Error(code=exc.code, message=exc.message, ref=exc.ref))
        if hold > 0:
            # Frames it sends meanwhile stay unread: aiohttp stops reading the socket
            # once a frame or two are queued.
            await asyncio.sleep(hold)
        await link.close(code, exc.code)

    async def start(self) -> None:
        """Start what runs beside the connections: the Janus pool's health checks."""
        if self.janus is not None:
            await self.janus.start()

    async def close(self) -> None:
        await self.hub.close()
        if self.janus is not None:
            await self.janus.close()
        for ws in list(self._sockets):
            await ws.close(code=1001, message=b"server shutdown")
