"""The guest page in an SFU session (docs/protocol.md 20), in real Chromium, against a
signalling endpoint the test scripts: an aiohttp WebSocket over TLS that speaks the
protocol's own messages (built and checked with signalling.protocol), with aiortc
peers on loopback playing Janus. The page itself, its ticket and its link are the
real service's; only the ticket's ``ws_url`` is pointed at the script.

Shown: on ``joined`` with topology ``sfu`` the page publishes its camera and
microphone to ``sfu`` (sending only, its candidates trickled with that ``conn``) and
never offers to a member; it answers an offer from ``sfu:<P>`` receive-only and shows
P's camera in P's tile under P's name; at a higher epoch it publishes again on a new
connection (a ``topology`` that is not higher changes nothing); a subscription that
does not connect by the connect deadline makes it send ``subscribe`` for P, and the
fresh offer connects; ``peer-left`` closes P's subscription.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import WSMsgType, web
from aiortc import RTCPeerConnection, RTCSessionDescription

from common.peers import guest_peer_id, room_peer_id
from signalling import protocol as p
from tests.browser_peers import Receiver, Site, add_trickled, loopback_only, offer_as
from tests.browser_support import browser, new_page
from tests.test_browser_guest import CONTENT_SHOWN, FRAMES_DECODED, GRID_BACK, meeting, until

__all__ = ["browser", "loopback_only"]

pytestmark = pytest.mark.timeout(120)

SFU = "sfu"


@dataclass
class ScriptedServer:
    """The signalling server as the test plays it. Every message the page sends must
    decode as a client message of the protocol; ``candidate`` messages go to the
    peer connection registered for their ``(to, conn)`` (or are kept aside when none
    is, or it was told to drop them), the rest wait in ``inbox`` for the script."""

    session_id: str
    guest: str
    peers: list[p.PeerInfo]
    inbox: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)
    sent_by_page: list[dict[str, Any]] = field(default_factory=list)
    trickle: dict[tuple[str, str], RTCPeerConnection] = field(default_factory=dict)
    unrouted: list[dict[str, Any]] = field(default_factory=list)
    ws: web.WebSocketResponse | None = None
    joined: asyncio.Event = field(default_factory=asyncio.Event)

    async def send(self, message: object) -> None:
        assert self.ws is not None, "the page is not connected"
        await self.ws.send_str(p.encode(message))

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.ws = ws
        async for frame in ws:
            if frame.type != WSMsgType.TEXT:
                continue
            p.decode_client(frame.data)  # raises on anything the protocol does not allow
            message: dict[str, Any] = json.loads(frame.data)
            self.sent_by_page.append(message)
            await self.on_message(message)
        return ws

    async def on_message(self, m: dict[str, Any]) -> None:
        kind = m["type"]
        if kind == "hello":
            await self.send(
                p.Welcome(
                    protocol=p.PROTOCOL_VERSION,
                    peer_id=self.guest,
                    name="Ada Lovelace",
                    server_time=time.time(),
                    heartbeat_interval=20,
                    heartbeat_timeout=60,
                    ice_servers=[],
                    candidate_filter=p.CandidateFilter(allow=["127.0.0.1/32"]),
                    limits=p.Limits(max_message_bytes=65536, rate_per_second=50, rate_burst=200),
                    ref=m.get("id"),
                )
            )
        elif kind == "join":
            await self.send(
                p.Joined(
                    session_id=self.session_id,
                    peer_id=self.guest,
                    peers=self.peers,
                    state="live",
                    ref=m.get("id"),
                    topology="sfu",
                    epoch=1,
                )
            )
            self.joined.set()
        elif kind == "ping":
            await self.send(p.Pong(t=m["t"], server_time=time.time(), ref=m.get("id")))
        elif kind == "candidate":
            key = (m["to"], m["conn"])
            pc = self.trickle.get(key)
            if pc is None:
                self.unrouted.append(m)
            else:
                await add_trickled(pc, m)
        else:
            await self.inbox.put(m)

    async def route(self, key: tuple[str, str], pc: RTCPeerConnection) -> None:
        """From now on, candidates for ``key`` (addressee, conn) go to ``pc`` (which has
        its remote description), with those that came before."""
        self.trickle[key] = pc
        for m in [c for c in self.unrouted if (c["to"], c["conn"]) == key]:
            self.unrouted.remove(m)
            await add_trickled(pc, m)

    async def next(
        self,
        kind: str,
        where: Callable[[dict[str, Any]], bool] = lambda m: True,
        within: float = 20,
    ) -> dict[str, Any]:
        """The page's next message of ``kind`` (others of no interest are dropped)."""
        deadline = asyncio.get_running_loop().time() + within
        while True:
            left = deadline - asyncio.get_running_loop().time()
            try:
                m = await asyncio.wait_for(self.inbox.get(), max(left, 0.01))
            except TimeoutError:
                raise AssertionError(f"timed out after {within} s waiting for {kind}") from None
            if m["type"] == kind and where(m):
                return m


@asynccontextmanager
async def scripted_endpoint(server: ScriptedServer, tls: Path) -> AsyncIterator[str]:
    """``server`` on a free loopback port over TLS (the service's throwaway certificate,
    in ``tls``); yields its wss:// URL."""
    cert, key = tls / "cert.pem", tls / "key.pem"
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    app = web.Application()
    app.router.add_get("/ws", server.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"wss://127.0.0.1:{port}/ws"
    finally:
        if server.ws is not None:
            await server.ws.close()
        await runner.cleanup()


def directions(sdp: str) -> list[str]:
    return [
        line[2:]
        for line in sdp.splitlines()
        if line in ("a=sendrecv", "a=sendonly", "a=recvonly", "a=inactive")
    ]


def without_candidates(sdp: str) -> str:
    return "".join(
        line for line in sdp.splitlines(keepends=True) if not line.startswith("a=candidate:")
    )


async def take_publication(
    server: ScriptedServer, within: float = 20
) -> tuple[dict[str, Any], Receiver]:
    """The page's offer to ``sfu``, answered by a Janus stand-in that counts its frames."""
    offer = await server.next("offer", lambda m: m["to"] == SFU, within)
    janus = Receiver.new()
    sdp = await janus.answer(offer["sdp"])
    await server.route((SFU, offer["conn"]), janus.pc)
    await server.send(
        p.Answer(session_id=server.session_id, sdp=sdp, conn=offer["conn"], from_=SFU)
    )
    return offer, janus


def as_janus_names_tracks(sdp: str) -> str:
    """The SDP with each section's msid as Janus writes it in a subscriber's offer
    (its own stream and track names), so the page cannot tell content by its id."""
    lines: list[str] = []
    for line in sdp.splitlines(keepends=True):
        lines.append(f"a=msid:janus janus{len(lines)}\r\n" if line.startswith("a=msid:") else line)
    return "".join(lines)


async def forward(
    server: ScriptedServer,
    publisher: str,
    site: Site,
    *,
    dead: bool = False,
    janus_msid: bool = False,
) -> tuple[RTCPeerConnection, dict[str, Any]]:
    """Offer ``publisher``'s publication to the page as ``sfu:<publisher>``; the page's
    answer is applied. ``dead``: the offer carries no candidate and the page's are
    dropped, so the connection can never be made. ``janus_msid``: the tracks are named
    as Janus names them."""
    pc, sdp = await offer_as(site)
    if janus_msid:
        sdp = as_janus_names_tracks(sdp)
    conn = f"sub{int(time.monotonic() * 1000) % 10**9}"
    addressee = f"sfu:{publisher}"
    await server.send(
        p.Offer(
            session_id=server.session_id,
            sdp=without_candidates(sdp) if dead else sdp,
            conn=conn,
            from_=addressee,
        )
    )
    answer = await server.next("answer", lambda m: m["to"] == addressee and m["conn"] == conn)
    await pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], "answer"))
    if not dead:
        await server.route((addressee, conn), pc)
    return pc, answer


async def wait_for(predicate: Callable[[], bool], what: str, within: float = 15) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {within} s waiting for {what}")
        await asyncio.sleep(0.05)


async def test_the_guest_page_publishes_to_the_sfu_and_answers_its_forwarded_publications(
    browser: Any,
    tmp_path: Path,
    loopback_only: None,
) -> None:
    now = datetime.now(UTC)
    async with meeting(tmp_path, now - timedelta(seconds=2), now + timedelta(minutes=10)) as m:
        await m.add_guest("Ada Lovelace")
        guest = guest_peer_id(m.links["Ada Lovelace"][0])
        paris = room_peer_id(m.rooms["paris"])
        server = ScriptedServer(
            m.session_id,
            guest,
            [
                p.PeerInfo(
                    peer_id=paris,
                    name="Salle TelePresence",
                    room_id=m.rooms["paris"],
                    centre="IT77 Fontainebleau",
                )
            ],
        )
        closers: list[Any] = []
        site = Site("paris")
        async with scripted_endpoint(server, tmp_path) as ws_url:
            page = await new_page(browser)

            async def ticket_to_script(route: Any) -> None:
                response = await route.fetch()
                body = await response.json()
                body["ws_url"] = ws_url
                await route.fulfill(response=response, json=body)

            await page.route("**/join/*/ticket", ticket_to_script)
            try:
                await page.goto(m.url("Ada Lovelace"))
                await page.click("#join")
                await asyncio.wait_for(server.joined.wait(), 20)

                # The publication: camera and microphone to `sfu`, sending only, trickled.
                offer, janus = await take_publication(server)
                closers.append(janus.close)
                kinds = [
                    line.split()[0] for line in offer["sdp"].splitlines() if line.startswith("m=")
                ]
                assert kinds == ["m=video", "m=audio"], kinds
                assert set(directions(offer["sdp"])) == {"sendonly"}, directions(offer["sdp"])
                await wait_for(
                    lambda: janus.frames.get("video", 0) > 10, "the page's camera at the SFU"
                )
                trickled = [
                    c for c in server.sent_by_page if c["type"] == "candidate" and c["to"] == SFU
                ]
                assert any(c.get("candidate") for c in trickled), "no candidate trickled to sfu"
                assert all(c["conn"] == offer["conn"] for c in trickled)
                assert not trickled[-1].get("candidate"), "no end of candidates"
                assert all(
                    " 127.0.0.1 " in c["candidate"] for c in trickled if c.get("candidate")
                ), trickled
                await until(
                    page, "() => window.telecentreGuest.publication === 'connected'", "published"
                )

                # P's publication, forwarded: answered receive-only, shown as P's tile.
                sub, answer = await forward(server, paris, site)
                closers.append(sub.close)
                assert set(directions(answer["sdp"])) <= {"recvonly", "inactive"}, directions(
                    answer["sdp"]
                )
                await until(page, FRAMES_DECODED, "P's camera on the page", [paris, 10], 20)
                status = await page.evaluate("() => window.telecentreGuest")
                assert status["topology"] == "sfu" and status["epoch"] == 1
                assert status["peers"][paris]["name"] == "Salle TelePresence"
                assert f"sfu:{paris}" not in status["peers"]
                tile = page.locator(f'[data-peer="{paris}"]')
                assert "Salle TelePresence · IT77 Fontainebleau" in await tile.inner_text()
                await until(
                    page,
                    f"() => document.querySelector('[data-peer=\"{paris}\"]').dataset.live === 'live'",
                    "P's tile live",
                )

                # A topology that is not higher changes nothing; a peer-joined after it
                # shows the page has read it.
                offers = status["sent"]["offer"]
                await server.send(
                    p.TopologyChange(session_id=m.session_id, topology="sfu", epoch=1)
                )
                await server.send(
                    p.PeerJoined(
                        session_id=m.session_id,
                        peer=p.PeerInfo(peer_id="guest:other", name="Grace Hopper"),
                    )
                )
                await until(
                    page,
                    "() => !!document.querySelector('[data-peer=\"guest:other\"]')",
                    "the new member",
                )
                assert (await page.evaluate("() => window.telecentreGuest.sent.offer")) == offers

                # A higher epoch (Janus moved): everything closed, published again anew.
                await server.send(
                    p.TopologyChange(session_id=m.session_id, topology="sfu", epoch=2)
                )
                second, janus2 = await take_publication(server)
                closers.append(janus2.close)
                assert second["conn"] != offer["conn"]
                await wait_for(
                    lambda: janus2.frames.get("video", 0) > 10, "the page's camera, republished"
                )
                await until(page, "() => window.telecentreGuest.epoch === 2", "epoch 2")
                assert paris not in (await page.evaluate("() => window.telecentreGuest.peers"))

                # A subscription that cannot connect: at the connect deadline the page
                # asks for P again; the fresh offer connects.
                dead, _ = await forward(server, paris, site, dead=True)
                closers.append(dead.close)
                subscribe = await server.next("subscribe", within=20)
                assert subscribe["publisher"] == paris
                assert subscribe["session_id"] == m.session_id
                sharing = Site("paris again", sharing=True)
                closers.append(sharing.stop_soon)
                fresh, _ = await forward(server, paris, sharing, janus_msid=True)
                closers.append(fresh.close)
                await until(page, FRAMES_DECODED, "P's camera after subscribe", [paris, 10], 20)
                # This publication carries P's content: large over the strip, as in a
                # mesh, known by its section (Janus names the tracks its own way).
                await until(page, CONTENT_SHOWN, "P's content large", [paris, "large"], 20)
                peers = await page.evaluate("() => window.telecentreGuest.peers")
                assert peers[paris]["content"]["received"]

                # P leaves: its subscription is closed, its tile waits for it, its
                # content is gone.
                await server.send(p.PeerLeft(session_id=m.session_id, peer_id=paris, reason="left"))
                await until(
                    page,
                    f"() => !window.telecentreGuest.peers['{paris}']"
                    f" && document.querySelector('[data-peer=\"{paris}\"]').dataset.live === 'absent'",
                    "P's subscription closed",
                )
                await until(page, GRID_BACK, "the grid back", paris)
                await wait_for(
                    lambda: fresh.connectionState in ("closed", "failed"),
                    "the page closing sfu:P",
                    20,
                )

                # Never an offer to a member.
                assert {o["to"] for o in server.sent_by_page if o["type"] == "offer"} == {SFU}
            finally:
                await page.context.close()
                for close in closers:
                    await close()
                site.stop()
