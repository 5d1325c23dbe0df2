"""What a session leaves behind, read back for people: each site's kept media
summary (the participation's ``media_summary``, folded by
``orchestrator.sessions.participation``) as plain figures, and the names of the people who
booked, which the pages show as the organiser.

The summary is kept for good: it describes the session after its rooms have left
and after the session ended, when signalling's live figures are gone. Reading it
never fails on a summary written by an older version (a missing or malformed
figure reads as unknown).
"""

from __future__ import annotations

import json
import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlmodel import col

from orchestrator.db import DbSession
from orchestrator.models import Participation, User


@dataclass(frozen=True, slots=True)
class KeptMedia:
    """A site's media over a session, as the room reported it about its peers.

    ``fps_mean``: mean frame rate received; ``freezes``: total freezes seen;
    ``latency_p50_ms_max``: the worst median glass-to-glass latency;
    ``rtt_ms_*`` and ``jitter_ms_*``: mean and worst; ``packets_lost``: total;
    ``loss_fraction_max``: the worst share of packets lost over a period (0 to 1);
    ``bitrate_*_kbps_mean``: mean bitrates received and sent."""

    reports: int
    fps_mean: float | None
    fps_latest: float | None
    freezes: int
    latency_p50_ms_max: float | None
    rtt_ms_mean: float | None
    rtt_ms_max: float | None
    jitter_ms_mean: float | None
    jitter_ms_max: float | None
    packets_lost: int
    loss_fraction_max: float | None
    bitrate_in_kbps_mean: float | None
    bitrate_out_kbps_mean: float | None


def _figure(summary: Mapping[str, Any], key: str) -> float | None:
    value = summary.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _count(summary: Mapping[str, Any], key: str) -> int:
    value = _figure(summary, key)
    return max(int(value), 0) if value is not None else 0


def kept_media(summary: Mapping[str, Any]) -> KeptMedia | None:
    """The figures of a media summary; None when no media report was counted (a room
    that never received media, or whose summary holds only its process figures)."""
    reports = _count(summary, "reports")
    if reports == 0:
        return None
    return KeptMedia(
        reports=reports,
        fps_mean=_figure(summary, "fps_mean"),
        fps_latest=_figure(summary, "fps_latest"),
        freezes=_count(summary, "freezes_total"),
        latency_p50_ms_max=_figure(summary, "latency_p50_ms_max"),
        rtt_ms_mean=_figure(summary, "rtt_ms_mean"),
        rtt_ms_max=_figure(summary, "rtt_ms_max"),
        jitter_ms_mean=_figure(summary, "jitter_ms_mean"),
        jitter_ms_max=_figure(summary, "jitter_ms_max"),
        packets_lost=_count(summary, "packets_lost_total"),
        loss_fraction_max=_figure(summary, "loss_fraction_max"),
        bitrate_in_kbps_mean=_figure(summary, "bitrate_in_kbps_mean"),
        bitrate_out_kbps_mean=_figure(summary, "bitrate_out_kbps_mean"),
    )


def parse_summary(text: str | None) -> dict[str, Any]:
    """A stored ``media_summary`` as a mapping ({} when empty or unreadable)."""
    if not text:
        return {}
    try:
        found = json.loads(text)
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


def kept_media_of(db: DbSession, session_ids: Collection[str]) -> dict[tuple[str, str], KeptMedia]:
    """(session id, room id) -> kept media, for the sites of these sessions that have
    any."""
    if not session_ids:
        return {}
    found: dict[tuple[str, str], KeptMedia] = {}
    for session_id, room_id, text in db.connection().execute(
        sa.select(
            col(Participation.session_id),
            col(Participation.room_id),
            col(Participation.media_summary),
        ).where(
            col(Participation.session_id).in_(sorted(session_ids)),
            col(Participation.media_summary).is_not(None),
        )
    ):
        kept = kept_media(parse_summary(text))
        if kept is not None:
            found[(session_id, room_id)] = kept
    return found


def owner_names(db: DbSession, owner_ids: Collection[str]) -> dict[str, str]:
    """User id -> name, for the people who own these bookings."""
    if not owner_ids:
        return {}
    return {
        user_id: name
        for user_id, name in db.connection().execute(
            sa.select(col(User.id), col(User.name)).where(col(User.id).in_(sorted(owner_ids)))
        )
    }
