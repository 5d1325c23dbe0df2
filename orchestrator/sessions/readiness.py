"""Readiness checks as the orchestrator keeps them, and when a room's centre is told.

A room agent checks itself before each session (camera, microphone, signalling,
TURN, clock) and reports the result; signalling passes it on unchanged.

Rules:

- Each room's latest check is kept (``room_readiness``), whatever it was run for. A
  check run for a session is also kept for that session and room
  (``session_readiness``), if the room takes part in the session.
- A report is recorded only if it is newer (by ``checked_at``) than the one kept:
  redelivered or late reports change nothing.
- What a room sent is made safe before it is kept or mailed (``clean_checks``,
  ``orchestrator.reported``): check names and details, and the session id it named,
  lose their unpaired surrogates and control characters and are cut to their
  limits; ``checked_at`` and ``received_at`` outside the reported range are refused
  with ``invalid-time``.
- Alerts (``alert_step``): a failing check for a session that is not over sends a
  failure alert, unless one already stands; a passing check while one stands sends a
  recovery notice. At most ``MAX_ALERTS`` failure alerts per session and room, so a
  flapping device cannot flood the staff's mailboxes. ``record`` returns the notice
  to send; the caller delivers it (webhook, email) in the same transaction's wake.
- A room is ``ready``, ``degraded`` (only TURN or clock fail: it can still take part)
  or ``failing`` (``verdict``), as the dashboard shows it.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Final, Literal

from sqlmodel import col, select

from orchestrator import reported
from orchestrator.db import DbSession
from orchestrator.lifecycle import is_terminal
from orchestrator.models import (
    Booking,
    Centre,
    Participation,
    Room,
    RoomReadinessRecord,
    Session,
    SessionReadiness,
)

MAX_ALERTS: Final = 3
MAX_NAME: Final = 40
MAX_DETAIL: Final = 300
MAX_CHECKS: Final = 32
MAX_ID: Final = 64
"""The longest room or session id a report may name (ours are 32 characters)."""
NoticeKind = Literal["failing", "recovered"]


# --- value objects and pure rules -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "detail": self.detail}


@dataclass(frozen=True, slots=True)
class ReadinessView:
    """One kept check: ``alerts`` counts the failure alerts sent for a session's."""

    ok: bool
    checks: tuple[Check, ...]
    checked_at: datetime
    received_at: datetime
    session_id: str | None = None
    alerts: int = 0

    @property
    def failing(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.checks if not c.ok)

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checked_at": self.checked_at.isoformat(),
            "received_at": self.received_at.isoformat(),
            "session_id": self.session_id,
            "failing": list(self.failing),
            "checks": [c.to_json() for c in self.checks],
        }


NON_BLOCKING_CHECKS: Final = frozenset({"turn", "clock"})
"""Readiness checks whose failure leaves a room able to take part (host candidates
still connect; the schedule still runs, a little off)."""

Verdict = Literal["ready", "degraded", "failing"]


def verdict(view: ReadinessView) -> Verdict:
    """A room's readiness in one word: ``ready``; ``degraded`` when only checks that
    do not stop a call fail (``NON_BLOCKING_CHECKS``: TURN, clock); ``failing``."""
    if view.ok:
        return "ready"
    if set(view.failing) <= NON_BLOCKING_CHECKS:
        return "degraded"
    return "failing"


@dataclass(frozen=True, slots=True)
class AlertState:
    alerts: int = 0
    alerting: bool = False


def alert_step(
    state: AlertState, ok: bool, session_open: bool
) -> tuple[AlertState, NoticeKind | None]:
    """What one more check result means for the staff: the new state and the notice
    to send, if any (see the module's rules)."""
    if ok:
        if state.alerting:
            return replace(state, alerting=False), "recovered"
        return state, None
    if state.alerting or not session_open or state.alerts >= MAX_ALERTS:
        return state, None
    return AlertState(alerts=state.alerts + 1, alerting=True), "failing"


def clean_checks(checks: Iterable[Check]) -> tuple[Check, ...]:
    """Checks as stored: at most ``MAX_CHECKS``, names and details made safe text
    (``orchestrator.reported.text``) and cut to their limits."""
    return tuple(
        Check(
            reported.text(c.name, MAX_NAME),
            bool(c.ok),
            reported.text(c.detail or "", MAX_DETAIL),
        )
        for c in itertools.islice(checks, MAX_CHECKS)
    )


def encode_checks(checks: Iterable[Check]) -> str:
    return json.dumps([c.to_json() for c in checks], ensure_ascii=False)


def decode_checks(text: str) -> tuple[Check, ...]:
    try:
        data = json.loads(text)
    except ValueError:
        return ()
    if not isinstance(data, list):
        return ()
    return tuple(
        Check(str(item.get("name", "")), bool(item.get("ok")), str(item.get("detail") or ""))
        for item in data
        if isinstance(item, dict)
    )


@dataclass(frozen=True, slots=True)
class ReadinessNotice:
    """What the staff of a room's centre are told: a failing check before a session,
    or that a room that failed now passes."""

    kind: NoticeKind
    session_id: str
    session_title: str
    session_start: datetime
    room_id: str
    room_name: str
    centre_id: str
    centre_name: str
    centre_timezone: str
    checks: tuple[Check, ...]
    checked_at: datetime

    @property
    def failing(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if not c.ok)


# --- the store ---------------------------------------------------------------------------


def record(
    db: DbSession,
    room_id: str,
    session_id: str | None,
    ok: bool,
    checks: Sequence[Check],
    *,
    checked_at: float,
    received_at: float,
) -> ReadinessNotice | None:
    """Keep a room's check (see the module's rules); returns the notice to send."""
    checked = reported.instant(checked_at, "a check's time")
    received = reported.instant(received_at, "a check's arrival")
    if session_id is not None:
        session_id = reported.text(session_id, MAX_ID)
    room = db.get(Room, reported.text(room_id, MAX_ID))
    if room is None:
        return None
    stored = clean_checks(checks)
    text = encode_checks(stored)
    latest = db.get(RoomReadinessRecord, room_id)
    if latest is None or checked >= latest.checked_at:
        latest = latest or RoomReadinessRecord(
            room_id=room_id, ok=ok, checks=text, checked_at=checked, received_at=received
        )
        latest.session_id, latest.ok, latest.checks = session_id, ok, text
        latest.checked_at, latest.received_at = checked, received
        db.add(latest)
    if session_id is None:
        db.flush()
        return None
    session = db.get(Session, session_id)
    if session is None or db.get(Participation, (session_id, room_id)) is None:
        db.flush()
        return None
    row = db.get(SessionReadiness, (session_id, room_id))
    if row is not None and checked <= row.checked_at:
        db.flush()
        return None
    state = AlertState(row.alerts, row.alerting) if row is not None else AlertState()
    session_open = not is_terminal(session.state) and received < session.end_utc
    state, kind = alert_step(state, ok, session_open)
    row = row or SessionReadiness(
        session_id=session_id,
        room_id=room_id,
        ok=ok,
        checks=text,
        checked_at=checked,
        received_at=received,
    )
    row.ok, row.checks, row.checked_at, row.received_at = ok, text, checked, received
    row.alerts, row.alerting = state.alerts, state.alerting
    db.add(row)
    db.flush()
    if kind is None:
        return None
    centre = db.get(Centre, room.centre_id)
    booking = db.get(Booking, session.booking_id)
    return ReadinessNotice(
        kind=kind,
        session_id=session_id,
        session_title=" ".join((session.title or (booking.title if booking else "")).split()),
        session_start=session.start_utc,
        room_id=room_id,
        room_name=room.name,
        centre_id=room.centre_id,
        centre_name=centre.name if centre else "",
        centre_timezone=centre.timezone if centre else "UTC",
        checks=stored,
        checked_at=checked,
    )


def _view(row: RoomReadinessRecord) -> ReadinessView:
    return ReadinessView(
        ok=row.ok,
        checks=decode_checks(row.checks),
        checked_at=row.checked_at,
        received_at=row.received_at,
        session_id=row.session_id,
    )


def latest_by_room(
    db: DbSession, room_ids: Iterable[str] | None = None
) -> dict[str, ReadinessView]:
    """Each room's latest check (every room that ever reported one, or those named)."""
    query = select(RoomReadinessRecord)
    if room_ids is not None:
        query = query.where(col(RoomReadinessRecord.room_id).in_(list(room_ids)))
    return {row.room_id: _view(row) for row in db.exec(query)}


def for_session(db: DbSession, session_id: str) -> dict[str, ReadinessView]:
    """Each room's latest check for the session, by room id."""
    rows = db.exec(select(SessionReadiness).where(col(SessionReadiness.session_id) == session_id))
    return {
        row.room_id: ReadinessView(
            ok=row.ok,
            checks=decode_checks(row.checks),
            checked_at=row.checked_at,
            received_at=row.received_at,
            session_id=row.session_id,
            alerts=row.alerts,
        )
        for row in rows
    }
