"""What the real-time plane reports about a room in a session, kept as its CDR line.

Every function is idempotent: signalling may deliver an event twice (a node bus
redelivers, a client repeats itself), and recording it twice changes nothing.

- ``joined_at`` is the first join; a join after a recorded departure counts as a
  rejoin (and clears ``left_at``); a join while present is a repeat.
- ``left_at`` is the last departure; a leave while not present is a repeat.
- ``first_frame_at`` and ``live_at``: the first value recorded wins.
- media: a running summary per participation, each report counted once by its
  ``(peer_id, at)``, and only about the session's real peers: the rooms taking part
  and the guests of its booking (``session_peers``). Figures a room sends about any
  other peer id are ignored, so a room cannot grow the summary with invented ids.
- Instants are refused with ``invalid-time`` outside the range of
  ``orchestrator.reported`` (never a crash in ``datetime``).

Reports on their way to the database are coalesced (``MediaBatch``): the reports of
one room in one session that wait are folded per peer, from an empty summary, with
the very rules of ``summarise_media``; ``record_batch`` then merges each peer's fold
into the stored summary (``merge_media``): counts and totals add, means combine
weighted by their samples, worsts take the worse, latests the newer. The figures
are those of folding the reports one by one. The one difference: a fold whose first
report is not newer than the last one counted for that peer (a redelivery, or a
wall clock stepped back) is skipped whole.
"""

from __future__ import annotations

import json
import math
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from sqlmodel import col, select

from common.peers import guest_peer_id, room_peer_id
from orchestrator import reported
from orchestrator.db import DbSession
from orchestrator.errors import DomainError
from orchestrator.models import Guest, Participation, Session

MILESTONES = {"first-frame": "first_frame_at", "live": "live_at"}
MAX_PEERS: Final = 64
"""The most peers one waiting batch keeps figures about (a session has at most a few
dozen; a room naming more is inventing them)."""


def _instant(at: float) -> datetime:
    return reported.instant(at)


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
    """A finite figure, or None (missing, not a number, infinite, NaN or beyond a
    float: none of them can be summed or compared)."""
    value = media.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _valid_at(at: float) -> bool:
    try:
        reported.instant(at)
    except DomainError:
        return False
    return True


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
MEDIA_KEYS = (
    "peer_id",
    "fps",
    "latency_p50_ms",
    "freezes",
    *MEAN_MAX,
    "packets_lost",
    "loss_fraction",
)
"""What ``summarise_media`` reads of a report."""


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


# --- coalescing: reports folded while they wait, merged into the stored summary ------


def _weighted(mean_a: Any, n_a: int, mean_b: Any, n_b: int) -> Any:
    """The mean of ``n_a + n_b`` samples from the means of two parts (as folding the
    second part's samples one by one would give, to the last bit for one sample)."""
    if n_b <= 0 or mean_b is None:
        return mean_a
    if n_a <= 0 or mean_a is None:
        return mean_b
    return mean_a + (mean_b - mean_a) * n_b / (n_a + n_b)


def _worse(a: Any, b: Any) -> Any:
    return a if b is None else b if a is None else max(a, b)


def _merge_mean_max(result: dict[str, Any], fold: Mapping[str, Any], name: str) -> None:
    n_a, n_b = int(result.get(f"{name}_samples", 0)), int(fold.get(f"{name}_samples", 0))
    result[f"{name}_mean"] = _weighted(
        result.get(f"{name}_mean"), n_a, fold.get(f"{name}_mean"), n_b
    )
    result[f"{name}_max"] = _worse(result.get(f"{name}_max"), fold.get(f"{name}_max"))
    result[f"{name}_samples"] = n_a + n_b


def merge_media(
    summary: Mapping[str, Any], peer: str, fold: Mapping[str, Any], first_at: float
) -> dict[str, Any] | None:
    """The summary with ``fold`` (one peer's reports folded by ``summarise_media``
    from an empty summary, the earliest received at ``first_at``) merged in; None if
    those reports were already counted (see the module's rules)."""
    seen: dict[str, float] = dict(summary.get("last_at", {}))
    if peer in seen and first_at <= seen[peer]:
        return None
    seen[peer] = float(fold.get("last_at", {}).get(peer, first_at))
    result: dict[str, Any] = {**summary, "last_at": seen}
    result["reports"] = int(summary.get("reports", 0)) + int(fold.get("reports", 0))
    n_a, n_b = int(summary.get("fps_samples", 0)), int(fold.get("fps_samples", 0))
    result["fps_mean"] = _weighted(summary.get("fps_mean"), n_a, fold.get("fps_mean"), n_b)
    result["fps_samples"] = n_a + n_b
    result["fps_latest"] = fold.get("fps_latest") if n_b else summary.get("fps_latest")
    result["latency_p50_ms_max"] = _worse(
        summary.get("latency_p50_ms_max"), fold.get("latency_p50_ms_max")
    )
    result["freezes_total"] = int(summary.get("freezes_total", 0)) + int(
        fold.get("freezes_total", 0)
    )
    for name in MEAN_MAX:
        _merge_mean_max(result, fold, name)
    result["packets_lost_total"] = int(summary.get("packets_lost_total", 0)) + int(
        fold.get("packets_lost_total", 0)
    )
    result["loss_fraction_max"] = _worse(
        summary.get("loss_fraction_max"), fold.get("loss_fraction_max")
    )
    return result


def merge_process(
    summary: Mapping[str, Any], fold: Mapping[str, Any], first_at: float
) -> dict[str, Any] | None:
    """The summary with ``fold`` (process reports folded by ``summarise_process``
    from an empty summary, the earliest received at ``first_at``) merged in; None if
    they were already counted."""
    last = summary.get("process_last_at")
    if isinstance(last, int | float) and first_at <= last:
        return None
    result = dict(summary)
    result["process_last_at"] = fold.get("process_last_at", first_at)
    _merge_mean_max(result, fold, "cpu_percent")
    if fold.get("rss_bytes_latest") is not None:
        result["rss_bytes_latest"] = fold["rss_bytes_latest"]
        result["rss_bytes_max"] = _worse(summary.get("rss_bytes_max"), fold.get("rss_bytes_max"))
    return result


@dataclass(slots=True)
class _Fold:
    first_at: float
    last_at: float
    summary: dict[str, Any]
    fps_order: int = -1
    """The batch-wide order of the last entry that carried an ``fps`` (-1: none)."""


@dataclass(slots=True)
class MediaBatch:
    """One room's media reports in one session while they wait for the database,
    folded per peer (at most ``MAX_PEERS`` peers; see the module's rules). Its size
    does not grow with the number of reports."""

    peers: dict[str, _Fold] = field(default_factory=dict)
    process: _Fold | None = None
    reports: int = 0
    """How many reports were added (for the writer's counters)."""
    entries: int = 0
    """How many entries were folded, in order (``_Fold.fps_order`` counts on it)."""

    def add(
        self,
        at: float,
        media: Iterable[Mapping[str, Any]] = (),
        process: Mapping[str, Any] | None = None,
    ) -> None:
        """Fold one report in: figures per peer (``media``) and the agent's process,
        received at ``at``. A report whose ``at`` is not a valid instant is ignored,
        and so are figures about peers beyond the first ``MAX_PEERS``."""
        if not _valid_at(at):
            return
        for entry in media:
            self._add_media(entry, at)
        if process is not None:
            self._add_process(process, at)
        self.reports += 1

    def add_media(self, media: Mapping[str, Any], at: float) -> bool:
        """Fold one peer's figures in; False when they are dropped: the batch already
        holds ``MAX_PEERS`` other peers, or ``at`` is not a valid instant."""
        return _valid_at(at) and self._add_media(media, at)

    def _add_media(self, media: Mapping[str, Any], at: float) -> bool:
        peer = str(media.get("peer_id") or "")
        fold = self.peers.get(peer)
        if fold is None:
            if len(self.peers) >= MAX_PEERS:
                return False
            fold = self.peers[peer] = _Fold(at, at, {})
        updated = summarise_media(fold.summary, media, at)
        if updated is not None:
            fold.summary, fold.last_at = updated, at
            if _number(media, "fps") is not None:
                fold.fps_order = self.entries
            self.entries += 1
        return True

    def add_process(self, process: Mapping[str, Any], at: float) -> None:
        if _valid_at(at):
            self._add_process(process, at)

    def _add_process(self, process: Mapping[str, Any], at: float) -> None:
        fold = self.process
        if fold is None:
            first = summarise_process({}, process, at)
            if first is not None:
                self.process = _Fold(at, at, first)
            return
        updated = summarise_process(fold.summary, process, at)
        if updated is not None:
            fold.summary, fold.last_at = updated, at


def session_peers(db: DbSession, session_id: str) -> frozenset[str]:
    """The peer ids that take part in a session: its rooms and its booking's guests."""
    rooms = db.exec(
        select(Participation.room_id).where(col(Participation.session_id) == session_id)
    ).all()
    session = db.get(Session, session_id)
    guests = (
        db.exec(select(Guest.id).where(col(Guest.booking_id) == session.booking_id)).all()
        if session is not None
        else []
    )
    return frozenset([room_peer_id(r) for r in rooms] + [guest_peer_id(g) for g in guests])


def merge_batch(
    summary: Mapping[str, Any], batch: MediaBatch, peers: Collection[str] | None = None
) -> dict[str, Any] | None:
    """The summary with a batch merged in (see the module's rules), keeping only
    figures about ``peers`` (None: every peer); None if nothing changed."""
    current = dict(summary)
    changed = False
    seen = current.get("last_at")
    if peers is not None and isinstance(seen, dict) and not seen.keys() <= set(peers):
        current["last_at"] = {p: t for p, t in seen.items() if p in peers}
        changed = True
    # The peer whose fps came last is merged last: its fps is the latest, as it would
    # be had the reports been folded one by one.
    for peer, fold in sorted(batch.peers.items(), key=lambda item: item[1].fps_order):
        if peers is not None and peer not in peers:
            continue
        merged = merge_media(current, peer, fold.summary, fold.first_at)
        if merged is not None:
            current, changed = merged, True
    if batch.process is not None:
        merged = merge_process(current, batch.process.summary, batch.process.first_at)
        if merged is not None:
            current, changed = merged, True
    return current if changed else None


def record_batch(db: DbSession, session_id: str, room_id: str, batch: MediaBatch) -> Participation:
    """Merge a batch of the room's reports into its media summary. Figures about peer
    ids that do not take part in the session are ignored, and dropped from a summary
    written before this rule."""
    row = _participation(db, session_id, room_id)
    current: dict[str, Any] = json.loads(row.media_summary) if row.media_summary else {}
    peers = session_peers(db, session_id) if batch.peers or current.get("last_at") else frozenset()
    merged = merge_batch(current, batch, peers)
    if merged is not None:
        row.media_summary = json.dumps(merged, sort_keys=True)
    return _save(db, row)


def record_media(
    db: DbSession, session_id: str, room_id: str, media: Mapping[str, Any], *, at: float
) -> Participation:
    """Fold one media report (see ``summarise_media``) into the room's summary."""
    _instant(at)
    batch = MediaBatch()
    batch.add_media(media, at)
    return record_batch(db, session_id, room_id, batch)


def record_process(
    db: DbSession, session_id: str, room_id: str, process: Mapping[str, Any], *, at: float
) -> Participation:
    """Fold one report of the room agent's process (see ``summarise_process``) into
    the room's media summary."""
    _instant(at)
    batch = MediaBatch()
    batch.add_process(process, at)
    return record_batch(db, session_id, room_id, batch)
