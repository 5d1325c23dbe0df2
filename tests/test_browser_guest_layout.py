"""The guest page's layout and speaker highlight, in real Chromium.

The rules (web/static/guest_layout.js) are pure functions, checked in the page
against the room screens' own (room_agents/layout.py grid_shape) and on made-up audio
levels (hold and hysteresis). Then a mesh session at its cap, the page and three
aiortc sites on loopback through the real service: the three sites' tiles are laid
out by the grid rule (2 + 1 centred in a tall window, 3 in a row in a wide short
one), 16:9 and of one size, and the highlight goes to the site that sends a loud
tone while the others send silence, stays there without flicker, and moves when
another site takes over.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiortc import RTCPeerConnection

from common.peers import room_peer_id
from common.tasks import TaskSet
from orchestrator.booking import one_off
from orchestrator.centres import add_centre, add_room
from orchestrator.db import DbSession
from orchestrator.sessions import guests
from room_agents.ice import filter_sdp, parse_networks
from room_agents.layout import grid_shape
from signalling import protocol as p
from signalling.client import SignallingClient
from tests.browser_peers import Site, answer_as, loopback_only
from tests.browser_support import browser, new_page, screenshot_path
from tests.requirements import missing
from tests.signalling_fixtures import eventually
from tests.test_a11y import AXE, blocking_violations, describe
from tests.test_browser_guest import FRAMES_DECODED, until
from tests.ui_support import RunningApp, client_ssl, running_app
from web.settings import Settings

__all__ = ["browser", "loopback_only"]

pytestmark = pytest.mark.timeout(120)


async def open_page(browser: Any, url: str, **viewport: int) -> Any:
    page = await new_page(browser)
    if viewport:
        await page.set_viewport_size(viewport)
    await page.goto(url)
    return page


# --- the pure rules ---------------------------------------------------------------------


async def test_the_page_grid_rule_is_the_room_screens(
    browser: Any,
    tmp_path: Path,
) -> None:
    """Without gaps or labels, the page's grid is room_agents/layout.py's, for 1 to 9
    sites on screens from a phone to a wall; with them it never overflows the stage."""
    async with live_meeting(tmp_path, rooms=2) as m:
        page = await open_page(browser, m.guest_url)
        sizes = [(360, 640), (1280, 720), (1068, 700), (1920, 1080), (800, 1200), (3000, 600)]
        cases = [(n, w, h) for n in range(1, 10) for w, h in sizes]
        shapes = await page.evaluate(
            "(cases) => cases.map(([n, w, h]) => window.telecentreLayout.gridShape(n, w, h))",
            cases,
        )
        for (n, w, h), shape in zip(cases, shapes, strict=True):
            assert tuple(shape) == grid_shape(n, w, h), (n, w, h, shape)
        plans = await page.evaluate(
            """(cases) => cases.map(([n, w, h]) =>
                 window.telecentreLayout.gridPlan(n, w, h, {gap: 16, extraW: 18, extraH: 64}))""",
            cases,
        )
        for (n, w, h), plan in zip(cases, plans, strict=True):
            cols, rows, picture = plan["cols"], plan["rows"], plan["tileWidth"]
            assert cols * rows >= n > (rows - 1) * cols, (n, plan)
            assert cols * (picture + 18) + (cols - 1) * 16 <= w + 1, (n, w, h, plan)
            assert rows * (picture * 9 / 16 + 64) + (rows - 1) * 16 <= h + 1, (n, w, h, plan)
        await page.context.close()


SPEAKER_STEPS = """(script) => {
  const L = window.telecentreLayout;
  let state = {speaker: null, sites: {}};
  return script.map(([t, levels]) => (state = L.speakerStep(state, levels, t)).speaker);
}"""


async def test_the_speaker_rule_holds_and_does_not_flicker(
    browser: Any,
    tmp_path: Path,
) -> None:
    async with live_meeting(tmp_path, rooms=2) as m:
        page = await open_page(browser, m.guest_url)
        tick = 250
        # a speaks from t=0; b is silent; a voice hovering between the thresholds
        # (0.015) keeps a; a quiet for 1 s (< hold) keeps it; b speaks meanwhile but
        # takes over only once a has been quiet for the handover; a quiet long: nobody.
        script: list[tuple[int, dict[str, float]]] = []
        t = 0
        for level_a, level_b, steps in [
            (0.2, 0.0, 4),  # 0-750: a loud
            (0.015, 0.0, 4),  # 1000-1750: a between the thresholds
            (0.0, 0.0, 3),  # 2000-2500: a quiet, under the hold
            (0.2, 0.0, 2),  # 2750-3000: a back
            (0.0, 0.3, 1),  # 3250: b loud, a just quiet
            (0.0, 0.3, 4),  # 3500-4250: a quiet past the handover: b
            (0.0, 0.0, 10),  # 4500-6750: both quiet past the hold
        ]:
            for _ in range(steps):
                script.append((t, {"a": level_a, "b": level_b}))
                t += tick
        speakers = await page.evaluate(SPEAKER_STEPS, script)
        timeline = dict(zip([s[0] for s in script], speakers, strict=True))
        assert timeline[0] is None and timeline[250] is None  # not before the attack
        assert timeline[500] == "a"
        assert all(timeline[x] == "a" for x in range(500, 3500, tick)), timeline
        assert timeline[3250] == "a"  # b is louder, but a only just stopped
        assert timeline[4000] == "b"
        assert timeline[6750] is None
        # One change at a time: a, then b, then nobody; never back and forth.
        changes = [k for k, _ in itertools.groupby(speakers)]
        assert changes == [None, "a", "b", None], changes
        await page.context.close()


# --- a mesh session at its cap: the page and three sites -----------------------------------


@dataclass
class Meeting:
    app: RunningApp
    session_id: str
    rooms: dict[str, str]  # name -> room id
    keys: dict[str, str]  # name -> room key
    guest_url: str


@asynccontextmanager
async def live_meeting(tmp_path: Path, rooms: int) -> AsyncIterator[Meeting]:
    """The service over HTTPS; ``rooms`` rooms in as many centres in a live session,
    and a guest's link to it."""
    config = Settings(data_dir=tmp_path, poll_interval=0.1)
    now = datetime.now(UTC)
    names = ["Salle Bleue", "Amsterdam Noord", "Strasbourg Port"][:rooms]
    async with running_app(config, tls=True) as app:

        def work(s: DbSession) -> Meeting:
            ids: dict[str, str] = {}
            keys: dict[str, str] = {}
            for i, name in enumerate(names):
                centre = add_centre(s, f"Centre {i + 1}", "Europe/Paris")
                room, key = add_room(s, centre.id, name)
                ids[name], keys[name] = room.id, key
            booking, session = one_off.book(
                s,
                "Delegation",
                now - timedelta(seconds=2),
                now + timedelta(minutes=10),
                list(ids.values()),
                lead_seconds=5,
            )
            _, token = guests.add_guest(s, booking.id, "Ada Lovelace", now=now)
            return Meeting(app, session.id, ids, keys, f"{app.url}/join/{token}")

        yield await app.services.db.run(work)


@dataclass
class MeshSite:
    """A room as a bare aiortc peer: it joins with its schedule's ticket and answers
    the page's offers with its camera and a tone or silence (it offers to nobody)."""

    name: str
    room_id: str
    client: SignallingClient
    site: Site
    session_id: str = ""
    pcs: list[RTCPeerConnection] = field(default_factory=list)
    tasks: TaskSet = field(default_factory=TaskSet)

    async def join(self, session_id: str) -> None:
        await self.client.connect()
        self.session_id = session_id
        ticket = ""
        while not ticket:
            message = await asyncio.wait_for(self.client.recv(), 15)
            if isinstance(message, p.Schedule):
                ticket = next(
                    (e.ticket for e in message.sessions if e.session_id == session_id), ""
                )
        await self.client.join(session_id, ticket)
        self.tasks.spawn(self.answer_offers())

    async def answer_offers(self) -> None:
        assert self.client.welcome is not None
        networks = parse_networks(self.client.welcome.candidate_filter.allow)
        while True:
            message = await self.client.recv()
            if not isinstance(message, p.Offer) or message.from_ is None:
                continue
            for old in self.pcs:
                await old.close()
            pc, sdp = await answer_as(self.site, filter_sdp(message.sdp, networks)[0])
            self.pcs = [pc]
            await self.client.send(
                p.Answer(
                    session_id=self.session_id,
                    sdp=filter_sdp(sdp, networks)[0],
                    conn=message.conn,
                    to=message.from_,
                )
            )

    async def close(self) -> None:
        await self.tasks.close()
        for pc in self.pcs:
            await pc.close()
        await self.client.close()
        self.site.stop()


TILE_BOXES = """() => [...document.querySelectorAll('#tiles > li[data-peer]')].map((tile) => {
  const v = tile.querySelector('video').getBoundingClientRect();
  const t = tile.getBoundingClientRect();
  return {peer: tile.dataset.peer, x: t.x, y: t.y, w: t.width, h: t.height, vw: v.width, vh: v.height};
})"""
WATCH_SPEAKING = """() => {
  window.speakingChanges = [];
  new MutationObserver((records) => {
    for (const r of records) window.speakingChanges.push([r.target.dataset.peer, r.target.dataset.speaking]);
  }).observe(document.getElementById('tiles'), {attributes: true, subtree: true, attributeFilter: ['data-speaking']});
}"""
SPEAKING = """() => Object.fromEntries([...document.querySelectorAll('#tiles > li[data-peer]')]
  .map((tile) => [tile.dataset.peer, tile.dataset.speaking === 'true']))"""


async def test_three_sites_in_a_mesh_are_laid_out_by_the_grid_and_the_loud_one_is_highlighted(
    browser: Any,
    tmp_path: Path,
    loopback_only: None,
) -> None:
    if not AXE.exists():
        missing("axe-core is not installed: npm ci --prefix tests/js (scripts/services.sh)")
    async with live_meeting(tmp_path, rooms=3) as m:
        wss = m.app.url.replace("https://", "wss://") + "/ws"
        credentials = m.app.services.signalling.credentials
        await eventually(
            lambda: all(credentials.get(room_id) for room_id in m.rooms.values()),
            "signalling knowing the rooms' keys",
            15,
        )
        sites: list[MeshSite] = []
        connector = aiohttp.TCPConnector(ssl=client_ssl())
        async with aiohttp.ClientSession(connector=connector) as http:
            try:
                for i, (name, room_id) in enumerate(m.rooms.items()):
                    client = SignallingClient(http, wss, key=m.keys[name], room_id=room_id)
                    site = MeshSite(name, room_id, client, Site(name, loud=i == 1))
                    sites.append(site)
                    await site.join(m.session_id)
                await run_layout_and_speaker(browser, m, sites)
            finally:
                for site in sites:
                    await site.close()


async def run_layout_and_speaker(browser: Any, m: Meeting, sites: list[MeshSite]) -> None:
    peers = [room_peer_id(s.room_id) for s in sites]
    loud, quiet = peers[1], [peers[0], peers[2]]
    page = await open_page(browser, m.guest_url, width=1280, height=900)
    try:
        await page.click("#join")
        await until(
            page,
            "(peers) => peers.every((peer) => (window.telecentreGuest.peers[peer] || {}).framesDecoded > 5)",
            "the three sites' cameras",
            peers,
            30,
        )
        # A tall window: two over one, the third centred; 16:9 pictures of one size.
        await until(
            page, "() => document.getElementById('tiles').dataset.cols === '2'", "2 columns"
        )
        boxes = await page.evaluate(TILE_BOXES)
        assert len(boxes) == 3
        tiles = await page.locator("#tiles").bounding_box()
        assert tiles is not None
        for box in boxes:
            assert abs(box["vw"] / box["vh"] - 16 / 9) < 0.02, box
            assert abs(box["w"] - boxes[0]["w"]) < 1, boxes
        assert boxes[0]["vw"] > 400, "pictures smaller than the grid allows"
        assert (
            abs(boxes[0]["y"] - boxes[1]["y"]) < 1 and boxes[2]["y"] > boxes[0]["y"] + boxes[0]["h"]
        )
        middle = tiles["x"] + tiles["width"] / 2
        assert abs(boxes[2]["x"] + boxes[2]["w"] / 2 - middle) < 2, "the last row is not centred"
        # The grid fits the stage the page keeps for it (the window less its controls).
        assert boxes[2]["y"] + boxes[2]["h"] - boxes[0]["y"] <= 900 - 200 + 1

        # A wide, short window: the three in a row, each as large as the height allows.
        await page.set_viewport_size({"width": 1280, "height": 520})
        await until(
            page, "() => document.getElementById('tiles').dataset.cols === '3'", "3 columns"
        )
        boxes = await page.evaluate(TILE_BOXES)
        assert len({round(b["y"]) for b in boxes}) == 1, boxes
        assert boxes[0]["h"] <= 520 - 200 + 1, boxes
        await page.set_viewport_size({"width": 1280, "height": 900})

        # The loud site is highlighted, the silent ones are not, and it holds.
        await until(
            page,
            "(peer) => window.telecentreGuest.speaker === peer",
            "the loud site speaking",
            loud,
            15,
        )
        assert await page.evaluate(SPEAKING) == {loud: True, quiet[0]: False, quiet[1]: False}
        # It holds: no tile's mark changes while 20 more frames (2 s) of the loud site
        # are decoded, eight of the page's audio polls.
        await page.evaluate(WATCH_SPEAKING)
        decoded = (await page.evaluate("() => window.telecentreGuest"))["peers"][loud][
            "framesDecoded"
        ]
        await until(page, FRAMES_DECODED, "2 s of the loud site", [loud, decoded + 20], 15)
        assert await page.evaluate("() => window.speakingChanges") == []
        status = await page.evaluate("() => window.telecentreGuest")
        assert status["peers"][loud]["audioLevel"] > status["peers"][quiet[0]]["audioLevel"]
        await page.screenshot(path=screenshot_path("guest-three-sites-speaking"), full_page=True)
        violations = await blocking_violations(page)
        assert not violations, describe(violations)

        # Another site takes over: the highlight follows the sound.
        sites[1].site.set_loud(False)
        sites[2].site.set_loud(True)
        await until(
            page,
            "(peer) => window.telecentreGuest.speaker === peer",
            "the new speaker",
            peers[2],
            15,
        )
        speaking = await page.evaluate(SPEAKING)
        assert speaking == {peers[0]: False, peers[1]: False, peers[2]: True}, speaking
    finally:
        await page.context.close()
