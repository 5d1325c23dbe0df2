"""The adapters between the planes: SessionControl onto signalling, SessionEvents onto
the orchestrator. Translation only; the rules live on either side."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Protocol

from sqlmodel import Session as DbSession

from orchestrator import participation, readiness
from orchestrator.db import Database
from orchestrator.ports import RoomCredential, RoomSchedule, SessionTransition, TicketRevocation
from signalling import protocol as p
from signalling.auth import RoomRecord
from signalling.ports import (
    MediaMilestone,
    MediaReport,
    PeerJoinedSession,
    PeerLeftSession,
    RoomOffline,
    RoomOnline,
    RoomReadiness,
)
from signalling.server import CLOSE_REVOKED, SignallingServer

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
    return p.Schedule(
        room_id=schedule.room_id,
        generated_at=schedule.generated_at,
        sessions=[
            p.ScheduleEntry(
                session_id=i.session_id,
                booking_id=i.booking_id,
                title=i.title,
                start=i.start,
                end=i.end,
                lead=i.lead,
                state=i.state,
                ticket=i.ticket,
                connect_mode=i.connect_mode,
                rooms=[
                    p.ScheduleRoom(room_id=r.room_id, name=r.name, centre=r.centre) for r in i.rooms
                ],
            )
            for i in schedule.items
        ],
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
        await self._server.hub.session_transition(state, transition.room_ids)

    async def set_room_credential(self, credential: RoomCredential) -> None:
        revoked = self._server.set_room(
            RoomRecord(
                room_id=credential.room_id,
                name=credential.name,
                centre=credential.centre,
                key_hash=credential.key_hash,
                generation=credential.generation,
            )
        )
        if revoked:
            await self._server.hub.disconnect_room(
                credential.room_id,
                CLOSE_REVOKED,
                p.Error(code=p.ErrorCode.KEY_REVOKED, message="the room key was rotated"),
            )

    async def revoke_tickets(self, revocation: TicketRevocation) -> None:
        self._server.tickets.revoke(revocation.ticket_ids, revocation.until)


class OrchestratorEvents:
    """SessionEvents written to the database in arrival order by one worker task, so
    a slow disk never delays a relayed offer."""

    def __init__(self, db: Database, on_room_online: Callable[[str], Awaitable[None]]) -> None:
        self._db = db
        self._on_room_online = on_room_online
        self._queue: asyncio.Queue[Callable[[], Awaitable[object]]] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None
        self.listeners: list[Callable[[object], None]] = []
        self.alerts: ReadinessAlerts | None = None

    def start(self) -> None:
        self._worker = asyncio.create_task(self._work())

    async def stop(self) -> None:
        if self._worker is not None:
            # Let recorded events reach the database before shutting down.
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._queue.join(), 5.0)
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker

    async def _work(self) -> None:
        while True:
            job = await self._queue.get()
            try:
                await job()
            except Exception:
                log.exception("recording a signalling event failed")
            finally:
                self._queue.task_done()

    def _notify(self, event: object) -> None:
        for listener in self.listeners:
            listener(event)

    async def room_online(self, event: RoomOnline) -> None:
        self._notify(event)
        self._queue.put_nowait(lambda: self._on_room_online(event.room_id))

    async def room_offline(self, event: RoomOffline) -> None:
        self._notify(event)

    def _record(self, write: Callable[[DbSession], object]) -> None:
        """Queue a database write; the worker runs them in arrival order."""
        self._queue.put_nowait(lambda: self._db.run(write))

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
        if (room_id := event.room_id) is not None:
            reports = [asdict(m) for m in event.media]
            process = asdict(event.process) if event.process is not None else None

            def record(s: DbSession) -> None:
                for media in reports:
                    participation.record_media(s, event.session_id, room_id, media, at=event.at)
                if process is not None:
                    participation.record_process(s, event.session_id, room_id, process, at=event.at)

            self._record(record)

    async def room_readiness(self, event: RoomReadiness) -> None:
        """Keep the check; a notice it causes is mailed in the same transaction and
        posted to the webhook afterwards (never awaited here)."""
        self._notify(event)
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
            notice = await self._db.run(write)
            if notice is not None and alerts is not None:
                alerts.post(notice)

        self._queue.put_nowait(job)
