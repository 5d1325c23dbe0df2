"""The room agent's signalling link: connect, say hello, keep the clock, reconnect.

One WebSocket at a time, reconnected with exponential backoff and full jitter after
any loss. The link's state is explicit (``LinkState``): only a welcomed connection
hands out its client, so nothing sends on a socket that has not said hello. What a
welcome or a message means to the room is the owner's business (``LinkOwner``); the
link only tells it.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import random
import ssl
import time
from collections.abc import Callable
from typing import Protocol

import aiohttp

from common.tasks import TaskSet
from room_agents.config import AgentConfig, ConfigError
from room_agents.ice import effective_policy, local_addresses_in, pin_host_addresses
from signalling import protocol as p
from signalling.candidates import Network, parse_networks
from signalling.client import ConnectionLost, SignallingClient, SignallingError

log = logging.getLogger(__name__)

AGENT_VERSION = "telecentre-agent/0.1"


def backoff_delay(attempt: int, base: float, cap: float, rng: random.Random) -> float:
    """Exponential backoff with full jitter: rooms that lost the server together do
    not all come back in the same millisecond."""
    return rng.uniform(base / 2, min(cap, base * 2**attempt))


class ServerClock:
    """Local wall clock plus the offset measured against the server."""

    def __init__(self, local: Callable[[], float] = time.time) -> None:
        self._local = local
        self.offset = 0.0

    def now(self) -> float:
        return self._local() + self.offset


class LinkState(enum.Enum):
    OFFLINE = "offline"  # not connected: waiting to (re)connect
    CONNECTING = "connecting"  # a WebSocket is opening and saying hello
    CONNECTED = "connected"  # welcomed: messages flow both ways


class LinkOwner(Protocol):
    """What the link tells the agent."""

    def welcomed(self) -> None:
        """A new connection was welcomed (the link's fields are already updated)."""

    async def handle(self, message: p.ServerMessage) -> None:
        """One message from the server, in arrival order."""

    def offset_measured(self, offset: float | None) -> None:
        """The ping/pong rounds after a welcome are over: the offset they measured, or
        None if no round trip came back."""


def tls_connector(config: AgentConfig) -> aiohttp.TCPConnector:
    """TLS to the server trusts the system's authorities, or only ``ca_file``'s."""
    if config.ca_file is None:
        return aiohttp.TCPConnector()
    try:
        context = ssl.create_default_context(cafile=str(config.ca_file))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot read CA file {config.ca_file}: {exc}") from None
    return aiohttp.TCPConnector(ssl=context)


class Connection:
    """The link to signalling, and what the latest welcome said."""

    def __init__(self, config: AgentConfig, clock: ServerClock) -> None:
        self.config = config
        self.clock = clock
        self.state = LinkState.OFFLINE
        self._client: SignallingClient | None = None
        self.connected = asyncio.Event()  # set while CONNECTED
        self.self_id = "room:?"
        self.room_name = config.label  # the server's name for the room, once connected
        self.ice_servers: list[p.IceServer] = []
        self.ice_policy: p.IcePolicy = effective_policy(config.ice_policy, "all")
        self.networks: list[Network] = parse_networks(["127.0.0.1/32"])
        self.connected_at: float | None = None  # server clock, of the current connection
        self._tasks = TaskSet()
        self._rng = random.Random()

    @property
    def client(self) -> SignallingClient | None:
        """The welcomed connection, or None."""
        return self._client if self.state is LinkState.CONNECTED else None

    async def send(self, message: object) -> None:
        client = self.client
        if client is None:
            raise ConnectionLost("not connected")
        await client.send(message)

    async def run(self, owner: LinkOwner) -> None:
        """Connect, serve, and reconnect after every loss, until cancelled."""
        attempt = 0
        try:
            async with aiohttp.ClientSession(connector=tls_connector(self.config)) as http:
                while True:
                    client = SignallingClient(
                        http,
                        self.config.server_url,
                        key=self.config.read_key(),
                        agent=AGENT_VERSION,
                    )
                    self.state = LinkState.CONNECTING
                    try:
                        welcome = await client.connect()
                        attempt = 0
                        self._welcomed(client, welcome, owner)
                        await self._serve(client, owner)
                    except (TimeoutError, ConnectionLost, SignallingError) as exc:
                        log.warning("signalling: %s", exc)
                    finally:
                        self._offline()
                        await client.close()
                    delay = backoff_delay(
                        attempt, self.config.backoff_base, self.config.backoff_cap, self._rng
                    )
                    attempt += 1
                    await asyncio.sleep(delay)
        finally:
            await self._tasks.close()

    def _offline(self) -> None:
        self.state = LinkState.OFFLINE
        self._client = None
        self.connected.clear()

    def _welcomed(self, client: SignallingClient, welcome: p.Welcome, owner: LinkOwner) -> None:
        self._client = client
        self.state = LinkState.CONNECTED
        self.self_id = welcome.peer_id
        self.room_name = welcome.name
        self.clock.offset = client.clock_offset.offset
        self.ice_servers = list(welcome.ice_servers)
        self.ice_policy = effective_policy(self.config.ice_policy, welcome.ice_policy)
        self.networks = parse_networks(welcome.candidate_filter.allow)
        pin_host_addresses(local_addresses_in(self.networks))
        self.connected_at = self.clock.now()
        self.connected.set()
        owner.welcomed()
        log.info(
            "connected as %s (%s), clock offset %.3f s, ICE policy %s",
            welcome.peer_id,
            welcome.name,
            self.clock.offset,
            self.ice_policy,
        )
        self._tasks.spawn(self._measure_offset(client, owner))

    async def _measure_offset(self, client: SignallingClient, owner: LinkOwner) -> None:
        with contextlib.suppress(SignallingError, asyncio.TimeoutError):
            for _ in range(5):
                await client.ping()
                self.clock.offset = client.clock_offset.offset
        owner.offset_measured(self.clock.offset if client.clock_offset.measured else None)

    async def _serve(self, client: SignallingClient, owner: LinkOwner) -> None:
        while True:
            message = await client.recv()
            self.clock.offset = client.clock_offset.offset
            try:
                await owner.handle(message)
            except (ConnectionLost, asyncio.CancelledError):
                raise
            except Exception:
                log.exception("while handling %s", message.type)
