"""An in-process signalling server on a loopback port, with a recording SessionEvents;
in-process room agents and a Python guest that stand in for real rooms and a browser."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import jwt
from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from common.schedule import RoomRecord
from signalling import protocol as p
from signalling.auth import hash_key
from signalling.client import SignallingClient
from signalling.server import SignallingServer, SignallingSettings


@dataclass
class RecordingEvents:
    events: list[object] = field(default_factory=list)

    async def room_online(self, event: object) -> None:
        self.events.append(event)

    async def room_offline(self, event: object) -> None:
        self.events.append(event)

    async def peer_joined(self, event: object) -> None:
        self.events.append(event)

    async def peer_left(self, event: object) -> None:
        self.events.append(event)

    async def media_milestone(self, event: object) -> None:
        self.events.append(event)

    async def media_report(self, event: object) -> None:
        self.events.append(event)

    async def room_readiness(self, event: object) -> None:
        self.events.append(event)

    async def session_topology(self, event: object) -> None:
        self.events.append(event)


@dataclass
class Minter:
    key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    kid: str = "test-kid"

    def public_pem(self) -> bytes:
        return self.key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)

    def mint(
        self,
        peer_id: str,
        session_id: str,
        nbf: float | None = None,
        exp: float | None = None,
        kid: str | None = None,
        role: str = "room",
        name: str | None = None,
        jti: str | None = None,
    ) -> str:
        now = time.time()
        claims: dict[str, Any] = {
            "iss": "telecentre",
            "sub": peer_id,
            "sid": session_id,
            "role": role,
            "nbf": int(nbf if nbf is not None else now - 60),
            "exp": int(exp if exp is not None else now + 600),
            "iat": int(now),
            "jti": jti or uuid.uuid4().hex,
        }
        if name is not None:
            claims["name"] = name
        return jwt.encode(claims, self.key, algorithm="EdDSA", headers={"kid": kid or self.kid})


@dataclass
class Harness:
    server: SignallingServer
    events: RecordingEvents
    minter: Minter
    url: str
    http: aiohttp.ClientSession
    keys: dict[str, str] = field(default_factory=dict)

    def add_room(self, room_id: str, generation: int = 1, key: str | None = None) -> str:
        key = key or f"tck_{uuid.uuid4().hex}{uuid.uuid4().hex}"
        self.server.set_room(
            RoomRecord(
                room_id=room_id,
                name=f"Room {room_id}",
                centre="Centre",
                key_hash=hash_key(key),
                generation=generation,
            )
        )
        self.keys[room_id] = key
        return key

    async def client(self, room_id: str, key: str | None = None) -> SignallingClient:
        c = SignallingClient(self.http, self.url, room_id=room_id, key=key or self.keys[room_id])
        await c.connect()
        return c

    async def guest(self, ticket: str) -> SignallingClient:
        c = SignallingClient(self.http, self.url, ticket=ticket)
        await c.connect()
        return c

    def push_session(
        self,
        session_id: str,
        rooms: list[str],
        start: float,
        end: float,
        lead: float = 5.0,
        connect_mode: str = "automatic",
    ) -> None:
        """Push each room a schedule holding this one session, with its ticket."""
        now = time.time()
        for room_id in rooms:
            entry = p.ScheduleEntry(
                session_id=session_id,
                booking_id="b-" + session_id,
                title="Test session",
                start=start,
                end=end,
                lead=lead,
                state="live" if start <= now else "scheduled",
                ticket=self.minter.mint(f"room:{room_id}", session_id, exp=end + 300),
                rooms=[p.ScheduleRoom(room_id=r, name=f"Room {r}", centre="Centre") for r in rooms],
                connect_mode=connect_mode,
            )
            self.server.hub.push_schedule(
                p.Schedule(room_id=room_id, generated_at=now, sessions=[entry])
            )


@asynccontextmanager
async def signalling_harness(
    clock: Callable[[], float] = time.time, **overrides: object
) -> AsyncIterator[Harness]:
    # Refused strangers are closed at once unless a test asks for the hold: it only
    # delays the close that tests of refusals wait for (tests/test_signalling_abuse.py
    # and the flood test cover it).
    overrides.setdefault("refusal_hold", 0.0)
    settings = SignallingSettings(**overrides)  # type: ignore[arg-type]
    events = RecordingEvents()
    server = SignallingServer(settings, events, clock)
    minter = Minter()
    server.tickets.add_public_key(minter.kid, minter.public_pem())
    app = web.Application()
    app.router.add_get("/ws", server.handle)
    test_server = TestServer(app, host="127.0.0.1")
    await test_server.start_server()
    http = aiohttp.ClientSession()
    try:
        yield Harness(server, events, minter, str(test_server.make_url("/ws")), http)
    finally:
        await http.close()
        await server.close()
        await test_server.close()


async def eventually(predicate: Callable[[], object], what: str, within: float = 10.0) -> None:
    """Wait, bounded, for a condition on state nothing signals (media counters, agent state)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {within} s waiting for {what}")
        await asyncio.sleep(0.02)


@asynccontextmanager
async def running_agent(h: Harness, room_id: str, **options: Any) -> AsyncIterator[Any]:
    """A real RoomAgent (aiortc, synthetic camera) for ``room_id``, connected to ``h``;
    ``options`` are further AgentConfig fields (e.g. ``ice_policy``).

    Small frames (320x180 at 15 fps) keep several agents in one test process cheap.
    """
    from room_agents.agent import RoomAgent
    from room_agents.config import AgentConfig
    from room_agents.ice import unpin_host_addresses

    config = AgentConfig(
        server_url=h.url,
        key=h.keys[room_id],
        width=320,
        height=180,
        fps=15,
        label=room_id,
        **options,
    )
    agent = RoomAgent(config)
    task = asyncio.create_task(agent.run())
    try:
        await asyncio.wait_for(agent.connected.wait(), 10)
        yield agent
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        unpin_host_addresses()  # the agent pinned aioice to the loopback for the process
