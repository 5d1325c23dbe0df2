"""The hour headers of the availability grid, compact enough for a laptop screen.

A day of 24 hours at 1366 pixels leaves each hour about 40 pixels: "12 AM" or
"00:00" on one line were cut to "12…" and "00…", and a site's day mark (+1, -1)
after them vanished. So a header is stacked: the hour as the language writes it
without its minutes ("12", "08"; "5:30" only for a group that starts off the hour),
the day period below it where the language's clock has one ("AM", "p.m."), and the
day mark below that (the template's). A group shorter than an hour (the grid's
first column off the hour) shows no text, only its title and its words for screen
readers: nothing fits in it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import format_time

from orchestrator.booking.availability import STEP

HOUR_COLUMNS = timedelta(hours=1) // STEP
"""Grid columns in an hour: a header group of fewer shows no text."""


@dataclass(frozen=True, slots=True)
class HourLabel:
    """A header's lines: the hour and, on a 12-hour clock, its day period."""

    hour: str
    period: str

    @property
    def text(self) -> str:
        return f"{self.hour} {self.period}" if self.period else self.hour


@cache
def twelve_hour(lang: str) -> bool:
    """Whether the language's short time has a 12-hour clock (``h``, not ``H``)."""
    return "h" in Locale.parse(lang).time_formats["short"].pattern


def hour_label(lang: str) -> Callable[[datetime, str], HourLabel]:
    """The grid's header for an instant in a zone, in ``lang``: ``8`` / ``AM`` (English),
    ``08`` (French, Dutch); a group that starts off the hour keeps its minutes."""
    twelve = twelve_hour(lang)

    def label(value: datetime, zone: str) -> HourLabel:
        tz = ZoneInfo(zone)
        on_the_hour = value.astimezone(tz).minute == 0
        if twelve:
            pattern = "h" if on_the_hour else "h:mm"
            hour = format_time(value, pattern, tzinfo=tz, locale=lang)
            return HourLabel(hour, format_time(value, "a", tzinfo=tz, locale=lang))
        pattern = "HH" if on_the_hour else "HH:mm"
        return HourLabel(format_time(value, pattern, tzinfo=tz, locale=lang), "")

    return label
