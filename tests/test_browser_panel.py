"""Acceptance 4: the room panel in real headless Chromium, the service in-process.

- On a fake clock: the panel counts down to a session (the text follows the service's
  clock, not the browser's) and shows the end warnings from 5 and 1 minute before
  the end, naming the end time, while the badge and the countdown read the same
  figure (issue 10), in French and in English.
- With two real room agents (aiortc, in-process): the panel's join button starts a
  one-button session (the room's participation is recorded joined and live), and
  its privacy mute makes the other room's decoder see the privacy card instead of
  the camera, until it is pressed again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from orchestrator import centres
from orchestrator.booking import one_off
from orchestrator.clock import FakeClock
from orchestrator.db import DbSession
from orchestrator.models import Booking
from orchestrator.sessions import panels
from orchestrator.sessions.detail import session_detail
from tests.browser_support import browser, new_page, screenshot_path
from tests.ui_support import RunningApp, running_app
from web.settings import Settings

__all__ = ["browser"]

T0 = datetime(2026, 12, 1, 12, 50, tzinfo=UTC)  # 13:50 in Paris
TEXTS = {
    "fr-FR": {
        "starts": "Commence dans {}",
        "left": "Reste {}",
        "ends_in": "Se termine dans {}",
        "warning_first": "Fin imminente\u00a0: cette réunion se termine à 14:30.",
        "warning_final": "Dernière minute\u00a0: cette réunion se termine à 14:30.",
        "blocked": "Prolongation impossible\u00a0: Salle Bleue est réservée de 14:40 à 15:10.",
        "joined": "La salle a rejoint la réunion.",
        "leave": "Quitter",
        "privacy_on": "Mode confidentiel activé",
        "privacy_off": "Mode confidentiel désactivé",
    },
    "en-GB": {
        "starts": "Starts in {}",
        "left": "{} left",
        "ends_in": "Ends in {}",
        "warning_first": "Ending soon: this session ends at 2:30\u202fPM.",
        "warning_final": "Last minute: this session ends at 2:30\u202fPM.",
        "blocked": "Cannot extend: Salle Bleue is booked from 2:40\u202fPM to 3:10\u202fPM.",
        "joined": "This room is in the session.",
        "leave": "Leave",
        "privacy_on": "Privacy mute is on",
        "privacy_off": "Privacy mute is off",
    },
}


@dataclass
class Network:
    app: RunningApp
    rooms: dict[str, str]  # name -> id
    keys: dict[str, str]
    panel: str  # the panel URL of "salle"
    paris: str  # the centre of "salle"


async def make_network(app: RunningApp) -> Network:
    def setup(db: DbSession) -> tuple[dict[str, str], dict[str, str], str, str]:
        paris = centres.add_centre(db, "Fontainebleau", "Europe/Paris")
        amsterdam = centres.add_centre(db, "Amsterdam", "Europe/Amsterdam")
        salle, salle_key = centres.add_room(db, paris.id, "Salle Bleue")
        zaal, zaal_key = centres.add_room(db, amsterdam.id, "Zaal 1")
        token = panels.create_panel_token(db, salle.id)
        rooms = {"salle": salle.id, "zaal": zaal.id}
        return rooms, {"salle": salle_key, "zaal": zaal_key}, token, paris.id

    rooms, keys, token, paris = await app.services.db.run(setup)
    return Network(app, rooms, keys, f"{app.url}/panel/{token}", paris)


async def book(
    net: Network, start: datetime, end: datetime, title: str = "Comité de pilotage"
) -> str:
    def write(db: DbSession) -> str:
        _, session = one_off.book(
            db,
            title,
            start,
            end,
            [net.rooms["salle"], net.rooms["zaal"]],
            lead_seconds=60,
            connect_mode="one-button",
        )
        booking = db.get(Booking, session.booking_id)
        assert booking is not None
        booking.owner_centre_id = (
            net.paris
        )  # booked for the Paris centre: its panel shows the title
        db.add(booking)
        return session.id

    session_id: str = await net.app.services.db.run(write)
    await net.app.services.scheduler.step()  # the rooms get the schedule now
    return session_id


async def tablet(browser: Any, locale: str) -> Any:
    """A 10-inch tablet in landscape."""
    page = await new_page(browser, locale=locale)
    await page.set_viewport_size({"width": 1280, "height": 800})
    return page


# --- countdown and warnings on the fake clock -------------------------------------------


@pytest.mark.parametrize("locale", ["fr-FR", "en-GB"])
async def test_the_panel_counts_down_and_warns_before_the_end(
    browser: Any, tmp_path: Path, locale: str
) -> None:
    from playwright.async_api import expect

    texts = TEXTS[locale]
    clock = FakeClock(T0.timestamp())
    settings = Settings(data_dir=tmp_path, no_show_seconds=3600)
    async with running_app(settings, clock=clock) as app:
        net = await make_network(app)
        start, end = T0 + timedelta(minutes=10), T0 + timedelta(minutes=40)
        await book(net, start, end)
        page = await tablet(browser, locale)
        try:
            await page.goto(net.panel)
            countdown = page.locator("#countdown")
            await expect(countdown).to_have_text(texts["starts"].format("10:00"))
            await clock.advance(1)
            await expect(countdown).to_have_text(texts["starts"].format("09:59"))
            await clock.set((start - timedelta(seconds=30)).timestamp())
            await expect(countdown).to_have_text(texts["starts"].format("00:30"))
            if locale == "fr-FR":
                await page.screenshot(path=str(screenshot_path("panel-countdown-fr")))

            warning = page.locator("#warning")
            await expect(warning).to_have_attribute("role", "alert")
            await expect(warning).to_have_text("")
            await clock.set((end - timedelta(minutes=5)).timestamp())
            await expect(warning).to_have_text(texts["warning_first"])
            await expect(countdown).to_have_text(texts["left"].format("05:00"))
            # Issue 10: at 01:46 the warning said "5 minutes"; the badge and the countdown
            # now read the same figure and the warning names the end time.
            await clock.set((end - timedelta(seconds=106)).timestamp())
            await expect(countdown).to_have_text(texts["left"].format("01:46"))
            await expect(page.locator("#now-phase")).to_have_text(texts["ends_in"].format("01:46"))
            await expect(warning).to_have_text(texts["warning_first"])
            # Every room is free after the session: extending is offered, no hint.
            await expect(page.locator("#extend")).to_be_enabled()
            await expect(page.locator("#extend-hint")).to_be_hidden()
            if locale == "fr-FR":
                await page.screenshot(path=str(screenshot_path("panel-warning-fr")))
            await clock.set((end - timedelta(seconds=60)).timestamp())
            await expect(warning).to_have_text(texts["warning_final"])
            # Both rooms booked 10 minutes after the end: extending is refused, and why.
            await book(net, end + timedelta(minutes=10), end + timedelta(minutes=40), "Next")
            await expect(page.locator("#extend-hint")).to_have_text(texts["blocked"])
            await expect(page.locator("#extend")).to_be_disabled()
            await clock.set(end.timestamp())
            await expect(warning).to_have_text("")
        finally:
            await page.context.close()


# --- join and privacy with real room agents ----------------------------------------------


@asynccontextmanager
async def room_agent(url: str, key: str, label: str) -> AsyncIterator[Any]:
    """A real RoomAgent (aiortc, synthetic camera) connected to the service."""
    from room_agents.agent import RoomAgent
    from room_agents.config import AgentConfig
    from room_agents.ice import unpin_host_addresses

    config = AgentConfig(server_url=url, key=key, width=320, height=180, fps=15, label=label)
    agent = RoomAgent(config)
    task = asyncio.create_task(agent.run())
    try:
        await asyncio.wait_for(agent.connected.wait(), 10)
        yield agent
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        unpin_host_addresses()


async def eventually(predicate: Callable[[], object], what: str, within: float = 15.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {within} s waiting for {what}")
        await asyncio.sleep(0.05)


def frames(agent: Any, peer_id: str, kind: str) -> int:
    return int(agent.screen.totals().get(peer_id, {}).get(kind) or 0)


async def test_the_panel_joins_a_one_button_session_and_privacy_mutes_the_room(
    browser: Any, tmp_path: Path
) -> None:
    from playwright.async_api import expect

    texts = TEXTS["fr-FR"]
    clock = FakeClock(time.time())
    settings = Settings(data_dir=tmp_path, no_show_seconds=3600)
    async with running_app(settings, clock=clock) as app:
        net = await make_network(app)
        hub = app.services.signalling.hub
        await app.services.scheduler.step()  # the new rooms' credentials
        ws = app.url.replace("http://", "ws://") + "/ws"
        async with (
            room_agent(ws, net.keys["salle"], "salle") as salle,
            room_agent(ws, net.keys["zaal"], "zaal") as zaal,
        ):
            now = datetime.fromtimestamp(clock.now(), UTC)
            session_id = await book(net, now - timedelta(seconds=5), now + timedelta(minutes=30))
            await eventually(lambda: salle.entries and zaal.entries, "the rooms' schedules")
            assert hub.members(session_id) == []  # one-button: nobody joins by itself

            page = await tablet(browser, "fr-FR")
            try:
                await page.goto(net.panel)
                join = page.locator("#join")
                await expect(join).to_be_enabled()
                await join.click()
                await expect(page.locator("#result")).to_have_text(texts["joined"])
                await expect(join).to_have_text(texts["leave"])
                assert f"room:{net.rooms['salle']}" in hub.members(session_id)

                zaal_join = await hub.control(net.rooms["zaal"], "join", {"session_id": session_id})
                assert zaal_join.ok
                salle_peer = f"room:{net.rooms['salle']}"
                await eventually(
                    lambda: frames(zaal, salle_peer, "camera_frames") >= 5,
                    "the other room to decode the camera",
                )

                async def participation() -> Any:
                    detail = await app.services.db.run(lambda s: session_detail(s, session_id))
                    return next(p for p in detail.participations if p.room_id == net.rooms["salle"])

                deadline = asyncio.get_running_loop().time() + 15
                record = await participation()
                while record.live_at is None and asyncio.get_running_loop().time() < deadline:
                    await asyncio.sleep(0.1)
                    record = await participation()
                assert record.joined_at is not None and record.live_at is not None

                privacy = page.locator("#privacy")
                await expect(privacy).to_have_attribute("aria-pressed", "false")
                await privacy.click()
                await expect(privacy).to_have_attribute("aria-pressed", "true")
                await expect(page.locator("#result")).to_contain_text(texts["privacy_on"])
                before = frames(zaal, salle_peer, "privacy_frames")
                await eventually(
                    lambda: frames(zaal, salle_peer, "privacy_frames") >= before + 5,
                    "the other room's decoder to see privacy frames",
                )
                assert zaal.screen.in_privacy(salle_peer)
                await page.screenshot(path=str(screenshot_path("panel-privacy-fr")))

                cameras = frames(zaal, salle_peer, "camera_frames")
                await privacy.click()
                await expect(privacy).to_have_attribute("aria-pressed", "false")
                await expect(page.locator("#result")).to_contain_text(texts["privacy_off"])
                await eventually(
                    lambda: frames(zaal, salle_peer, "camera_frames") >= cameras + 5,
                    "camera frames to come back",
                )
                assert not zaal.screen.in_privacy(salle_peer)
            finally:
                await page.context.close()
