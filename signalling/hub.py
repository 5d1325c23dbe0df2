"""Session membership and relay: who is in which session, and who gets which message.

The hub knows peers by id, not by socket: a peer that reconnects gets its new
link attached to the same memberships, and a lost link starts a grace period
during which the peer stays in its sessions (its peer connections may well still
be carrying media). Sending never waits on a slow peer: each link queues.

The hub is also the web layer's door to the rooms' touch-panel commands
(``control``, ``room_state``; the bookkeeping is in signalling.control).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from common.peers import SFU_PEER, is_sfu_peer, room_peer_id
from common.sessions import TERMINAL_STATES
from common.tasks import TaskSet
from signalling import protocol as p
from signalling.control import RoomControls, RoomStateListener
from signalling.ports import (
    MediaMilestone,
    MediaReport,
    PeerJoinedSession,
    PeerLeftSession,
    RoomOffline,
    RoomOnline,
    RoomReadiness,
    SessionEvents,
    SessionTopology,
)
from signalling.reports import Coalescer, media_of_members, merge_reports

if TYPE_CHECKING:
    from signalling.sfu import SfuBridge, SfuMove

log = logging.getLogger(__name__)


class Link(Protocol):
    """One live connection of a peer (a WebSocket in production)."""

    def send(self, message: object) -> None:
        """Queue a protocol message; never blocks."""

    async def close(self, code: int, reason: str) -> None: ...


@dataclass(slots=True)
class HubSettings:
    # Without an SFU, a session (a mesh) holds at most mesh_cap members. With one, a
    # session of more than mesh_limit peers runs on it (booked so: at its first join; a
    # join past it: the mesh moves, docs/protocol.md 20), and holds up to sfu_cap.
    mesh_cap: int = 4
    mesh_limit: int = 2
    sfu_cap: int = 12
    grace_seconds: float = 30.0
    # A peer's media figures reach the orchestrator at most this often per session
    # (the room agent reports every 2 s); faster reports are merged (signalling.reports).
    stats_interval: float = 1.0


@dataclass(slots=True)
class _Member:
    info: p.PeerInfo
    joined_at: float
    grace: asyncio.TimerHandle | None = None
    milestones: set[str] = field(default_factory=set)


@dataclass(slots=True)
class _Session:
    session_id: str
    members: dict[str, _Member] = field(default_factory=dict)
    state: p.SessionState | None = None
    topology: p.Topology = "mesh"
    epoch: int = 0


class Hub:
    def __init__(
        self,
        events: SessionEvents,
        clock: Callable[[], float],
        settings: HubSettings | None = None,
    ) -> None:
        self._events = events
        self._clock = clock
        self.settings = settings or HubSettings()
        self._links: dict[str, Link] = {}
        self._infos: dict[str, p.PeerInfo] = {}
        self._sessions: dict[str, _Session] = {}
        self._states: dict[str, p.SessionState] = {}
        self._schedules: dict[str, p.Schedule] = {}
        self._seq = itertools.count(1)
        self._tasks = TaskSet()
        self._controls = RoomControls()
        self._media: Coalescer[tuple[str, str], MediaReport] = Coalescer(
            self.settings.stats_interval, merge_reports, self._events.media_report, self._spawn
        )
        self._sfu: SfuBridge | None = None
        # Rooms booked per session, from the schedules pushed: a session with more
        # rooms than the mesh cap goes onto the SFU at its first join.
        self._booked_rooms: dict[str, int] = {}

    def use_sfu(self, bridge: SfuBridge) -> None:
        """Run sessions past the mesh cap (or planned so) on this SFU bridge."""
        self._sfu = bridge

    @property
    def sfu(self) -> SfuBridge | None:
        return self._sfu

    def send_to(self, peer_id: str, message: object) -> bool:
        """Queue a message to a peer; False when it has no connection."""
        link = self._links.get(peer_id)
        if link is None:
            return False
        link.send(message)
        return True

    def topology(self, session_id: str) -> tuple[p.Topology, int]:
        """A session's topology and epoch (a session the hub does not know: mesh, 0)."""
        s = self._sessions.get(session_id)
        return (s.topology, s.epoch) if s else ("mesh", 0)

    # --- queries -------------------------------------------------------------------

    def online_rooms(self) -> set[str]:
        return {i.room_id for pid, i in self._infos.items() if pid in self._links and i.room_id}

    def members(self, session_id: str) -> list[str]:
        s = self._sessions.get(session_id)
        return list(s.members) if s else []

    def connected(self, peer_id: str) -> bool:
        return peer_id in self._links

    def link(self, peer_id: str) -> Link | None:
        return self._links.get(peer_id)

    # --- links ---------------------------------------------------------------------

    async def attach(self, link: Link, info: p.PeerInfo) -> None:
        """Make ``link`` the peer's connection, replacing (and closing) an older one."""
        old = self._links.get(info.peer_id)
        self._links[info.peer_id] = link
        self._infos[info.peer_id] = info
        for session in self._sessions.values():
            member = session.members.get(info.peer_id)
            if member is not None and member.grace is not None:
                member.grace.cancel()
                member.grace = None
        if old is not None and old is not link:
            old.send(
                p.Error(code=p.ErrorCode.REPLACED, message="a newer connection replaced this one")
            )
            self._spawn(old.close(4000, "replaced"))
        elif info.room_id is not None:
            await self._events.room_online(
                RoomOnline(seq=next(self._seq), room_id=info.room_id, at=self._clock())
            )
        if info.room_id is not None and info.room_id in self._schedules:
            link.send(self._schedules[info.room_id])

    async def detach(self, link: Link, peer_id: str) -> None:
        """The link is gone. Memberships stay for the grace period: a lost WebSocket
        is not a departure."""
        if self._links.get(peer_id) is not link:
            return  # already replaced by a newer connection
        del self._links[peer_id]
        loop = asyncio.get_running_loop()
        for session in self._sessions.values():
            member = session.members.get(peer_id)
            if member is not None and member.grace is None:
                member.grace = loop.call_later(
                    self.settings.grace_seconds, self._grace_expired, session.session_id, peer_id
                )
        info = self._infos.get(peer_id)
        if info is not None and info.room_id is not None:
            self._controls.offline(info.room_id)
            await self._events.room_offline(
                RoomOffline(seq=next(self._seq), room_id=info.room_id, at=self._clock())
            )

    def _grace_expired(self, session_id: str, peer_id: str) -> None:
        self._spawn(self._remove_member(session_id, peer_id, "timeout"))

    # --- membership ----------------------------------------------------------------

    async def join(
        self,
        peer_id: str,
        session_id: str,
        ref: str | None,
        *,
        ice_servers: Sequence[p.IceServer] = (),
    ) -> None:
        link = self._links.get(peer_id)
        info = self._infos[peer_id]
        session = self._sessions.setdefault(session_id, _Session(session_id))
        state = self._states.get(session_id)
        if state is not None and state.state in TERMINAL_STATES:
            raise p.ProtocolError(p.ErrorCode.NOT_IN_SESSION, f"session is {state.state}", ref)
        rejoin = peer_id in session.members
        if not rejoin and session.topology == "mesh" and self._sfu is not None:
            limit = min(self.settings.mesh_limit, self.settings.mesh_cap)
            if self._booked_rooms.get(session_id, 0) > limit:
                await self._to_sfu(session, "planned")
            elif len(session.members) >= limit:
                await self._to_sfu(session, "mesh-limit")
        cap = self.settings.sfu_cap if session.topology == "sfu" else self.settings.mesh_cap
        if not rejoin and len(session.members) >= cap:
            raise p.ProtocolError(
                p.ErrorCode.SESSION_FULL, f"session has its {cap} peers already", ref
            )
        now = self._clock()
        if rejoin:
            member = session.members[peer_id]
            if member.grace is not None:
                member.grace.cancel()
                member.grace = None
        else:
            session.members[peer_id] = _Member(info=info, joined_at=now)
        others = [m.info for pid, m in session.members.items() if pid != peer_id]
        if link is not None:
            link.send(
                p.Joined(
                    session_id=session_id,
                    peer_id=peer_id,
                    peers=others,
                    state=state.state if state else None,
                    ref=ref,
                    ice_servers=list(ice_servers),
                    topology=session.topology,
                    epoch=session.epoch,
                )
            )
            if state is not None:
                link.send(state)
        if session.topology == "sfu" and self._sfu is not None:
            self._sfu.joined(session_id, peer_id)
        if not rejoin:
            self._broadcast(session, p.PeerJoined(session_id=session_id, peer=info), skip=peer_id)
        await self._events.peer_joined(
            PeerJoinedSession(
                seq=next(self._seq),
                session_id=session_id,
                peer_id=peer_id,
                room_id=info.room_id,
                at=now,
            )
        )

    async def leave(self, peer_id: str, session_id: str, ref: str | None) -> None:
        session = self._sessions.get(session_id)
        if session is None or peer_id not in session.members:
            raise p.ProtocolError(p.ErrorCode.NOT_IN_SESSION, "not a member of this session", ref)
        await self._remove_member(session_id, peer_id, "left")

    async def _remove_member(self, session_id: str, peer_id: str, reason: str) -> None:
        session = self._sessions.get(session_id)
        if session is None:
            return
        member = session.members.pop(peer_id, None)
        if member is None:
            return
        if member.grace is not None:
            member.grace.cancel()
        waiting = self._media.forget((session_id, peer_id))
        if waiting is not None:
            await self._events.media_report(waiting)
        self._broadcast(session, p.PeerLeft(session_id=session_id, peer_id=peer_id, reason=reason))
        empty = not session.members
        if empty and self._sessions.get(session_id) is session:
            del self._sessions[session_id]  # before any await: removals may interleave
        if session.topology == "sfu" and self._sfu is not None:
            if empty:
                await self._sfu.end(session_id)
            else:
                await self._sfu.left(session_id, peer_id)
        await self._events.peer_left(
            PeerLeftSession(
                seq=next(self._seq),
                session_id=session_id,
                peer_id=peer_id,
                room_id=member.info.room_id,
                at=self._clock(),
                reason=reason,
            )
        )

    def _member_or_error(self, peer_id: str, session_id: str, ref: str | None) -> _Session:
        session = self._sessions.get(session_id)
        if session is None or peer_id not in session.members:
            raise p.ProtocolError(p.ErrorCode.NOT_IN_SESSION, "join the session first", ref)
        return session

    # --- relay ---------------------------------------------------------------------

    def relay(self, peer_id: str, message: p.Offer | p.Answer | p.Candidate) -> None:
        """Forward an offer, answer or candidate to a named peer of the same session."""
        session = self._member_or_error(peer_id, message.session_id, message.id)
        target = message.to
        if target is not None and is_sfu_peer(target):
            raise p.ProtocolError(
                p.ErrorCode.NOT_IN_SESSION, "this session is not on an SFU", message.id
            )
        if target is None or target not in session.members or target == peer_id:
            raise p.ProtocolError(
                p.ErrorCode.PEER_NOT_IN_SESSION, "the addressee is not in this session", message.id
            )
        link = self._links.get(target)
        if link is None:
            raise p.ProtocolError(
                p.ErrorCode.PEER_UNREACHABLE, "the addressee is reconnecting; retry", message.id
            )
        link.send(_readdress(message, peer_id))

    async def relay_to_sfu(self, peer_id: str, message: p.Offer | p.Answer | p.Candidate) -> None:
        """A message to ``sfu`` or ``sfu:<P>`` in an SFU session: the bridge serves it."""
        sfu = self._sfu_of(peer_id, message.session_id, message.id)
        if isinstance(message, p.Offer):
            if message.to != SFU_PEER:
                raise p.ProtocolError(
                    p.ErrorCode.PEER_NOT_IN_SESSION,
                    "publications are offered to sfu; sfu:<peer> makes its own offers",
                    message.id,
                )
            await sfu.publish(peer_id, message)
        elif isinstance(message, p.Answer):
            await sfu.answer(peer_id, message)
        else:
            await sfu.candidate(peer_id, message)

    async def subscribe(self, peer_id: str, message: p.Subscribe) -> None:
        """Ask for a fresh offer of a member's publication (SFU sessions only)."""
        sfu = self._sfu_of(peer_id, message.session_id, message.id)
        await sfu.subscribe(peer_id, message)

    def _sfu_of(self, peer_id: str, session_id: str, ref: str | None) -> SfuBridge:
        session = self._member_or_error(peer_id, session_id, ref)
        if session.topology != "sfu" or self._sfu is None:
            raise p.ProtocolError(p.ErrorCode.NOT_IN_SESSION, "this session is not on an SFU", ref)
        return self._sfu

    async def _to_sfu(self, session: _Session, reason: str) -> None:
        """Move a session onto the SFU (its members hear it through ``sfu_moved``);
        without a Janus to go to, it stays a mesh (and a join past the cap is refused)."""
        assert self._sfu is not None
        try:
            await self._sfu.start(session.session_id, reason)
        except p.ProtocolError as exc:
            log.warning("session %s stays a mesh: %s", session.session_id, exc.message)

    async def sfu_moved(self, move: SfuMove) -> None:
        """The bridge put a session on a Janus (first, or after one died): tell its
        members, who publish again, and the orchestrator."""
        session = self._sessions.setdefault(move.session_id, _Session(move.session_id))
        session.topology = "sfu"
        session.epoch = move.epoch
        self._broadcast(
            session,
            p.TopologyChange(session_id=move.session_id, topology="sfu", epoch=move.epoch),
        )
        await self._events.session_topology(
            SessionTopology(
                seq=next(self._seq),
                session_id=move.session_id,
                topology="sfu",
                epoch=move.epoch,
                server=move.server,
                previous=move.previous,
                reason=move.reason,
                at=self._clock(),
            )
        )

    async def stats(self, peer_id: str, message: p.Stats) -> None:
        """A peer's milestone goes on once per membership (the orchestrator keeps the
        first value anyway); its media figures go on about the session's members only,
        at most once per ``stats_interval`` (signalling.reports)."""
        session = self._member_or_error(peer_id, message.session_id, message.id)
        member = session.members[peer_id]
        room_id = member.info.room_id
        if message.event is not None and message.event not in member.milestones:
            member.milestones.add(message.event)
            at = message.at if message.at is not None else self._clock()
            await self._events.media_milestone(
                MediaMilestone(
                    seq=next(self._seq),
                    session_id=message.session_id,
                    peer_id=peer_id,
                    room_id=room_id,
                    event=message.event,
                    at=at,
                )
            )
        media = media_of_members(message.media, peer_id, session.members)
        if media or message.process is not None:
            await self._media.offer(
                (message.session_id, peer_id),
                MediaReport(
                    seq=next(self._seq),
                    session_id=message.session_id,
                    peer_id=peer_id,
                    room_id=room_id,
                    at=self._clock(),
                    media=tuple(media),
                    process=message.process,
                ),
            )

    async def readiness(self, room_id: str, message: p.Readiness) -> None:
        """A room's readiness check, passed on as it came (membership is not needed:
        the check runs before the room joins)."""
        p.check_readiness(message)
        await self._events.room_readiness(
            RoomReadiness(
                seq=next(self._seq),
                room_id=room_id,
                session_id=message.session_id,
                ok=message.ok,
                checks=tuple(message.checks),
                checked_at=message.at,
                at=self._clock(),
            )
        )

    # --- room control (the web layer's API) -----------------------------------------

    async def control(
        self, room_id: str, command: str, args: dict[str, object], timeout: float = 5.0
    ) -> p.ControlResult:
        """Send a touch-panel command to a room's agent and return its answer.

        ``command`` is one of ``p.CONTROL_COMMANDS`` with its arguments:
        ``join``/``leave`` ``{"session_id": str}``, ``privacy``/``content-share``
        ``{"on": bool}``. The answer says whether the room obeyed (``ok``; if not,
        ``error_code`` and ``message`` say why) and carries the room's state after it.

        Raises ``p.ProtocolError`` with ``bad-message`` (unknown command, missing or
        mistyped argument), ``room-offline`` (no agent connected, or it went offline
        before answering) or ``control-timeout`` (no answer within ``timeout`` s).
        """
        p.check_control(command, args)
        link = self._links.get(room_peer_id(room_id))
        if link is None:
            raise p.ProtocolError(p.ErrorCode.ROOM_OFFLINE, "no agent is connected for this room")
        request_id, future = self._controls.open(room_id)
        try:
            link.send(p.Control(command=command, args=dict(args), request_id=request_id))
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise p.ProtocolError(
                p.ErrorCode.CONTROL_TIMEOUT, f"the room did not answer within {timeout:g} s"
            ) from None
        finally:
            self._controls.close(request_id)

    def room_state(self, room_id: str) -> p.RoomControlState | None:
        """The room's latest reported control state; None while it is offline (or has
        not reported one since it connected)."""
        return self._controls.state(room_id)

    def add_room_state_listener(self, listener: RoomStateListener) -> Callable[[], None]:
        """Call ``listener(room_id, state)`` on every change of a room's reported state
        (``state`` None: the room went offline). Returns the function that removes it.
        The listener runs on the event loop and must not block."""
        return self._controls.add_listener(listener)

    def control_result(self, room_id: str, message: p.ControlResult) -> None:
        """A room's ``control-result``; ignored unless it answers a request sent to it."""
        self._controls.result(room_id, message)

    def report_room_state(self, room_id: str, message: p.RoomState) -> None:
        self._controls.report(room_id, message.state)

    # --- what the orchestrator pushes ----------------------------------------------

    def push_schedule(self, schedule: p.Schedule) -> None:
        self._schedules[schedule.room_id] = schedule
        for entry in schedule.sessions:
            self._booked_rooms[entry.session_id] = len(entry.rooms)
            # A restarted node learns the state of sessions already under way from the
            # schedules; a transition, when one comes, is newer and wins.
            if entry.session_id not in self._states:
                self._states[entry.session_id] = p.SessionState(
                    session_id=entry.session_id,
                    state=entry.state,
                    at=schedule.generated_at,
                    start=entry.start,
                    end=entry.end,
                )
        link = self._links.get(room_peer_id(schedule.room_id))
        if link is not None:
            link.send(schedule)

    async def session_transition(
        self,
        state: p.SessionState,
        room_ids: tuple[str, ...],
        topology: p.Topology | None = None,
    ) -> None:
        """Tell the session's members and rooms its new state. ``topology`` "sfu": the
        orchestrator planned the session on the SFU: it is placed there at once (its
        rooms join at T - lead, on the SFU from the first)."""
        self._states[state.session_id] = state
        if (
            topology == "sfu"
            and self._sfu is not None
            and state.state not in TERMINAL_STATES
            and self.topology(state.session_id)[0] == "mesh"
        ):
            planned = self._sessions.setdefault(state.session_id, _Session(state.session_id))
            await self._to_sfu(planned, "planned")
        session = self._sessions.get(state.session_id)
        told: set[str] = set()
        if session is not None:
            for pid in session.members:
                link = self._links.get(pid)
                if link is not None:
                    link.send(state)
                    told.add(pid)
        for room_id in room_ids:
            pid = room_peer_id(room_id)
            link = self._links.get(pid)
            if link is not None and pid not in told:
                link.send(state)
        if state.state in TERMINAL_STATES:
            self._booked_rooms.pop(state.session_id, None)
        if state.state in TERMINAL_STATES and session is not None:
            for pid in list(session.members):
                await self._remove_member(state.session_id, pid, "session-" + state.state)
            if not session.members:
                self._sessions.pop(state.session_id, None)
                if session.topology == "sfu" and self._sfu is not None:
                    await self._sfu.end(state.session_id)

    async def eject(self, peer_id: str, code: int, error: p.Error) -> None:
        """Remove a peer at once from every session (no grace period: it was sent
        away, not lost) and close its connection, telling it why."""
        for session_id in [sid for sid, s in self._sessions.items() if peer_id in s.members]:
            await self._remove_member(session_id, peer_id, "revoked")
        link = self._links.get(peer_id)
        if link is not None:
            link.send(error)
            await link.close(code, error.code)

    async def disconnect_room(self, room_id: str, code: int, error: p.Error) -> None:
        link = self._links.get(room_peer_id(room_id))
        if link is not None:
            link.send(error)
            await link.close(code, error.code)

    # --- plumbing ------------------------------------------------------------------

    def _broadcast(self, session: _Session, message: object, skip: str | None = None) -> None:
        for pid in session.members:
            if pid == skip:
                continue
            link = self._links.get(pid)
            if link is not None:
                link.send(message)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        self._tasks.spawn(coro)

    async def close(self) -> None:
        if self._sfu is not None:
            await self._sfu.close()
        self._controls.cancel_all()
        self._media.close()
        for session in self._sessions.values():
            for member in session.members.values():
                if member.grace is not None:
                    member.grace.cancel()
        await self._tasks.close()


def _readdress(
    message: p.Offer | p.Answer | p.Candidate, sender: str
) -> p.Offer | p.Answer | p.Candidate:
    if isinstance(message, p.Offer):
        return p.Offer(
            session_id=message.session_id, sdp=message.sdp, conn=message.conn, from_=sender
        )
    if isinstance(message, p.Answer):
        return p.Answer(
            session_id=message.session_id, sdp=message.sdp, conn=message.conn, from_=sender
        )
    return p.Candidate(
        session_id=message.session_id,
        conn=message.conn,
        candidate=message.candidate,
        sdp_mid=message.sdp_mid,
        sdp_mline_index=message.sdp_mline_index,
        from_=sender,
    )
