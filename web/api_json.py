"""The API's JSON shapes for centres, rooms, bookings, sessions and readiness: pure
functions of the domain's records, shared by the HTTP API (web/api.py) and the CLI's
``--json`` output (web/cli/), which must not load the web application to print them."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from orchestrator.models import Booking, Centre, Room, Session
from orchestrator.sessions import readiness
from orchestrator.sessions.detail import SessionDetail


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def centre_json(c: Centre) -> dict[str, Any]:
    return {"id": c.id, "name": c.name, "timezone": c.timezone}


def readiness_json(view: readiness.ReadinessView | None, *, alerts: bool = False) -> Any:
    """A room's readiness check as the API shows it (None: never checked)."""
    if view is None:
        return None
    out = view.to_json()
    if alerts:
        out["alerts"] = view.alerts
    return out


def room_json(
    r: Room, online: bool, ready: readiness.ReadinessView | None = None
) -> dict[str, Any]:
    """``ready``: the room's latest readiness check (None: never checked)."""
    return {
        "readiness": readiness_json(ready),
        "buffer_seconds": r.buffer_seconds,
        "max_duration_seconds": r.max_duration_seconds,
        "max_advance_days": r.max_advance_days,
        "aliases": json.loads(r.aliases),
        "ice_policy": r.ice_policy,
        "small_uplink": r.small_uplink,
        "id": r.id,
        "centre_id": r.centre_id,
        "name": r.name,
        "key_generation": r.key_generation,
        "online": online,
    }


def booking_json(b: Booking) -> dict[str, Any]:
    return {
        "id": b.id,
        "title": b.title,
        "start": iso(b.start_utc),
        "end": iso(b.end_utc),
        "start_local": b.start_local.isoformat(),
        "end_local": b.end_local.isoformat(),
        "timezone": b.timezone,
        "lead_seconds": b.lead_seconds,
        "connect_mode": b.connect_mode,
    }


def session_json(s: Session) -> dict[str, Any]:
    return {
        "id": s.id,
        "booking_id": s.booking_id,
        "start": iso(s.start_utc),
        "end": iso(s.end_utc),
        "state": s.state,
        "lead_seconds": s.lead_seconds,
        "failure": s.failure,
    }


def session_detail_json(
    d: SessionDetail, ready: dict[str, readiness.ReadinessView] | None = None
) -> dict[str, Any]:
    """``ready``: each room's readiness check for the session, shown as ``readiness``."""
    checks = ready or {}
    return {
        "id": d.id,
        "booking_id": d.booking_id,
        "title": d.title,
        "start": iso(d.start),
        "end": iso(d.end),
        "lead_seconds": d.lead_seconds,
        "state": d.state,
        "connect_mode": d.connect_mode,
        "transitions": [{"seq": t.seq, "state": t.state, "at": iso(t.at)} for t in d.transitions],
        "rooms": [
            {
                "room_id": p.room_id,
                "name": p.room_name,
                "centre_id": p.centre_id,
                "joined_at": iso(p.joined_at),
                "first_frame_at": iso(p.first_frame_at),
                "live_at": iso(p.live_at),
                "left_at": iso(p.left_at),
                "released_at": iso(p.released_at),
                "rejoins": p.rejoins,
                "media": p.media,
                "readiness": readiness_json(checks.get(p.room_id), alerts=True),
            }
            for p in d.participations
        ],
    }
