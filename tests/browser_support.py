"""Real headless Chromium (Debian's /usr/bin/chromium) driven by Playwright's Python
package; ``playwright install`` cannot download here and is never needed.

Fake camera and microphone, loopback allowed in peer connections, no background
traffic to the closed network. Screenshots go to ``test-output/screenshots``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
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


def chromium_executable(directory: Path, niceness: int = 0) -> Path:
    """Chromium, without the right to raise its own priority when we run as root.

    As root, Chromium puts its compositor, media and IO threads at nice -8 and its
    audio threads in the real-time class; on two cores shared with the room agents
    under test, those threads starved the agents' event loops for a second or two at
    a time (a room's camera went live late because its timer fired late). A guest's
    browser runs on the guest's own machine, not on a room's: here it runs with the
    agents' priority, through ``setpriv`` without CAP_SYS_NICE in its bounding set.
    ``niceness`` lowers it further (see ``guest_machine_browser``)."""
    setpriv = shutil.which("setpriv")
    if os.geteuid() != 0 or setpriv is None:
        if not niceness:
            return CHROMIUM
        command = f"nice -n {niceness} {CHROMIUM}"
    else:
        command = f"nice -n {niceness} {setpriv} --bounding-set -sys_nice {CHROMIUM}"
    wrapper = directory / "chromium"
    wrapper.write_text(f'#!/bin/sh\nexec {command} "$@"\n')
    wrapper.chmod(0o755)
    return wrapper


def screenshot_path(name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS / f"{name}.png"


def chromium_available() -> bool:
    return os.path.exists(CHROMIUM) or shutil.which("chromium") is not None


@pytest_asyncio.fixture
async def browser() -> AsyncIterator[Any]:
    async with launched(0) as chromium:
        yield chromium


@pytest_asyncio.fixture
async def guest_machine_browser() -> AsyncIterator[Any]:
    """Chromium for guests who are on their own machines, beside room agents that are
    on theirs: it yields the shared cores to the agents (nice 10), as a guest's laptop
    takes nothing from a room's PC."""
    async with launched(10) as chromium:
        yield chromium


@asynccontextmanager
async def launched(niceness: int) -> AsyncIterator[Any]:
    if not chromium_available():
        missing("Chromium is not installed (Debian package chromium)")
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        missing("the playwright Python package is not installed")
    with tempfile.TemporaryDirectory(prefix="chromium-") as directory:
        async with async_playwright() as pw:
            chromium = await pw.chromium.launch(
                executable_path=str(chromium_executable(Path(directory), niceness)),
                args=CHROMIUM_ARGS,
                headless=True,
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
