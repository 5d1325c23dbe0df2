"""The peer connections of one session: one RTCPeerConnection per remote peer (mesh).

Rules (docs/protocol.md): the later joiner offers; an offer from a peer replaces
any older connection with that peer (aiortc has no ICE restart, so recovery is a
new RTCPeerConnection); every received track is drained by the screen; every SDP
we send is checked against the deployment's candidate address filter. Remote
peers may be rooms or browser guests: a browser may trickle its candidates
(``candidate`` messages), which are added to the connection they name; the agent
itself never trickles.

Every connection carries three media sections, in this order: the camera, the
microphone, and a second video transceiver for shared content
(room_agents.content), which sends only while the room shares and is ``recvonly``
in a room without a content source. A video track that arrives on that
transceiver is content, and the screen shows it as such. The order matters to an
answering agent: aiortc gives an offered m-line to the first transceiver of its
kind without a mid, so the camera takes the first video section and content the
second. A peer whose offer has no second video section (an older agent, a browser
that does not ask for content) gets none: the answering agent adds the content
transceiver only when the offer has that section (aiortc cannot answer with a
transceiver the offer did not ask for).

Connections also carry the liveness channel (room_agents.liveness), last: the
offerer always opens it, the answerer when the offer has a data section. A path
found dead on it is rebuilt at once, as after an ICE failure: the connection is
closed and the peer whose id sorts first offers again.

Call set-up is on the session's critical path (join -> first frame), so the calls
install room_agents.ice_pacing (ICE ends as soon as its last check does, not one
20 ms pacing period later) and room_agents.jitter (a received video frame goes to the
decoder with its last packet, not with the next frame's first), and ``warm_up`` builds
one throwaway offer when the room connects, so the first real call does not pay for
aiortc's first certificate and first gathering.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiortc import RTCPeerConnection, RTCRtpTransceiver, RTCSessionDescription
from aiortc.contrib.media import MediaRelay
from aiortc.sdp import candidate_from_sdp

from common.tasks import TaskSet
from room_agents.content import ContentShare
from room_agents.ice import filter_sdp, rtc_configuration
from room_agents.ice_pacing import install_check_pacing
from room_agents.ice_triggered import install_triggered_checks
from room_agents.jitter import install_marker_release
from room_agents.liveness import PathWatch, create_channel
from room_agents.media import OutgoingVideoTrack, SyntheticAudioTrack
from room_agents.screen import Screen
from signalling import protocol as p
from signalling.candidates import Network, address_allowed, candidate_address
from signalling.client import SignallingError

log = logging.getLogger(__name__)

Send = Callable[[object], Awaitable[None]]


def new_conn_id() -> str:
    return secrets.token_hex(6)


async def warm_up() -> None:
    """Build and drop one offer like a real call's (camera, microphone, content, data
    channel), never sent nor connected: the process's first DTLS certificate (the
    crypto backend's start-up), SDP and gathering cost several ms that would otherwise
    fall on the first call's set-up. No ICE servers, so it gathers only the pinned
    host addresses and sends nothing to a STUN or TURN server."""
    pc = RTCPeerConnection(rtc_configuration([]))
    try:
        pc.addTransceiver("video", direction="sendrecv")
        pc.addTransceiver("audio", direction="sendrecv")
        pc.addTransceiver("video", direction="recvonly")
        pc.createDataChannel("warm-up")
        await pc.setLocalDescription(await pc.createOffer())
    finally:
        await pc.close()


def video_sections(sdp: str) -> int:
    """How many video media sections (``m=video``) an SDP has."""
    return sum(1 for line in sdp.splitlines() if line.startswith("m=video "))


@dataclass(slots=True)
class Outgoing:
    """The room's own media, shared by every peer connection through unbuffered relays."""

    video: OutgoingVideoTrack
    audio: SyntheticAudioTrack
    relay: MediaRelay = field(default_factory=MediaRelay)
    content: ContentShare | None = None  # None: the room has no content source


@dataclass(slots=True)
class PeerCall:
    peer_id: str
    conn: str
    pc: RTCPeerConnection
    offerer: bool
    content: RTCRtpTransceiver | None = None
    liveness: PathWatch | None = None

    @property
    def healthy(self) -> bool:
        return self.pc.connectionState in ("new", "connecting", "connected")


class SessionCalls:
    def __init__(
        self,
        session_id: str,
        self_id: str,
        send: Send,
        outgoing: Outgoing,
        screen: Screen,
        ice_servers: list[p.IceServer],
        networks: list[Network],
        on_violation: Callable[[list[str]], None],
    ) -> None:
        self.session_id = session_id
        self.self_id = self_id
        self._send = send
        self._outgoing = outgoing
        self._screen = screen
        self._ice_servers = ice_servers
        self._networks = networks
        self._on_violation = on_violation
        self.ice_policy: p.IcePolicy = "all"  # relay: only TURN relay candidates
        self.calls: dict[str, PeerCall] = {}
        self.members: set[str] = set()
        self._tasks = TaskSet()
        install_check_pacing()
        install_triggered_checks()  # a relayed check lost for want of a permission
        install_marker_release()

    def update_network(self, ice_servers: list[p.IceServer], networks: list[Network]) -> None:
        self._ice_servers = ice_servers
        self._networks = networks

    def has_healthy(self, peer_id: str) -> bool:
        call = self.calls.get(peer_id)
        return call is not None and call.healthy

    def _new_pc(self, peer_id: str, conn: str, offerer: bool, content: bool = True) -> PeerCall:
        pc = RTCPeerConnection(rtc_configuration(self._ice_servers, self.ice_policy))
        call = PeerCall(peer_id=peer_id, conn=conn, pc=pc, offerer=offerer)
        pc.addTrack(self._outgoing.relay.subscribe(self._outgoing.video, buffered=False))
        pc.addTrack(self._outgoing.relay.subscribe(self._outgoing.audio, buffered=False))
        share = self._outgoing.content
        if content and share is not None:
            call.content = pc.addTransceiver(share.track(), direction="sendrecv")
        elif content:
            call.content = pc.addTransceiver("video", direction="recvonly")

        @pc.on("track")
        def on_track(track: Any) -> None:
            if call.content is not None and track is call.content.receiver.track:
                self._screen.attach_content(peer_id, track)
            elif track.kind == "video":
                self._screen.attach_video(peer_id, track)
            else:
                self._screen.attach_audio(peer_id, track)

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            state = pc.connectionState
            log.info("session %s peer %s connection %s", self.session_id, peer_id, state)
            if state == "failed":
                await self._rebuild(call)

        if offerer:
            self._watch(call)
        return call

    def _watch(self, call: PeerCall) -> None:
        def dead() -> None:
            self._tasks.spawn(self._rebuild(call))

        name = f"session {self.session_id} peer {call.peer_id}"
        call.liveness = PathWatch(create_channel(call.pc), dead, name=name)

    async def _rebuild(self, call: PeerCall) -> None:
        """Replace a connection that failed or whose path died, if it is still current."""
        if self.calls.get(call.peer_id) is not call:
            return
        await self.drop(call.peer_id)
        # Only one side re-offers, or both would offer at once (glare).
        if call.peer_id in self.members and self.self_id < call.peer_id:
            try:
                await self.offer_to(call.peer_id)
            except SignallingError as exc:
                # Signalling is away too: drop the offer nobody got, so that the rejoin
                # offers again (to every peer without a healthy connection).
                log.warning("cannot offer to %s again: %s", call.peer_id, exc)
                await self.drop(call.peer_id)

    def _local_sdp(self, pc: RTCPeerConnection) -> str:
        sdp, removed = filter_sdp(pc.localDescription.sdp, self._networks)
        if removed:
            log.error("removed candidates outside the allowed networks: %s", removed)
            self._on_violation(removed)
        return sdp

    async def offer_to(self, peer_id: str) -> None:
        self.members.add(peer_id)
        await self.drop(peer_id)
        call = self._new_pc(peer_id, new_conn_id(), offerer=True)
        self.calls[peer_id] = call
        await call.pc.setLocalDescription(await call.pc.createOffer())
        await self._send(
            p.Offer(
                session_id=self.session_id, to=peer_id, sdp=self._local_sdp(call.pc), conn=call.conn
            )
        )

    async def on_offer(self, message: p.Offer) -> None:
        peer_id = message.from_
        if peer_id is None:
            return
        self.members.add(peer_id)
        await self.drop(peer_id)  # a new offer replaces the older connection
        content = video_sections(message.sdp) >= 2
        call = self._new_pc(peer_id, message.conn, offerer=False, content=content)
        self.calls[peer_id] = call
        sdp, removed = filter_sdp(message.sdp, self._networks)
        if removed:
            self._on_violation(removed)
        await call.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        if call.pc.sctp is not None:
            self._watch(call)
        await call.pc.setLocalDescription(await call.pc.createAnswer())
        await self._send(
            p.Answer(
                session_id=self.session_id, to=peer_id, sdp=self._local_sdp(call.pc), conn=call.conn
            )
        )

    async def on_answer(self, message: p.Answer) -> None:
        call = self.calls.get(message.from_ or "")
        if call is None or call.conn != message.conn or not call.offerer:
            return  # an answer to a connection we already replaced
        if call.pc.signalingState != "have-local-offer":
            return
        sdp, removed = filter_sdp(message.sdp, self._networks)
        if removed:
            self._on_violation(removed)
        await call.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))

    async def on_candidate(self, message: p.Candidate) -> None:
        """A candidate trickled by a browser for the connection ``conn``; an absent or
        empty ``candidate`` ends them. Candidates for a replaced connection are dropped,
        and so are those outside the allowed networks (host names included)."""
        call = self.calls.get(message.from_ or "")
        if call is None or call.conn != message.conn or call.pc.remoteDescription is None:
            return
        text = (message.candidate or "").strip()
        if not text:
            await call.pc.addIceCandidate(None)
            return
        address = candidate_address(text)
        if address is None or not address_allowed(address, self._networks):
            self._on_violation([address or text[:60]])
            return
        candidate = candidate_from_sdp(text.removeprefix("a=").removeprefix("candidate:"))
        candidate.sdpMid = message.sdp_mid
        candidate.sdpMLineIndex = message.sdp_mline_index
        if candidate.sdpMid is None and candidate.sdpMLineIndex is None:
            candidate.sdpMLineIndex = 0  # bundled: the first m-line carries the transport
        await call.pc.addIceCandidate(candidate)

    async def peer_left(self, peer_id: str) -> None:
        self.members.discard(peer_id)
        await self.drop(peer_id)

    async def drop(self, peer_id: str) -> None:
        call = self.calls.pop(peer_id, None)
        if call is None:
            return
        if call.liveness is not None:
            await call.liveness.close()
        await self._screen.detach(peer_id)
        with contextlib.suppress(Exception):
            await call.pc.close()

    async def close(self) -> None:
        await self._tasks.close()  # spares a rebuild that ends the session itself
        for peer_id in list(self.calls):
            await self.drop(peer_id)
        self.members.clear()
