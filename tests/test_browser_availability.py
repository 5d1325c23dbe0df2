"""Issue 10: the availability grid at 1366x768 in real headless Chromium.

A laptop's 1366 pixels leave a 24-hour day about 40 pixels an hour: the hour headers
were cut to "12…" and "1 …", losing AM/PM and Montréal's mark for the previous day.
Here Fontainebleau works round the clock, so the grid shows all 24 hours of the
organiser's day, with Montréal five hours behind that day (its evening before, marked -1) or,
seen from Montréal, Paris's night after (+1). In English (AM/PM), French and Dutch,
no header's text may be clipped: each header's content fits its box
(``scrollWidth <= clientWidth``) and every visible line lies inside it. A screenshot
of each is kept in test-output/screenshots.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from orchestrator.people import accounts
from tests.booking_world import service_with_world
from tests.browser_support import browser, screenshot_path
from tests.ui_support import PASSWORD

__all__ = ["browser"]

DAY = "2026-03-24"  # the world's clock reads 23 March 2026
VIEWPORT = {"width": 1366, "height": 768}
CASES = [  # language, organiser's zone, the day mark Montréal or Paris shows
    ("en", "Europe/Paris", "−1"),
    ("fr", "Europe/Paris", "−1"),
    ("nl", "Europe/Paris", "−1"),
    ("en", "America/Montreal", "+1"),
]

# For each header cell: its text, whether its content overflows its box, and the
# visible lines that stick out of it (screen-reader-only text is left aside).
MEASURE_HEADERS = """() => Array.from(document.querySelectorAll("table.avail thead th")).map(th => {
  const box = th.getBoundingClientRect();
  const style = getComputedStyle(th);
  const left = box.left + parseFloat(style.paddingLeft) - 0.5;
  const right = box.right - parseFloat(style.paddingRight) + 0.5;
  const outside = [];
  for (const line of th.querySelectorAll("span:not(.sr-only)")) {
    const range = document.createRange();
    range.selectNodeContents(line);
    const r = range.getBoundingClientRect();
    if (r.width > 0 && (r.left < left || r.right > right || r.bottom > box.bottom + 0.5)) {
      outside.push(line.textContent);
    }
  }
  return {text: th.innerText.replace(/\\s+/g, " ").trim(), overflows: th.scrollWidth > th.clientWidth,
          outside: outside, width: box.width};
})"""


async def test_hour_headers_are_not_clipped_at_1366_pixels(browser: Any, tmp_path: Path) -> None:
    from playwright.async_api import expect

    async with service_with_world(tmp_path) as (app, world, clock):
        now = datetime.fromtimestamp(clock.now(), UTC)
        _, token = await app.services.db.run(
            lambda s: accounts.login(s, world.organiser, PASSWORD, "browser", now)
        )
        query = (
            f"/availability?room={world.paris_room}&room={world.montreal_room}&date={DAY}"
            f"&duration=60&from_{world.paris_centre}=00:00&to_{world.paris_centre}=23:45"
        )
        for lang, zone, mark in CASES:
            context = await browser.new_context(viewport=VIEWPORT, locale="en-GB")
            await context.add_cookies(
                [
                    {"name": "tc_session", "value": token, "url": app.url},
                    {"name": "tc_lang", "value": lang, "url": app.url},
                ]
            )
            page = await context.new_page()
            page.set_default_timeout(15_000)
            try:
                await page.goto(f"{app.url}{query}&zone={zone}")
                await expect(page.locator("html")).to_have_attribute("lang", lang)
                grid = page.locator("table.avail").first
                await expect(grid).to_be_visible()
                headers = await page.evaluate(MEASURE_HEADERS)
                # The organiser's row and two sites' rows, 24 hours each.
                assert len(headers) == 3 * 24, (lang, zone, len(headers))
                clipped = [h for h in headers if h["overflows"] or h["outside"]]
                assert clipped == [], (lang, zone, clipped[:5])
                assert max(h["width"] for h in headers) < 45  # the narrow case indeed
                if lang == "en":
                    assert {h["text"].split()[1] for h in headers} == {"AM", "PM"}
                marks = page.locator("table.avail thead .shift")
                await expect(marks.first).to_be_visible()
                assert set(await marks.all_inner_texts()) == {mark}
                legend = page.locator(".legend")
                await expect(legend.locator(".shift-sample")).to_have_count(2)
                # The screen a person sees at 1366x768 once scrolled down to the grid.
                await page.locator("#grid-title").evaluate("h => h.scrollIntoView()")
                name = f"availability-1366-{lang}-{zone.split('/')[1].lower()}"
                await page.screenshot(path=str(screenshot_path(name)))
            finally:
                await context.close()
