"""The room agent daemon: stays connected, follows the room's schedule, runs the calls.

Nobody in the room has to press anything. The agent is three parts and the loops
that drive them, composed here:

- ``connection.Connection``: the WebSocket to signalling, reconnected with backoff
  and jitter, and the server's clock;
- ``timeline.Timeline``: a local copy of the schedule and a timeline on the server's
  clock: at T - lead it joins behind the starting card, at T it sends its camera, at
  T_end it leaves;
- ``room_control.RoomControl``: the calls, the outgoing media, the touch panel's
  privacy and content share, and the reports.

Peer connections outlive a lost WebSocket, so media keeps flowing while signalling
is away. The room's touch panel reaches the agent as ``control`` commands (through
the server): join a one-button session, leave, privacy, content share. The agent
answers each with a ``control-result`` and reports its ``room-state`` after
connecting and whenever it changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from common.tasks import TaskSet
from room_agents.calls import Outgoing, SessionCalls
from room_agents.capture import RoomDevices
from room_agents.config import AgentConfig, ConfigError
from room_agents.connection import Connection, LinkState, ServerClock
from room_agents.layout import RoomView, bookings_from_schedule, names_from_schedule
from room_agents.readiness import ReadinessRunner
from room_agents.room_control import Outcome, RoomControl
from room_agents.room_screen import make_screen
from room_agents.schedule import ScheduleCache, status_json
from room_agents.screen import Screen
from room_agents.timeline import Timeline
from room_agents.turn_tls import TurnCaError, install_turn_ca
from signalling import protocol as p
from signalling.client import SignallingClient, SignallingError

log = logging.getLogger(__name__)

STATUS_INTERVAL = 0.5


def screen_report_path(config: AgentConfig) -> Path | None:
    """The room screen's report: ``screen.json`` beside the status file, or in the
    cache directory."""
    if config.status_file is not None:
        return config.status_file.with_name("screen.json")
    return config.cache_dir / "screen.json" if config.cache_dir is not None else None


def write_status(path: Path, text: str) -> None:
    """Write then rename, so a reader never sees half a status (run off the loop)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


class RoomAgent:
    """Owns the parts and their lifetimes; routes what the server sends to them."""

    def __init__(self, config: AgentConfig, screen: Screen | None = None) -> None:
        self.config = config
        if config.turn_ca_file is not None:
            try:
                install_turn_ca(config.turn_ca_file)  # turns: trusts the private CA too
            except TurnCaError as exc:
                raise ConfigError(str(exc)) from None
        self.clock = ServerClock()
        cache = ScheduleCache(config.cache_dir / "schedule.json" if config.cache_dir else None)
        cached_offset = cache.load_offset()
        if cached_offset is not None:
            self.clock.offset = cached_offset  # an agent restarted offline keeps server time
        self.connection = Connection(config, self.clock)
        self.screen = (
            screen
            if screen is not None
            else make_screen(config.screen, self.clock, screen_report_path(config), config.fps)
        )
        self.screen.show(self.room_view)
        self.devices = RoomDevices(config, self.clock)
        self.screen.on_audio_frame = self.devices.feed_speaker
        self.control = RoomControl(config, self.clock, self.connection, self.screen, self.devices)
        self.timeline = Timeline(self.clock, cache, self.control)
        self._tasks = TaskSet()
        self.readiness = ReadinessRunner(self, config.readiness_lead)
        # A camera or microphone source that fails (or comes back) is checked at once.
        self.devices.on_change = self.readiness.wake

    # --- what the parts share (and the readiness runner reads) ------------------------

    @property
    def client(self) -> SignallingClient | None:
        return self.connection.client

    @property
    def connected(self) -> asyncio.Event:
        return self.connection.connected

    @property
    def self_id(self) -> str:
        return self.connection.self_id

    @property
    def ice_servers(self) -> list[p.IceServer]:
        return self.connection.ice_servers

    @property
    def entries(self) -> list[p.ScheduleEntry]:
        return self.timeline.entries

    @property
    def sessions(self) -> Mapping[str, SessionCalls]:
        return self.control.sessions

    @property
    def joined_on(self) -> Mapping[str, SignallingClient]:
        return self.control.joined_on

    @property
    def outgoing(self) -> Outgoing:
        return self.control.outgoing

    @property
    def violations(self) -> list[str]:
        return self.control.violations

    # --- the main loops -------------------------------------------------------------

    async def run(self) -> None:
        self.devices.start()
        await self.screen.start()
        timeline = asyncio.create_task(self.timeline.run())
        others = [
            asyncio.create_task(self.connection.run(self)),
            asyncio.create_task(self.control.stats_loop()),
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
        """Leave every session (the others see ``peer-left``, the record gets left_at),
        then close the media."""
        await self.control.close()
        await self.screen.close()
        await self.devices.close()
        await self.control.close_tasks()
        await self._tasks.close()

    # --- what the link tells (connection.LinkOwner) -----------------------------------

    def welcomed(self) -> None:
        self.control.connected()
        self.timeline.wake()
        self.readiness.connected()

    def offset_measured(self, offset: float | None) -> None:
        if offset is not None:
            self.timeline.cache.save_offset(offset)
        self.timeline.wake()

    async def handle(self, message: p.ServerMessage) -> None:
        match message:
            case p.Schedule():
                self.timeline.on_schedule(message)
            case p.SessionState():
                self.timeline.on_session_state(message)
            case p.Offer():
                await self.control.on_offer(message)
            case p.Answer():
                await self.control.on_answer(message)
            case p.Candidate():
                await self.control.on_candidate(message)
            case p.TopologyChange():
                await self.control.on_topology(message)
            case p.PeerJoined():
                self.control.on_peer_joined(message)
            case p.PeerLeft():
                await self.control.on_peer_left(message)
            case p.Control():
                self._tasks.spawn(self._on_control(message))
            case p.Error(code=code, message=text):
                log.warning("server error %s: %s", code, text)
            case _:
                pass  # welcome, joined, pong: answers the client awaits itself

    # --- the touch panel --------------------------------------------------------------

    def control_state(self) -> p.RoomControlState:
        return self.control.control_state()

    async def _on_control(self, message: p.Control) -> None:
        async with self.timeline.act:
            ok, code, text = await self._obey(message.command, message.args)
        log.info(
            "control %s %s: %s", message.command, message.args, "ok" if ok else f"{code} ({text})"
        )
        result = p.ControlResult(
            request_id=message.request_id,
            ok=ok,
            state=self.control.control_state(),
            error_code=code,
            message=text,
        )
        with contextlib.suppress(SignallingError):
            await self.connection.send(result)
        await self.control.publish_state()

    async def _obey(self, command: str, args: dict[str, Any]) -> Outcome:
        """Carry out one command: (ok, error code, message)."""
        try:
            p.check_control(command, args)
        except p.ProtocolError as exc:
            return False, exc.code, exc.message
        match command:
            case "privacy":
                return self.control.set_privacy(bool(args["on"]))
            case "content-share":
                return await self.control.share_content(bool(args["on"]))
            case "join":
                return await self.timeline.join_on_command(str(args["session_id"]))
            case _:
                return await self.timeline.leave_on_command(str(args["session_id"]))

    def room_view(self) -> RoomView:
        """What the room screen shows of the room itself (read on every paint)."""
        entries = self.timeline.entries
        names = names_from_schedule(entries)
        names.update(self.control.peer_names)
        return RoomView(
            room_name=self.connection.room_name,
            bookings=bookings_from_schedule(entries, self.connection.self_id),
            session_id=self.control.current_session,
            live=self.outgoing.video.live,
            privacy=self.outgoing.video.privacy,
            sharing=self.control.sharing,
            names=names,
        )

    # --- the status file --------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        link = self.connection
        connected = link.state is LinkState.CONNECTED
        return {
            "pid": os.getpid(),
            "peer_id": link.self_id,
            "connected": connected,
            "connected_at": link.connected_at if connected else None,
            "server_now": self.clock.now(),
            "clock_offset": self.clock.offset,
            "live": self.outgoing.video.live,
            "room_state": dataclasses.asdict(self.control.control_state()),
            "sessions": {sid: sorted(c.calls) for sid, c in self.sessions.items()},
            # Per session and remote peer: the candidate types the media flows on.
            "pairs": {sid: c.selected_pairs() for sid, c in self.sessions.items()},
            "received_bytes": {sid: c.received_bytes() for sid, c in self.sessions.items()},
            # Per session and connection: the room's uplink (one publication on an SFU).
            "sent_bytes": {sid: c.sent_bytes() for sid, c in self.sessions.items()},
            "peers": self.screen.totals(),
            "violations": self.violations,
            "schedule": [e.session_id for e in self.timeline.entries],
            "devices": self.devices.status(),
            "readiness": self.readiness.status(),
            "content": self.control.content.status() if self.control.content is not None else None,
        }

    async def _status_loop(self, path: Path) -> None:
        while True:
            # Read on the loop (the state is the loop's), written off it: a slow disk
            # must not hold up a relayed offer.
            await asyncio.to_thread(write_status, path, status_json(self.status()))
            await asyncio.sleep(STATUS_INTERVAL)
