"""Real headless Chromium (Debian's /usr/bin/chromium) driven by Playwright's Python
package; ``playwright install`` cannot download here and is never needed.

Fake camera and microphone, loopback allowed in peer connections, no background
traffic to the closed network. Screenshots go to ``test-output/screenshots``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest_asyncio

from tests.requirements import missing

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parent.parent / "test-output" / "screenshots"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--allow-loopback-in-peer-connection",
    "--ignore-certificate-errors",
]


def screenshot_path(name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS / f"{name}.png"


def chromium_available() -> bool:
    return os.path.exists(CHROMIUM) or shutil.which("chromium") is not None


@pytest_asyncio.fixture
async def browser() -> AsyncIterator[Any]:
    if not chromium_available():
        missing("Chromium is not installed (Debian package chromium)")
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        missing("the playwright Python package is not installed")
    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield chromium
        finally:
            await chromium.close()


async def new_page(browser: Any, *, locale: str = "en-GB") -> Any:
    context = await browser.new_context(
        ignore_https_errors=True, locale=locale, viewport={"width": 1280, "height": 900}
    )
    page = await context.new_page()
    page.set_default_timeout(15_000)
    return page
