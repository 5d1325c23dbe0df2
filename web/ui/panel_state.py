"""The room panel's state as JSON: what ``GET /panel/{token}/state`` answers and the
page renders first. Plain functions of the panel view, the time and the room's
reported control state; times are formatted for the visitor's language in the
room's zone (each other site's start in its own zone).

Shape (``server_time`` drives every countdown, so a test's fake clock drives the page)::

    {"server_time": ISO, "online": bool,
     "room": {"id", "name", "centre", "timezone", "utc_offset"},
     "clock": {"time", "date", "timezone", "utc_offset"},
     "sessions": [{"id", "title" (null: not shown), "private", "start", "end",
                   "start_local", "end_local", "day" ("today"|"tomorrow"), "state",
                   "connect_mode", "sites": [{"room", "centre", "timezone", "start_local"}]}],
     "current": null | {"session_id", "title", "private", "phase", "starts_in", "ends_in",
                        "warning" (null|5|1), "joinable", "joined", "connect_mode",
                        "start_local", "end_local", "extendable",
                        "extend_blocked": null | {"room" (null: not named), "start_local",
                                                  "end_local"}},
     "next": null | {"session_id", "title", "private", "starts_in", "start_local", "day"},
     "agent": null | {"privacy", "content_share", "content_available", "session_id"},
     "extend_minutes": 15}

What the page says of the end follows one clock: the phase label ("Ends in 04:59") and
the countdown are both ``ends_in``, and the end warnings (from 5 and from 1 minute
before the end) name the end time rather than a number of minutes that would be true
for one second only. ``extendable`` is true only while the session may be extended
and every room is free for ``extend_minutes`` more; ``extend_blocked`` says why not,
by the first hold in the way (the room, unless the panel may not name it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from orchestrator import lifecycle
from orchestrator.sessions.panels import (
    PanelSession,
    PanelView,
    current_session,
    next_session,
    session_timing,
)
from web.ui.i18n import Formatter

EXTEND_MINUTES = 15
EXTENDABLE_PHASES = frozenset({lifecycle.LIVE, lifecycle.ENDING})


@dataclass(frozen=True, slots=True)
class AgentState:
    """The room agent's reported switches (``signalling.protocol.RoomControlState``)."""

    privacy: bool
    content_share: bool
    content_available: bool
    session_id: str | None


@dataclass(frozen=True, slots=True)
class ExtendBlock:
    """The first hold that keeps the current session from being extended: the room
    (None when the panel may not name it) and the hold's times (aware UTC)."""

    room: str | None
    start: datetime
    end: datetime


def countdown(total: int) -> str:
    """``106`` -> ``01:46``, ``3725`` -> ``1:02:05``: as ``panel.js`` writes a countdown."""
    total = max(0, total)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def utc_offset(at: datetime, timezone: str) -> str:
    """``UTC+01:00``: the zone's offset at ``at``."""
    offset = at.astimezone(ZoneInfo(timezone)).utcoffset()
    minutes = int(offset.total_seconds() // 60) if offset is not None else 0
    sign = "+" if minutes >= 0 else "-"
    return f"UTC{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def day_of(at: datetime, now: datetime, timezone: str) -> str:
    """``today``, ``tomorrow`` or ``later``, by the room's local date."""
    tz = ZoneInfo(timezone)
    days = (at.astimezone(tz).date() - now.astimezone(tz).date()).days
    return "today" if days <= 0 else "tomorrow" if days == 1 else "later"


def seconds(value: float) -> int:
    """Whole seconds, rounded up: a countdown shows 0:01 until the very start."""
    return max(0, math.ceil(value - 1e-9))


def agent_json(state: AgentState | None) -> dict[str, Any] | None:
    if state is None:
        return None
    return {
        "privacy": state.privacy,
        "content_share": state.content_share,
        "content_available": state.content_available,
        "session_id": state.session_id,
    }


def _session_json(
    s: PanelSession, view: PanelView, now: datetime, fmt: Formatter
) -> dict[str, Any]:
    tz = view.timezone
    return {
        "id": s.session_id,
        "title": s.title,
        "private": s.title is None,
        "start": s.start.isoformat(),
        "end": s.end.isoformat(),
        "start_local": fmt.time(s.start, tz),
        "end_local": fmt.time(s.end, tz),
        "day": day_of(s.start, now, tz),
        "state": s.state,
        "connect_mode": s.connect_mode,
        "sites": [
            {
                "room": site.room_name,
                "centre": site.centre_name,
                "timezone": site.timezone,
                "start_local": fmt.time(s.start, site.timezone),
            }
            for site in s.sites
        ],
    }


def panel_state(
    view: PanelView,
    now: datetime,
    agent: AgentState | None,
    online: bool,
    fmt: Formatter,
    blocked: ExtendBlock | None = None,
) -> dict[str, Any]:
    """The panel's state at ``now``; ``blocked``: what keeps the current session from
    being extended, if anything does."""
    tz = view.timezone
    current = current_session(view.sessions, now)
    upcoming = next_session(view.sessions, now, after=current)
    current_json: dict[str, Any] | None = None
    if current is not None:
        timing = session_timing(
            current.start, current.end, current.lead_seconds, current.connect_mode, now
        )
        current_json = {
            "session_id": current.session_id,
            "title": current.title,
            "private": current.title is None,
            "phase": timing.phase,
            "starts_in": seconds(timing.starts_in),
            "ends_in": seconds(timing.ends_in),
            "warning": timing.warning,
            "joinable": timing.joinable,
            "joined": agent is not None and agent.session_id == current.session_id,
            "connect_mode": current.connect_mode,
            "start_local": fmt.time(current.start, tz),
            "end_local": fmt.time(current.end, tz),
            "extendable": timing.phase in EXTENDABLE_PHASES and blocked is None,
            "extend_blocked": None
            if blocked is None or timing.phase not in EXTENDABLE_PHASES
            else {
                "room": blocked.room,
                "start_local": fmt.time(blocked.start, tz),
                "end_local": fmt.time(blocked.end, tz),
            },
        }
    next_json: dict[str, Any] | None = None
    if upcoming is not None:
        next_json = {
            "session_id": upcoming.session_id,
            "title": upcoming.title,
            "private": upcoming.title is None,
            "starts_in": seconds((upcoming.start - now).total_seconds()),
            "start_local": fmt.time(upcoming.start, tz),
            "day": day_of(upcoming.start, now, tz),
        }
    return {
        "server_time": now.isoformat(),
        "online": online,
        "room": {
            "id": view.room_id,
            "name": view.room_name,
            "centre": view.centre_name,
            "timezone": tz,
            "utc_offset": utc_offset(now, tz),
        },
        "clock": {
            "time": fmt.time(now, tz),
            "date": fmt.date(now, tz),
            "timezone": tz,
            "utc_offset": utc_offset(now, tz),
        },
        "sessions": [_session_json(s, view, now, fmt) for s in view.sessions],
        "current": current_json,
        "next": next_json,
        "agent": agent_json(agent),
        "extend_minutes": EXTEND_MINUTES,
    }
