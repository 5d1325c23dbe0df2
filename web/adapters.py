"""The adapters between the planes: SessionControl onto signalling, SessionEvents onto
the orchestrator. Translation only; the rules live on either side."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import fields
from typing import Any, Protocol

from sqlmodel import Session as DbSession

from orchestrator.db import Database, Priority
from orchestrator.ports import RoomCredential, RoomSchedule, SessionTransition, TicketRevocation
from orchestrator.sessions import participation, readiness
from signalling import protocol as p
from signalling.ports import (
    MediaMilestone,
    MediaReport,
    PeerJoinedSession,
    PeerLeftSession,
    RoomOffline,
    RoomOnline,
    RoomReadiness,
    SessionTopology,
)
from signalling.server import CLOSE_REVOKED, SignallingServer
from web.event_queue import EventQueue, EventWriter

log = logging.getLogger(__name__)


class ReadinessAlerts(Protocol):
    """Who tells a centre's staff about a readiness notice (web.alerts.Alerts)."""

    def queue_mail(self, db: DbSession, notice: readiness.ReadinessNotice) -> int:
        """Queue the email, inside the transaction that recorded the check."""
        ...

    def post(self, notice: readiness.ReadinessNotice) -> None:
        """Start the webhook delivery; must return at once."""
        ...


def schedule_message(schedule: RoomSchedule) -> p.Schedule:
    """The port's schedule as the wire's: its entries are the same objects
    (common/schedule.py); only the sequence number stays behind."""
    return p.Schedule(
        room_id=schedule.room_id,
        generated_at=schedule.generated_at,
        sessions=list(schedule.items),
    )


class SignallingControl:
    """SessionControl implemented on the in-process signalling server."""

    def __init__(self, server: SignallingServer) -> None:
        self._server = server

    async def push_schedule(self, schedule: RoomSchedule) -> None:
        self._server.hub.push_schedule(schedule_message(schedule))

    async def session_transition(self, transition: SessionTransition) -> None:
        state = p.SessionState(
            session_id=transition.session_id,
            state=transition.state,
            at=transition.at,
            start=transition.start,
            end=transition.end,
        )
        await self._server.hub.session_transition(
            state, transition.room_ids, topology=transition.topology
        )

    async def set_room_credential(self, credential: RoomCredential) -> None:
        revoked = self._server.set_room(credential)
        if revoked:
            await self._server.hub.disconnect_room(
                credential.room_id,
                CLOSE_REVOKED,
                p.Error(code=p.ErrorCode.KEY_REVOKED, message="the room key was rotated"),
            )

    async def revoke_tickets(self, revocation: TicketRevocation) -> None:
        self._server.tickets.revoke(revocation.ticket_ids, revocation.until)


class _Fields(Mapping[str, Any]):
    """A report's dataclass read as the mapping the orchestrator's rules take, without
    copying it (a report may carry many entries)."""

    __slots__ = ("_of",)

    def __init__(self, of: object) -> None:
        self._of = of

    def __getitem__(self, key: str) -> Any:
        try:
            return getattr(self._of, key)
        except AttributeError:
            raise KeyError(key) from None

    def __iter__(self) -> Iterator[str]:
        return (f.name for f in fields(self._of))  # type: ignore[arg-type]

    def __len__(self) -> int:
        return len(fields(self._of))  # type: ignore[arg-type]


class OrchestratorEvents:
    """SessionEvents written to the database by one worker, through a bounded queue
    that coalesces stats and readiness and writes joins, leaves and milestones first
    (web/event_queue.py), so neither a slow disk nor a chatty room delays a relayed
    offer or a lifecycle transition.

    ``listeners`` hear every event at once, before it waits for the database (the
    dashboard's live view)."""

    def __init__(
        self,
        db: Database,
        on_room_online: Callable[[str], Awaitable[None]],
        *,
        limit: int = 1000,
        interval: float = 1.0,
        log_interval: float = 60.0,
        now: Callable[[], float] | None = None,
    ) -> None:
        self._db = db
        self._on_room_online = on_room_online
        self.listeners: list[Callable[[object], None]] = []
        self.alerts: ReadinessAlerts | None = None
        self.queue = EventQueue(
            limit=limit,
            interval=interval,
            write_media=self._media_job,
            write_readiness=self._readiness_job,
        )
        self.writer = EventWriter(self.queue, log_interval=log_interval, now=now)

    def start(self) -> None:
        self.writer.start()

    async def stop(self) -> None:
        # Let recorded events reach the database before shutting down.
        await self.writer.stop()

    def _notify(self, event: object) -> None:
        for listener in self.listeners:
            listener(event)

    def _precious(self, job: Callable[[], Awaitable[object]], key: object = None) -> None:
        if self.queue.put_precious(job, key):
            self.writer.notify()
        else:
            log.error("the database has not kept up: an event was dropped (%s)", key or "")

    def _record(self, write: Callable[[DbSession], object]) -> None:
        """Queue a precious database write; the worker runs them in arrival order."""
        self._precious(lambda: self._db.run(write, priority=Priority.EVENTS))

    async def room_online(self, event: RoomOnline) -> None:
        self._notify(event)
        self._precious(lambda: self._on_room_online(event.room_id), ("online", event.room_id))

    async def room_offline(self, event: RoomOffline) -> None:
        self._notify(event)

    async def peer_joined(self, event: PeerJoinedSession) -> None:
        self._notify(event)
        if (room_id := event.room_id) is not None:
            self._record(
                lambda s: participation.record_joined(s, event.session_id, room_id, event.at)
            )

    async def peer_left(self, event: PeerLeftSession) -> None:
        self._notify(event)
        if (room_id := event.room_id) is not None:
            self._record(
                lambda s: participation.record_left(s, event.session_id, room_id, event.at)
            )

    async def media_milestone(self, event: MediaMilestone) -> None:
        self._notify(event)
        if (room_id := event.room_id) is not None:
            self._record(
                lambda s: participation.record_milestone(
                    s, event.session_id, room_id, event.event, event.at
                )
            )

    async def media_report(self, event: MediaReport) -> None:
        self._notify(event)
        if (room_id := event.room_id) is None:
            return

        def add(batch: participation.MediaBatch) -> None:
            process = event.process
            batch.add(
                event.at,
                (_Fields(m) for m in event.media),
                _Fields(process) if process is not None else None,
            )

        if self.queue.put_media((event.session_id, room_id), add, self.writer.now()):
            self.writer.notify()

    def _media_job(
        self, key: tuple[str, str], batch: participation.MediaBatch
    ) -> Callable[[], Awaitable[object]]:
        session_id, room_id = key
        return lambda: self._db.run(
            lambda s: participation.record_batch(s, session_id, room_id, batch),
            priority=Priority.STATS,
        )

    async def session_topology(self, event: SessionTopology) -> None:
        """A session went onto an SFU or moved to another Janus: the dashboard's live
        view shows where it is (``LiveView.sfu``); the server's log keeps the moves."""
        self._notify(event)

    async def room_readiness(self, event: RoomReadiness) -> None:
        """Keep the check; a notice it causes is mailed in the same transaction and
        posted to the webhook afterwards (never awaited here)."""
        self._notify(event)
        if self.queue.put_readiness(event, self.writer.now()):
            self.writer.notify()

    def _readiness_job(self, event: RoomReadiness) -> Callable[[], Awaitable[object]]:
        checks = [readiness.Check(c.name, c.ok, c.detail) for c in event.checks]
        alerts = self.alerts

        def write(s: DbSession) -> readiness.ReadinessNotice | None:
            notice = readiness.record(
                s,
                event.room_id,
                event.session_id,
                event.ok,
                checks,
                checked_at=event.checked_at,
                received_at=event.at,
            )
            if notice is not None and alerts is not None:
                alerts.queue_mail(s, notice)
            return notice

        async def job() -> None:
            notice = await self._db.run(write, priority=Priority.STATS)
            if notice is not None and alerts is not None:
                alerts.post(notice)

        return job
