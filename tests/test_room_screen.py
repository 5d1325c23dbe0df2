"""The room screen under Xvfb (issue 5, acceptance 2): with two other rooms at 640x360
in a live session, two screenshots a second apart show two remote tiles whose pixels
change, and the screen's layout report names both sites; while idle, the screen
shows the next booking and a countdown. The screenshots are kept in
test-output/screenshots/.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest

from room_agents.room_screen import RoomScreen
from tests.signalling_fixtures import signalling_harness
from tests.xvfb_support import SCREENSHOTS, agent, changed, region, until, xvfb


class WallClock:
    def now(self) -> float:
        return time.time()


def read_report(path: Path) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data


def tiles_showing(path: Path, sites: set[str], frames: int) -> dict[str, Any] | None:
    """The report, once it has a tile per site with at least ``frames`` shown."""
    report = read_report(path)
    if report is None or report.get("mode") != "call":
        return None
    shown = {t["site"]: t["frames_shown"] for t in report["tiles"]}
    if set(shown) != sites or min(shown.values()) < frames:
        return None
    return report


async def test_the_room_screen_shows_the_next_booking_when_idle_and_two_moving_sites_in_a_call(
    tmp_path: Path,
) -> None:
    report_path = tmp_path / "screen.json"
    with xvfb(1280, 720) as display:
        screen = RoomScreen(WallClock(), fps=15, report_path=report_path, display=display.name)
        async with signalling_harness() as h:
            for room in ("a", "b", "c"):
                h.add_room(room)
            async with agent(h, "a", screen=screen) as a:
                # Idle: a session in ten minutes, not joined yet.
                now = time.time()
                h.push_session("s0", ["a", "b"], start=now + 600, end=now + 1200, lead=60)
                idle = await until(
                    lambda: (
                        (r := read_report(report_path))
                        and r.get("idle")
                        and r["idle"]["next_title"] == "Test session"
                        and r
                    ),
                    "the idle view with the next booking",
                )
                assert idle["size"] == [1280, 720] and idle["error"] is None
                assert idle["header"]["room"] == "Room a"
                assert idle["idle"]["next_sites"] == "with Room b"
                assert idle["idle"]["countdown"].startswith(("Starts in 10:0", "Starts in 9:5"))
                assert "Starts in" in " ".join(idle["idle"]["lines"])
                shot = await asyncio.to_thread(
                    display.screenshot, SCREENSHOTS / "room-screen-idle.png"
                )
                assert shot.std() > 10, "the idle frame is blank"
                body = shot[idle_body_top(idle) :]
                assert (body > 200).mean() > 0.005, "no text on the idle view"

                # In a call with two rooms; the end is 4 minutes away: the 5-minute warning.
                async with agent(h, "b"), agent(h, "c"):
                    now = time.time()
                    h.push_session("s1", ["a", "b", "c"], start=now - 1, end=now + 240)
                    sites = {"Room b", "Room c"}
                    first = await until(
                        lambda: tiles_showing(report_path, sites, 10),
                        "two remote tiles on the room screen",
                        within=40,
                    )
                    shot1 = await asyncio.to_thread(
                        display.screenshot, SCREENSHOTS / "room-screen-call-1.png"
                    )
                    counts = {t["site"]: t["frames_shown"] for t in first["tiles"]}
                    second = await until(
                        lambda: (
                            (r := read_report(report_path))
                            and r["time"] >= first["time"] + 1.0
                            and all(
                                t["frames_shown"] >= counts.get(t["site"], 0) + 5
                                for t in r["tiles"]
                            )
                            and r
                        ),
                        "a second of frames on both tiles",
                    )
                    shot2 = await asyncio.to_thread(
                        display.screenshot, SCREENSHOTS / "room-screen-call-2.png"
                    )

    tiles = second["tiles"]
    assert {t["site"] for t in tiles} == {"Room b", "Room c"}
    assert {t["peer_id"] for t in tiles} == {"room:b", "room:c"}
    assert [t["role"] for t in tiles] == ["main", "main"] and not any(t["content"] for t in tiles)
    assert second["header"]["live"] and not second["header"]["privacy"]
    assert second["warning"] is not None and second["warning"]["level"] == 5
    for tile in tiles:
        a, b = region(shot1, tile["rect"]), region(shot2, tile["rect"])
        assert a.std() > 10, f"{tile['site']}: the tile is blank"
        assert changed(a, b) > 2.0, f"{tile['site']}: the tile did not change in a second"
    x0, _, w0, h0 = tiles[0]["rect"]
    x1 = tiles[1]["rect"][0]
    assert x0 + w0 <= x1 and h0 > 300  # side by side, each half the screen wide
    cpu = second["cpu_seconds"] / max(second["elapsed_seconds"], 1e-6)
    print(f"room screen render thread: {cpu:.1%} of a core at 1280x720, two tiles")


def idle_body_top(report: dict[str, Any]) -> int:
    return int(report["size"][1] / 14)


async def test_a_screen_without_a_display_says_so_and_the_room_carries_on_headless(
    tmp_path: Path,
) -> None:
    pytest.importorskip("pygame")
    report_path = tmp_path / "screen.json"
    screen = RoomScreen(WallClock(), report_path=report_path, display=":4242")
    await screen.start()
    try:
        report = read_report(report_path)
        assert report is not None and not report["open"]
        assert "cannot open the room screen" in report["error"]
        assert screen.snapshot() == []  # still a working headless screen
    finally:
        await screen.close()


def test_the_agent_builds_the_screen_its_settings_ask_for(tmp_path: Path) -> None:
    from room_agents.agent import screen_report_path
    from room_agents.config import AgentConfig
    from room_agents.room_screen import make_screen
    from room_agents.screen import HeadlessScreen

    config = AgentConfig(server_url="ws://x/ws", status_file=tmp_path / "status.json")
    assert screen_report_path(config) == tmp_path / "screen.json"
    assert type(make_screen("headless", WallClock())) is HeadlessScreen
    window = make_screen("fullscreen", WallClock(), tmp_path / "screen.json")
    assert isinstance(window, RoomScreen) and window.report_path == tmp_path / "screen.json"
