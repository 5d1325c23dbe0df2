"""The availability grid's hour headers (issue 10): stacked and compact, so a 24-hour
day fits a laptop screen (the browser check is tests/test_browser_availability.py)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.booking_world import logged_in, service_with_world
from web.ui.hour_labels import HOUR_COLUMNS, HourLabel, hour_label

MIDNIGHT_PARIS = datetime(2026, 3, 23, 23, 0, tzinfo=UTC)
HALF_PAST_FIVE_PARIS = datetime(2026, 3, 24, 4, 30, tzinfo=UTC)
HEADER = re.compile(r'<th scope="col" colspan="(\d+)" class="hour[^"]*"[^>]*>(.*?)</th>', re.S)


@pytest.mark.parametrize(
    ("lang", "midnight", "half_past_five"),
    [
        ("en", HourLabel("12", "AM"), HourLabel("5:30", "AM")),
        ("fr", HourLabel("00", ""), HourLabel("05:30", "")),
        ("nl", HourLabel("00", ""), HourLabel("05:30", "")),
    ],
)
def test_an_hour_is_written_compactly_with_its_day_period_apart(
    lang: str, midnight: HourLabel, half_past_five: HourLabel
) -> None:
    label = hour_label(lang)
    assert label(MIDNIGHT_PARIS, "Europe/Paris") == midnight
    assert label(HALF_PAST_FIVE_PARIS, "Europe/Paris") == half_past_five
    # Montréal's evening before, as its header reads it.
    assert label(MIDNIGHT_PARIS, "America/Montreal").hour in ("7", "19")


def test_the_text_joins_the_lines() -> None:
    assert HourLabel("12", "AM").text == "12 AM" and HourLabel("08", "").text == "08"
    assert HOUR_COLUMNS == 4


async def test_the_grid_stacks_its_headers_and_marks_the_other_day(tmp_path: Path) -> None:
    async with service_with_world(tmp_path) as (app, world, _clock):
        query = (
            f"/availability?room={world.paris_room}&room={world.montreal_room}"
            f"&date=2026-03-24&duration=60&zone=Europe/Paris"
            f"&from_{world.paris_centre}=00:30&to_{world.paris_centre}=23:45"
        )
        async with await logged_in(app, world.organiser, lang="en") as http:
            async with http.get(app.url + query) as response:
                assert response.status == 200
                page = await response.text()
    headers = HEADER.findall(page)
    assert headers
    # The grid starts at 00:30: its first half hour is too narrow for any text.
    span, first = headers[0]
    assert int(span) == 2 and '<span class="sr-only">12:30 AM</span>' in first
    assert '<span class="h">' not in first
    assert '<span class="h">1</span><span class="ampm">AM</span>' in headers[1][1]
    # Montréal's evening before carries its mark, in sight and in words.
    marked = [cell for _, cell in headers if "shift" in cell]
    assert marked and all(
        '<span class="shift" aria-hidden="true">−1</span>' in cell
        or '<span class="sr-only">previous day</span>' in cell
        for cell in marked
    )
    assert "the site's next or previous day</li>" in page
