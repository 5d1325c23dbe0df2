"""Content share through the SFU on the room screens (issue 13, acceptance 4): in a
session of three rooms on a real Janus, the content room A shares appears large on
B's and C's screens, above a strip of the sites' cameras; stopping it brings the grid
back.

A shares FFmpeg's SMPTE colour bars (lavfi ``smptebars``), a picture whose colours
and their places are known, so a screenshot tells the shared picture from anything
else (a camera, a card, a black tile). B and C are real agent processes
(``telecentre agent --screen fullscreen``), each with its room screen on an Xvfb
display of its own: SDL keeps one window per process, so two screens cannot share
the test's process. The test reads what they show from their screen reports
(``screen.json``) and status files, and from screenshots of their displays, kept in
test-output/screenshots/. A runs in the test's process, so the share is started and
stopped as the touch panel does it: the ``content-share`` command through the hub.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from common.peers import SFU_PEER, room_peer_id, sfu_peer_id
from room_agents.layout import Rect, fit
from tests.e2e_support import Agent, base_env
from tests.sfu_support import (
    PoolSecrets,
    Sites,
    agents,
    booked_sites,
    janus_pool,
    now,
    pool_settings,
)
from tests.xvfb_support import SCREENSHOTS, Display, Image, until, xvfb

pytestmark = pytest.mark.timeout(240)

SEND = (320, 180)  # what every room sends, its content included
SOURCE = f"lavfi:smptebars=size={SEND[0]}x{SEND[1]}:rate=10"
# The seven bars across the top two thirds of the SMPTE pattern, left to right (75 %).
BARS = (
    ("grey", (191, 191, 191)),
    ("yellow", (191, 191, 0)),
    ("cyan", (0, 191, 191)),
    ("green", (0, 191, 0)),
    ("magenta", (191, 0, 191)),
    ("red", (191, 0, 0)),
    ("blue", (0, 0, 191)),
)
TOLERANCE = 40  # levels per channel: VP8 at 320x180, then scaled up on the screen
SCREEN = (960, 540)


# --- what a screen shows ------------------------------------------------------------------


def bars_missing(shot: Image, rect: list[int]) -> list[str]:
    """The bars of the pattern not found where the screen puts the shared picture in
    the tile ``rect`` (fitted, keeping its aspect); empty when all seven are there.
    Each bar is read as the median of a patch a quarter of its width around its
    centre, a third of the way down the picture (the label is at the bottom)."""
    box = fit(SEND[0], SEND[1], Rect(*rect))
    bar_w = box.w / len(BARS)
    half_w, half_h = max(int(bar_w / 8), 1), max(box.h // 24, 1)
    y = box.y + box.h // 3
    missing: list[str] = []
    for i, (name, colour) in enumerate(BARS):
        x = box.x + int((i + 0.5) * bar_w)
        patch = shot[y - half_h : y + half_h, x - half_w : x + half_w].reshape(-1, 3)
        seen = np.median(patch, axis=0)
        if np.abs(seen - np.array(colour)).max() > TOLERANCE:
            missing.append(f"{name} at ({x}, {y}) is {tuple(int(c) for c in seen)}")
    return missing


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return None  # not written yet
    return data


@dataclass
class ScreenRoom:
    """A room agent process whose room screen is on ``display``."""

    name: str
    peer_id: str
    agent: Agent
    display: Display

    def alive(self) -> None:
        proc = self.agent.proc
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"agent {self.name} exited: {self.agent.log()[-3000:]}")

    def status(self) -> dict[str, Any] | None:
        self.alive()
        return read_json(self.agent.status_path)

    def report(self) -> dict[str, Any] | None:
        self.alive()
        return read_json(self.agent.status_path.with_name("screen.json"))

    def totals(self, peer_id: str) -> dict[str, Any]:
        status = self.status() or {}
        return dict((status.get("peers") or {}).get(peer_id) or {})

    def tiles(self, at_least: int = 0) -> list[dict[str, Any]] | None:
        """The tiles of the screen in a call, once each has shown ``at_least`` frames."""
        report = self.report()
        if report is None or report.get("mode") != "call" or not report["tiles"]:
            return None
        tiles: list[dict[str, Any]] = report["tiles"]
        if min(t["frames_shown"] for t in tiles) < at_least:
            return None
        return tiles

    async def screenshot(self, label: str) -> Image:
        path = SCREENSHOTS / f"sfu-content-{self.name}-{label}.png"
        return await asyncio.to_thread(self.display.screenshot, path)


@contextlib.contextmanager
def screen_room(work: Path, sites: Sites, name: str, display: Display) -> Iterator[ScreenRoom]:
    """``telecentre agent`` for room ``name`` with its fullscreen room screen on
    ``display``, sending 320x180 at 10 fps; stopped (SIGTERM, it leaves) at the end."""
    key_file = work / f"{name}.key"
    key_file.write_text(sites.keys[name] + "\n")
    key_file.chmod(0o600)
    url = sites.app.url.replace("http://", "ws://") + "/ws"
    agent = Agent.make(work, name, url, key_file, width=SEND[0], height=SEND[1])
    agent.argv += ["--screen", "fullscreen", "--fps", "10"]
    agent.env = base_env(DISPLAY=display.name)
    agent.start()
    try:
        yield ScreenRoom(name, room_peer_id(sites.rooms[name]), agent, display)
    finally:
        agent.stop()


@contextlib.asynccontextmanager
async def three_rooms(tmp_path: Path) -> AsyncIterator[tuple[Sites, Any, list[ScreenRoom]]]:
    """A session of rooms a, b and c past a mesh cap of 2, so on the one Janus of the
    pool: a in this process with the colour bars as its content source, b and c as
    agent processes with their screens on Xvfb displays; once the session is on the
    SFU and live."""
    keys = PoolSecrets()
    with (
        janus_pool(tmp_path, 1, keys) as pool,
        xvfb(*SCREEN) as display_b,
        xvfb(*SCREEN) as display_c,
    ):
        settings = pool_settings(tmp_path / "data", pool, keys, mesh_limit=2)
        # Time for two agent processes to start (imports, then their links) before
        # the rooms join at start - lead.
        start = now() + timedelta(seconds=15)
        end = start + timedelta(minutes=10)
        async with booked_sites(settings, ["a", "b", "c"], start, end) as sites:
            work = tmp_path / "agents"
            work.mkdir()
            with (
                screen_room(work, sites, "b", display_b) as b,
                screen_room(work, sites, "c", display_c) as c,
            ):
                async with agents(sites, ["a"], content=SOURCE) as running:
                    for room in (b, c):
                        await until(
                            lambda r=room: (s := r.status()) and s["connected"],
                            f"{room.name}'s agent to connect",
                            40,
                        )
                    hub = sites.app.services.signalling.hub
                    await until(
                        lambda: hub.topology(sites.session_id) == ("sfu", 1),
                        "the session's move onto Janus",
                        40,
                    )
                    await until(lambda: now() > start, "the session's start", 30)
                    yield sites, running["a"], [b, c]


def others_of(room: ScreenRoom, rooms: list[ScreenRoom]) -> ScreenRoom:
    return next(r for r in rooms if r is not room)


async def test_content_shared_through_janus_is_large_on_every_other_room_s_screen(
    tmp_path: Path,
) -> None:
    async with three_rooms(tmp_path) as (sites, a, rooms):
        hub = sites.app.services.signalling.hub
        sid = sites.session_id
        peer_a = room_peer_id(sites.rooms["a"])

        # Before the share: each screen shows the two other sites in a grid, each
        # through its subscription to the other's publication on Janus.
        for room in rooms:
            other = others_of(room, rooms)
            grid = await until(
                lambda r=room: (t := r.tiles(at_least=5)) and len(t) == 2 and t,
                f"{room.name}'s grid of two sites",
                40,
            )
            assert sorted((t["peer_id"], t["role"], t["content"]) for t in grid) == sorted(
                [(peer_a, "main", False), (other.peer_id, "main", False)]
            ), grid
            # Its connections: the publication and a subscription per site (a mesh call
            # from before the session was placed on Janus is retired once the
            # subscriptions deliver, within the agent's 10 s bound).
            wanted = sorted([SFU_PEER, sfu_peer_id(peer_a), sfu_peer_id(other.peer_id)])
            await until(
                lambda r=room, w=wanted: (
                    (s := r.status()) is not None and s["sessions"].get(sid) == w
                ),
                f"{room.name}'s connections on Janus",
                15,
            )
            assert room.totals(peer_a).get("content_frames") == 0  # negotiated, not sent
            await room.screenshot("before")

        result = await hub.control(sites.rooms["a"], "content-share", {"on": True})
        assert result.ok, result.message
        assert result.state is not None and result.state.content_share

        # Shared: A's content large above a strip of the two sites' cameras.
        shown: dict[str, dict[str, Any]] = {}
        for room in rooms:
            other = others_of(room, rooms)

            def content_tile(r: ScreenRoom = room) -> dict[str, Any] | None:
                tiles = r.tiles()
                large = [t for t in tiles or () if t["role"] == "content"]
                return large[0] if large and large[0]["frames_shown"] >= 10 else None

            tile = await until(content_tile, f"a's content on {room.name}'s screen", 30)
            tiles = room.tiles()
            assert tiles is not None
            assert (tile["peer_id"], tile["site"], tile["content"]) == (peer_a, "Room a", True)
            assert sorted((t["peer_id"], t["role"], t["content"]) for t in tiles) == sorted(
                [
                    (peer_a, "content", True),
                    (peer_a, "strip", False),
                    (other.peer_id, "strip", False),
                ]
            ), tiles
            _x, y, w, h = tile["rect"]
            strip = [t["rect"] for t in tiles if t["role"] == "strip"]
            assert w == SCREEN[0] and h > SCREEN[1] / 2, tile  # large: the body's width
            assert all(r[1] >= y + h and r[3] < h / 2 for r in strip), tiles  # a strip below
            # Content frames count under A's peer id, apart from its camera (the status
            # file is written twice a second); the other site shares nothing. Nothing
            # was renegotiated: the same connections with Janus carry it.
            await until(
                lambda r=room: r.totals(peer_a).get("content_frames", 0) >= 10,
                f"{room.name}'s status to count a's content frames",
            )
            assert room.totals(other.peer_id)["content_frames"] == 0
            # Its connections: the publication and a subscription per site (a mesh call
            # from before the session was placed on Janus is retired once the
            # subscriptions deliver, within the agent's 10 s bound).
            wanted = sorted([SFU_PEER, sfu_peer_id(peer_a), sfu_peer_id(other.peer_id)])
            await until(
                lambda r=room, w=wanted: (
                    (s := r.status()) is not None and s["sessions"].get(sid) == w
                ),
                f"{room.name}'s connections on Janus",
                15,
            )
            shown[room.name] = tile

        # The pictures: the colour bars fill the content tile on both screens, and
        # keep coming (a second more of frames shown).
        for room in rooms:
            first = shown[room.name]
            shot = await room.screenshot("sharing")
            missing = bars_missing(shot, first["rect"])
            assert not missing, f"{room.name}: the shared bars are not on the screen: {missing}"
            await until(
                lambda r=room, f=first: any(
                    t["role"] == "content" and t["frames_shown"] >= f["frames_shown"] + 5
                    for t in r.tiles() or ()
                ),
                f"more of a's content on {room.name}'s screen",
            )
            report = room.report()
            assert report is not None and report["header"]["sharing"] is False  # not theirs
        assert a.control_state().content_share

        # Stopped: the grid comes back, and the bars leave the screen.
        result = await hub.control(sites.rooms["a"], "content-share", {"on": False})
        assert result.ok and result.state is not None and not result.state.content_share
        for room in rooms:
            other = others_of(room, rooms)
            grid = await until(
                lambda r=room: (t := r.tiles()) and all(x["role"] == "main" for x in t) and t,
                f"{room.name}'s grid again",
                15,
            )
            assert sorted((t["peer_id"], t["content"]) for t in grid) == sorted(
                [(peer_a, False), (other.peer_id, False)]
            ), grid
            # The tile went 1.5 s after a's last content frame, and the status file is
            # at most 0.5 s old: it counts them all.
            stopped = room.totals(peer_a)["content_frames"]
            marks = {t["peer_id"]: t["frames_shown"] for t in grid}
            await until(
                lambda r=room, m=marks: (
                    (t := r.tiles())
                    and all(x["frames_shown"] >= m.get(x["peer_id"], 0) + 5 for x in t)
                ),
                f"{room.name}'s grid to keep moving",
            )
            assert room.totals(peer_a)["content_frames"] <= stopped + 2
            shot = await room.screenshot("after")
            for tile in grid:
                assert bars_missing(shot, tile["rect"]), f"{room.name}: bars left in {tile}"
