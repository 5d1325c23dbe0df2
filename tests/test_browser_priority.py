"""The test browser runs at the agents' priority (tests/browser_support.py): as root,
Chromium would put its media threads at nice -8 and its audio threads in the real-time
class, and starve the room agents sharing these two cores."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from tests.browser_support import browser, new_page  # noqa: F401

pytestmark = pytest.mark.e2e

SCHED_OTHER, SCHED_BATCH, SCHED_IDLE = 0, 3, 5


def descendants(root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = set(), [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def thread_priorities(pid: int) -> list[tuple[str, int, int]]:
    """(thread name, nice, scheduling policy) of each of a process's threads."""
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            stat = (task / "stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat.rsplit(")", 1)[1].split()
        out.append((name, int(fields[16]), int(fields[38])))  # nice, policy
    return out


def browser_threads(root: int) -> list[tuple[int, str, int, int]]:
    """(pid, thread name, nice, policy) of every Chromium thread under ``root``."""
    out: list[tuple[int, str, int, int]] = []
    for pid in descendants(root):
        try:
            comm = Path(f"/proc/{pid}/comm").read_text()
        except OSError:
            continue
        if "chrom" in comm:
            out.extend((pid, *t) for t in thread_priorities(pid))
    return out


@pytest.mark.skipif(os.geteuid() != 0, reason="only root's Chromium can raise its priority")
async def test_chromium_with_a_camera_and_a_microphone_keeps_the_default_priority(
    browser: Any,  # noqa: F811
) -> None:
    async def blank(_request: web.Request) -> web.Response:
        return web.Response(text="<html></html>", content_type="text/html")

    app = web.Application()
    app.router.add_get("/", blank)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    page = await new_page(browser)
    await page.goto(f"http://127.0.0.1:{port}/")  # a secure context: loopback
    tracks = await page.evaluate(
        "async () => (await navigator.mediaDevices.getUserMedia({video: true, audio: true}))"
        ".getTracks().length"
    )
    assert tracks == 2
    # Audio playing too: Chromium's audio output threads are the real-time ones.
    await page.evaluate(
        "() => { const c = new AudioContext(); const o = c.createOscillator();"
        " o.connect(c.destination); o.start(); return c.state; }"
    )
    threads = browser_threads(os.getpid())
    assert len(threads) > 20, threads  # the browser's processes were found
    raised = [t for t in threads if t[2] < 0 or t[3] not in (SCHED_OTHER, SCHED_BATCH, SCHED_IDLE)]
    assert raised == [], raised
    await page.context.close()
    await runner.cleanup()
