"""The pool of Janus servers a deployment lists: which are healthy, how loaded, where
the next session goes.

Rules:

- ``choose_server`` (pure): a healthy server, not avoided, below its capacity (in
  sessions), the least loaded; ties go to the first name in alphabetical order.
- The pool keeps one shared ``JanusConnection`` per server, made on first use and made
  again after it died. A server is down the moment its connection closes (a Janus
  killed with SIGKILL: its socket ends at once) or a health check fails; it is up
  again when a health check answers: the admin API's ``ping`` when ``admin_url`` is
  set, else the Janus API's ``info`` over a fresh connection.
- ``on_down`` / ``on_up`` callbacks run once per change, in the pool's task.
- The pool's own bookkeeping of load: ``place`` counts a session on the server it
  chose until ``release``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable, Iterable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass

import aiohttp

from common.tasks import TaskSet
from signalling.janus.client import JanusConnection, JanusError, JanusGone

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JanusServer:
    name: str
    url: str
    admin_url: str | None = None
    admin_secret: str | None = None
    capacity: int = 20  # sessions
    api_secret: str | None = None  # janus.jcfg's api_secret, sent with every request
    room_admin_key: str | None = None  # the VideoRoom plugin's admin_key, to create rooms


def choose_server(
    servers: Iterable[JanusServer],
    healthy: set[str],
    load: Mapping[str, int],
    avoid: AbstractSet[str] = frozenset(),
) -> JanusServer | None:
    """The server for a new session, or None when no healthy one has room."""
    candidates = [
        server
        for server in servers
        if server.name in healthy
        and server.name not in avoid
        and load.get(server.name, 0) < server.capacity
    ]
    if not candidates:
        return None
    return min(candidates, key=lambda server: (load.get(server.name, 0), server.name))


async def admin_ping(server: JanusServer, http: aiohttp.ClientSession, timeout: float) -> None:
    """The admin API answers ``ping`` with ``pong``; JanusError otherwise."""
    assert server.admin_url is not None
    body: dict[str, str] = {"janus": "ping", "transaction": secrets.token_hex(8)}
    if server.admin_secret is not None:
        body["admin_secret"] = server.admin_secret
    try:
        async with http.post(
            server.admin_url, json=body, timeout=aiohttp.ClientTimeout(total=timeout)
        ) as response:
            answer = await response.json(content_type=None)
    except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as error:
        raise JanusGone(f"admin api of {server.name}: {error}") from error
    if not isinstance(answer, dict) or answer.get("janus") != "pong":
        raise JanusError(3, f"admin api of {server.name} did not answer pong")


class JanusPool:
    def __init__(
        self,
        servers: Iterable[JanusServer],
        *,
        check_interval: float = 1.0,
        timeout: float = 2.0,
        keepalive: float = 10.0,
    ) -> None:
        self.servers = {server.name: server for server in servers}
        self.check_interval = check_interval
        self.timeout = timeout
        self.keepalive = keepalive
        self.on_down: list[Callable[[JanusServer], None]] = []
        self.on_up: list[Callable[[JanusServer], None]] = []
        self._healthy: set[str] = set()
        self._connections: dict[str, JanusConnection] = {}
        self._connecting: dict[str, asyncio.Lock] = {name: asyncio.Lock() for name in self.servers}
        self._placed: dict[str, str] = {}  # session id -> server name
        self._tasks = TaskSet()
        self._http: aiohttp.ClientSession | None = None

    # --- state ----------------------------------------------------------------------

    def healthy(self) -> set[str]:
        return set(self._healthy)

    def load(self) -> dict[str, int]:
        counts = dict.fromkeys(self.servers, 0)
        for name in self._placed.values():
            counts[name] = counts.get(name, 0) + 1
        return counts

    def place(self, session_id: str, avoid: AbstractSet[str] = frozenset()) -> JanusServer | None:
        """The server for ``session_id`` (counted on it until ``release``); a session
        already placed is moved (its old place released) unless that place is fine."""
        current = self._placed.pop(session_id, None)
        if current is not None and current in self._healthy and current not in avoid:
            self._placed[session_id] = current
            return self.servers[current]
        server = choose_server(self.servers.values(), self._healthy, self.load(), avoid)
        if server is not None:
            self._placed[session_id] = server.name
        return server

    def placed(self, session_id: str) -> JanusServer | None:
        name = self._placed.get(session_id)
        return self.servers[name] if name is not None else None

    def release(self, session_id: str) -> None:
        self._placed.pop(session_id, None)

    # --- life -----------------------------------------------------------------------

    async def start(self) -> None:
        """Check every server once (so ``healthy`` is meaningful at once), then keep
        checking in the background."""
        self._http = aiohttp.ClientSession()
        await asyncio.gather(*(self._check(server) for server in self.servers.values()))
        self._tasks.spawn(self._health_loop(), name="janus-pool-health")

    async def close(self) -> None:
        await self._tasks.close()
        for connection in list(self._connections.values()):
            await connection.close()
        self._connections.clear()
        if self._http is not None:
            await self._http.close()

    async def connection(self, name: str) -> JanusConnection:
        """The shared connection to server ``name`` (made again if it died)."""
        server = self.servers[name]
        async with self._connecting[name]:
            existing = self._connections.get(name)
            if existing is not None and not existing.closed.is_set():
                return existing
            try:
                connection = await JanusConnection.connect(
                    server.url,
                    timeout=self.timeout,
                    keepalive=self.keepalive,
                    api_secret=server.api_secret,
                )
            except JanusError:
                self._mark(server, up=False)
                raise
            self._connections[name] = connection
            self._tasks.spawn(self._watch(server, connection), name=f"janus-watch-{name}")
            self._mark(server, up=True)
            return connection

    # --- health ---------------------------------------------------------------------

    async def _watch(self, server: JanusServer, connection: JanusConnection) -> None:
        await connection.closed.wait()
        if self._connections.get(server.name) is connection:
            del self._connections[server.name]
            log.warning("janus %s: connection lost", server.name)
            self._mark(server, up=False)
        await connection.close()  # its socket and HTTP session, even when it died

    async def _health_loop(self) -> None:
        while True:
            await asyncio.sleep(self.check_interval)  # the check's period
            await asyncio.gather(*(self._check(server) for server in self.servers.values()))

    async def _check(self, server: JanusServer) -> None:
        try:
            if server.admin_url is not None:
                assert self._http is not None
                await admin_ping(server, self._http, self.timeout)
                if server.name not in self._healthy:
                    # The admin API answers: make the shared connection (marks it up).
                    await self.connection(server.name)
            else:
                live = self._connections.get(server.name)
                if live is None or live.closed.is_set():
                    await self.connection(server.name)
                else:
                    await live.info()
        except JanusError as error:
            if server.name in self._healthy:
                log.warning("janus %s: health check failed: %s", server.name, error.reason)
            self._mark(server, up=False)
            live = self._connections.pop(server.name, None)
            if live is not None:
                with contextlib.suppress(Exception):
                    await live.close()

    def _mark(self, server: JanusServer, *, up: bool) -> None:
        if up == (server.name in self._healthy):
            return
        if up:
            self._healthy.add(server.name)
            callbacks = self.on_up
        else:
            self._healthy.discard(server.name)
            callbacks = self.on_down
        log.info("janus %s is %s", server.name, "up" if up else "down")
        for callback in list(callbacks):
            try:
                callback(server)
            except Exception:
                log.exception("janus pool: %s callback failed", "up" if up else "down")
