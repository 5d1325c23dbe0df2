"""A service whose sessions run on real Janus servers (tests/janus_support.py), with
in-process room agents: the shared set-up of the SFU tests.

Every Janus of a test's pool shares the secrets the service is configured with (the
pool takes one api_secret, admin secret and VideoRoom admin key). Each Janus gathers
on an interface of its own (tests/janus_support.py says why), so the deployment's
candidate networks are loopback plus those addresses, and the agents offer them too.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from orchestrator.booking import one_off
from orchestrator.centres import add_centre, add_room
from orchestrator.db import DbSession
from tests.janus_support import (
    JanusProcess,
    make_ice_interface,
    remove_ice_interface,
    start_janus,
)
from tests.ui_support import RunningApp, running_app
from web.settings import Settings


@dataclass(frozen=True)
class PoolSecrets:
    api_secret: str = field(default_factory=lambda: secrets.token_hex(12))
    admin_secret: str = field(default_factory=lambda: secrets.token_hex(12))
    admin_key: str = field(default_factory=lambda: secrets.token_hex(12))

    def extra(self) -> dict[str, dict[str, str]]:
        return {
            "janus.jcfg": {
                "api_secret": f'"{self.api_secret}"',
                "admin_secret": f'"{self.admin_secret}"',
            },
            "janus.plugin.videoroom.jcfg": {"admin_key": f'"{self.admin_key}"'},
        }


@contextlib.contextmanager
def janus_pool(directory: Path, count: int, keys: PoolSecrets) -> Iterator[list[JanusProcess]]:
    """``count`` real Janus processes sharing ``keys``, each on its own interface."""
    made: list[tuple[str, str]] = []
    started: list[JanusProcess] = []
    try:
        for i in range(count):
            ice = make_ice_interface()
            made.append(ice)
            started.append(start_janus(directory / f"janus{i}", ice, keys.extra()))
        yield started
    finally:
        for janus in started:
            janus.stop()
        for name, _address in made:
            remove_ice_interface(name)


def pool_settings(
    data_dir: Path, pool: Sequence[JanusProcess], keys: PoolSecrets, **more: Any
) -> Settings:
    return Settings(
        data_dir=data_dir,
        poll_interval=0.1,
        janus_urls=tuple(j.url for j in pool),
        janus_admin_urls=tuple(j.admin_url for j in pool),
        janus_admin_secret=keys.admin_secret,
        janus_api_secret=keys.api_secret,
        janus_room_admin_key=keys.admin_key,
        candidate_networks=("127.0.0.1/32", *(f"{j.ice_address}/32" for j in pool)),
        **more,
    )


@dataclass
class Sites:
    app: RunningApp
    rooms: dict[str, str]  # name -> room id
    keys: dict[str, str]
    booking_id: str
    session_id: str


@contextlib.asynccontextmanager
async def booked_sites(
    settings: Settings, names: Sequence[str], start: datetime, end: datetime, lead: int = 3
) -> AsyncIterator[Sites]:
    """The service with one room per centre for ``names``, booked from start to end."""
    async with running_app(settings) as app:

        def work(s: DbSession) -> tuple[dict[str, str], dict[str, str], str, str]:
            rooms: dict[str, str] = {}
            keys: dict[str, str] = {}
            for name in names:
                centre = add_centre(s, f"Centre {name}", "Europe/Paris")
                room, key = add_room(s, centre.id, f"Room {name}")
                rooms[name], keys[name] = room.id, key
            booking, session = one_off.book(
                s, "Delegation", start, end, list(rooms.values()), lead_seconds=lead
            )
            return rooms, keys, booking.id, session.id

        rooms, keys, booking_id, session_id = await app.services.db.run(work)
        yield Sites(app, rooms, keys, booking_id, session_id)


@contextlib.asynccontextmanager
async def agents(
    sites: Sites, names: Sequence[str], **options: Any
) -> AsyncIterator[dict[str, Any]]:
    """In-process room agents for ``names`` at 320x180, 15 fps, connected."""
    from room_agents.agent import RoomAgent
    from room_agents.config import AgentConfig
    from room_agents.ice import unpin_host_addresses

    running: dict[str, Any] = {}
    tasks: list[asyncio.Task[None]] = []
    try:
        for name in names:
            config = AgentConfig(
                server_url=sites.app.url.replace("http://", "ws://") + "/ws",
                key=sites.keys[name],
                width=320,
                height=180,
                fps=15,
                label=name,
                **options,
            )
            agent = RoomAgent(config)
            tasks.append(asyncio.create_task(agent.run()))
            running[name] = agent
        for agent in running.values():
            await asyncio.wait_for(agent.connected.wait(), 15)
        yield running
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        unpin_host_addresses()


def now() -> datetime:
    return datetime.now(UTC)
