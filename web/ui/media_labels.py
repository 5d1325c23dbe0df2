"""A site's kept media figures (``orchestrator.sessions.history.KeptMedia``) in the
viewer's language: the dashboard and the session page say them the same way.

Numbers follow the language's own conventions (Babel: a decimal comma in French
and Dutch); a figure nobody reported reads as a dash (``NONE``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from babel.numbers import format_percent

from orchestrator.sessions.history import KeptMedia
from web.ui.i18n import Formatter

Gettext = Callable[[str], str]
NONE = "–"


@dataclass(frozen=True, slots=True)
class KeptLabels:
    """Each figure ready to show; ``summary`` says them all in one line."""

    fps: str
    latency: str
    freezes: str
    loss: str
    rtt: str
    jitter: str
    summary: str


def number(value: float, lang: str) -> str:
    return Formatter(lang).number(value, 1)


def _ms(value: float | None, lang: str) -> str:
    return NONE if value is None else f"{number(value, lang)} ms"


def _mean_and_worst(mean: float | None, worst: float | None, lang: str, _: Gettext) -> str:
    if mean is None:
        return NONE
    if worst is None or worst == mean:
        return _ms(mean, lang)
    return _("%(mean)s (worst %(worst)s)") % {"mean": _ms(mean, lang), "worst": _ms(worst, lang)}


def kept_labels(kept: KeptMedia, lang: str, _: Gettext) -> KeptLabels:
    fps = NONE if kept.fps_mean is None else f"{number(kept.fps_mean, lang)} {_('fps')}"
    latency = _ms(kept.latency_p50_ms_max, lang)
    loss = (
        NONE
        if kept.loss_fraction_max is None
        else format_percent(kept.loss_fraction_max, "#,##0.#%", locale=lang)
    )
    rtt = _mean_and_worst(kept.rtt_ms_mean, kept.rtt_ms_max, lang, _)
    jitter = _mean_and_worst(kept.jitter_ms_mean, kept.jitter_ms_max, lang, _)
    parts = [_("mean %(fps)s") % {"fps": fps}] if kept.fps_mean is not None else []
    if kept.latency_p50_ms_max is not None:
        parts.append(_("worst p50 latency %(latency)s") % {"latency": latency})
    parts.append(_("freezes: %(count)s") % {"count": kept.freezes})
    if kept.loss_fraction_max is not None:
        parts.append(_("worst loss %(loss)s") % {"loss": loss})
    if kept.rtt_ms_mean is not None:
        parts.append(_("RTT %(rtt)s") % {"rtt": rtt})
    return KeptLabels(
        fps=fps,
        latency=latency,
        freezes=str(kept.freezes),
        loss=loss,
        rtt=rtt,
        jitter=jitter,
        summary=" · ".join(parts),
    )
