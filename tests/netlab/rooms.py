"""Two rooms' calls across the lab, driven by the test (the host side of
tests/netlab/call_peer.py): each room is a ``call_peer`` process in its site's LAN, and
the test relays their offers and answers to each other, as signalling would (``from``
set, ``to`` dropped), including the re-offers of a rebuild.

    async with lab_turn(lab, tmp_path) as turn, call_rooms(lab, turn, ("a", "all"),
                                                           ("guest", "all")) as (a, g):
        a.send({"offer_to": g.peer_id})
        frame = await g.wait_for("camera", within=10)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from tests.netlab.lab import Lab
from tests.netlab.turn import LabTurn

ROOT = Path(__file__).resolve().parents[2]
SESSION = "s-lab"
READY_TIMEOUT = 30.0  # a cold Python start with aiortc, under load
Json = dict[str, Any]


class LabRoom:
    """One ``call_peer`` process; every line it printed, with the host's receive time."""

    def __init__(self, peer_id: str, process: asyncio.subprocess.Process) -> None:
        self.peer_id = peer_id
        self.process = process
        self.events: list[Json] = []
        self._changed = asyncio.Condition()

    def send(self, command: Json | str) -> None:
        assert self.process.stdin is not None
        line = command if isinstance(command, str) else json.dumps(command)
        self.process.stdin.write(line.encode() + b"\n")

    async def pump(self, other: LabRoom) -> None:
        """Read this room's lines; relay what it sends to ``other``."""
        assert self.process.stdout is not None
        async for line in self.process.stdout:
            event: Json = json.loads(line)
            event["received"] = time.time()
            if "send" in event:
                message = {k: v for k, v in event["send"].items() if k != "to"}
                other.send({"message": {**message, "from": self.peer_id}})
            async with self._changed:
                self.events.append(event)
                self._changed.notify_all()

    def found(self, kind: str, where: Callable[[Json], bool] = lambda _: True) -> Json | None:
        return next((e[kind] for e in self.events if kind in e and where(e[kind])), None)

    async def wait_for(
        self, kind: str, within: float, where: Callable[[Json], bool] = lambda _: True
    ) -> Json:
        """The first ``kind`` line matching ``where`` (bounded wait)."""

        async def seen() -> Json:
            async with self._changed:
                await self._changed.wait_for(lambda: self.found(kind, where) is not None)
            found = self.found(kind, where)
            assert found is not None
            return found

        try:
            return await asyncio.wait_for(seen(), within)
        except TimeoutError:
            states = [e["state"] for e in self.events if "state" in e]
            raise AssertionError(
                f"{self.peer_id}: no {kind} within {within:g} s (states: {states})"
            ) from None


@contextlib.asynccontextmanager
async def call_rooms(
    lab: Lab,
    turn: LabTurn,
    first: tuple[str, str],
    second: tuple[str, str],
    **options: Any,
) -> AsyncIterator[tuple[LabRoom, LabRoom]]:
    """Two rooms, ``(site, policy)`` each (ids ``room:<site>``; site ``wan`` is a room
    on a public address), relayed to each other until the block ends, yielded once both
    are ready; ``options`` go into both configs."""
    rooms = []
    env = dict(os.environ)
    if turn.ca_file is not None:
        env["SSL_CERT_FILE"] = str(turn.ca_file)  # aioice checks turns: against it
    for site, policy in (first, second):
        peer_id = f"room:{site}"
        config = {
            "self_id": peer_id,
            "session_id": SESSION,
            "ice_servers": turn.ice_servers(SESSION, peer_id),
            "policy": policy,
            "networks": [lab.networks],
            **options,
        }
        namespace = lab.wan if site == "wan" else lab.site(site).lan
        process = await namespace.spawn(
            sys.executable, "-m", "tests.netlab.call_peer", json.dumps(config),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, cwd=str(ROOT),
            env=env,
        )  # fmt: skip
        rooms.append(LabRoom(peer_id, process))
    a, b = rooms
    pumps = [asyncio.create_task(a.pump(b)), asyncio.create_task(b.pump(a))]
    try:
        for room in rooms:
            await room.wait_for("ready", READY_TIMEOUT)
        yield a, b
    finally:
        for room in rooms:
            with contextlib.suppress(ConnectionError):
                room.send("stop")
        for room in rooms:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(room.process.wait(), 10)
        for pump in pumps:
            pump.cancel()
        await asyncio.gather(*pumps, return_exceptions=True)
