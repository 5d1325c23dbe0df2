"""What the real-time plane reports about a room in a session, kept as its CDR line.

Every function is idempotent: signalling may deliver an event twice (a node bus
redelivers, a client repeats itself), and recording it twice changes nothing.

- ``joined_at`` is the first join; a join after a recorded departure counts as a
  rejoin (and clears ``left_at``); a join while present is a repeat.
- ``left_at`` is the last departure; a leave while not present is a repeat.
- ``first_frame_at`` and ``live_at``: the first value recorded wins.
- media: a running summary per participation, each report counted once by its
  ``(peer_id, at)``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from orchestrator.db import DbSession
from orchestrator.models import Participation
from orchestrator.service import DomainError

MILESTONES = {"first-frame": "first_frame_at", "live": "live_at"}


def _instant(at: float) -> datetime:
    return datetime.fromtimestamp(at, UTC)


def _participation(db: DbSession, session_id: str, room_id: str) -> Participation:
    found = db.get(Participation, (session_id, room_id))
    if found is None:
        raise DomainError("not-found", f"room {room_id!r} is not in session {session_id!r}")
    return found


def _save(db: DbSession, row: Participation) -> Participation:
    db.add(row)
    db.flush()
    return row


def record_joined(db: DbSession, session_id: str, room_id: str, at: float) -> Participation:
    row = _participation(db, session_id, room_id)
    when = _instant(at)
    if row.joined_at is None:
        row.joined_at = when
        row.left_at = None
    elif row.left_at is not None and when > row.left_at:
        row.rejoins += 1
        row.left_at = None
    return _save(db, row)


def record_left(db: DbSession, session_id: str, room_id: str, at: float) -> Participation:
    row = _participation(db, session_id, room_id)
    when = _instant(at)
    if row.joined_at is not None and row.left_at is None and when >= row.joined_at:
        row.left_at = when
    return _save(db, row)


def record_milestone(
    db: DbSession, session_id: str, room_id: str, event: str, at: float
) -> Participation:
    """``first-frame`` (first remote frame decoded) or ``live`` (first remote camera frame)."""
    column = MILESTONES.get(event)
    if column is None:
        raise DomainError("invalid-event", f"unknown milestone {event!r}: {sorted(MILESTONES)}")
    row = _participation(db, session_id, room_id)
    if getattr(row, column) is None:
        setattr(row, column, _instant(at))
    return _save(db, row)


def _number(media: Mapping[str, Any], key: str) -> float | None:
    value = media.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def summarise_media(
    summary: Mapping[str, Any], media: Mapping[str, Any], at: float
) -> dict[str, Any] | None:
    """The summary with one more report folded in, or None if it was already counted.

    ``media`` carries what one peer's screen measured over a period: ``fps``,
    ``latency_p50_ms``, ``freezes`` and ``peer_id`` (missing values are skipped). The
    summary keeps the latest and mean frame rate, the worst median latency, and the
    total of freezes; from the connection's statistics, the mean of each of
    ``MEAN_MAX`` (``<name>_mean``, over ``<name>_samples`` reports) and its worst
    (``<name>_max``), the total of ``packets_lost`` and the worst ``loss_fraction``.
    """
    peer = str(media.get("peer_id") or "")
    seen: dict[str, float] = dict(summary.get("last_at", {}))
    if peer in seen and at <= seen[peer]:
        return None
    seen[peer] = at
    reports = int(summary.get("reports", 0)) + 1
    result: dict[str, Any] = {
        **summary,  # what else the summary holds (the agent's process) stays
        "reports": reports,
        "fps_latest": summary.get("fps_latest"),
        "fps_mean": summary.get("fps_mean"),
        "fps_samples": int(summary.get("fps_samples", 0)),
        "latency_p50_ms_max": summary.get("latency_p50_ms_max"),
        "freezes_total": int(summary.get("freezes_total", 0)),
        "last_at": seen,
    }
    fps = _number(media, "fps")
    if fps is not None:
        n = result["fps_samples"] + 1
        mean = result["fps_mean"] or 0.0
        result["fps_samples"] = n
        result["fps_mean"] = mean + (fps - mean) / n
        result["fps_latest"] = fps
    latency = _number(media, "latency_p50_ms")
    if latency is not None:
        worst = result["latency_p50_ms_max"]
        result["latency_p50_ms_max"] = latency if worst is None else max(worst, latency)
    freezes = _number(media, "freezes")
    if freezes is not None:
        result["freezes_total"] += int(freezes)
    for name in MEAN_MAX:
        _fold_mean_max(result, summary, name, _number(media, name))
    lost = _number(media, "packets_lost")
    result["packets_lost_total"] = int(summary.get("packets_lost_total", 0)) + max(
        int(lost or 0), 0
    )
    loss = _number(media, "loss_fraction")
    worst_loss = summary.get("loss_fraction_max")
    if loss is not None:
        worst_loss = loss if worst_loss is None else max(worst_loss, loss)
    result["loss_fraction_max"] = worst_loss
    return result


MEAN_MAX = ("bitrate_in_kbps", "bitrate_out_kbps", "rtt_ms", "jitter_ms")
"""Per-peer figures summarised by their mean and their worst (highest) value."""


def _fold_mean_max(
    result: dict[str, Any], summary: Mapping[str, Any], name: str, value: float | None
) -> None:
    n = int(summary.get(f"{name}_samples", 0))
    mean, worst = summary.get(f"{name}_mean"), summary.get(f"{name}_max")
    if value is not None:
        n += 1
        mean = value if mean is None else mean + (value - mean) / n
        worst = value if worst is None else max(worst, value)
    result[f"{name}_samples"] = n
    result[f"{name}_mean"] = mean
    result[f"{name}_max"] = worst


def summarise_process(
    summary: Mapping[str, Any], process: Mapping[str, Any], at: float
) -> dict[str, Any] | None:
    """The summary with one report of the room agent's own process folded in
    (``cpu_percent``: mean and worst; ``rss_bytes``: latest and worst), or None if
    it was already counted (by ``at``)."""
    last = summary.get("process_last_at")
    if isinstance(last, int | float) and at <= last:
        return None
    result = dict(summary)
    result["process_last_at"] = at
    cpu = _number(process, "cpu_percent")
    _fold_mean_max(result, summary, "cpu_percent", cpu)
    rss = _number(process, "rss_bytes")
    if rss is not None:
        worst = summary.get("rss_bytes_max")
        result["rss_bytes_latest"] = int(rss)
        result["rss_bytes_max"] = int(rss if worst is None else max(worst, rss))
    return result


def record_media(
    db: DbSession, session_id: str, room_id: str, media: Mapping[str, Any], *, at: float
) -> Participation:
    """Fold one media report (see ``summarise_media``) into the room's summary."""
    row = _participation(db, session_id, room_id)
    current = json.loads(row.media_summary) if row.media_summary else {}
    updated = summarise_media(current, media, at)
    if updated is not None:
        row.media_summary = json.dumps(updated, sort_keys=True)
    return _save(db, row)


def record_process(
    db: DbSession, session_id: str, room_id: str, process: Mapping[str, Any], *, at: float
) -> Participation:
    """Fold one report of the room agent's process (see ``summarise_process``) into
    the room's media summary."""
    row = _participation(db, session_id, room_id)
    current = json.loads(row.media_summary) if row.media_summary else {}
    updated = summarise_process(current, process, at)
    if updated is not None:
        row.media_summary = json.dumps(updated, sort_keys=True)
    return _save(db, row)
