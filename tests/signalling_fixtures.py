"""An in-process signalling server on a loopback port, with a recording SessionEvents."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import aiohttp
import jwt
from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from signalling.auth import RoomRecord, hash_key
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
    ) -> str:
        now = time.time()
        claims = {
            "iss": "telecentre",
            "sub": peer_id,
            "sid": session_id,
            "role": "room",
            "nbf": int(nbf if nbf is not None else now - 60),
            "exp": int(exp if exp is not None else now + 600),
            "iat": int(now),
            "jti": uuid.uuid4().hex,
        }
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


@asynccontextmanager
async def signalling_harness(**overrides: object) -> AsyncIterator[Harness]:
    settings = SignallingSettings(**overrides)  # type: ignore[arg-type]
    events = RecordingEvents()
    server = SignallingServer(settings, events)
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
