"""What the application holds for its handlers (``Services``, under ``web.keys.SERVICES``)
and what the pages show that the database does not hold (``LiveView``).

Below every area: the API, the calendar routes and the pages import it (through
``web.keys``); it imports none of them."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Final, TypeVar

from orchestrator import reported
from orchestrator.booking.policy import BookingSettings
from orchestrator.calendars.jobs import CalendarJobs
from orchestrator.clock import Clock
from orchestrator.db import Database
from orchestrator.errors import DomainError
from orchestrator.sessions.participation import MAX_PEERS
from orchestrator.sessions.readiness import MAX_ID, Check, ReadinessView, clean_checks
from orchestrator.sessions.scheduler import Scheduler
from orchestrator.sessions.tickets import TicketSigner
from signalling.ports import MediaReport, RoomReadiness, SessionTopology
from signalling.server import SignallingServer
from web.adapters import OrchestratorEvents
from web.alerts import Alerts
from web.live_media import LiveMedia
from web.settings import Settings

MAX_LIVE_KEYS: Final = 2048
"""The most (session, room) pairs, rooms and readiness checks the live view holds;
beyond it the least recently reported is forgotten (it is in the database)."""

K = TypeVar("K")
V = TypeVar("V")


def _keep(table: dict[K, V], key: K, value: V) -> None:
    """Set ``table[key]`` as the most recent entry, forgetting the least recent one
    when the table is full."""
    table.pop(key, None)
    if len(table) >= MAX_LIVE_KEYS:
        del table[next(iter(table))]
    table[key] = value


@dataclass(slots=True)
class LiveView:
    """What the pages show that the database does not hold: presence and fresh stats.

    ``media``: the latest media report per (session, room); ``rooms``: the latest per
    room (``LiveMedia``: the peers' figures and the agent's process, CPU and memory);
    ``readiness``: each room's latest
    readiness check (loaded from the database at start, then kept up to date).

    Bounds: each table holds at most ``MAX_LIVE_KEYS`` entries (least recently
    reported first out) and a report at most ``MAX_PEERS`` peers, so nothing a peer
    sends makes it grow without bound. A readiness report is taken as the store takes
    it (``orchestrator.sessions.readiness``): text made safe, and one whose instants are out of
    range is ignored, as the store refuses it.
    """

    media: dict[tuple[str, str], LiveMedia] = field(default_factory=dict)
    rooms: dict[str, LiveMedia] = field(default_factory=dict)
    readiness: dict[str, ReadinessView] = field(default_factory=dict)
    sfu: dict[str, SessionTopology] = field(default_factory=dict)
    """Sessions on an SFU: where each is, and the latest move (``SessionTopology``)."""

    def listen(self, event: object) -> None:
        if isinstance(event, SessionTopology):
            _keep(self.sfu, event.session_id, event)
        elif isinstance(event, MediaReport) and event.room_id is not None:
            report = LiveMedia(
                session_id=event.session_id,
                at=event.at,
                peers=tuple(
                    replace(m, peer_id=reported.text(m.peer_id, MAX_ID))
                    for m in event.media[:MAX_PEERS]
                ),
                process=event.process,
            )
            _keep(self.media, (event.session_id, event.room_id), report)
            _keep(self.rooms, event.room_id, report)
        elif isinstance(event, RoomReadiness):
            try:
                checked_at = reported.instant(event.checked_at)
                received_at = reported.instant(event.at)
            except DomainError:
                return  # the store refuses it too (see the class's bounds)
            kept = self.readiness.get(event.room_id)
            if kept is None or checked_at >= kept.checked_at:
                _keep(
                    self.readiness,
                    event.room_id,
                    ReadinessView(
                        ok=bool(event.ok),
                        checks=clean_checks(Check(c.name, c.ok, c.detail) for c in event.checks),
                        checked_at=checked_at,
                        received_at=received_at,
                        session_id=(
                            reported.text(event.session_id, MAX_ID)
                            if event.session_id is not None
                            else None
                        ),
                    ),
                )


@dataclass(slots=True)
class Services:
    settings: Settings
    db: Database
    signer: TicketSigner
    signalling: SignallingServer
    scheduler: Scheduler
    events: OrchestratorEvents
    live: LiveView
    clock: Clock
    calendars: CalendarJobs
    booking_settings: BookingSettings
    alerts: Alerts
