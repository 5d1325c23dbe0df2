"""How two rooms' calls come back after a path dies (room_agents/calls.py): the side
that finds it dead offers again, the glare rule keeps one of two crossing offers, an
offer or answer lost with a dead signalling link is sent again, the old connection
closes in the background; a call that never connects is rebuilt at its connect
deadline, with real aiortc peers on loopback and a deadline made tiny (the rule does
not depend on its value), and between two real agents whose first offer the signalling
server loses; and the screen keeps each peer's latest outage
(room_agents/screen.py), which is how the lab measures acceptance 5
(tests/test_lab_remap.py)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from aioice.stun import RETRY_MAX, RETRY_RTO
from aiortc import RTCPeerConnection, RTCSessionDescription

from common.tasks import TaskSet
from room_agents.calls import (
    CONNECT_DEADLINE,
    Outgoing,
    PeerCall,
    SessionCalls,
    connect_overdue,
    incoming_offer,
    re_offers,
    received_packets,
)
from room_agents.ice import rtc_configuration
from room_agents.media import (
    OutgoingVideoTrack,
    PrivacyCard,
    StartingCard,
    SyntheticAudioTrack,
    SyntheticCamera,
)
from room_agents.screen import OUTAGE_S, HeadlessScreen, PeerMedia
from signalling import protocol as p
from signalling.candidates import parse_networks
from tests.signalling_fixtures import eventually, running_agent, signalling_harness
from tests.test_liveness import blackhole, loopback  # noqa: F401 (the fixture)


@dataclass
class FakePc:
    """What the glare rule reads of an RTCPeerConnection."""

    remoteDescription: object | None = None
    connectionState: str = "new"


def call(conn: str, offerer: bool, answered: bool = False) -> PeerCall:
    pc: Any = FakePc(remoteDescription=object() if answered else None)
    return PeerCall(peer_id="room:b", conn=conn, pc=pc, offerer=offerer)


def test_no_connection_or_an_established_one_answers_the_offer() -> None:
    assert incoming_offer("room:a", "room:b", "c2", None) == "answer"
    assert incoming_offer("room:a", "room:b", "c2", call("c1", offerer=True, answered=True)) == (
        "answer"
    )
    assert incoming_offer("room:a", "room:b", "c2", call("c1", offerer=False)) == "answer"


def test_crossing_offers_the_peer_sorting_first_keeps_its_own() -> None:
    pending = call("c1", offerer=True)  # gathering or sent, no answer yet
    assert pending.awaiting_answer
    assert incoming_offer("room:a", "room:b", "c2", pending) == "keep-ours"
    assert incoming_offer("room:c", "room:b", "c2", pending) == "answer"  # it yields


def test_an_offer_we_already_answered_gets_the_same_answer_again() -> None:
    answered = call("c1", offerer=False)
    assert incoming_offer("room:a", "room:b", "c1", answered) == "repeat-answer"
    assert incoming_offer("room:c", "room:b", "c1", answered) == "repeat-answer"


class Sent:
    def __init__(self) -> None:
        self.messages: list[object] = []

    async def __call__(self, message: object) -> None:
        self.messages.append(message)


def session_calls(send: Sent, self_id: str = "room:a") -> SessionCalls:
    return SessionCalls("s1", self_id, send, None, None, [], [], lambda _: None)  # type: ignore[arg-type]


async def test_a_pending_offer_is_sent_again_and_an_answered_one_is_not() -> None:
    send = Sent()
    calls = session_calls(send)
    offer = p.Offer(session_id="s1", to="room:b", sdp="v=0\r\n", conn="c1")
    pending = call("c1", offerer=True)
    pending.sent = offer
    calls.calls["room:b"] = pending
    assert await calls.offer_again("room:b") and send.messages == [offer]
    pending.pc.remoteDescription = object()  # type: ignore[misc,assignment]  # answered
    assert not await calls.offer_again("room:b") and send.messages == [offer]
    unsent = call("c2", offerer=True)  # still gathering: it goes out when gathered
    calls.calls["room:b"] = unsent
    assert not await calls.offer_again("room:b") and not await calls.offer_again("room:x")


async def test_keep_ours_and_repeat_answer_send_our_sdp_again_and_touch_nothing() -> None:
    send = Sent()
    calls = session_calls(send)  # room:a sorts before room:b: it keeps its offer
    ours = p.Offer(session_id="s1", to="room:b", sdp="v=0\r\n", conn="c1")
    pending = call("c1", offerer=True)
    pending.sent = ours
    calls.calls["room:b"] = pending
    theirs = p.Offer(session_id="s1", sdp="v=0\r\n", conn="c9", from_="room:b")
    await calls.on_offer(theirs)
    assert calls.calls["room:b"] is pending and send.messages == [ours]
    answer = p.Answer(session_id="s1", to="room:b", sdp="v=0\r\n", conn="c9")
    answered = call("c9", offerer=False)
    answered.sent = answer
    calls.calls["room:b"] = answered
    await calls.on_offer(theirs)  # the same offer again: our answer was lost
    assert calls.calls["room:b"] is answered and send.messages == [ours, answer]


async def test_a_dropped_connection_closes_in_the_background_and_close_waits_for_it() -> None:
    closed: list[str] = []

    class SlowPc(FakePc):
        async def close(self) -> None:
            closed.append("closing")

    class Screen:
        async def detach(self, peer_id: str) -> None:
            pass

    calls = SessionCalls("s1", "room:a", Sent(), None, Screen(), [], [], lambda _: None)  # type: ignore[arg-type]
    dropped = call("c1", offerer=True)
    dropped.pc = SlowPc()  # type: ignore[assignment]
    calls.calls["room:b"] = dropped
    await calls.drop("room:b")
    assert "room:b" not in calls.calls  # forgotten at once
    await calls.close()
    assert closed == ["closing"]


def test_the_screen_keeps_a_peer_s_latest_outage() -> None:
    media = PeerMedia("room:b", mono_now=0.0)
    media.add_video_frame(0.0, 100.0, None)
    media.add_video_frame(0.033, 100.033, None)
    assert media.totals()["outage_from"] is None
    media.add_video_frame(0.4, 100.4, None)  # a short gap is no outage
    assert media.totals()["outage_from"] is None
    media.add_video_frame(0.4 + OUTAGE_S + 2.0, 102.9, None)
    totals = media.totals()
    assert (totals["outage_from"], totals["outage_to"]) == (100.4, 102.9)


# --- the connect deadline ---------------------------------------------------------------


def test_who_offers_again_after_a_rebuild() -> None:
    # With an agent that spoke on the liveness channel: the side that found it, always.
    assert re_offers("room:b", "room:a", agent_peer=True, awaiting_answer=False)
    # Our offer never answered: we offer again whatever the ids (the peer may not have it).
    assert re_offers("room:b", "room:a", agent_peer=False, awaiting_answer=True)
    # Otherwise (a browser page, a call that never connected) the peer sorting first.
    assert re_offers("room:a", "room:b", agent_peer=False, awaiting_answer=False)
    assert not re_offers("room:b", "room:a", agent_peer=False, awaiting_answer=False)
    assert not re_offers("room:a", "guest:g", agent_peer=False, awaiting_answer=False)


def test_only_a_call_that_never_connected_is_overdue() -> None:
    assert connect_overdue("new") and connect_overdue("connecting")
    # Failed: its own event rebuilt it; closed: dropped; connected: deadline cancelled.
    for state in ("connected", "failed", "closed"):
        assert not connect_overdue(state)


def test_the_connect_deadline_outlasts_an_honest_set_up_and_not_aioice_s_checks() -> None:
    """Longer than the slowest honest set-up with margin (aioice's 5 s gathering timeout,
    then ICE and DTLS through a relay: the lab's relayed TLS first frames took up to
    ~2.8 s), far shorter than aioice's checks take to fail (7 tries, 0.5 s doubling)."""
    gathering_timeout, slowest_relayed_tls = 5.0, 2.8
    checks_fail_after = RETRY_RTO * (2 ** (RETRY_MAX + 1) - 1)
    assert checks_fail_after == pytest.approx(63.5)
    assert gathering_timeout + slowest_relayed_tls < CONNECT_DEADLINE <= checks_fail_after / 4


class Wire:
    """What one room's calls send, with an event per message."""

    def __init__(self) -> None:
        self.messages: list[object] = []
        self._changed = asyncio.Event()

    async def __call__(self, message: object) -> None:
        self.messages.append(message)
        self._changed.set()

    def offers(self) -> list[p.Offer]:
        return [m for m in self.messages if isinstance(m, p.Offer)]

    async def wait_for(self, count: int, kind: type, within: float) -> list[Any]:
        """Wait, bounded, until ``count`` messages of ``kind`` were sent."""
        async with asyncio.timeout(within):
            while len(sent := [m for m in self.messages if isinstance(m, kind)]) < count:
                self._changed.clear()
                await self._changed.wait()
        return sent


class WallClock:
    def now(self) -> float:
        return time.time()


@asynccontextmanager
async def room_calls(self_id: str, deadline: float) -> AsyncIterator[tuple[SessionCalls, Wire]]:
    """One room's real calls on loopback (synthetic camera and audio, headless screen),
    with the connect deadline set to ``deadline`` seconds."""
    clock = WallClock()
    video = OutgoingVideoTrack(
        SyntheticCamera(clock, 320, 180),
        StartingCard(clock, 320, 180),
        privacy_card=PrivacyCard(clock, 320, 180),
    )
    outgoing = Outgoing(video=video, audio=SyntheticAudioTrack())
    screen = HeadlessScreen(clock)
    wire = Wire()
    networks = parse_networks(["127.0.0.1/32"])
    calls = SessionCalls("s1", self_id, wire, outgoing, screen, [], networks, print)
    calls.connect_deadline = deadline
    try:
        yield calls, wire
    finally:
        await calls.close()
        await screen.close()
        video.stop()
        outgoing.audio.stop()


def rebuild_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "room_agents.calls"
        and r.levelno == logging.WARNING
        and "rebuilding" in r.message
    ]


@pytest.mark.usefixtures("loopback")
async def test_an_offer_never_answered_is_offered_again_after_the_deadline(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The peer never answers (its offer lost, a page that never answered): we offer
    again on a new connection, though our id sorts second, as nobody else would."""
    deadline = 0.5
    caplog.set_level(logging.INFO, logger="room_agents.calls")
    async with room_calls("room:b", deadline) as (calls, wire):
        began = time.monotonic()
        await calls.offer_to("room:a")
        first = calls.calls["room:a"]
        (offer,) = await wire.wait_for(1, p.Offer, 5)
        offers = await wire.wait_for(2, p.Offer, deadline + 10)
        assert time.monotonic() - began >= deadline
        assert offers[0] is offer and offers[1].conn != offer.conn
        assert calls.calls["room:a"].conn == offers[1].conn
        await eventually(lambda: first.pc.connectionState == "closed", "the old one closed", 5)
        (warning,) = rebuild_warnings(caplog)
        assert "session s1 peer room:a" in warning and offer.conn in warning


@pytest.mark.usefixtures("loopback")
async def test_a_call_whose_ice_never_completes_is_rebuilt_after_the_deadline(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """We answered, but no check ever gets an answer (the peer's sockets drop all): still
    ``connecting`` at the deadline, the call is rebuilt and, sorting first, we offer."""
    deadline = 2.0  # it is ``connecting`` within ~0.1 s of the offer
    caplog.set_level(logging.INFO, logger="room_agents.calls")
    peer = RTCPeerConnection(rtc_configuration())
    async with room_calls("room:a", deadline) as (calls, wire):
        try:
            peer.addTransceiver("video", direction="sendrecv")
            peer.addTransceiver("audio", direction="sendrecv")
            peer.createDataChannel("telecentre-liveness", negotiated=True, id=1000)
            await peer.setLocalDescription(await peer.createOffer())
            blackhole(peer)
            sdp = peer.localDescription.sdp
            await calls.on_offer(p.Offer(session_id="s1", sdp=sdp, conn="c1", from_="room:b"))
            (answer,) = await wire.wait_for(1, p.Answer, 5)
            await peer.setRemoteDescription(RTCSessionDescription(answer.sdp, "answer"))
            stuck = calls.calls["room:b"]
            await eventually(lambda: stuck.pc.connectionState == "connecting", "checks", 5)
            (offer,) = await wire.wait_for(1, p.Offer, deadline + 10)
            assert offer.to == "room:b" and offer.conn not in ("c1", answer.conn)
            assert calls.calls["room:b"].conn == offer.conn and calls.calls["room:b"].offerer
            assert stuck.pc.connectionState == "closed"
            (warning,) = rebuild_warnings(caplog)
            assert "session s1 peer room:b" in warning and "connecting" in warning
        finally:
            await peer.close()


class Pair:
    """Two rooms' calls whose messages reach each other in order, as the server would
    relay them (``from`` set); the pumps belong to a task set."""

    def __init__(self, a: tuple[SessionCalls, Wire], b: tuple[SessionCalls, Wire]) -> None:
        self.sides = (a, b)
        self._tasks = TaskSet()

    def start(self) -> None:
        (a, wire_a), (b, wire_b) = self.sides
        self._tasks.spawn(self._pump(a.self_id, wire_a, b))
        self._tasks.spawn(self._pump(b.self_id, wire_b, a))

    @staticmethod
    async def _pump(sender: str, wire: Wire, to: SessionCalls) -> None:
        delivered = 0
        while True:
            await wire.wait_for(delivered + 1, object, 3600)
            message = wire.messages[delivered]
            delivered += 1
            if isinstance(message, p.Offer):
                await to.on_offer(dataclasses.replace(message, from_=sender))
            elif isinstance(message, p.Answer):
                await to.on_answer(dataclasses.replace(message, from_=sender))

    async def close(self) -> None:
        await self._tasks.close()


@pytest.mark.usefixtures("loopback")
async def test_a_call_that_connects_keeps_its_connection_past_the_deadline(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Far above the loopback set-up (0.03-0.15 s measured at load averages 4-11 on the
    # two shared cores), and short.
    deadline = 3.0
    caplog.set_level(logging.INFO, logger="room_agents.calls")
    async with room_calls("room:a", deadline) as a, room_calls("room:b", deadline) as b:
        pair = Pair(a, b)
        pair.start()
        try:
            began = time.monotonic()
            await b[0].offer_to("room:a")  # the later joiner offers
            await eventually(lambda: "room:b" in a[0].calls, "a to answer", 5)
            ab, ba = a[0].calls["room:b"], b[0].calls["room:a"]
            connected = ("connected", "connected")
            await eventually(
                lambda: (ab.pc.connectionState, ba.pc.connectionState) == connected,
                "both connected",
                deadline,
            )
            print(f"connected {time.monotonic() - began:.2f} s after the offer began")
            # The counter the liveness watch reads besides its channel moves.
            await eventually(lambda: received_packets(ab.pc) > 0, "packets counted", 5)
            # Cancelled by the state change's handler (aiortc runs it just after).
            await eventually(
                lambda: ab.deadline is None and ba.deadline is None, "deadlines cancelled", 3
            )
            # Past the deadline (asserting that nothing happens takes waiting it out).
            await asyncio.sleep(max(0.0, began + deadline + 0.5 - time.monotonic()))
            assert a[0].calls["room:b"] is ab and b[0].calls["room:a"] is ba
            assert (ab.pc.connectionState, ba.pc.connectionState) == connected
            assert len(b[1].offers()) == 1 and len(a[1].offers()) == 0
            assert rebuild_warnings(caplog) == []
        finally:
            await pair.close()


@pytest.mark.usefixtures("loopback")
async def test_a_dropped_or_replaced_call_s_deadline_never_fires() -> None:
    deadline = 0.5
    async with room_calls("room:b", deadline) as (calls, wire):
        await calls.offer_to("room:a")
        timer = calls.calls["room:a"].deadline
        assert timer is not None and not timer.done()
        await calls.peer_left("room:a")  # dropped: its timer is cancelled and awaited
        assert timer.cancelled() and len(calls._tasks) == 0
        # A replaced one: the peer's offer crosses ours, and room:b yields.
        await calls.offer_to("room:a")
        ours = calls.calls["room:a"]
        assert ours.deadline is not None
        replaced_timer = ours.deadline
        peer = RTCPeerConnection(rtc_configuration())
        try:
            peer.addTransceiver("video", direction="sendrecv")
            peer.addTransceiver("audio", direction="sendrecv")
            await peer.setLocalDescription(await peer.createOffer())
            theirs = p.Offer(
                session_id="s1", sdp=peer.localDescription.sdp, conn="t1", from_="room:a"
            )
            await calls.on_offer(theirs)
            assert calls.calls["room:a"] is not ours and replaced_timer.cancelled()
            answering = calls.calls["room:a"]
            await calls.peer_left("room:a")
            # Past the deadline (asserting that nothing happens takes waiting it out).
            await asyncio.sleep(deadline + 0.5)
            assert len(wire.offers()) == 2 and calls.calls == {}
            assert answering.deadline is None and len(calls._tasks) == 0
        finally:
            await peer.close()


async def test_agents_whose_first_offer_is_lost_connect_after_the_deadline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two real agents through the signalling server, which loses the first offer: the
    offerer's call sits ``new`` (the peer knows of no call), and at the connect deadline
    the offerer offers again on a new connection, which carries media both ways."""
    deadline = 1.5
    monkeypatch.setattr("room_agents.calls.CONNECT_DEADLINE", deadline)
    async with signalling_harness() as h:
        hub = h.server.hub
        relay = hub.relay
        lost: list[tuple[float, p.Offer]] = []
        relayed: list[p.Offer] = []

        def lossy(peer_id: str, message: p.Offer | p.Answer | p.Candidate) -> None:
            if isinstance(message, p.Offer):
                if not lost:
                    lost.append((time.monotonic(), message))
                    return
                relayed.append(message)
            relay(peer_id, message)

        monkeypatch.setattr(hub, "relay", lossy)
        h.add_room("r1")
        h.add_room("r2")
        async with running_agent(h, "r1") as a1, running_agent(h, "r2") as a2:
            now = time.time()
            h.push_session("s1", ["r1", "r2"], start=now + 1, end=now + 60, lead=5)

            def receiving(agent: Any, peer: str) -> bool:
                return bool((agent.screen.totals().get(peer) or {}).get("last_frame_at"))

            await eventually(lambda: lost, "the first offer (lost)", 20)
            await eventually(
                lambda: receiving(a1, "room:r2") and receiving(a2, "room:r1"),
                "media both ways",
                deadline + 15,
            )
            lost_at, first = lost[0]
            assert relayed and relayed[0].conn != first.conn
            assert relayed[0].to == first.to
            # Media came by the deadline's new offer, not sooner.
            assert time.monotonic() - lost_at >= deadline
