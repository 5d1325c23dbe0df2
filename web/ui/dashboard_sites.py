"""One site of a session on the network dashboard: a room's CDR line so far, its
fresh media figures while it takes part, and, once it has left or the session is
over, the media it kept (``orchestrator.sessions.history``) instead of nothing.

Pure: a ``ViewContext`` carries what the view needs (who looks, when, names, the
live reports and the kept summaries).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from babel.numbers import format_decimal

from orchestrator.lifecycle import TERMINAL_STATES
from orchestrator.people.accounts import Principal
from orchestrator.reports.network import SessionRow, SiteRow
from orchestrator.sessions.history import KeptMedia
from signalling.ports import SessionTopology
from web.live_media import LiveMedia
from web.ui.i18n import Formatter, with_colon
from web.ui.media_labels import kept_labels, number

STALE_SECONDS = 10.0
"""A media report older than this no longer describes the media (agents report
every few seconds)."""
Gettext = Callable[[str], str]


@dataclass(frozen=True, slots=True)
class SiteView:
    key: str
    room_id: str
    room_name: str
    centre_name: str
    timezone: str
    local_start: str
    joined: bool
    joined_at: str | None
    joined_label: str
    joined_offset: str
    media: str
    media_label: str
    first_frame_at: str | None
    live_at: str | None
    fps: float | None
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    stats_at: str | None
    stats_fresh: bool
    fps_label: str
    latency_label: str
    stats_detail: str
    rejoins: int
    rejoins_label: str
    left_at: str | None
    released: bool
    released_at: str | None
    end_label: str
    announce: str
    kept: KeptMedia | None
    """The media summary kept for the site (figures over the whole session)."""


def iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def offset(value: datetime | None, start: datetime, lang: str) -> str:
    """A time relative to the booked start, which is what staff compare against
    ("T-40.00 s"; a decimal comma where the language writes one)."""
    if value is None:
        return ""
    seconds = (value - start).total_seconds()
    return f"T{format_decimal(seconds, '+0.00;-0.00', locale=lang)} s"


def _worst(values: Sequence[float | None], pick: Callable[[list[float]], float]) -> float | None:
    present = [v for v in values if v is not None]
    return pick(present) if present else None


@dataclass(frozen=True, slots=True)
class ViewContext:
    """Everything a dashboard view is built from, besides the snapshot's rows."""

    user: Principal | None
    now: datetime
    fmt: Formatter
    _: Gettext
    zones: Mapping[str, str]
    centre_names: Mapping[str, str]
    room_names: Mapping[str, str]
    room_centres: Mapping[str, str]
    online: frozenset[str]
    media: Mapping[tuple[str, str], LiveMedia]
    kept: Mapping[tuple[str, str], KeptMedia]
    owners: Mapping[str, str]
    """Booking owner id -> name (the organiser shown)."""
    sfu: Mapping[str, SessionTopology] = field(default_factory=dict)
    """Sessions on an SFU: where each runs (``LiveView.sfu``)."""

    def time(self, value: datetime | None, zone: str, fmt: str = "medium") -> str:
        return self.fmt.time(value, zone, fmt)


def _peer_name(peer_id: str, ctx: ViewContext, guests: Mapping[str, str], visible: bool) -> str:
    kind, _sep, ident = peer_id.partition(":")
    if kind == "room" and ident in ctx.room_names:
        return ctx.room_names[ident]
    if kind == "guest":
        return guests[ident] if visible and ident in guests else ctx._("Guest")
    return peer_id


@dataclass(frozen=True, slots=True)
class _Figures:
    fps: float | None
    p50: float | None
    p95: float | None
    at: datetime | None
    fresh: bool
    fps_label: str
    latency_label: str
    detail: str


def _live_figures(session: SessionRow, site: SiteRow, ctx: ViewContext, visible: bool) -> _Figures:
    """The worst figures of the room's last report, while fresher than STALE_SECONDS."""
    _ = ctx._
    report = ctx.media.get((session.id, site.room_id))
    peers = report.peers if report else ()
    at = datetime.fromtimestamp(report.at, UTC) if report else None
    fresh = at is not None and (ctx.now - at).total_seconds() <= STALE_SECONDS
    fps = _worst([p.fps for p in peers], min) if fresh else None
    p50 = _worst([p.latency_p50_ms for p in peers], max) if fresh else None
    p95 = _worst([p.latency_p95_ms for p in peers], max) if fresh else None
    lang = ctx.fmt.lang
    guests = dict(session.guests)
    fps_unit = _("fps")
    details = []
    for peer in peers if fresh else []:
        name = _peer_name(peer.peer_id, ctx, guests, visible)
        parts = [f"{number(float(peer.fps), lang)} {fps_unit}"]
        if peer.latency_p50_ms is not None:
            parts.append(f"p50 {number(float(peer.latency_p50_ms), lang)} ms")
        if peer.latency_p95_ms is not None:
            parts.append(f"p95 {number(float(peer.latency_p95_ms), lang)} ms")
        details.append(
            _("from %(peer)s: %(figures)s") % {"peer": name, "figures": ", ".join(parts)}
        )
    return _Figures(
        fps=fps,
        p50=p50,
        p95=p95,
        at=at,
        fresh=fresh,
        fps_label="–" if fps is None else f"{number(fps, lang)} {fps_unit}",
        latency_label=(
            "–"
            if p50 is None and p95 is None
            else " / ".join("–" if v is None else f"{number(v, lang)} ms" for v in (p50, p95))
        ),
        detail="; ".join(details),
    )


def _kept_figures(figures: _Figures, kept: KeptMedia, ctx: ViewContext) -> _Figures:
    """A site that no longer takes part shows what it kept over the session."""
    _ = ctx._
    labels = kept_labels(kept, ctx.fmt.lang, _)
    return _Figures(
        fps=figures.fps,
        p50=figures.p50,
        p95=figures.p95,
        at=figures.at,
        fresh=figures.fresh,
        fps_label=_("%(fps)s (mean)") % {"fps": labels.fps} if kept.fps_mean is not None else "–",
        latency_label=(
            _("%(latency)s (worst p50)") % {"latency": labels.latency}
            if kept.latency_p50_ms_max is not None
            else "–"
        ),
        detail=_("Over the session: %(figures)s") % {"figures": labels.summary},
    )


def _media(
    session: SessionRow, site: SiteRow, ctx: ViewContext, zone: str, present: bool
) -> tuple[str, str]:
    """(media, label): ``live`` and ``first-frame`` while the site takes part; ``kept``
    once it left or the session is over, if media reached it; else ``none``."""
    _ = ctx._
    if site.live_at is not None and present:
        return "live", _("Live since %(time)s") % {"time": ctx.time(site.live_at, zone)}
    if site.first_frame_at is not None and present:
        return "first-frame", _("First frame %(time)s") % {
            "time": ctx.time(site.first_frame_at, zone)
        }
    if site.live_at is not None:
        until = site.left_at or min(session.end, ctx.now)
        return "kept", _("Live from %(start)s to %(end)s") % {
            "start": ctx.time(site.live_at, zone),
            "end": ctx.time(max(until, site.live_at), zone),
        }
    if site.first_frame_at is not None:
        return "kept", _("First frame %(time)s") % {"time": ctx.time(site.first_frame_at, zone)}
    if (session.id, site.room_id) in ctx.kept:
        return "kept", _("Media received")
    return "none", _("No media")


def site_view(session: SessionRow, site: SiteRow, ctx: ViewContext, visible: bool) -> SiteView:
    _ = ctx._
    zone = ctx.zones.get(ctx.room_centres.get(site.room_id, ""), "UTC")
    room_name = ctx.room_names.get(site.room_id, site.room_id)
    start = session.start
    over = session.state in TERMINAL_STATES
    present = site.joined_at is not None and site.left_at is None and not over
    kept = ctx.kept.get((session.id, site.room_id))
    figures = _live_figures(session, site, ctx, visible)
    if kept is not None and not present and not figures.fresh:
        figures = _kept_figures(figures, kept, ctx)
    media, media_label = _media(session, site, ctx, zone, present)
    if site.released_at is not None:
        end_label = _("Released (no-show) %(time)s") % {"time": ctx.time(site.released_at, zone)}
        status = _("released (no-show)")
    elif site.left_at is not None:
        end_label = _("Left %(time)s") % {"time": ctx.time(site.left_at, zone)}
        status = _("left")
    else:
        end_label = "–"
        status = {
            "live": _("media live"),
            "first-frame": _("first frame"),
        }.get(media, _("joined") if site.joined_at is not None else _("not joined"))
    joined_label = ctx.time(site.joined_at, zone) if site.joined_at is not None else _("Not joined")
    return SiteView(
        key=f"site:{session.id}:{site.room_id}",
        room_id=site.room_id,
        room_name=room_name,
        centre_name=ctx.centre_names.get(ctx.room_centres.get(site.room_id, ""), ""),
        timezone=zone,
        local_start=f"{ctx.time(start, zone, 'short')} {zone}",
        joined=site.joined_at is not None,
        joined_at=iso(site.joined_at),
        joined_label=joined_label,
        joined_offset=offset(site.joined_at, start, ctx.fmt.lang),
        media=media,
        media_label=media_label,
        first_frame_at=iso(site.first_frame_at),
        live_at=iso(site.live_at),
        fps=figures.fps,
        latency_p50_ms=figures.p50,
        latency_p95_ms=figures.p95,
        stats_at=iso(figures.at),
        stats_fresh=figures.fresh,
        fps_label=figures.fps_label,
        latency_label=figures.latency_label,
        stats_detail=figures.detail,
        rejoins=site.rejoins,
        rejoins_label=str(site.rejoins),
        left_at=iso(site.left_at),
        released=site.released_at is not None,
        released_at=iso(site.released_at),
        end_label=end_label,
        announce=f"{with_colon(_, room_name)} {status}",
        kept=kept,
    )
