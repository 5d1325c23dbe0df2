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
closed and a new offer made (who makes it: ``re_offers``).

In an SFU session (room_agents.sfu, docs/protocol.md section 20) the same class holds
the session's connections with the SFU instead, keyed by their addressees: ``sfu`` (our
publication: it sends camera, microphone and content, receives nothing, and carries no
liveness channel) and ``sfu:<P>`` (P's publication: it receives, sends nothing, and what
it carries goes to the screen as P's). Only the publication encodes our media: however
many members the session has, the room uploads one camera stream.

A move from a mesh to an SFU is made before it breaks (room_agents.sfu
``retire_mesh_call``): each connected mesh call stays, sending and receiving, until the
member's subscription is connected and the screen decoded its first camera frame (the
screen switches to the subscription's tracks at their first frames) and, with another
agent, until that agent said on the liveness channel that its subscription of us
delivers too (``SFU_DELIVERS``), or for ``mesh_keep`` seconds at most; a kept call is
never offered again (``offer_to`` makes no mesh call on an SFU) and a member's mesh
offer is still ignored.

A connection that never connects is rebuilt too: liveness arms only on a working path,
and aioice's checks retransmit for about a minute before they fail, so every call has a
connect deadline (``CONNECT_DEADLINE``) after which a call still ``new`` or
``connecting`` is rebuilt as a failed one. Its timer belongs to the call: it ends when
the call connects, is dropped or replaced, or the session's calls close.

Call set-up is on the session's critical path (join -> first frame), so the calls
install room_agents.ice_pacing (ICE ends as soon as its last check does, not one
20 ms pacing period later) and room_agents.jitter (a received video frame goes to the
decoder with its last packet, not with the next frame's first), and ``warm_up`` builds
one throwaway offer when the room connects, so the first real call does not pay for
aiortc's first certificate and first gathering. They also install
room_agents.ice_triggered (a relayed check lost for want of a permission is sent again at
once) and room_agents.ice_relay_pairs (our relay never checks the LAN address of a peer
that has a relay of its own: a TURN server without a route there drops the allocation).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from aiortc import RTCPeerConnection, RTCRtpTransceiver, RTCSessionDescription
from aiortc.contrib.media import MediaRelay
from aiortc.sdp import candidate_from_sdp

from common.peers import SFU_PEER, sfu_peer_id, sfu_publisher
from common.tasks import TaskSet
from room_agents.content import ContentShare
from room_agents.early_reports import install_early_reports
from room_agents.ice import filter_sdp, rtc_configuration
from room_agents.ice_pacing import install_check_pacing
from room_agents.ice_relay_pairs import install_relay_pair_rule
from room_agents.ice_triggered import install_triggered_checks
from room_agents.jitter import install_marker_release
from room_agents.jitter_holes import install_hole_deadline
from room_agents.liveness import PathWatch, create_channel
from room_agents.media import OutgoingVideoTrack, SyntheticAudioTrack
from room_agents.rate_recall import install_rate_recall
from room_agents.rtp_pacing import install_video_pacing
from room_agents.screen import Screen
from room_agents.selected_pair import PairReport, selected_pair
from room_agents.sfu import (
    MESH_KEEP,
    PUBLISH_DIRECTION,
    SFU_DELIVERS,
    media_peer,
    moves,
    recovery,
    retire_mesh_call,
)
from room_agents.vp8_rate import install_stepped_vp8
from signalling import protocol as p
from signalling.candidates import Network, address_allowed, candidate_address
from signalling.client import SignallingError

log = logging.getLogger(__name__)

Send = Callable[[object], Awaitable[None]]


# How long ending the session waits for its connections to close (TURN allocations
# given back) before it cancels what is left.
CLOSE_WAIT = 5.0

# A call not connected this long after it began (our offer made, or the peer's offer
# received) is rebuilt as a failed one. Long enough for the slowest honest set-up: TURN
# over TLS through a loaded machine (the lab's relayed TLS calls showed their first frame
# up to ~2.8 s after the offer, docs/architecture.md), or a gathering that waits out
# aioice's 5 s timeout for a STUN or TURN answer that never comes, then ICE and DTLS; and
# a browser guest may hold its answer up to 5 s for its camera. Short enough that a
# session does not sit without media for the minute aioice's checks retransmit before
# they fail (a lab study saw calls stay ``connecting`` for more than 30 s).
CONNECT_DEADLINE: Final = 10.0


async def _close_quietly(pc: RTCPeerConnection) -> None:
    with contextlib.suppress(Exception):
        await pc.close()


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


def re_offers(self_id: str, peer_id: str, *, agent_peer: bool, awaiting_answer: bool) -> bool:
    """Whether we offer again after dropping a connection that failed, whose path died,
    or that never connected (docs/protocol.md, section 9, "Who re-offers").

    - With an agent (it has spoken on the liveness channel), the side that found the
      connection broken offers at once; crossing offers are settled by ``incoming_offer``.
    - Our own offer still without an answer: we offer again, whatever the ids. The peer
      may never have received it (lost with a dying WebSocket, or a browser page that
      never answered), so it has no connection and no deadline of its own, and nobody
      else would; if it did get it and re-offers too, the glare rule keeps one offer.
    - Otherwise (a browser page, or a connection that never carried the ping) only the
      peer whose id sorts first offers, so that both never offer at once.
    """
    return agent_peer or awaiting_answer or self_id < peer_id


def connect_overdue(state: str) -> bool:
    """At the connect deadline, a connection in ``state`` never connected and is rebuilt.
    ``failed`` is rebuilt by its own event, ``closed`` was dropped, and a connection
    that reached ``connected`` had its deadline cancelled then (aiortc has no
    ``disconnected``: after ``connected`` only ``failed`` or ``closed`` follow)."""
    return state in ("new", "connecting")


OfferOutcome = Literal["answer", "keep-ours", "repeat-answer"]


def incoming_offer(self_id: str, peer_id: str, conn: str, current: PeerCall | None) -> OfferOutcome:
    """What an offer (connection ``conn``) from ``peer_id`` does to our current
    connection with that peer (docs/protocol.md, "Glare").

    - ``repeat-answer``: it names the connection we already answered (the peer sent it
      again because our answer may have been lost on a signalling link that died).
    - ``keep-ours``: both sides re-offered at once (each found the path dead), and our
      offer still awaits its answer: the peer whose id sorts first keeps its own offer
      (and sends it again, in case the first copy was lost), the other one yields.
    - ``answer``: anything else; the new offer replaces the connection.
    """
    if current is None:
        return "answer"
    if not current.offerer and current.conn == conn:
        return "repeat-answer"
    if current.awaiting_answer and self_id < peer_id:
        return "keep-ours"
    return "answer"


def install_narrow_link_patches() -> None:
    """What keeps video moving on a link that narrows (docs/architecture.md, "Narrow
    links"): a hole in received video is given up after a deadline for the next
    keyframe, VP8 follows the estimate in steps with a cap per picture size, video
    leaves paced, the receiver's estimate climbs back fast to what the link carried,
    and a video receiver that is losing packets reports it at once.
    Whole process, idempotent; bench/network's ``--product`` peers install it too."""
    install_marker_release()
    install_hole_deadline()
    install_stepped_vp8()
    install_video_pacing()
    install_rate_recall()
    install_early_reports()


def received_packets(pc: RTCPeerConnection) -> int:
    """Datagrams received on the connection's DTLS transports (media, RTCP and the data
    channels alike), from aiortc's own counter (its transport stats); 0 if it is gone."""
    transports = {id(t.receiver.transport): t.receiver.transport for t in pc.getTransceivers()}
    sctp = pc.sctp
    if sctp is not None:
        transports[id(sctp.transport)] = sctp.transport
    return sum(
        int(getattr(t, "_RTCDtlsTransport__rx_packets", 0) or 0) for t in transports.values()
    )


def transport_bytes(pc: RTCPeerConnection) -> tuple[int, int]:
    """Bytes received and sent so far on the connection's (bundled) transport: RTP,
    RTCP and DTLS, what the link carried; read from aiortc's transport counters."""
    for transceiver in pc.getTransceivers():
        for stat in transceiver.receiver.transport._get_stats().values():
            return int(getattr(stat, "bytesReceived", 0) or 0), int(
                getattr(stat, "bytesSent", 0) or 0
            )
    return 0, 0


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
    sent: p.Offer | p.Answer | None = None  # our SDP for this connection, to send again
    deadline: asyncio.Task[None] | None = None  # the connect deadline, until it connects
    serial: int = 0  # the order in which the session's calls were made
    decoded: bool = False  # the screen decoded a camera frame it received
    peer_served: bool = False  # a kept mesh call: the peer's subscription of us delivers

    @property
    def healthy(self) -> bool:
        return self.pc.connectionState in ("new", "connecting", "connected")

    @property
    def awaiting_answer(self) -> bool:
        """We offer on this connection and have no answer yet (the offer may still be
        gathering its candidates)."""
        return self.offerer and self.pc.remoteDescription is None

    @property
    def agent_peer(self) -> bool:
        """The peer speaks the liveness ping: another room agent, which follows the
        glare rule (a browser page may not)."""
        return self.liveness is not None and self.liveness.state.armed


def _stop_deadline(call: PeerCall) -> asyncio.Task[None] | None:
    """Cancel ``call``'s connect deadline; returns the task to await, unless it is the
    caller's own (a deadline that is rebuilding its call drops it)."""
    task, call.deadline = call.deadline, None
    if task is None or task is asyncio.current_task() or task.done():
        return None
    task.cancel()
    return task


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
        # Called when a path goes quiet (room_agents.liveness): the owner checks its
        # signalling link, which a change of our address breaks as well.
        self.on_suspect: Callable[[], None] | None = None
        self.calls: dict[str, PeerCall] = {}
        self.members: set[str] = set()
        self._tasks = TaskSet()  # rebuilds and the calls' connect deadlines
        self._closing = TaskSet()  # connections being closed (``drop``)
        self.connect_deadline: float = CONNECT_DEADLINE
        # How the session's media flows (docs/protocol.md, 20): the server's latest word.
        self.topology: p.Topology = "mesh"
        self.epoch = 0
        self.topology_told = 0  # ``topology`` messages received (room_control's join)
        self.serial = 0  # of the latest call made
        self.unsubscribed: set[str] = set()  # publishers whose ``subscribe`` was not sent
        # How long a mesh call may outlive a move to an SFU (room_agents.sfu.MESH_KEEP).
        self.mesh_keep: float = MESH_KEEP
        # Replaced and set when a subscription connects, fails or decodes: mesh calls
        # kept across a move wait on it (``_retire``).
        self._changed = asyncio.Event()
        install_check_pacing()
        install_triggered_checks()  # a relayed check lost for want of a permission
        install_relay_pair_rule()  # our relay never sent to a peer's LAN address
        install_narrow_link_patches()

    def update_network(self, ice_servers: list[p.IceServer], networks: list[Network]) -> None:
        self._ice_servers = ice_servers
        self._networks = networks

    def selected_pairs(self) -> dict[str, PairReport | None]:
        """Per remote peer, the candidate pair its media flows on (None: not yet)."""
        return {peer_id: selected_pair(call.pc) for peer_id, call in self.calls.items()}

    def received_bytes(self) -> dict[str, int]:
        """Per connection (by its addressee: a peer, ``sfu`` or ``sfu:<P>``), the bytes
        it has received so far (RTP, RTCP and DTLS: what the link carried)."""
        return {peer_id: transport_bytes(call.pc)[0] for peer_id, call in self.calls.items()}

    def sent_bytes(self) -> dict[str, int]:
        """Per connection, the bytes it has sent so far: the room's uplink, which in an
        SFU session is the publication's alone (subscriptions send only RTCP)."""
        return {peer_id: transport_bytes(call.pc)[1] for peer_id, call in self.calls.items()}

    def media_pairs(self) -> dict[str, PairReport | None]:
        """``selected_pairs`` by the member whose media each connection brings."""
        return {peer_id: selected_pair(call.pc) for peer_id, call in self.media_calls().items()}

    def media_calls(self) -> dict[str, PeerCall]:
        """The connections that bring a member's media, by that member: every call in a
        mesh, the subscriptions (``sfu:<P>`` as P) on an SFU."""
        return {
            media_peer(peer_id): call for peer_id, call in self.calls.items() if peer_id != SFU_PEER
        }

    def has_healthy(self, peer_id: str) -> bool:
        call = self.calls.get(peer_id)
        return call is not None and call.healthy

    def _new_pc(
        self,
        peer_id: str,
        conn: str,
        offerer: bool,
        content: bool = True,
        role: Literal["call", "publication", "subscription"] = "call",
    ) -> PeerCall:
        """A connection with ``peer_id``: a mesh ``call`` (sends and receives), our SFU
        ``publication`` (sends only) or a ``subscription`` (receives only: no track of
        ours is attached, so nothing is encoded for it)."""
        pc = RTCPeerConnection(rtc_configuration(self._ice_servers, self.ice_policy))
        self.serial += 1
        call = PeerCall(peer_id=peer_id, conn=conn, pc=pc, offerer=offerer, serial=self.serial)
        share = self._outgoing.content if role != "subscription" else None
        if role == "subscription":
            pc.addTransceiver("video", direction="recvonly")
            pc.addTransceiver("audio", direction="recvonly")
            if content:
                call.content = pc.addTransceiver("video", direction="recvonly")
        else:
            direction = PUBLISH_DIRECTION if role == "publication" else "sendrecv"
            video = self._outgoing.relay.subscribe(self._outgoing.video, buffered=False)
            audio = self._outgoing.relay.subscribe(self._outgoing.audio, buffered=False)
            pc.addTransceiver(video, direction=direction)
            pc.addTransceiver(audio, direction=direction)
            if content and share is not None:
                call.content = pc.addTransceiver(share.track(), direction=direction)
            elif content and role == "call":
                call.content = pc.addTransceiver("video", direction="recvonly")
        shown = media_peer(peer_id)  # a subscription's media is its publisher's

        @pc.on("track")
        def on_track(track: Any) -> None:
            if role == "publication":
                return  # the SFU sends nothing on it
            if call.content is not None and track is call.content.receiver.track:
                self._screen.attach_content(shown, track)
            elif track.kind == "video":
                self._screen.attach_video(shown, track)
                if role == "subscription":
                    self._tasks.spawn(self._decodes(call, track), name=f"decodes-{peer_id}")
            else:
                self._screen.attach_audio(shown, track)

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            state = pc.connectionState
            pair = selected_pair(pc) if state == "connected" else None
            via = f" ({pair['local']} -> {pair['remote']})" if pair is not None else ""
            log.info("session %s peer %s connection %s%s", self.session_id, peer_id, state, via)
            if state == "connected":
                _stop_deadline(call)
            self._notify()  # kept mesh calls may close (``_retire``)
            if state == "failed":
                await self._rebuild(call)

        if offerer and role == "call":
            self._watch(call)
        call.deadline = self._tasks.spawn(
            self._connect_deadline(call), name=f"connect-deadline-{peer_id}-{call.conn}"
        )
        return call

    def _notify(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def _decodes(self, call: PeerCall, track: Any) -> None:
        """Note when the screen decoded the first camera frame of a subscription (it
        ends, False, if the track ends first)."""
        if await self._screen.first_frame(track):
            call.decoded = True
            self._notify()
            publisher = sfu_publisher(call.peer_id)
            mesh = self.calls.get(publisher) if publisher is not None else None
            if mesh is not None and mesh.liveness is not None:
                # The member may stop sending to us on the mesh call it kept.
                channel = mesh.liveness.channel
                if channel.readyState == "open":
                    with contextlib.suppress(Exception):
                        channel.send(SFU_DELIVERS)

    def _hear_sfu_delivers(self, call: PeerCall, message: object) -> None:
        if message == SFU_DELIVERS and not call.peer_served:
            call.peer_served = True
            self._notify()

    async def _retire(self, call: PeerCall) -> None:
        """Close a mesh call kept across a move to an SFU once the member's
        subscription delivers, or ``mesh_keep`` seconds after the move."""
        loop = asyncio.get_running_loop()
        kept_at = loop.time()
        subscription_id = sfu_peer_id(call.peer_id)
        while self.calls.get(call.peer_id) is call:
            changed = self._changed
            subscription = self.calls.get(subscription_id)
            kept_for = loop.time() - kept_at
            reason = retire_mesh_call(
                mesh_connected=call.pc.connectionState == "connected",
                subscription_connected=(
                    subscription is not None and subscription.pc.connectionState == "connected"
                ),
                subscription_decoded=subscription is not None and subscription.decoded,
                peer_served=call.peer_served or not call.agent_peer,
                kept_for=kept_for,
                bound=self.mesh_keep,
            )
            if reason is not None:
                log.info(
                    "session %s: mesh call with %s (%s) closed %.2f s after the move (%s)",
                    self.session_id,
                    call.peer_id,
                    call.pc.connectionState,
                    kept_for,
                    reason,
                )
                await self._drop_call(call)
                return
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.mesh_keep - kept_for):
                    await changed.wait()

    async def _connect_deadline(self, call: PeerCall) -> None:
        """Rebuild ``call`` as a failed one if it has not connected ``connect_deadline``
        seconds from now (and is still the current connection with its peer)."""
        await asyncio.sleep(self.connect_deadline)
        if self.calls.get(call.peer_id) is not call:
            return
        state = call.pc.connectionState
        if not connect_overdue(state):
            return
        log.warning(
            "session %s peer %s: connection %s still %s %.1f s after it began: rebuilding",
            self.session_id,
            call.peer_id,
            call.conn,
            state,
            self.connect_deadline,
        )
        await self._rebuild(call)

    def _watch(self, call: PeerCall) -> None:
        def dead() -> None:
            self._tasks.spawn(self._rebuild(call))

        name = f"session {self.session_id} peer {call.peer_id}"
        call.liveness = PathWatch(
            create_channel(call.pc),
            dead,
            name=name,
            on_suspect=self.on_suspect,
            packets=lambda: received_packets(call.pc),
        )
        call.liveness.channel.on("message", lambda m: self._hear_sfu_delivers(call, m))

    async def _rebuild(self, call: PeerCall) -> None:
        """Replace a connection that failed or whose path died, if it is still current.

        The side that found it offers again at once when the peer is an agent: the
        other side may not find it for a while (after our address changed, it still
        hears us until we hang up), and if both offer, the glare rule keeps one offer
        (``incoming_offer``). With a browser page only the peer whose id sorts first
        offers, as before; an offer of ours never answered is made again by us
        (``re_offers``)."""
        if self.calls.get(call.peer_id) is not call:
            return
        awaiting_answer = call.awaiting_answer
        await self.drop(call.peer_id)
        rule = recovery(call.peer_id)
        if rule != "re-offer":
            await self._recover_sfu(call.peer_id, rule)
            return
        offers = re_offers(
            self.self_id,
            call.peer_id,
            agent_peer=call.agent_peer,
            awaiting_answer=awaiting_answer,
        )
        if call.peer_id in self.members and offers:
            try:
                await self.offer_to(call.peer_id)
            except SignallingError as exc:
                # Signalling is away too: drop the offer nobody got, so that the rejoin
                # offers again (to every peer without a healthy connection).
                log.warning("cannot offer to %s again: %s", call.peer_id, exc)
                await self.drop(call.peer_id)

    async def _recover_sfu(self, peer_id: str, rule: str) -> None:
        """Our publication is offered again; a subscription is asked for again (the
        server answers ``subscribe`` with a fresh offer from ``sfu:<P>``)."""
        if self.topology != "sfu":
            return  # the session moved on: the move made its own connections
        try:
            if rule == "publish":
                await self.publish()
                return
            publisher = sfu_publisher(peer_id)
            if publisher is not None and publisher in self.members:
                await self.subscribe(publisher)
        except SignallingError as exc:
            # The rejoin after the link comes back publishes, or subscribes, again
            # (RoomControl.ensure_joined).
            log.warning("session %s: cannot recover %s: %s", self.session_id, peer_id, exc)
            if rule == "publish":
                await self.drop(peer_id)

    async def subscribe(self, publisher: str) -> None:
        """Ask the server for a fresh offer of ``publisher``'s publication; one that
        cannot be sent now is asked for again at the rejoin (``subscribe_again``)."""
        self.unsubscribed.add(publisher)
        await self._send(p.Subscribe(session_id=self.session_id, publisher=publisher))
        self.unsubscribed.discard(publisher)

    async def subscribe_again(self) -> None:
        """After a rejoin: the subscriptions we could not ask for while the link was
        down, for members still there without a working one."""
        for publisher in sorted(self.unsubscribed):
            if publisher not in self.members or self.has_healthy(sfu_peer_id(publisher)):
                self.unsubscribed.discard(publisher)
                continue
            await self.subscribe(publisher)

    def _local_sdp(self, pc: RTCPeerConnection) -> str:
        sdp, removed = filter_sdp(pc.localDescription.sdp, self._networks)
        if removed:
            log.error("removed candidates outside the allowed networks: %s", removed)
            self._on_violation(removed)
        return sdp

    async def offer_to(self, peer_id: str) -> None:
        self.members.add(peer_id)
        if self.topology == "sfu":
            return  # never to a member on an SFU: our publication reaches them
        await self._offer(peer_id, "call")

    async def publish(self) -> None:
        """Offer our publication to ``sfu`` on a new connection (replacing the old)."""
        await self._offer(SFU_PEER, "publication")

    async def _offer(self, peer_id: str, role: Literal["call", "publication"]) -> None:
        await self.drop(peer_id)
        call = self._new_pc(peer_id, new_conn_id(), offerer=True, role=role)
        self.calls[peer_id] = call
        await call.pc.setLocalDescription(await call.pc.createOffer())
        if self.calls.get(peer_id) is not call:
            return  # the peer's offer replaced it while it gathered: ours is void
        call.sent = p.Offer(
            session_id=self.session_id, to=peer_id, sdp=self._local_sdp(call.pc), conn=call.conn
        )
        await self._send(call.sent)

    async def offer_again(self, peer_id: str) -> bool:
        """Send our offer to ``peer_id`` again if it still awaits its answer (it went out
        on a signalling link that has since died, perhaps with it); True if sent."""
        call = self.calls.get(peer_id)
        if call is None or not call.awaiting_answer or call.sent is None:
            return False  # nothing pending, or not gathered yet (it will go out then)
        await self._send(call.sent)
        return True

    async def on_offer(self, message: p.Offer) -> None:
        peer_id = message.from_
        if peer_id is None or peer_id == SFU_PEER:
            return  # the SFU answers our publication, it never offers one
        publisher = sfu_publisher(peer_id)
        if publisher is None and self.topology == "sfu":
            # A member's mesh offer from before the move: we only talk to the SFU now.
            log.info("session %s: mesh offer from %s ignored (SFU)", self.session_id, peer_id)
            return
        # An ``sfu:<P>`` offer is answered whatever we know: it may overtake ``joined``.
        self.members.add(publisher or peer_id)
        current = self.calls.get(peer_id)
        outcome = incoming_offer(self.self_id, peer_id, message.conn, current)
        if current is not None and outcome != "answer":
            log.info("session %s: offer from %s: %s", self.session_id, peer_id, outcome)
            if current.sent is not None:
                await self._send(current.sent)
            return
        await self.drop(peer_id)  # a new offer replaces the older connection
        content = video_sections(message.sdp) >= 2
        role: Literal["call", "subscription"] = "call" if publisher is None else "subscription"
        call = self._new_pc(peer_id, message.conn, offerer=False, content=content, role=role)
        self.calls[peer_id] = call
        sdp, removed = filter_sdp(message.sdp, self._networks)
        if removed:
            self._on_violation(removed)
        await call.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        if call.pc.sctp is not None and role == "call":
            self._watch(call)
        await call.pc.setLocalDescription(await call.pc.createAnswer())
        call.sent = p.Answer(
            session_id=self.session_id, to=peer_id, sdp=self._local_sdp(call.pc), conn=call.conn
        )
        await self._send(call.sent)

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
        self.unsubscribed.discard(peer_id)
        await self.drop(peer_id)
        await self.drop(sfu_peer_id(peer_id))

    async def move(self, topology: p.Topology, epoch: int, *, joined: bool, before: int) -> bool:
        """What the server told of the session's topology (``joined``, or a ``topology``
        message), applied (room_agents.sfu.moves): on a move, every connection closes
        but, on an SFU, the subscriptions made after call number ``before`` (they came
        with the new topology: an ``sfu:<P>`` offer may overtake the ``joined`` it
        follows), and, from a mesh, the mesh calls, each until its member's
        subscription delivers (``_retire``); then, on an SFU, our publication is
        offered. True if it moved."""
        if not moves((self.topology, self.epoch), (topology, epoch), joined=joined):
            return False
        log.info(
            "session %s: %s epoch %d -> %s epoch %d",
            self.session_id,
            self.topology,
            self.epoch,
            topology,
            epoch,
        )
        from_mesh = self.topology == "mesh"
        self.topology, self.epoch = topology, epoch
        self.unsubscribed.clear()  # the new SFU offers every publication itself
        for peer_id, call in list(self.calls.items()):
            subscription = sfu_publisher(peer_id) is not None
            if topology == "sfu" and subscription and call.serial > before:
                continue  # came with the new topology
            if (
                topology == "sfu"
                and from_mesh
                and not subscription
                and peer_id != SFU_PEER
                and call.pc.connectionState == "connected"  # else it shows nothing
            ):
                self._tasks.spawn(self._retire(call), name=f"retire-{peer_id}")
                continue  # make-before-break
            await self._drop_call(call)
        if topology == "sfu":
            await self.publish()
        return True

    async def drop(self, peer_id: str) -> None:
        """Forget the connection with ``peer_id`` at once; its RTCPeerConnection closes
        in the background: closing gives back its TURN allocation, a round trip to the
        TURN server (or several, or a timeout, when our address just changed), which a
        replacement must not wait for."""
        call = self.calls.get(peer_id)
        if call is not None:
            await self._drop_call(call)

    async def _drop_call(self, call: PeerCall) -> None:
        peer_id = call.peer_id
        if self.calls.get(peer_id) is call:
            del self.calls[peer_id]
        deadline = _stop_deadline(call)
        if deadline is not None:
            await asyncio.gather(deadline, return_exceptions=True)
        if call.liveness is not None:
            await call.liveness.close()
        shown = media_peer(peer_id)
        # A newer connection bringing the same member's media (its subscription, after
        # a move from a mesh) keeps its tiles.
        if peer_id != SFU_PEER and all(media_peer(k) != shown for k in self.calls):
            await self._screen.detach(shown)
        self._closing.spawn(_close_quietly(call.pc), name=f"close-{peer_id}")

    async def close(self) -> None:
        await self._tasks.close()  # spares a rebuild that ends the session itself
        for peer_id in list(self.calls):
            await self.drop(peer_id)
        await self._closing.drain(CLOSE_WAIT)
        await self._closing.close()
        self.members.clear()
