"""A session that took place and ended, with what signalling reported about its rooms
written the way the event writer writes it (``orchestrator.sessions.participation``): joins,
first frames, live, departures and media reports. Shared by the dashboard, booking
page and session page tests of issue 10 (media history outlives its session)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from orchestrator.booking import one_off
from orchestrator.db import DbSession
from orchestrator.models import Booking
from orchestrator.sessions import participation
from orchestrator.transitions import record_transition

REPORTS = (
    # (seconds after the start, what the room measured about its far peer)
    (10, {"fps": 29.5, "latency_p50_ms": 80.0, "freezes": 1, "rtt_ms": 10.0}),
    (20, {"fps": 29.7, "latency_p50_ms": 95.0, "freezes": 0, "rtt_ms": 14.0}),
    (30, {"loss_fraction": 0.004, "packets_lost": 3, "rtt_ms": 30.0}),
)
"""Over the session: mean 29.6 fps, worst p50 95 ms, 1 freeze, RTT mean 18 ms (worst
30 ms), worst loss 0.4 %."""


@dataclass(frozen=True, slots=True)
class Held:
    booking_id: str
    session_id: str
    start: datetime
    end: datetime


def hold_ended_session(
    title: str,
    start: datetime,
    rooms: Sequence[str],
    *,
    minutes: int = 10,
    owner_id: str | None = None,
    owner_centre_id: str | None = None,
    organiser: str | None = None,
) -> Callable[[DbSession], Held]:
    """A database job: book ``rooms`` from ``start``, take the session live and end it
    (its transitions at their times), every room joining 50 s early and going live at
    the start; the first room reports ``REPORTS`` about the second and leaves a
    minute before the end. Returns ``Held``."""

    def run(s: DbSession) -> Held:
        end = start + timedelta(minutes=minutes)
        booking, session = one_off.book(s, title, start, end, list(rooms))
        if owner_id is not None or organiser is not None:
            row = s.get(Booking, booking.id)
            assert row is not None
            row.owner_id, row.owner_centre_id, row.organiser = owner_id, owner_centre_id, organiser
            s.add(row)
        t = start.timestamp()
        record_transition(s, session, "preparing", start - timedelta(seconds=60))
        for room in rooms:
            participation.record_joined(s, session.id, room, t - 50)
            participation.record_milestone(s, session.id, room, "first-frame", t - 45)
        record_transition(s, session, "live", start)
        for room in rooms:
            participation.record_milestone(s, session.id, room, "live", t + 0.2)
        first, second = rooms[0], rooms[1]
        for after, figures in REPORTS:
            participation.record_media(
                s, session.id, first, {"peer_id": f"room:{second}", **figures}, at=t + after
            )
        participation.record_left(s, session.id, first, (end - timedelta(minutes=1)).timestamp())
        record_transition(s, session, "ending", end - timedelta(minutes=5))
        record_transition(s, session, "ended", end)
        return Held(booking.id, session.id, start, end)

    return run
