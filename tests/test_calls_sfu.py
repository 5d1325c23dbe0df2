"""The room agent's calls in an SFU session (room_agents/calls.py, room_agents/sfu.py;
docs/protocol.md section 20), without the server's Janus bridge: a test-side aiortc
peer plays the SFU. It answers each room's publication (the offer to ``sfu``) and
forwards what it receives to the other room as ``sfu:<P>`` through aiortc's
MediaRelay, as Janus would. Real aiortc on loopback, synthetic camera and audio."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import pytest
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription
from aiortc.contrib.media import MediaRelay

from common.peers import sfu_peer_id
from common.tasks import TaskSet
from room_agents.calls import Outgoing, PeerCall, SessionCalls, transport_bytes
from room_agents.content import ContentShare, content_spec
from room_agents.ice import rtc_configuration
from room_agents.media import OutgoingVideoTrack, StartingCard, SyntheticAudioTrack, SyntheticCamera
from room_agents.screen import HeadlessScreen
from room_agents.sfu import (
    MESH_KEEP,
    joined_outdated,
    media_peer,
    moves,
    recovery,
    retire_mesh_call,
)
from signalling import protocol as p
from signalling.candidates import parse_networks
from signalling.client import ConnectionLost
from tests.signalling_fixtures import eventually
from tests.test_call_recovery import WallClock, Wire, room_calls
from tests.test_liveness import loopback  # noqa: F401 (the fixture)

# --- the pure rules ---------------------------------------------------------------------


def test_a_subscription_s_media_is_its_publisher_s() -> None:
    assert media_peer("sfu:room:a") == "room:a"
    assert media_peer("room:a") == "room:a"
    assert media_peer("sfu:guest:g1") == "guest:g1"


def test_a_topology_message_moves_only_with_a_higher_epoch() -> None:
    assert moves(("mesh", 0), ("sfu", 1), joined=False)
    assert moves(("sfu", 1), ("sfu", 2), joined=False)
    assert not moves(("sfu", 2), ("sfu", 2), joined=False)
    assert not moves(("sfu", 2), ("sfu", 1), joined=False)


def test_joined_moves_whenever_it_differs() -> None:
    assert moves(("mesh", 0), ("sfu", 1), joined=True)
    assert moves(("sfu", 1), ("sfu", 3), joined=True)  # a move missed while away
    assert not moves(("sfu", 3), ("sfu", 3), joined=True)  # a rejoin on a new link
    assert not moves(("mesh", 0), ("mesh", 0), joined=True)


def test_a_joined_answer_overtaken_by_a_topology_message_is_outdated() -> None:
    assert joined_outdated(0, 1, told_since=True)  # mesh 0 answered, then sfu 1 told
    assert not joined_outdated(1, 1, told_since=True)
    assert not joined_outdated(2, 1, told_since=True)
    # No message since: the answer stands, even at a lower epoch (a restarted server).
    assert not joined_outdated(0, 3, told_since=False)


def test_what_rebuilds_a_failed_connection() -> None:
    assert recovery("sfu") == "publish"
    assert recovery("sfu:room:a") == "subscribe"
    assert recovery("room:a") == "re-offer"


# --- a test-side SFU --------------------------------------------------------------------


def sections(sdp: str) -> list[tuple[str, str | None]]:
    """Each media section's kind and direction attribute."""
    out: list[tuple[str, str | None]] = []
    for line in sdp.splitlines():
        if line.startswith("m="):
            out.append((line[2:].split()[0], None))
        elif line[2:] in ("sendonly", "recvonly", "sendrecv", "inactive") and out:
            out[-1] = (out[-1][0], line[2:])
    return out


class FakeSfu:
    """Answers each room's publication and forwards it to every other room as an offer
    from ``sfu:<publisher>``; what the rooms send is delivered by one pump per room."""

    def __init__(self) -> None:
        self.rooms: dict[str, tuple[SessionCalls, Wire]] = {}
        self.published: dict[str, list[MediaStreamTrack]] = {}
        self.pcs: list[RTCPeerConnection] = []
        self.subscriptions: dict[tuple[str, str], RTCPeerConnection] = {}  # (to, publisher)
        self.answer_publications = True
        self.answer_subscriptions = True
        self.relay = MediaRelay()
        self._tasks = TaskSet()

    def add(self, calls: SessionCalls, wire: Wire) -> None:
        self.rooms[calls.self_id] = (calls, wire)
        self._tasks.spawn(self._pump(calls.self_id, wire))

    async def _pump(self, room: str, wire: Wire) -> None:
        delivered = 0
        while True:
            await wire.wait_for(delivered + 1, object, 3600)
            message = wire.messages[delivered]
            delivered += 1
            if isinstance(message, p.Offer) and message.to == "sfu":
                await self._publication(room, message)
            elif isinstance(message, p.Answer) and message.to is not None:
                pc = self.subscriptions.get((room, message.to.removeprefix("sfu:")))
                if pc is not None and self.answer_subscriptions:
                    await pc.setRemoteDescription(RTCSessionDescription(message.sdp, "answer"))
            elif isinstance(message, p.Subscribe):
                await self.offer(room, message.publisher)

    async def _publication(self, room: str, offer: p.Offer) -> None:
        if not self.answer_publications:
            return
        pc = RTCPeerConnection(rtc_configuration([]))
        self.pcs.append(pc)
        tracks: list[MediaStreamTrack] = []

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            tracks.append(track)

        await pc.setRemoteDescription(RTCSessionDescription(offer.sdp, "offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        self.published[room] = tracks
        calls, _ = self.rooms[room]
        answer = p.Answer(
            session_id="s1", sdp=pc.localDescription.sdp, conn=offer.conn, from_="sfu"
        )
        await calls.on_answer(answer)

    async def offer(self, to: str, publisher: str) -> p.Offer:
        """Offer ``publisher``'s publication to room ``to`` on a new connection."""
        pc = RTCPeerConnection(rtc_configuration([]))
        self.pcs.append(pc)
        for track in self.published[publisher]:
            pc.addTransceiver(self.relay.subscribe(track, buffered=False), direction="sendonly")
        await pc.setLocalDescription(await pc.createOffer())
        self.subscriptions[(to, publisher)] = pc
        offer = p.Offer(
            session_id="s1",
            sdp=pc.localDescription.sdp,
            conn=f"sub-{len(self.pcs)}",
            from_=sfu_peer_id(publisher),
        )
        calls, _ = self.rooms[to]
        await calls.on_offer(offer)
        return offer

    async def close(self) -> None:
        await self._tasks.close()
        for pc in self.pcs:
            await pc.close()


@asynccontextmanager
async def sfu_session(
    *rooms: str, deadline: float = 10.0
) -> AsyncIterator[tuple[FakeSfu, list[tuple[SessionCalls, Wire]]]]:
    sfu = FakeSfu()
    async with AsyncExitStack() as stack:
        sides = [await stack.enter_async_context(room_calls(r, deadline)) for r in rooms]
        for calls, wire in sides:
            sfu.add(calls, wire)
        try:
            yield sfu, sides
        finally:
            await sfu.close()


async def publish_all(sfu: FakeSfu, sides: list[tuple[SessionCalls, Wire]]) -> None:
    for calls, _ in sides:
        assert await calls.move("sfu", 1, joined=True, before=calls.serial)
    for calls, _ in sides:
        await eventually(lambda c=calls: len(sfu.published.get(c.self_id, [])) == 2, "tracks", 10)  # type: ignore[misc]


# --- the rules at work ------------------------------------------------------------------


@pytest.mark.usefixtures("loopback")
async def test_a_room_publishes_to_the_sfu_and_shows_a_subscription_as_its_publisher() -> None:
    async with sfu_session("room:a", "room:b") as (sfu, sides):
        (a, wire_a), (b, wire_b) = sides
        a.members.add("room:b")
        b.members.add("room:a")
        await publish_all(sfu, sides)
        (offer,) = wire_a.offers()
        assert offer.to == "sfu"
        # Camera and microphone, sending only, and no liveness data channel.
        assert sections(offer.sdp) == [("video", "sendonly"), ("audio", "sendonly")]
        assert a.calls["sfu"].liveness is None and a.calls["sfu"].pc.sctp is None

        await sfu.offer("room:b", "room:a")
        (answer,) = await wire_b.wait_for(1, p.Answer, 5)
        assert answer.to == "sfu:room:a"
        assert [d for _, d in sections(answer.sdp)] == ["recvonly", "recvonly"]
        subscription = b.calls["sfu:room:a"]
        assert subscription.liveness is None
        assert all(t.sender.track is None for t in subscription.pc.getTransceivers())

        screen = b._screen
        await eventually(
            lambda: (screen.totals().get("room:a") or {}).get("stamped_frames", 0) >= 5,  # type: ignore[operator]
            "room:a's stamped frames on room:b's screen",
            15,
        )
        # Audio may come a little after five video frames on a loaded machine: wait for it.
        await eventually(
            lambda: (screen.totals().get("room:a") or {}).get("audio_frames", 0) > 0,  # type: ignore[operator]
            "room:a's audio on room:b's screen",
            15,
        )
        assert "sfu:room:a" not in screen.totals()
        assert [m.peer_id for m in screen.snapshot()] == ["room:a"]
        assert set(b.media_calls()) == {"room:a"} and set(b.media_pairs()) == {"room:a"}
        # Only the publication encodes: a subscription sends RTCP and DTLS, no media.
        await eventually(lambda: b.sent_bytes()["sfu"] > 50_000, "room:b's uplink", 15)
        sent = b.sent_bytes()
        assert set(sent) == {"sfu", "sfu:room:a"}
        assert sent["sfu:room:a"] * 10 < sent["sfu"], sent
        await eventually(lambda: b.received_bytes()["sfu:room:a"] > 50_000, "room:a's media", 15)
        assert transport_bytes(subscription.pc)[1] == sent["sfu:room:a"]

        # Never an offer to a member on an SFU, and a member's mesh offer is ignored.
        await a.offer_to("room:b")
        mesh = RTCPeerConnection(rtc_configuration([]))
        try:
            mesh.addTransceiver("video")
            await mesh.setLocalDescription(await mesh.createOffer())
            stale = p.Offer(session_id="s1", sdp=mesh.localDescription.sdp, conn="m1")
            await a.on_offer(dataclasses.replace(stale, from_="room:b"))
        finally:
            await mesh.close()
        assert [o.to for o in wire_a.offers()] == ["sfu"] and "room:b" not in a.calls
        assert not [m for m in wire_a.messages if isinstance(m, p.Answer)]

        # The publisher leaves: its subscription closes, its tiles go.
        await b.peer_left("room:a")
        assert "sfu:room:a" not in b.calls and "room:a" not in screen.peers
        await eventually(lambda: subscription.pc.connectionState == "closed", "closed", 5)


@pytest.mark.usefixtures("loopback")
async def test_a_higher_epoch_closes_the_calls_and_publishes_again() -> None:
    async with sfu_session("room:a", "room:b") as (sfu, sides):
        (_, wire_a), (b, wire_b) = sides
        b.members.add("room:a")
        await publish_all(sfu, sides)
        await sfu.offer("room:b", "room:a")
        publication, subscription = b.calls["sfu"], b.calls["sfu:room:a"]
        # A late or repeated copy changes nothing.
        assert not await b.move("sfu", 1, joined=False, before=b.serial)
        assert not await b.move("sfu", 0, joined=False, before=b.serial)
        assert b.calls == {"sfu": publication, "sfu:room:a": subscription}
        assert len(wire_b.offers()) == 1

        assert await b.move("sfu", 2, joined=False, before=b.serial)
        assert b.epoch == 2 and set(b.calls) == {"sfu"}
        assert b.calls["sfu"] is not publication
        offers = await wire_b.wait_for(2, p.Offer, 5)
        assert offers[1].to == "sfu" and offers[1].conn != offers[0].conn
        await eventually(
            lambda: publication.pc.connectionState == subscription.pc.connectionState == "closed",
            "the old SFU's connections closed",
            5,
        )
        assert wire_a.offers()[0].to == "sfu" and len(wire_a.offers()) == 1


@pytest.mark.usefixtures("loopback")
async def test_a_mesh_session_that_moves_closes_its_calls_and_keeps_new_subscriptions() -> None:
    async with room_calls("room:a", 10.0) as (a, wire):
        await a.offer_to("room:b")  # a mesh call
        mesh_call = a.calls["room:b"]
        before = a.serial  # our join went out here
        sfu = FakeSfu()
        sfu.add(a, wire)
        try:
            # P's subscription overtakes the ``joined`` that moves the session.
            pc = RTCPeerConnection(rtc_configuration([]))
            sfu.pcs.append(pc)
            pc.addTransceiver("video", direction="sendonly")
            pc.addTransceiver("audio", direction="sendonly")
            await pc.setLocalDescription(await pc.createOffer())
            offer = p.Offer(session_id="s1", sdp=pc.localDescription.sdp, conn="x1")
            await a.on_offer(dataclasses.replace(offer, from_="sfu:room:c"))
            early = a.calls["sfu:room:c"]
            assert await a.move("sfu", 1, joined=True, before=before)
            assert a.calls["sfu:room:c"] is early and "room:b" not in a.calls
            assert mesh_call.pc.connectionState == "closed" or mesh_call not in a.calls.values()
            assert [o.to for o in wire.offers()] == ["room:b", "sfu"]
        finally:
            await sfu.close()


@pytest.mark.usefixtures("loopback")
async def test_a_failed_subscription_asks_for_a_fresh_offer() -> None:
    deadline = 1.0
    async with sfu_session("room:a", "room:b", deadline=deadline) as (sfu, sides):
        (a, _), (b, wire_b) = sides
        b.members.add("room:a")
        await publish_all(sfu, sides)
        sfu.answer_subscriptions = False  # the SFU never starts it: no check is answered
        await sfu.offer("room:b", "room:a")
        stuck = b.calls["sfu:room:a"]
        (subscribe,) = await wire_b.wait_for(1, p.Subscribe, deadline + 10)
        assert subscribe == p.Subscribe(session_id="s1", publisher="room:a")
        assert stuck.pc.connectionState == "closed" or b.calls.get("sfu:room:a") is not stuck
        # The server's answer to it, a fresh offer, is answered and connects.
        sfu.answer_subscriptions = True
        await eventually(
            lambda: (
                getattr(b.calls.get("sfu:room:a"), "pc", None) is not None
                and b.calls["sfu:room:a"] is not stuck
                and b.calls["sfu:room:a"].pc.connectionState == "connected"
            ),
            "a fresh subscription connected",
            10,
        )
        # A subscription for a member that left is not asked for.
        await b.peer_left("room:a")
        assert b.calls.keys() == {"sfu"}
        assert len([m for m in wire_b.messages if isinstance(m, p.Subscribe)]) >= 1
        assert a.calls.keys() == {"sfu"}


@pytest.mark.usefixtures("loopback")
async def test_a_publication_never_answered_is_offered_again_after_the_deadline() -> None:
    deadline = 0.5
    async with sfu_session("room:a", deadline=deadline) as (sfu, sides):
        ((a, wire),) = sides
        sfu.answer_publications = False
        assert await a.move("sfu", 1, joined=True, before=a.serial)
        offers = await wire.wait_for(2, p.Offer, deadline + 10)
        assert [o.to for o in offers] == ["sfu", "sfu"] and offers[0].conn != offers[1].conn
        assert a.calls["sfu"].conn == offers[1].conn
        assert not [m for m in wire.messages if isinstance(m, p.Subscribe)]


@pytest.mark.usefixtures("loopback")
async def test_shared_content_goes_through_the_sfu_as_the_publisher_s_content() -> None:
    """A room with a content source publishes camera, microphone and content (all
    ``sendonly``); its subscriber answers the content section on the content
    transceiver, and the shared picture counts as the publisher's content."""
    clock = WallClock()
    spec = content_spec("lavfi:testsrc2=size=320x180:rate=10", 10)
    assert spec is not None
    share = ContentShare(spec, clock, 320, 180, fps=10)
    video = OutgoingVideoTrack(SyntheticCamera(clock, 320, 180), StartingCard(clock, 320, 180))
    outgoing = Outgoing(video=video, audio=SyntheticAudioTrack(), content=share)
    wire_a = Wire()
    screen_a = HeadlessScreen(clock)
    networks = parse_networks(["127.0.0.1/32"])
    a = SessionCalls("s1", "room:a", wire_a, outgoing, screen_a, [], networks, print)
    sfu = FakeSfu()
    try:
        async with room_calls("room:b", 10.0) as (b, wire_b):
            sfu.add(a, wire_a)
            sfu.add(b, wire_b)
            b.members.add("room:a")
            assert await a.move("sfu", 1, joined=True, before=a.serial)
            (offer,) = wire_a.offers()
            assert sections(offer.sdp) == [
                ("video", "sendonly"),
                ("audio", "sendonly"),
                ("video", "sendonly"),
            ]
            assert await share.share() is None
            await eventually(lambda: len(sfu.published.get("room:a", [])) == 3, "3 tracks", 10)
            await sfu.offer("room:b", "room:a")
            subscription = b.calls["sfu:room:a"]
            assert subscription.content is not None
            screen = b._screen
            await eventually(
                lambda: (screen.totals().get("room:a") or {}).get("content_frames", 0) >= 3,  # type: ignore[operator]
                "room:a's content on room:b's screen",
                15,
            )
            assert (screen.totals()["room:a"]["stamped_frames"] or 0) > 0  # its camera too
            assert set(screen.totals()) == {"room:a"}
    finally:
        await sfu.close()
        await a.close()
        await screen_a.close()
        video.stop()
        outgoing.audio.stop()
        await share.close()


@pytest.mark.usefixtures("loopback")
async def test_a_subscribe_lost_with_the_link_is_sent_again_at_the_rejoin() -> None:
    deadline = 1.0
    async with sfu_session("room:a", "room:b", deadline=deadline) as (sfu, sides):
        (_, _), (b, wire_b) = sides
        b.members.update({"room:a", "room:c"})
        await publish_all(sfu, sides)
        sfu.answer_subscriptions = False
        link_down = asyncio.Event()
        send = b._send

        async def flaky(message: object) -> None:
            if isinstance(message, p.Subscribe):
                link_down.set()
                raise ConnectionLost("the link is down")
            await send(message)

        b._send = flaky
        await sfu.offer("room:b", "room:a")
        async with asyncio.timeout(deadline + 10):
            await link_down.wait()
        await eventually(lambda: b.unsubscribed == {"room:a"}, "the lost subscribe noted", 5)
        assert not [m for m in wire_b.messages if isinstance(m, p.Subscribe)]
        # The link is back: the rejoin asks for it again, once.
        b._send = send
        await b.subscribe_again()
        subscribes = [m for m in wire_b.messages if isinstance(m, p.Subscribe)]
        assert subscribes == [p.Subscribe(session_id="s1", publisher="room:a")]
        assert b.unsubscribed == set()
        await b.subscribe_again()  # nothing left to ask for
        assert len([m for m in wire_b.messages if isinstance(m, p.Subscribe)]) == 1


# --- make-before-break: a mesh that moves to an SFU -----------------------------------------


def test_a_mesh_call_kept_across_a_move_retires_when_both_subscriptions_deliver() -> None:
    def retire(
        mesh: bool = True,
        connected: bool = False,
        decoded: bool = False,
        served: bool = False,
        kept: float = 0.0,
    ) -> str | None:
        return retire_mesh_call(
            mesh_connected=mesh,
            subscription_connected=connected,
            subscription_decoded=decoded,
            peer_served=served,
            kept_for=kept,
            bound=10.0,
        )

    assert not retire()  # no subscription yet: the mesh call shows the member
    assert not retire(connected=True, served=True)  # connected, nothing decoded yet
    assert not retire(decoded=True, served=True, kept=9.9)  # a frame, then it failed
    assert not retire(connected=True, decoded=True)  # the member still needs our media
    assert retire(connected=True, decoded=True, served=True)  # both deliver: it goes
    assert retire(kept=10.0)  # the bound, whatever comes
    assert retire(mesh=False)  # a mesh call not connected shows nothing
    assert MESH_KEEP == 10.0


def mesh_pump(tasks: TaskSet, sender: tuple[SessionCalls, Wire], to: SessionCalls) -> None:
    """Relay ``sender``'s mesh offers and answers to ``to`` (what goes to ``sfu`` or
    ``sfu:<P>`` is the fake SFU's)."""

    async def pump() -> None:
        calls, wire = sender
        delivered = 0
        while True:
            await wire.wait_for(delivered + 1, object, 3600)
            message = wire.messages[delivered]
            delivered += 1
            if not isinstance(message, p.Offer | p.Answer) or (message.to or "").startswith("sfu"):
                continue
            relayed = dataclasses.replace(message, from_=calls.self_id)
            if isinstance(relayed, p.Offer):
                await to.on_offer(relayed)
            else:
                await to.on_answer(relayed)

    tasks.spawn(pump())


@asynccontextmanager
async def mesh_of_two(
    sfu: FakeSfu, sides: list[tuple[SessionCalls, Wire]]
) -> AsyncIterator[tuple[SessionCalls, SessionCalls]]:
    """Rooms a and b in a mesh call, each decoding the other."""
    (a, wire_a), (b, wire_b) = sides
    tasks = TaskSet()
    mesh_pump(tasks, (a, wire_a), b)
    mesh_pump(tasks, (b, wire_b), a)
    try:
        a.members.add("room:b")
        await b.offer_to("room:a")
        for calls, other in ((a, "room:b"), (b, "room:a")):
            await eventually(
                lambda c=calls, o=other: stamped(c, o) >= 5,  # type: ignore[misc]
                f"{calls.self_id} decoding {other} in the mesh",
                15,
            )
        yield a, b
    finally:
        await tasks.close()


def stamped(calls: SessionCalls, peer: str) -> int:
    return int((calls._screen.totals().get(peer) or {}).get("stamped_frames") or 0)


async def decodes_more(calls: SessionCalls, peer: str, what: str) -> None:
    """Wait (10 s at most) until ``calls`` decodes more than 5 stamped frames of
    ``peer`` beyond those it has decoded now."""
    mark = stamped(calls, peer)
    await eventually(lambda: stamped(calls, peer) > mark + 5, what, 10)


def long_gaps(calls: SessionCalls, peer: str) -> tuple[int, object, object]:
    """How many of ``peer``'s frames came a second or more after the one before, with
    the latest outage (for the message)."""
    totals = calls._screen.totals().get(peer) or {}
    return int(totals.get("long_gaps") or 0), totals.get("outage_from"), totals.get("outage_to")


@pytest.mark.usefixtures("loopback")
async def test_a_mesh_call_runs_until_both_subscriptions_deliver_then_closes() -> None:
    async with sfu_session("room:a", "room:b") as (sfu, sides), mesh_of_two(sfu, sides) as (a, b):
        mesh_ab, mesh_ba = a.calls["room:b"], b.calls["room:a"]
        # (peer, subscription decoded, its state, the peer said it is served)
        dropped: list[tuple[str, bool, str, bool]] = []
        drop_call = b._drop_call

        async def spy(call: PeerCall) -> None:
            if call is mesh_ba:
                subscription = b.calls.get("sfu:room:a")
                dropped.append(
                    (
                        call.peer_id,
                        subscription is not None and subscription.decoded,
                        subscription.pc.connectionState if subscription is not None else "none",
                        call.peer_served,
                    )
                )
            await drop_call(call)

        b._drop_call = spy  # type: ignore[method-assign]
        # From here on (the move, both subscriptions, the mesh calls' retirement) no
        # frame comes a second or more after the one before: the call set-up's first
        # frames are not this test's business.
        gaps_before = {"a": long_gaps(a, "room:b")[0], "b": long_gaps(b, "room:a")[0]}
        await publish_all(sfu, sides)  # both moved (epoch 1) and publish
        # No subscription yet: the mesh calls still carry both ways.
        assert a.calls["room:b"] is mesh_ab and b.calls["room:a"] is mesh_ba
        for calls, other in ((a, "room:b"), (b, "room:a")):
            await decodes_more(
                calls,
                other,
                f"{calls.self_id} still decoding {other} on the mesh call after the move",
            )
        assert dropped == []

        await sfu.offer("room:b", "room:a")
        subscription = b.calls["sfu:room:a"]
        await eventually(lambda: subscription.decoded, "b decoding a through the SFU", 15)
        # a has no subscription of b yet: the mesh call still carries b to a.
        await decodes_more(b, "room:a", "room:a's frames through the SFU")
        await decodes_more(a, "room:b", "a still decoding b on the mesh")
        assert b.calls["room:a"] is mesh_ba and a.calls["room:b"] is mesh_ab
        assert mesh_ab.peer_served and not mesh_ba.peer_served and dropped == []

        await sfu.offer("room:a", "room:b")
        await eventually(lambda: "room:a" not in b.calls, "b's mesh call with a retired", 15)
        await eventually(lambda: "room:b" not in a.calls, "a's mesh call with b retired", 15)
        assert dropped == [("room:a", True, "connected", True)]
        await eventually(lambda: mesh_ba.pc.connectionState == "closed", "closed", 5)
        count, *outage = long_gaps(b, "room:a")
        assert count == gaps_before["b"], outage
        assert b.calls.keys() == {"sfu", "sfu:room:a"}
        assert a.calls.keys() == {"sfu", "sfu:room:b"}
        for calls, other in ((a, "room:b"), (b, "room:a")):
            await decodes_more(
                calls, other, f"{calls.self_id} decoding {other} through the SFU alone"
            )
        count, *outage = long_gaps(a, "room:b")
        assert count == gaps_before["a"], outage
        # Never a mesh offer after the move: b offered once (the mesh call), then to sfu.
        assert [o.to for o in sides[1][1].offers()] == ["room:a", "sfu"]
        assert [o.to for o in sides[0][1].offers()] == ["sfu"]


@pytest.mark.usefixtures("loopback")
async def test_a_mesh_call_whose_subscription_never_comes_closes_at_the_bound() -> None:
    bound = 1.5
    async with sfu_session("room:a", "room:b") as (sfu, sides), mesh_of_two(sfu, sides) as (_, b):
        mesh_ba = b.calls["room:a"]
        b.mesh_keep = bound
        loop = asyncio.get_running_loop()
        moved = loop.time()
        assert await b.move("sfu", 1, joined=False, before=b.serial)
        assert b.calls["room:a"] is mesh_ba
        await eventually(lambda: "room:a" not in b.calls, "the mesh call closed", bound + 10)
        kept = loop.time() - moved
        assert kept >= bound, kept
        assert "room:a" not in b._screen.peers  # nothing else shows a
        assert b.calls.keys() == {"sfu"}
        assert [o.to for o in sides[1][1].offers()] == ["room:a", "sfu"]  # not re-offered


@pytest.mark.usefixtures("loopback")
async def test_a_move_between_two_sfus_keeps_no_mesh_call() -> None:
    async with sfu_session("room:a", "room:b") as (sfu, sides), mesh_of_two(sfu, sides) as (_, b):
        mesh_ba = b.calls["room:a"]
        assert await b.move("sfu", 1, joined=False, before=b.serial)
        assert b.calls["room:a"] is mesh_ba
        assert await b.move("sfu", 2, joined=False, before=b.serial)  # the Janus died
        assert "room:a" not in b.calls and "room:a" not in b._screen.peers
        await eventually(lambda: mesh_ba.pc.connectionState == "closed", "closed", 5)
