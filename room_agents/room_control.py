"""The room agent's room control: the calls, the outgoing media and what they report.

It carries out what the timeline and the touch panel decide: join a session (or
rejoin it on a new connection) and offer to the peers already there, leave it,
switch the camera live, privacy, content share. It answers the peers' offers,
answers and candidates, reports the first frames and the media figures, and
publishes the ``room-state`` the touch panel shows whenever it changes. Joined
state is explicit: a session is in ``sessions`` once its calls exist and in
``joined_on`` once the server admitted the room on the current connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Literal

from common.peers import SFU_PEER
from common.tasks import TaskSet
from room_agents.calls import Outgoing, SessionCalls, warm_up
from room_agents.capture import RoomDevices
from room_agents.config import AgentConfig
from room_agents.connection import Connection, ServerClock
from room_agents.content import ContentShare, content_spec
from room_agents.health import ConnectionStats, ProcessMonitor, with_figures
from room_agents.ice import session_ice_servers
from room_agents.media import OutgoingAudioTrack, OutgoingVideoTrack, PrivacyCard, StartingCard
from room_agents.screen import Screen
from room_agents.selected_pair import with_pair
from room_agents.sfu import joined_outdated
from signalling import protocol as p
from signalling.client import ConnectionLost, SignallingClient, SignallingError

log = logging.getLogger(__name__)

STATS_INTERVAL = 2.0

Outcome = tuple[bool, str | None, str | None]  # (ok, error code, message)
OK: Outcome = (True, None, None)
Milestone = Literal["first-frame", "live"]


def outgoing_media(
    config: AgentConfig, clock: ServerClock, devices: RoomDevices, content: ContentShare | None
) -> Outgoing:
    """The room's own camera (behind its starting and privacy cards), microphone and
    content source."""
    card = StartingCard(
        clock, config.width, config.height, config.fps, label=config.label, title=""
    )
    privacy = PrivacyCard(clock, config.width, config.height, config.fps, config.label)
    return Outgoing(
        video=OutgoingVideoTrack(devices.camera, card, fps=config.fps, privacy_card=privacy),
        audio=OutgoingAudioTrack(devices.microphone),
        content=content,
    )


class RoomControl:
    def __init__(
        self,
        config: AgentConfig,
        clock: ServerClock,
        connection: Connection,
        screen: Screen,
        devices: RoomDevices,
    ) -> None:
        self.clock = clock
        self.connection = connection
        self.screen = screen
        spec = content_spec(config.content, config.fps)
        self.content = (
            ContentShare(spec, clock, config.width, config.height, config.fps)
            if spec is not None
            else None
        )
        self.outgoing = outgoing_media(config, clock, devices, self.content)
        self.sessions: dict[str, SessionCalls] = {}
        self.joined_on: dict[str, SignallingClient] = {}  # session -> connection it joined on
        self.peer_names: dict[str, str] = {}  # peer id -> name, from joined and peer-joined
        self.violations: list[str] = []
        self.reported: set[tuple[str, str]] = set()
        self._state_sent: tuple[SignallingClient, p.RoomControlState] | None = None
        self._tasks = TaskSet()
        self._warmed = False
        self.connection_stats = ConnectionStats()
        self.process = ProcessMonitor()
        screen.on_first_frame = self._first_frame
        screen.on_first_camera_frame = self._first_camera_frame

    @property
    def current_session(self) -> str | None:
        """The session joined last."""
        return next(reversed(self.joined_on), None)

    @property
    def sharing(self) -> bool:
        return self.content is not None and self.content.sharing

    def connected(self) -> None:
        """A new welcome: calls made before it (from the cache) learn who we are, and
        every call the deployment's ICE servers and networks."""
        link = self.connection
        for calls in self.sessions.values():
            calls.self_id = link.self_id
            self._use_network(calls, link.ice_servers)
        self._tasks.spawn(self.publish_state())
        if not self._warmed:  # once, after the first welcome pinned the host addresses
            self._warmed = True
            self._tasks.spawn(self._warm_up())

    async def _warm_up(self) -> None:
        try:
            await warm_up()
        except Exception:  # an optimisation: a failure costs the first call a few ms
            log.warning("media warm-up failed", exc_info=True)

    # --- joining and leaving ----------------------------------------------------------

    async def ensure_joined(self, entry: p.ScheduleEntry) -> SignallingError | None:
        """Join (or rejoin on a new connection) and offer to the peers already there;
        the server's refusal, or ConnectionLost, is returned (and logged), not raised."""
        calls = self.sessions.get(entry.session_id)
        link = self.connection
        if calls is None:
            calls = SessionCalls(
                entry.session_id,
                link.self_id,
                link.send,
                self.outgoing,
                self.screen,
                link.ice_servers,
                link.networks,
                self.violations.extend,
            )
            calls.on_suspect = self._check_link
            self.sessions[entry.session_id] = calls
            self.outgoing.video.set_card_title(entry.title)
        client = link.client
        if client is None:
            return ConnectionLost("not connected")
        if self.joined_on.get(entry.session_id) is client:
            return None
        before = calls.serial  # connections made from here on came after our join
        told = calls.topology_told
        try:
            joined = await client.join(entry.session_id, entry.ticket)
        except SignallingError as exc:
            log.warning("join %s refused: %s", entry.session_id, exc)
            return exc
        self.joined_on.pop(entry.session_id, None)  # re-insert: the latest joined is last
        self.joined_on[entry.session_id] = client
        log.info("joined %s with %d peer(s)", entry.session_id, len(joined.peers))
        self._use_network(calls, joined.ice_servers or link.ice_servers)
        for peer in joined.peers:
            self.peer_names[peer.peer_id] = peer.name
            calls.members.add(peer.peer_id)
        if joined_outdated(joined.epoch, calls.epoch, told_since=calls.topology_told != told):
            log.info(
                "joined %s at epoch %d; epoch %d was told since: kept",
                entry.session_id,
                joined.epoch,
                calls.epoch,
            )
            return None
        moved = await calls.move(joined.topology, joined.epoch, joined=True, before=before)
        if calls.topology == "sfu":
            # On an SFU we publish, and the server offers us the others' publications.
            if not moved and not calls.has_healthy(SFU_PEER):
                await calls.publish()
            elif not moved:
                await calls.offer_again(SFU_PEER)  # lost with the old link, perhaps
            if not moved:
                await calls.subscribe_again()
            return None
        for peer in joined.peers:
            if not calls.has_healthy(peer.peer_id):
                await calls.offer_to(peer.peer_id)
            else:
                await calls.offer_again(peer.peer_id)  # lost with the old link, perhaps
        return None

    def _check_link(self) -> None:
        """A call's path went quiet: send a ping on the signalling link now. If our
        public address changed, the server's reset comes back at once and the link
        reconnects while the call's deadline runs, instead of at its next heartbeat
        (up to 5 s later), after the re-offer was lost on it."""
        if self.connection.client is not None:
            self._tasks.spawn(self._ping_link())

    async def _ping_link(self) -> None:
        with contextlib.suppress(SignallingError):
            await self.connection.send(p.Ping(t=self.clock.now()))

    def _use_network(self, calls: SessionCalls, servers: list[p.IceServer]) -> None:
        """The session's ICE servers (only a TURN credential minted for this session and
        room: room_agents.ice.session_ice_servers), the allowed networks and the policy."""
        link = self.connection
        kept, dropped = session_ice_servers(
            servers, calls.session_id, link.self_id, self.clock.now()
        )
        if dropped:
            log.info("%s: TURN credential not used (%s)", calls.session_id, "; ".join(dropped))
        if kept or not servers:
            calls.update_network(kept, link.networks)
        calls.ice_policy = link.ice_policy

    async def forget_unjoined(self, session_id: str) -> None:
        """A join that failed: drop the calls object, without a leave."""
        if session_id in self.joined_on:
            return
        calls = self.sessions.pop(session_id, None)
        if calls is not None:
            await calls.close()

    async def leave(self, session_id: str) -> None:
        calls = self.sessions.pop(session_id, None)
        self.joined_on.pop(session_id, None)
        if calls is not None:
            await calls.close()
        with contextlib.suppress(SignallingError):
            await self.connection.send(p.Leave(session_id=session_id))
        log.info("left %s", session_id)

    def set_live(self, live: bool, now: float) -> None:
        """Camera (live) or starting card."""
        if live != self.outgoing.video.live:
            self.outgoing.video.set_live(live)
            log.info("camera %s at %.3f", "live" if live else "off", now)

    # --- what the peers send ----------------------------------------------------------

    async def on_offer(self, message: p.Offer) -> None:
        calls = self.sessions.get(message.session_id)
        if calls is not None:
            await calls.on_offer(message)

    async def on_answer(self, message: p.Answer) -> None:
        calls = self.sessions.get(message.session_id)
        if calls is not None:
            await calls.on_answer(message)

    async def on_candidate(self, message: p.Candidate) -> None:
        calls = self.sessions.get(message.session_id)
        if calls is not None:
            await calls.on_candidate(message)

    async def on_topology(self, message: p.TopologyChange) -> None:
        """The session moved (to an SFU, or to another one): a higher epoch closes its
        connections and publishes again; an older or repeated one changes nothing."""
        calls = self.sessions.get(message.session_id)
        if calls is not None:
            calls.topology_told += 1
            await calls.move(message.topology, message.epoch, joined=False, before=calls.serial)

    def on_peer_joined(self, message: p.PeerJoined) -> None:
        self.peer_names[message.peer.peer_id] = message.peer.name
        calls = self.sessions.get(message.session_id)
        if calls is not None:
            calls.members.add(message.peer.peer_id)

    async def on_peer_left(self, message: p.PeerLeft) -> None:
        calls = self.sessions.get(message.session_id)
        if calls is not None:
            await calls.peer_left(message.peer_id)

    # --- the touch panel --------------------------------------------------------------

    def control_state(self) -> p.RoomControlState:
        """What the touch panel shows; ``session_id`` is the session joined last."""
        return p.RoomControlState(
            privacy=self.outgoing.video.privacy,
            content_share=self.sharing,
            content_available=self.content is not None,
            session_id=self.current_session,
        )

    async def publish_state(self) -> None:
        """Send ``room-state`` on a new connection and whenever the state changes."""
        client, state = self.connection.client, self.control_state()
        if client is None or self._state_sent == (client, state):
            return
        self._state_sent = (client, state)
        with contextlib.suppress(SignallingError):
            await client.send(p.RoomState(state=state))

    def set_privacy(self, on: bool) -> Outcome:
        self.outgoing.video.set_privacy(on)
        self.outgoing.audio.muted = on
        return OK

    async def share_content(self, on: bool) -> Outcome:
        if self.content is None:
            if on:
                return False, p.ErrorCode.NO_CONTENT_SOURCE, "this room has no content source"
            return OK
        if not on:
            await self.content.stop_sharing()
            return OK
        error = await self.content.share()
        if error is not None:
            return False, p.ErrorCode.NO_CONTENT_SOURCE, error
        return OK

    # --- reports ----------------------------------------------------------------------

    def _first_frame(self, peer_id: str, at: float) -> None:
        self._milestone(peer_id, "first-frame", at)

    def _first_camera_frame(self, peer_id: str, at: float) -> None:
        self._milestone(peer_id, "live", at)

    def _milestone(self, peer_id: str, event: Milestone, at: float) -> None:
        for session_id, calls in self.sessions.items():
            if peer_id in calls.media_calls() and (session_id, event) not in self.reported:
                self.reported.add((session_id, event))
                log.info("%s in %s at %.3f (from %s)", event, session_id, at, peer_id)
                self._tasks.spawn(self._report(p.Stats(session_id=session_id, event=event, at=at)))

    async def _report(self, stats: p.Stats) -> None:
        # A milestone must not be lost to a reconnect: retry until it is sent.
        while True:
            try:
                await self.connection.send(stats)
                return
            except SignallingError:
                await self.connection.connected.wait()

    async def stats_loop(self) -> None:
        while True:
            await asyncio.sleep(STATS_INTERVAL)
            snapshot = self.screen.snapshot()
            process = self.process.sample()
            for session_id, calls in list(self.sessions.items()):
                carried = calls.media_calls()  # by the member whose media they bring
                media = [m for m in snapshot if m.peer_id in carried]
                if media and self.connection.client is not None:
                    figures = await self.connection_stats.figures(carried)
                    pairs = calls.media_pairs()  # after the await: calls may have gone
                    media = [
                        with_pair(with_figures(m, figures.get(m.peer_id)), pairs.get(m.peer_id))
                        for m in media
                    ]
                    stats = p.Stats(session_id=session_id, media=media, process=process)
                    with contextlib.suppress(SignallingError):
                        await self.connection.send(stats)
            self.connection_stats.forget(
                (peer_id, call.conn)
                for c in self.sessions.values()
                for peer_id, call in c.media_calls().items()
            )

    # --- the end ----------------------------------------------------------------------

    async def close(self) -> None:
        """Leave every session (the others see ``peer-left``, the record gets left_at),
        then stop the outgoing media and the content source."""
        for session_id in list(self.sessions):
            await self.leave(session_id)
        self.outgoing.video.stop()
        self.outgoing.audio.stop()
        if self.content is not None:
            await self.content.close()

    async def close_tasks(self) -> None:
        await self._tasks.close()
