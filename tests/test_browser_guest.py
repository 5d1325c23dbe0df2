"""Acceptance 2: a guest in real Chromium (fake camera and microphone) joins a live
session with a real aiortc room agent, the whole service in-process over HTTPS.

What is shown, not assumed: the agent decodes the guest's video (its screen counts
frames from the guest's peer id); the page shows the agent's stamped video (a frame
drawn from the page's video element carries a camera stamp from the last seconds)
with frames advancing (the page's figures and the video element's own counter, read
twice); every SDP and candidate the page sent over the WebSocket names only
127.0.0.1, and the server refused none. Then the organiser ends the session and the
page says so. A revoked link, a link out of its window and a full session are
refused in the browser with a clear message. A guest whose camera opens only after
the page answered is received after all (the page offers again). A room that shares
its screen (a lavfi content source) is shown large over a strip of the sites,
whoever offered, and the grid comes back when it stops.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import aiohttp.connector
import numpy as np
import pytest

from common.peers import guest_peer_id
from orchestrator.booking import one_off
from orchestrator.centres import add_centre, add_room
from orchestrator.db import DbSession
from orchestrator.sessions import actions, guests
from orchestrator.sessions.tickets import ticket_window
from room_agents.stamp import read_stamp
from signalling.candidates import candidate_address
from signalling.client import SignallingClient
from tests.browser_support import browser, new_page, screenshot_path  # noqa: F401
from tests.requirements import missing
from tests.signalling_fixtures import eventually
from tests.test_a11y import AXE, blocking_violations, describe
from tests.ui_support import RunningApp, running_app
from web.settings import Settings

pytestmark = pytest.mark.timeout(90)

ALLOWED = "127.0.0.1"
UNSPECIFIED = {"0.0.0.0", "::"}

# The agent's frame, as the page's video element shows it, reduced to luma (BT.601,
# studio range, as the agent wrote it) for room_agents.stamp.read_stamp.
READ_FRAME = """(peer) => {
  const video = document.querySelector(peer.startsWith("[") ? `${peer} video` : `[data-peer="${peer}"] video`);
  const canvas = document.createElement("canvas");
  canvas.width = video.videoWidth; canvas.height = video.videoHeight;
  const ctx = canvas.getContext("2d");
  ctx.drawImage(video, 0, 0);
  const rgba = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
  const luma = new Array(canvas.width * canvas.height);
  for (let i = 0; i < luma.length; i++) {
    const y = 0.299 * rgba[4 * i] + 0.587 * rgba[4 * i + 1] + 0.114 * rgba[4 * i + 2];
    luma[i] = Math.round(16 + y * 219 / 255);
  }
  return {width: canvas.width, height: canvas.height, luma, at: Date.now()};
}"""
VIDEO_FRAMES = """(peer) => {
  const video = document.querySelector(`[data-peer="${peer}"] video`);
  return video ? video.getVideoPlaybackQuality().totalVideoFrames : 0;
}"""


@dataclass
class Meeting:
    app: RunningApp
    rooms: dict[str, str]  # name -> room id
    keys: dict[str, str]
    booking_id: str
    session_id: str
    links: dict[str, tuple[str, str]] = field(default_factory=dict)  # guest -> (id, token)

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.app.services.clock.now(), UTC)

    def url(self, guest: str) -> str:
        return f"{self.app.url}/join/{self.links[guest][1]}"

    async def add_guest(self, name: str, booking_id: str | None = None) -> None:
        guest, token = await self.app.services.db.run(
            lambda s: guests.add_guest(s, booking_id or self.booking_id, name, now=self.now())
        )
        self.links[name] = (guest.id, token)


@asynccontextmanager
async def meeting(
    tmp_path: Path, start: datetime, end: datetime, **settings: Any
) -> AsyncIterator[Meeting]:
    """The service over HTTPS with two rooms in two centres booked from start to end."""
    config = Settings(data_dir=tmp_path, poll_interval=0.1, **settings)
    async with running_app(config, tls=True) as app:

        def work(s: DbSession) -> tuple[dict[str, str], dict[str, str], str, str]:
            paris = add_centre(s, "IT77 Fontainebleau", "Europe/Paris")
            adam = add_centre(s, "Bright City Amsterdam", "Europe/Amsterdam")
            a, key_a = add_room(s, paris.id, "Salle TelePresence")
            b, key_b = add_room(s, adam.id, "TelePresence Room")
            booking, session = one_off.book(
                s, "Délégation Bright City / IT77", start, end, [a.id, b.id], lead_seconds=5
            )
            rooms = {"paris": a.id, "amsterdam": b.id}
            return rooms, {"paris": key_a, "amsterdam": key_b}, booking.id, session.id

        rooms, keys, booking_id, session_id = await app.services.db.run(work)
        yield Meeting(app, rooms, keys, booking_id, session_id)


@asynccontextmanager
async def room_agent(m: Meeting, room: str, cert: Path, **options: Any) -> AsyncIterator[Any]:
    from room_agents.agent import RoomAgent
    from room_agents.config import AgentConfig
    from room_agents.ice import unpin_host_addresses

    config = AgentConfig(
        server_url=m.app.url.replace("https://", "wss://") + "/ws",
        key=m.keys[room],
        width=320,
        height=180,
        fps=15,
        label=room,
        ca_file=cert,  # the agent trusts the test's self-signed certificate
        **options,
    )
    agent = RoomAgent(config)
    task = asyncio.create_task(agent.run())
    try:
        await asyncio.wait_for(agent.connected.wait(), 15)
        yield agent
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        unpin_host_addresses()


def sent_addresses(frames: list[str]) -> tuple[list[str], list[str]]:
    """Every candidate address and every SDP connection address the page sent."""
    candidates: list[str] = []
    connections: list[str] = []
    for frame in frames:
        message = json.loads(frame)
        if message.get("type") in ("offer", "answer"):
            for line in message["sdp"].splitlines():
                if line.startswith("a=candidate:"):
                    address = candidate_address(line)
                    candidates.append(address or line)
                    if " raddr " in line:
                        candidates.append(line.split(" raddr ")[1].split()[0])
                elif line.startswith("c="):
                    connections.append(line.split()[2])
        elif message.get("type") == "candidate" and message.get("candidate"):
            candidates.append(candidate_address(message["candidate"]) or message["candidate"])
    return candidates, connections


async def guest_status(page: Any) -> dict[str, Any]:
    status: dict[str, Any] = await page.evaluate("() => window.telecentreGuest")
    return status


async def until(page: Any, condition: str, what: str, arg: Any = None, within: float = 15) -> None:
    """Wait for a JavaScript condition on the page; on timeout, say what the page was at."""
    from playwright.async_api import TimeoutError as PlaywrightTimeout

    try:
        await page.wait_for_function(condition, arg=arg, timeout=within * 1000)
    except PlaywrightTimeout:
        state = await page.evaluate("() => window.telecentreGuest || null")
        raise AssertionError(f"timed out after {within} s waiting for {what}: {state}") from None


FRAMES_DECODED = (
    "([peer, above]) => (window.telecentreGuest.peers[peer] || {}).framesDecoded > above"
)


async def test_a_guest_joins_a_live_session_with_a_room_agent_over_https(
    browser: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    now = datetime.now(UTC)
    # Live already: the agent joins as soon as it has its schedule and sends its camera.
    async with meeting(tmp_path, now - timedelta(seconds=2), now + timedelta(minutes=10)) as m:
        await m.add_guest("Ada Lovelace")
        guest_id, _ = m.links["Ada Lovelace"]
        guest_peer = guest_peer_id(guest_id)
        room_peer = f"room:{m.rooms['paris']}"
        async with room_agent(m, "paris", tmp_path / "cert.pem") as agent:
            await eventually(lambda: m.session_id in agent.joined_on, "the agent joined", 15)

            page = await new_page(browser)
            sent: list[str] = []
            received: list[str] = []
            sockets: list[str] = []

            def on_websocket(ws: Any) -> None:
                sockets.append(ws.url)
                ws.on("framesent", lambda payload: sent.append(payload))
                ws.on("framereceived", lambda payload: received.append(payload))

            page.on("websocket", on_websocket)
            await page.goto(m.url("Ada Lovelace"))
            await until(
                page, "() => document.getElementById('preview').videoWidth > 0", "the preview"
            )
            assert await page.text_content("h1") == "Délégation Bright City / IT77"
            assert await page.locator("#camera option").count() >= 1
            await page.screenshot(path=screenshot_path("guest-before-joining"), full_page=True)

            await page.click("#join")
            await until(page, FRAMES_DECODED, "the agent's video on the page", [room_peer, 10], 20)
            # The agent decodes the guest's video.
            await eventually(
                lambda: (agent.screen.totals().get(guest_peer, {}).get("frames") or 0) > 10,
                "the agent decoding the guest's video",
                15,
            )
            agent_frames = agent.screen.totals()[guest_peer]["frames"]

            # The page shows the agent's stamped camera, frames advancing.
            first = await guest_status(page)
            first_video = await page.evaluate(VIDEO_FRAMES, room_peer)
            frame = await page.evaluate(READ_FRAME, room_peer)
            luma = np.array(frame["luma"], dtype=np.uint8).reshape(frame["height"], frame["width"])
            stamp = read_stamp(luma)
            assert stamp is not None, "no stamp in the frame the page shows"
            assert stamp.camera, "the page shows the card, not the agent's camera"
            assert -1_000 < frame["at"] - stamp.capture_ms < 5_000  # shown within seconds
            decoded = first["peers"][room_peer]["framesDecoded"]
            await until(page, FRAMES_DECODED, "decoded frames advancing", [room_peer, decoded + 5])
            await until(
                page,
                f"([peer, above]) => ({VIDEO_FRAMES})(peer) > above",
                "the video element's frames advancing",
                [room_peer, first_video + 5],
            )
            await eventually(
                lambda: agent.screen.totals()[guest_peer]["frames"] > agent_frames + 5,
                "the guest's frames advancing at the agent",
                10,
            )
            status = await guest_status(page)
            assert status["state"] == "joined" and status["peerId"] == guest_peer
            assert status["peers"][room_peer]["live"] is True
            assert status["peers"][room_peer]["name"] == "Salle TelePresence"
            tile = page.locator(f'[data-peer="{room_peer}"]')
            assert "Salle TelePresence · IT77 Fontainebleau" in await tile.inner_text()
            assert await tile.get_attribute("data-live") == "live"
            # The room without an agent has its tile too, waiting.
            absent = page.locator(f'[data-peer="room:{m.rooms["amsterdam"]}"]')
            assert "TelePresence Room · Bright City Amsterdam" in await absent.inner_text()
            assert await absent.get_attribute("data-live") == "absent"
            await page.screenshot(path=screenshot_path("guest-in-session"), full_page=True)

            # Over TLS, only loopback was offered, and the server refused nothing.
            assert sockets == [m.app.url.replace("https://", "wss://") + "/ws"]
            kinds = [json.loads(f).get("type") for f in sent]
            assert "offer" in kinds, "the page sent no offer"
            candidates, connections = sent_addresses(sent)
            assert candidates, "the page's SDPs carried no candidate"
            assert set(candidates) == {ALLOWED}, candidates
            assert set(connections) <= {ALLOWED} | UNSPECIFIED, connections
            assert all('"candidate-not-allowed"' not in f for f in received)
            counters = m.app.services.signalling.counters
            assert counters.candidate_violations == 0
            assert counters.errors["candidate-not-allowed"] == 0
            assert agent.violations == []

            # The organiser ends the session: the page leaves and says so.
            await m.app.services.db.run(
                lambda s: actions.end_now(s, m.session_id, datetime.now(UTC))
            )
            await until(
                page, "() => !document.getElementById('ended').hidden", "the end", within=10
            )
            assert await page.text_content("#ended-title") == "The session has ended"
            assert (await guest_status(page))["state"] == "ended"
            await eventually(
                lambda: (
                    m.session_id not in agent.sessions
                    or guest_peer not in agent.sessions[m.session_id].calls
                ),
                "the agent dropping the guest's connection",
                10,
            )
            await page.screenshot(path=screenshot_path("guest-session-ended"), full_page=True)
            await page.context.close()


async def test_revoked_out_of_window_and_full_are_refused_in_the_browser(
    browser: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    now = datetime.now(UTC)
    # One member fills the session.
    async with meeting(
        tmp_path, now - timedelta(minutes=1), now + timedelta(minutes=30), mesh_cap=1
    ) as m:
        for name in ("Ada Lovelace", "Grace Hopper", "Revoked Guest"):
            await m.add_guest(name)
        later = now + timedelta(days=1)
        tomorrow = await m.app.services.db.run(
            lambda s: (
                one_off.book(
                    s, "Tomorrow", later, later + timedelta(hours=1), list(m.rooms.values())
                )[0].id
            )
        )
        await m.add_guest("Early Bird", tomorrow)
        context = await browser.new_context(
            ignore_https_errors=True, locale="en-GB", timezone_id="Asia/Tokyo"
        )
        page = await context.new_page()
        page.set_default_timeout(15_000)

        # Out of its window: refused, saying when it opens in the browser's zone.
        response = await page.goto(m.url("Early Bird"))
        assert response is not None and response.status == 403
        assert await page.text_content("h1") == "This meeting is not open yet"
        opens = await page.text_content("#opens") or ""
        in_tokyo = (later - timedelta(minutes=15)).astimezone(ZoneInfo("Asia/Tokyo"))
        assert f"{in_tokyo:%H:%M} (Asia/Tokyo)" in opens, opens
        assert "guest-link-outside-window" in await page.content()
        await page.screenshot(path=screenshot_path("guest-link-not-open"), full_page=True)

        # Revoked: refused with its own code.
        revoked_id, _ = m.links["Revoked Guest"]
        await m.app.services.db.run(lambda s: guests.revoke_guest(s, revoked_id, now))
        response = await page.goto(m.url("Revoked Guest"))
        assert response is not None and response.status == 410
        assert await page.text_content("h1") == "This link was withdrawn"
        assert "guest-link-revoked" in await page.content()

        # Revoked after the page was opened: the join is refused too.
        await page.goto(m.url("Grace Hopper"))
        grace_id, _ = m.links["Grace Hopper"]
        await m.app.services.db.run(lambda s: guests.revoke_guest(s, grace_id, now))
        await page.click("#join")
        await page.wait_for_selector("#alert", state="visible")
        assert "withdrew this invitation" in (await page.text_content("#alert") or "")
        assert (await guest_status(page))["errors"] == ["guest-link-revoked"]

        # Full: another guest is in the session already (mesh cap 1).
        ada_id, _ = m.links["Ada Lovelace"]
        start, end = now - timedelta(minutes=1), now + timedelta(minutes=30)
        nbf, exp = ticket_window(start.timestamp(), end.timestamp(), 5)
        ticket, _ = m.app.services.signer.mint(
            guest_peer_id(ada_id), m.session_id, "guest", nbf, exp, name="Ada Lovelace"
        )
        context_ssl = ssl.create_default_context(cafile=str(tmp_path / "cert.pem"))
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context_ssl)) as http:
            member = SignallingClient(
                http, m.app.url.replace("https://", "wss://") + "/ws", ticket=ticket
            )
            try:
                await member.connect()
                await member.join(m.session_id, ticket)
                await m.add_guest("Late Comer")
                await page.goto(m.url("Late Comer"))
                await page.click("#join")
                await until(page, "() => window.telecentreGuest.state === 'full'", "full")
                alert = await page.text_content("#alert") or ""
                assert "This meeting is full" in alert
                assert await page.is_visible("#alert") and await page.is_enabled("#join")
                await page.screenshot(path=screenshot_path("guest-session-full"), full_page=True)
            finally:
                await member.close()
        await context.close()


async def test_a_room_joining_after_the_guest_offers_and_the_page_answers(
    browser: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    now = datetime.now(UTC)
    async with meeting(tmp_path, now - timedelta(seconds=2), now + timedelta(minutes=10)) as m:
        await m.add_guest("Ada Lovelace")
        guest_peer = guest_peer_id(m.links["Ada Lovelace"][0])
        room_peer = f"room:{m.rooms['paris']}"
        page = await new_page(browser, locale="fr-FR")
        sent: list[str] = []
        page.on("websocket", lambda ws: ws.on("framesent", lambda payload: sent.append(payload)))
        await page.goto(m.url("Ada Lovelace"))
        await page.click("#join")
        await until(page, "() => window.telecentreGuest.state === 'joined'", "joined")
        assert "En attente des autres sites" in (await page.text_content("#call-status") or "")
        async with room_agent(m, "paris", tmp_path / "cert.pem") as agent:
            await until(page, FRAMES_DECODED, "the late room's video", [room_peer, 10], 20)
            try:
                await eventually(
                    lambda: (agent.screen.totals().get(guest_peer, {}).get("frames") or 0) > 10,
                    "the late room decoding the guest",
                    20,
                )
            except AssertionError as exc:
                # Say what each side saw, so a rare failure can be read from the log.
                answers = [
                    line
                    for f in sent
                    if json.loads(f).get("type") == "answer"
                    for line in json.loads(f)["sdp"].splitlines()
                    if line.startswith(
                        ("m=", "a=sendrecv", "a=recvonly", "a=sendonly", "a=inactive")
                    )
                ]
                raise AssertionError(
                    f"{exc}; agent totals {agent.screen.totals()}; page status "
                    f"{await guest_status(page)}; page answers {answers}"
                ) from None
            kinds = [json.loads(f).get("type") for f in sent]
            assert "answer" in kinds and "offer" not in kinds, kinds
            candidates, connections = sent_addresses(sent)
            assert set(candidates) == {ALLOWED}, candidates
            assert set(connections) <= {ALLOWED} | UNSPECIFIED, connections
            assert m.app.services.signalling.counters.candidate_violations == 0
            tile = page.locator(f'[data-peer="{room_peer}"]')
            assert "En direct" in await tile.inner_text()

            # The server drops the page's WebSocket: the page comes back with a fresh
            # ticket and joins again; the media never stopped and nobody re-offers.
            link = m.app.services.signalling.hub.link(guest_peer)
            assert link is not None
            await link.close(1011, "test: link lost")
            await until(
                page,
                "() => window.telecentreGuest.errors.length === 0"
                " && window.telecentreGuest.state === 'joined'"
                " && document.getElementById('call-status').textContent !== ''",
                "the page back in the session",
            )
            await eventually(
                lambda: m.app.services.signalling.hub.link(guest_peer) not in (None, link),
                "the page's new connection",
                10,
            )
            decoded = (await guest_status(page))["peers"][room_peer]["framesDecoded"]
            await until(
                page, FRAMES_DECODED, "frames after the reconnection", [room_peer, decoded + 5]
            )
            kinds = [json.loads(f).get("type") for f in sent]
            assert kinds.count("hello") == 2 and kinds.count("join") == 2, kinds
            assert "offer" not in kinds and kinds.count("answer") == 1, kinds
        await page.context.close()


# A content source on the agent; it is scaled to the agent's send size (320x180).
CONTENT = "lavfi:testsrc2=size=640x360:rate=15"
CONTENT_DECODED = (
    "([peer, above]) => ((window.telecentreGuest.peers[peer] || {}).content || {}).framesDecoded"
    " > above"
)
CONTENT_VIDEO_FRAMES = """(peer) => {
  const video = document.querySelector(`[data-content-peer="${peer}"] video`);
  return video ? video.getVideoPlaybackQuality().totalVideoFrames : 0;
}"""
CONTENT_SHOWN = """([peer, tile]) => {
  const g = window.telecentreGuest;
  const c = (g.peers[peer] || {}).content || {};
  const el = document.querySelector(`[data-content-peer="${peer}"]`);
  return c.live && g.contentShown === peer && el && !el.hidden && el.classList.contains(tile)
    && document.getElementById("tiles").dataset.layout === "content";
}"""
GRID_BACK = """(peer) => {
  const g = window.telecentreGuest;
  const el = document.querySelector(`[data-content-peer="${peer}"]`);
  return g.contentShown === null && !((g.peers[peer] || {}).content || {}).live
    && (!el || el.hidden) && document.getElementById("tiles").dataset.layout === "grid";
}"""


# The browser still opening the camera: getUserMedia waits for the test to let it go.
HOLD_CAMERA = """(() => {
  const open = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
  let release;
  const released = new Promise((resolve) => { release = resolve; });
  window.releaseCamera = () => release();
  navigator.mediaDevices.getUserMedia = async (constraints) => { await released; return open(constraints); };
})();"""


async def test_a_camera_that_opens_after_the_page_answered_is_sent_with_a_new_offer(
    browser: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    """A guest who clicks "join" while the browser is still opening the camera: the page
    waits for it a little, answers receive-only when it does not come, and offers again
    once it opens, so the room receives the guest after all (it used to receive
    nothing for the whole call)."""
    now = datetime.now(UTC)
    async with meeting(tmp_path, now - timedelta(seconds=2), now + timedelta(minutes=10)) as m:
        await m.add_guest("Ada Lovelace")
        guest_peer = guest_peer_id(m.links["Ada Lovelace"][0])
        room_peer = f"room:{m.rooms['paris']}"
        page = await new_page(browser)
        await page.add_init_script(HOLD_CAMERA)
        sent: list[str] = []
        page.on("websocket", lambda ws: ws.on("framesent", lambda payload: sent.append(payload)))
        await page.goto(m.url("Ada Lovelace"))
        await page.click("#join")
        await until(page, "() => window.telecentreGuest.state === 'joined'", "joined")
        async with room_agent(m, "paris", tmp_path / "cert.pem") as agent:
            await until(
                page, "() => window.telecentreGuest.sent.answer >= 1", "the answer", None, 20
            )
            answer = next(
                json.loads(f)["sdp"] for f in sent if json.loads(f).get("type") == "answer"
            )
            assert "a=sendrecv" not in answer  # no camera yet: receive-only
            await page.evaluate("() => window.releaseCamera()")
            await until(page, "() => window.telecentreGuest.sent.offer >= 1", "the new offer")
            await eventually(
                lambda: (agent.screen.totals().get(guest_peer, {}).get("frames") or 0) > 10,
                "the room decoding the guest",
                20,
            )
            await until(page, FRAMES_DECODED, "the room's video", [room_peer, 10], 20)
        await page.context.close()


async def test_a_guest_offer_lost_on_the_way_is_made_again_at_the_connect_deadline(
    browser: Any,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The signalling server loses the page's first offer: the room never hears of the
    call, so only the page can repair it; at its connect deadline (10 s, as the
    agents') it offers again on a new connection, and media flows both ways."""
    now = datetime.now(UTC)
    async with meeting(tmp_path, now - timedelta(seconds=2), now + timedelta(minutes=10)) as m:
        await m.add_guest("Ada Lovelace")
        guest_peer = guest_peer_id(m.links["Ada Lovelace"][0])
        room_peer = f"room:{m.rooms['paris']}"
        hub = m.app.services.signalling.hub
        relay = hub.relay
        lost: list[str] = []

        def lossy(peer_id: str, message: Any) -> None:
            if peer_id == guest_peer and message.type == "offer" and not lost:
                lost.append(message.conn)
                return
            relay(peer_id, message)

        monkeypatch.setattr(hub, "relay", lossy)
        async with room_agent(m, "paris", tmp_path / "cert.pem") as agent:
            await eventually(lambda: m.session_id in agent.joined_on, "the agent joined", 15)
            page = await new_page(browser)
            await page.goto(m.url("Ada Lovelace"))
            await page.click("#join")
            await eventually(lambda: lost, "the page's first offer (lost)", 20)
            await until(
                page, "() => window.telecentreGuest.sent.offer >= 2", "a new offer", None, 20
            )
            await until(page, FRAMES_DECODED, "the room's video", [room_peer, 10], 20)
            await eventually(
                lambda: (agent.screen.totals().get(guest_peer, {}).get("frames") or 0) > 10,
                "the room decoding the guest",
                20,
            )
            assert agent.sessions[m.session_id].calls[guest_peer].conn != lost[0]
        await page.context.close()


async def share_and_stop(
    m: Meeting,
    page: Any,
    room: str,
    label: str,
    stopped: str,
    screenshot: str | None = None,
    axe: bool = False,
) -> None:
    """The room shares: the page shows its content large over the sites, its frames
    advancing; the room stops: the page goes back to the grid. With ``axe``, axe-core
    finds nothing serious on the page showing content."""
    room_peer = f"room:{m.rooms[room]}"
    hub = m.app.services.signalling.hub
    assert (await guest_status(page))["peers"][room_peer]["content"]["live"] is False
    assert await page.get_attribute("#tiles", "data-layout") == "grid"

    result = await hub.control(m.rooms[room], "content-share", {"on": True})
    assert result.ok, result.message
    await until(page, CONTENT_SHOWN, "the content shown large", [room_peer, "large"], 15)
    first = (await guest_status(page))["peers"][room_peer]
    first_video = await page.evaluate(CONTENT_VIDEO_FRAMES, room_peer)
    await until(
        page,
        CONTENT_DECODED,
        "content frames advancing",
        [room_peer, first["content"]["framesDecoded"] + 10],
    )
    await until(
        page,
        f"([peer, above]) => ({CONTENT_VIDEO_FRAMES})(peer) > above",
        "the content video element's frames advancing",
        [room_peer, first_video + 10],
    )
    # The camera keeps coming beside the content, and its figures are its own.
    await until(
        page, FRAMES_DECODED, "the camera beside the content", [room_peer, first["framesDecoded"]]
    )
    status = await guest_status(page)
    content = status["peers"][room_peer]["content"]
    assert content["received"] and (content["frameWidth"], content["frameHeight"]) == (320, 180)
    # The content is the shared picture, not the camera: it carries no frame stamp,
    # while the camera tile still shows the stamped camera.
    selector = f'[data-content-peer="{room_peer}"]'
    picture = await page.evaluate(READ_FRAME, selector)
    luma = np.array(picture["luma"], dtype=np.uint8).reshape(picture["height"], picture["width"])
    assert read_stamp(luma) is None, "the content tile shows the camera"
    assert luma.std() > 20, "the content tile shows a flat picture"
    camera = await page.evaluate(READ_FRAME, room_peer)
    camera_luma = np.array(camera["luma"], dtype=np.uint8).reshape(
        camera["height"], camera["width"]
    )
    stamp = read_stamp(camera_luma)
    assert stamp is not None and stamp.camera, "the camera tile lost the camera"

    # Large over a strip: the full width of the list, above every site's tile.
    tile = page.locator(selector)
    video = tile.locator("video")
    assert await video.get_attribute("aria-label") == label
    assert (await tile.inner_text()).strip() == label
    assert await page.text_content("#content-status") == label
    large = await tile.bounding_box()
    tiles = await page.locator("#tiles").bounding_box()
    assert large is not None and tiles is not None
    assert large["width"] > 0.9 * tiles["width"]
    for site in await page.locator("#tiles > li:not([data-content-peer])").all():
        box = await site.bounding_box()
        assert box is not None
        assert box["y"] >= large["y"] + large["height"], "a site tile beside the content"
        assert box["width"] < large["width"] / 3
    if screenshot:
        await page.screenshot(path=screenshot_path(screenshot), full_page=True)
    if axe:
        violations = await blocking_violations(page)
        assert not violations, describe(violations)

    result = await hub.control(m.rooms[room], "content-share", {"on": False})
    assert result.ok, result.message
    await until(page, GRID_BACK, "the grid back", room_peer, 10)
    assert await page.text_content("#content-status") == stopped
    camera_tile = await page.locator(f'[data-peer="{room_peer}"]').bounding_box()
    assert camera_tile is not None and camera_tile["width"] > 300  # a grid tile again
    # The camera goes on, and the call is still the same.
    decoded = (await guest_status(page))["peers"][room_peer]["framesDecoded"]
    await until(page, FRAMES_DECODED, "the camera after the share", [room_peer, decoded + 5])


async def test_a_guest_offering_sees_a_room_share_its_screen_large(
    browser: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    if not AXE.exists():
        missing("axe-core is not installed: npm ci --prefix tests/js (scripts/services.sh)")
    now = datetime.now(UTC)
    async with meeting(tmp_path, now - timedelta(seconds=2), now + timedelta(minutes=10)) as m:
        await m.add_guest("Ada Lovelace")
        room_peer = f"room:{m.rooms['paris']}"
        async with room_agent(m, "paris", tmp_path / "cert.pem", content=CONTENT) as agent:
            await eventually(lambda: m.session_id in agent.joined_on, "the agent joined", 15)
            page = await new_page(browser)
            sent: list[str] = []
            page.on(
                "websocket", lambda ws: ws.on("framesent", lambda payload: sent.append(payload))
            )
            await page.goto(m.url("Ada Lovelace"))
            await page.click("#join")
            await until(page, FRAMES_DECODED, "the agent's camera", [room_peer, 5], 20)
            # The page offered camera, microphone and content, in the agents' order.
            (offer,) = [json.loads(f) for f in sent if json.loads(f).get("type") == "offer"]
            kinds = [line.split()[0] for line in offer["sdp"].splitlines() if line.startswith("m=")]
            assert kinds[:3] == ["m=video", "m=audio", "m=video"], kinds
            call = agent.sessions[m.session_id].calls[guest_peer_id(m.links["Ada Lovelace"][0])]
            assert call.content is not None  # the agent answered with its content section
            await share_and_stop(
                m,
                page,
                "paris",
                "Salle TelePresence is sharing its screen",
                "Salle TelePresence stopped sharing its screen",
                screenshot="guest-content",
                axe=True,
            )
            await page.context.close()


async def test_a_room_offering_to_a_guest_shares_its_screen_large_and_stops(
    browser: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    now = datetime.now(UTC)
    async with meeting(tmp_path, now - timedelta(seconds=2), now + timedelta(minutes=10)) as m:
        await m.add_guest("Ada Lovelace")
        room_peer = f"room:{m.rooms['paris']}"
        page = await new_page(browser, locale="fr-FR")
        sent: list[str] = []
        page.on("websocket", lambda ws: ws.on("framesent", lambda payload: sent.append(payload)))
        await page.goto(m.url("Ada Lovelace"))
        await page.click("#join")
        await until(page, "() => window.telecentreGuest.state === 'joined'", "joined")
        async with room_agent(m, "paris", tmp_path / "cert.pem", content=CONTENT):
            await until(page, FRAMES_DECODED, "the late room's camera", [room_peer, 5], 20)
            # The room offered: the page answered its content section.
            kinds = [json.loads(f).get("type") for f in sent]
            assert "answer" in kinds and "offer" not in kinds, kinds
            (answer,) = [json.loads(f) for f in sent if json.loads(f).get("type") == "answer"]
            assert answer["sdp"].count("m=video") == 2
            await share_and_stop(
                m,
                page,
                "paris",
                "Salle TelePresence partage son écran",
                "Salle TelePresence a cessé de partager son écran",
                screenshot="guest-content-fr",
            )
        await page.context.close()
