"""Bar charts of the usage report, drawn on the server as SVG: pure geometry here, the
markup in ``templates/usage/chart.svg``.

One chart per measure: twelve months along the x axis, a bar per centre in each
month, a y axis with round ticks starting at zero, both axes titled. Colours have at
least 3:1 contrast on white (WCAG 1.4.11) and differ in hue; every bar carries a
``<title>``, and the page puts the same figures in a table beside the chart.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

PALETTE = (
    "#0b5cad",
    "#d95f02",
    "#1b7837",
    "#762a83",
    "#c51b7d",
    "#00798c",
    "#8c510a",
    "#5c6670",
)
WIDTH = 760
PLOT_TOP = 16
PLOT_LEFT = 64
PLOT_RIGHT = 12
PLOT_HEIGHT = 260
AXIS_BAND = 44  # month labels and the x axis title under the plot
LEGEND_ROW = 22
LEGEND_CHAR = 7.8  # rough width of a legend character at 13px


@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    colour: str
    label: str
    """What a pointer hovering the bar reads: "Fontainebleau, March: 12"."""


@dataclass(frozen=True, slots=True)
class Tick:
    y: float
    label: str


@dataclass(frozen=True, slots=True)
class MonthLabel:
    x: float
    label: str


@dataclass(frozen=True, slots=True)
class LegendItem:
    x: float
    y: float
    colour: str
    label: str


@dataclass(frozen=True, slots=True)
class Chart:
    id: str
    title: str
    description: str
    y_title: str
    x_title: str
    width: int
    height: int
    plot_left: float
    plot_right: float
    plot_top: float
    plot_bottom: float
    ticks: tuple[Tick, ...]
    months: tuple[MonthLabel, ...]
    bars: tuple[Bar, ...]
    legend: tuple[LegendItem, ...]


def nice_step(maximum: float, target_ticks: int = 4) -> int:
    """A round tick step (1, 2 or 5 times a power of ten, at least 1) so that about
    ``target_ticks`` steps cover ``maximum``."""
    if maximum <= 0:
        return 1
    raw = maximum / target_ticks
    magnitude = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 5, 10):
        step = factor * magnitude
        if step >= raw:
            return max(1, int(step))
    return max(1, int(10 * magnitude))  # pragma: no cover - the loop always returns


def _legend(names: Sequence[str], top: float) -> tuple[tuple[LegendItem, ...], float]:
    items = []
    x, y = float(PLOT_LEFT), top
    for index, name in enumerate(names):
        width = 22 + LEGEND_CHAR * len(name) + 18
        if x + width > WIDTH - PLOT_RIGHT and x > PLOT_LEFT:
            x, y = float(PLOT_LEFT), y + LEGEND_ROW
        items.append(LegendItem(x, y, PALETTE[index % len(PALETTE)], name))
        x += width
    return tuple(items), y + LEGEND_ROW


def bar_chart(
    *,
    chart_id: str,
    title: str,
    description: str,
    y_title: str,
    x_title: str,
    series: Sequence[tuple[str, Sequence[int]]],
    month_labels: Sequence[str],
    number: Callable[[int], str],
    bar_label: Callable[[str, int, int], str],
) -> Chart:
    """``series``: (centre name, twelve values); ``bar_label(centre, month index,
    value)`` names one bar; ``number`` formats tick values for the locale."""
    top = max((v for _, values in series for v in values), default=0)
    step = nice_step(top)
    axis_max = max(step, step * math.ceil(top / step))
    plot_bottom = PLOT_TOP + PLOT_HEIGHT
    plot_width = WIDTH - PLOT_LEFT - PLOT_RIGHT

    def y_of(value: float) -> float:
        return round(plot_bottom - PLOT_HEIGHT * value / axis_max, 2)

    ticks = tuple(Tick(y_of(v), number(v)) for v in range(0, axis_max + 1, step))
    group = plot_width / len(month_labels)
    inner = group * 0.8
    bar_width = inner / max(1, len(series))
    bars = []
    for index, (name, values) in enumerate(series):
        colour = PALETTE[index % len(PALETTE)]
        for month, value in enumerate(values):
            x = PLOT_LEFT + month * group + (group - inner) / 2 + index * bar_width
            y = y_of(value)
            bars.append(
                Bar(
                    round(x, 2),
                    y,
                    round(max(bar_width - 1, 1), 2),
                    round(plot_bottom - y, 2),
                    colour,
                    bar_label(name, month, value),
                )
            )
    months = tuple(
        MonthLabel(round(PLOT_LEFT + (i + 0.5) * group, 2), label)
        for i, label in enumerate(month_labels)
    )
    legend, bottom = _legend([name for name, _ in series], plot_bottom + AXIS_BAND + 8)
    return Chart(
        id=chart_id,
        title=title,
        description=description,
        y_title=y_title,
        x_title=x_title,
        width=WIDTH,
        height=int(bottom + 4),
        plot_left=PLOT_LEFT,
        plot_right=WIDTH - PLOT_RIGHT,
        plot_top=PLOT_TOP,
        plot_bottom=plot_bottom,
        ticks=ticks,
        months=months,
        bars=tuple(bars),
        legend=legend,
    )
