"""The room agent daemon: stays connected, follows the room's schedule, runs the calls.

Nobody in the room has to press anything. The agent keeps a WebSocket to
signalling (reconnecting with backoff and jitter), a local copy of its schedule,
and a timeline on the server's clock: at T - lead it joins behind the starting
card, at T it sends its camera, at T_end it leaves. Peer connections outlive a
lost WebSocket, so media keeps flowing while signalling is away.

The room's touch panel reaches the agent as ``control`` commands (through the
server): join a one-button session, leave, privacy, content share. The agent
answers each with a ``control-result`` and reports its ``room-state`` after
connecting and whenever it changes. Commands and the timeline take turns (one
lock), so a command never races the timeline's own join or leave.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import random
import ssl
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

from room_agents.calls import Outgoing, SessionCalls
from room_agents.capture import RoomDevices
from room_agents.config import AgentConfig, ConfigError
from room_agents.content import ContentShare, content_spec
from room_agents.health import ConnectionStats, ProcessMonitor, with_figures
from room_agents.ice import local_addresses_in, pin_host_addresses
from room_agents.layout import RoomView, bookings_from_schedule, names_from_schedule
from room_agents.media import OutgoingAudioTrack, OutgoingVideoTrack, PrivacyCard, StartingCard
from room_agents.readiness import ReadinessRunner
from room_agents.room_screen import make_screen
from room_agents.schedule import (
    Command,
    ScheduleCache,
    join_refusal,
    merge_state,
    next_change,
    plan_at,
    status_json,
)
from room_agents.screen import Screen
from signalling import protocol as p
from signalling.candidates import Network, parse_networks
from signalling.client import ConnectionLost, SignallingClient, SignallingError

log = logging.getLogger(__name__)

AGENT_VERSION = "telecentre-agent/0.1"
STATS_INTERVAL = 2.0
STATUS_INTERVAL = 0.5


def backoff_delay(attempt: int, base: float, cap: float, rng: random.Random) -> float:
    """Exponential backoff with full jitter: rooms that lost the server together do
    not all come back in the same millisecond."""
    return rng.uniform(base / 2, min(cap, base * 2**attempt))


class ServerClock:
    """Local wall clock plus the offset measured against the server."""

    def __init__(self, local: Callable[[], float] = time.time) -> None:
        self._local = local
        self.offset = 0.0

    def now(self) -> float:
        return self._local() + self.offset


def screen_report_path(config: AgentConfig) -> Path | None:
    """The room screen's report: ``screen.json`` beside the status file, or in the
    cache directory."""
    if config.status_file is not None:
        return config.status_file.with_name("screen.json")
    return config.cache_dir / "screen.json" if config.cache_dir is not None else None


class RoomAgent:
    def __init__(self, config: AgentConfig, screen: Screen | None = None) -> None:
        self.config = config
        self.clock = ServerClock()
        self.cache = ScheduleCache(config.cache_dir / "schedule.json" if config.cache_dir else None)
        self.entries: list[p.ScheduleEntry] = self.cache.load()
        cached_offset = self.cache.load_offset()
        if cached_offset is not None:
            self.clock.offset = cached_offset  # an agent restarted offline keeps server time
        self.client: SignallingClient | None = None
        self.connected = asyncio.Event()
        self.room_name = config.label  # the server's name for the room, once connected
        self.peer_names: dict[str, str] = {}  # peer id -> name, from joined and peer-joined
        self.screen = (
            screen
            if screen is not None
            else make_screen(config.screen, self.clock, screen_report_path(config), config.fps)
        )
        self.screen.show(self.room_view)
        self.screen.on_first_frame = self._first_frame
        self.screen.on_first_camera_frame = self._first_camera_frame
        self.devices = RoomDevices(config, self.clock)
        spec = content_spec(config.content, config.fps)
        self.content = (
            ContentShare(spec, self.clock, config.width, config.height, config.fps)
            if spec is not None
            else None
        )
        self.screen.on_audio_frame = self.devices.feed_speaker
        card = StartingCard(
            self.clock, config.width, config.height, config.fps, label=config.label, title=""
        )
        privacy = PrivacyCard(self.clock, config.width, config.height, config.fps, config.label)
        self.outgoing = Outgoing(
            video=OutgoingVideoTrack(
                self.devices.camera, card, fps=config.fps, privacy_card=privacy
            ),
            audio=OutgoingAudioTrack(self.devices.microphone),
            content=self.content,
        )
        self.sessions: dict[str, SessionCalls] = {}
        self.joined_on: dict[str, SignallingClient] = {}  # session -> connection it joined on
        self.commands: dict[str, Command] = {}  # session -> the touch panel's last word on it
        self._act = asyncio.Lock()  # the timeline and the touch panel take turns
        self._state_sent: tuple[SignallingClient, p.RoomControlState] | None = None
        self.reported: set[tuple[str, str]] = set()
        self.violations: list[str] = []
        self.ice_servers: list[p.IceServer] = []
        self.networks: list[Network] = parse_networks(["127.0.0.1/32"])
        self.self_id = "room:?"
        self.connected_at: float | None = None  # server clock, of the current connection
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._rng = random.Random()
        self.readiness = ReadinessRunner(self, config.readiness_lead)
        # A camera or microphone source that fails (or comes back) is checked at once.
        self.devices.on_change = self.readiness.wake
        self.connection_stats = ConnectionStats()
        self.process = ProcessMonitor()

    # --- the main loops -------------------------------------------------------------

    async def run(self) -> None:
        self.devices.start()
        await self.screen.start()
        timeline = asyncio.create_task(self._timeline_loop())
        others = [
            asyncio.create_task(self._connection_loop()),
            asyncio.create_task(self._stats_loop()),
            asyncio.create_task(self.readiness.run()),
        ]
        if self.config.status_file is not None:
            others.append(asyncio.create_task(self._status_loop(self.config.status_file)))
        try:
            # asyncio.wait, not gather: cancelling this task must not cancel the
            # connection before the agent has said goodbye on it.
            done, _ = await asyncio.wait([timeline, *others], return_when=asyncio.FIRST_EXCEPTION)
            for t in done:
                t.result()  # a loop that crashed is a bug: let it surface
        finally:
            # Stop acting on the schedule, leave while still connected, then stop the rest.
            timeline.cancel()
            await asyncio.gather(timeline, return_exceptions=True)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.shutdown(), 5.0)
            for t in others:
                t.cancel()
            await asyncio.gather(*others, return_exceptions=True)

    async def shutdown(self) -> None:
        """Leave every session (the others see ``peer-left``, the record gets left_at)."""
        for session_id in list(self.sessions):
            await self._leave(session_id)
        self.outgoing.video.stop()
        self.outgoing.audio.stop()
        await self.screen.close()
        await self.devices.close()
        if self.content is not None:
            await self.content.close()
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _connector(self) -> aiohttp.TCPConnector:
        """TLS to the server trusts the system's authorities, or only ``ca_file``'s."""
        if self.config.ca_file is None:
            return aiohttp.TCPConnector()
        try:
            context = ssl.create_default_context(cafile=str(self.config.ca_file))
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"cannot read CA file {self.config.ca_file}: {exc}") from None
        return aiohttp.TCPConnector(ssl=context)

    async def _connection_loop(self) -> None:
        attempt = 0
        async with aiohttp.ClientSession(connector=self._connector()) as http:
            while True:
                client = SignallingClient(
                    http, self.config.server_url, key=self.config.read_key(), agent=AGENT_VERSION
                )
                try:
                    welcome = await client.connect()
                    attempt = 0
                    self._on_welcome(client, welcome)
                    await self._serve(client)
                except (TimeoutError, ConnectionLost, SignallingError) as exc:
                    log.warning("signalling: %s", exc)
                finally:
                    self.client = None
                    self.connected.clear()
                    await client.close()
                delay = backoff_delay(
                    attempt, self.config.backoff_base, self.config.backoff_cap, self._rng
                )
                attempt += 1
                await asyncio.sleep(delay)

    def _on_welcome(self, client: SignallingClient, welcome: p.Welcome) -> None:
        self.client = client
        self.self_id = welcome.peer_id
        self.room_name = welcome.name
        self.clock.offset = client.clock_offset.offset
        self.ice_servers = list(welcome.ice_servers)
        self.networks = parse_networks(welcome.candidate_filter.allow)
        pin_host_addresses(local_addresses_in(self.networks))
        for calls in self.sessions.values():
            calls.self_id = self.self_id  # calls made before the first welcome (from the cache)
            calls.update_network(self.ice_servers, self.networks)
        self.connected_at = self.clock.now()
        self.connected.set()
        self._wake.set()
        self._spawn(self._publish_state())
        log.info(
            "connected as %s (%s), clock offset %.3f s",
            welcome.peer_id,
            welcome.name,
            self.clock.offset,
        )
        self._spawn(self._measure_offset(client))
        self.readiness.connected()

    async def _measure_offset(self, client: SignallingClient) -> None:
        with contextlib.suppress(SignallingError, asyncio.TimeoutError):
            for _ in range(5):
                await client.ping()
                self.clock.offset = client.clock_offset.offset
        if client.clock_offset.measured:
            self.cache.save_offset(self.clock.offset)
        self._wake.set()

    async def _serve(self, client: SignallingClient) -> None:
        while True:
            message = await client.recv()
            self.clock.offset = client.clock_offset.offset
            try:
                await self._handle(message)
            except (ConnectionLost, asyncio.CancelledError):
                raise
            except Exception:
                log.exception("while handling %s", message.type)

    async def _handle(self, message: p.ServerMessage) -> None:
        if isinstance(message, p.Schedule):
            self.cache.save(message)
            self.entries = list(message.sessions)
            self._wake.set()
        elif isinstance(message, p.SessionState):
            self.entries = merge_state(self.entries, message)
            self.cache.save_entries(self.entries)
            self._wake.set()
        elif isinstance(message, p.Offer):
            calls = self.sessions.get(message.session_id)
            if calls is not None:
                await calls.on_offer(message)
        elif isinstance(message, p.Answer):
            calls = self.sessions.get(message.session_id)
            if calls is not None:
                await calls.on_answer(message)
        elif isinstance(message, p.Candidate):
            calls = self.sessions.get(message.session_id)
            if calls is not None:
                await calls.on_candidate(message)
        elif isinstance(message, p.PeerJoined):
            self.peer_names[message.peer.peer_id] = message.peer.name
            calls = self.sessions.get(message.session_id)
            if calls is not None:
                calls.members.add(message.peer.peer_id)
        elif isinstance(message, p.PeerLeft):
            calls = self.sessions.get(message.session_id)
            if calls is not None:
                await calls.peer_left(message.peer_id)
        elif isinstance(message, p.Control):
            self._spawn(self._on_control(message))
        elif isinstance(message, p.Error):
            log.warning("server error %s: %s", message.code, message.message)

    async def _timeline_loop(self) -> None:
        """Every wake-up: compare what the schedule says with what we do, and fix it."""
        while True:
            now = self.clock.now()
            async with self._act:
                await self._reconcile(now)
            nxt = next_change(self.entries, now)
            delay = 1.0 if nxt is None else min(1.0, max(0.0, nxt - self.clock.now()))
            self._wake.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)

    async def _reconcile(self, now: float) -> None:
        plans = {
            e.session_id: (e, plan_at(e, now, self.commands.get(e.session_id)))
            for e in self.entries
        }
        for session_id in list(self.commands):
            if session_id not in plans:
                del self.commands[session_id]
        live = False
        for session_id, (entry, plan) in plans.items():
            if plan.in_call:
                await self._ensure_joined(entry)
                live = live or plan.live
            elif session_id in self.sessions:
                await self._leave(session_id)
        for session_id in list(self.sessions):
            if session_id not in plans:
                await self._leave(session_id)  # dropped from the schedule: cancelled or moved
        if live != self.outgoing.video.live:
            self.outgoing.video.set_live(live)
            log.info("camera %s at %.3f", "live" if live else "off", now)
        await self._publish_state()

    async def _ensure_joined(self, entry: p.ScheduleEntry) -> SignallingError | None:
        """Join (or rejoin on a new connection) and offer to the peers already there;
        the server's refusal, or ConnectionLost, is returned (and logged), not raised."""
        calls = self.sessions.get(entry.session_id)
        if calls is None:
            calls = SessionCalls(
                entry.session_id,
                self.self_id,
                self._send,
                self.outgoing,
                self.screen,
                self.ice_servers,
                self.networks,
                self.violations.extend,
            )
            self.sessions[entry.session_id] = calls
            self.outgoing.video.set_card_title(entry.title)
        client = self.client
        if client is None:
            return ConnectionLost("not connected")
        if self.joined_on.get(entry.session_id) is client:
            return None
        try:
            joined = await client.join(entry.session_id, entry.ticket)
        except SignallingError as exc:
            log.warning("join %s refused: %s", entry.session_id, exc)
            return exc
        self.joined_on.pop(entry.session_id, None)  # re-insert: the latest joined is last
        self.joined_on[entry.session_id] = client
        log.info("joined %s with %d peer(s)", entry.session_id, len(joined.peers))
        for peer in joined.peers:
            self.peer_names[peer.peer_id] = peer.name
            calls.members.add(peer.peer_id)
            if not calls.has_healthy(peer.peer_id):
                await calls.offer_to(peer.peer_id)
        return None

    async def _leave(self, session_id: str) -> None:
        calls = self.sessions.pop(session_id, None)
        self.joined_on.pop(session_id, None)
        if calls is not None:
            await calls.close()
        with contextlib.suppress(SignallingError):
            await self._send(p.Leave(session_id=session_id))
        log.info("left %s", session_id)

    async def _send(self, message: object) -> None:
        if self.client is None:
            raise ConnectionLost("not connected")
        await self.client.send(message)

    # --- the touch panel --------------------------------------------------------------

    def control_state(self) -> p.RoomControlState:
        """What the touch panel shows; ``session_id`` is the session joined last."""
        return p.RoomControlState(
            privacy=self.outgoing.video.privacy,
            content_share=self.content is not None and self.content.sharing,
            content_available=self.content is not None,
            session_id=next(reversed(self.joined_on), None),
        )

    async def _publish_state(self) -> None:
        """Send ``room-state`` on a new connection and whenever the state changes."""
        client, state = self.client, self.control_state()
        if client is None or self._state_sent == (client, state):
            return
        self._state_sent = (client, state)
        with contextlib.suppress(SignallingError):
            await client.send(p.RoomState(state=state))

    async def _on_control(self, message: p.Control) -> None:
        async with self._act:
            ok, code, text = await self._obey(message.command, message.args)
        log.info(
            "control %s %s: %s", message.command, message.args, "ok" if ok else f"{code} ({text})"
        )
        result = p.ControlResult(
            request_id=message.request_id,
            ok=ok,
            state=self.control_state(),
            error_code=code,
            message=text,
        )
        with contextlib.suppress(SignallingError):
            await self._send(result)
        await self._publish_state()

    async def _obey(
        self, command: str, args: dict[str, Any]
    ) -> tuple[bool, str | None, str | None]:
        """Carry out one command: (ok, error code, message)."""
        try:
            p.check_control(command, args)
        except p.ProtocolError as exc:
            return False, exc.code, exc.message
        if command == "privacy":
            on = bool(args["on"])
            self.outgoing.video.set_privacy(on)
            self.outgoing.audio.muted = on
            return True, None, None
        if command == "content-share":
            return await self._share_content(bool(args["on"]))
        session_id = str(args["session_id"])
        if command == "join":
            return await self._join_on_command(session_id)
        if session_id not in self.sessions:
            return False, p.ErrorCode.NOT_IN_SESSION, "the room is not in this session"
        self.commands[session_id] = "leave"
        await self._leave(session_id)
        await self._reconcile(self.clock.now())
        return True, None, None

    async def _share_content(self, on: bool) -> tuple[bool, str | None, str | None]:
        if self.content is None:
            if on:
                return False, p.ErrorCode.NO_CONTENT_SOURCE, "this room has no content source"
            return True, None, None
        if not on:
            await self.content.stop_sharing()
            return True, None, None
        error = await self.content.share()
        if error is not None:
            return False, p.ErrorCode.NO_CONTENT_SOURCE, error
        return True, None, None

    def room_view(self) -> RoomView:
        """What the room screen shows of the room itself (read on every paint)."""
        names = names_from_schedule(self.entries)
        names.update(self.peer_names)
        return RoomView(
            room_name=self.room_name,
            bookings=bookings_from_schedule(self.entries, self.self_id),
            session_id=next(reversed(self.joined_on), None),
            live=self.outgoing.video.live,
            privacy=self.outgoing.video.privacy,
            sharing=self.content is not None and self.content.sharing,
            names=names,
        )

    async def _join_on_command(self, session_id: str) -> tuple[bool, str | None, str | None]:
        entry = next((e for e in self.entries if e.session_id == session_id), None)
        reason = join_refusal(entry, self.clock.now())
        if entry is None or reason is not None:
            return False, p.ErrorCode.NOT_JOINABLE, reason
        previous = self.commands.get(session_id)
        self.commands[session_id] = "join"
        error = await self._ensure_joined(entry)
        if error is not None:
            if previous is None:
                del self.commands[session_id]
            else:
                self.commands[session_id] = previous
            if session_id not in self.joined_on:
                # Not in it after all: drop the calls object, without a leave.
                calls = self.sessions.pop(session_id, None)
                if calls is not None:
                    await calls.close()
            return False, error.code, error.message
        await self._reconcile(self.clock.now())  # the camera, if the session has started
        return True, None, None

    # --- reports --------------------------------------------------------------------

    def _first_frame(self, peer_id: str, at: float) -> None:
        self._milestone(peer_id, "first-frame", at)

    def _first_camera_frame(self, peer_id: str, at: float) -> None:
        self._milestone(peer_id, "live", at)

    def _milestone(self, peer_id: str, event: str, at: float) -> None:
        for session_id, calls in self.sessions.items():
            if peer_id in calls.calls and (session_id, event) not in self.reported:
                self.reported.add((session_id, event))
                log.info("%s in %s at %.3f (from %s)", event, session_id, at, peer_id)
                self._spawn(self._report(p.Stats(session_id=session_id, event=event, at=at)))  # type: ignore[arg-type]

    async def _report(self, stats: p.Stats) -> None:
        # A milestone must not be lost to a reconnect: retry until it is sent.
        while True:
            try:
                await self._send(stats)
                return
            except SignallingError:
                await self.connected.wait()

    async def _stats_loop(self) -> None:
        while True:
            await asyncio.sleep(STATS_INTERVAL)
            snapshot = self.screen.snapshot()
            process = self.process.sample()
            for session_id, calls in list(self.sessions.items()):
                media = [m for m in snapshot if m.peer_id in calls.calls]
                if media and self.client is not None:
                    figures = await self.connection_stats.figures(calls.calls)
                    media = [with_figures(m, figures.get(m.peer_id)) for m in media]
                    stats = p.Stats(session_id=session_id, media=media, process=process)
                    with contextlib.suppress(SignallingError):
                        await self._send(stats)
            self.connection_stats.forget(
                (peer_id, call.conn)
                for c in self.sessions.values()
                for peer_id, call in c.calls.items()
            )

    def status(self) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "peer_id": self.self_id,
            "connected": self.client is not None,
            "connected_at": self.connected_at if self.client is not None else None,
            "server_now": self.clock.now(),
            "clock_offset": self.clock.offset,
            "live": self.outgoing.video.live,
            "room_state": dataclasses.asdict(self.control_state()),
            "sessions": {sid: sorted(c.calls) for sid, c in self.sessions.items()},
            "peers": self.screen.totals(),
            "violations": self.violations,
            "schedule": [e.session_id for e in self.entries],
            "devices": self.devices.status(),
            "readiness": self.readiness.status(),
            "content": self.content.status() if self.content is not None else None,
        }

    async def _status_loop(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp")
        while True:
            tmp.write_text(status_json(self.status()), encoding="utf-8")
            os.replace(tmp, path)
            await asyncio.sleep(STATUS_INTERVAL)

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
