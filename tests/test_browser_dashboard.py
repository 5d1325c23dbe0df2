"""Acceptance 3 in real headless Chromium: the dashboard shows a room going offline and
back, and a session moving through its states, without a reload; once it ended, its
sites keep their media and it leads to its own page, then to its booking (issue 10).

Rooms are real signalling clients holding the room's key; the session's states are
driven by the application's fake clock (the scheduler steps when it is advanced).
A marker set in the page after it loaded must survive: a reload would wipe it.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp

from orchestrator.booking import one_off
from orchestrator.clock import FakeClock
from signalling import protocol as p
from signalling.client import SignallingClient
from tests import browser_support
from tests.browser_support import new_page, screenshot_path
from tests.dashboard_support import ADMIN, Network, login_token, make_network, seed_usage_year
from tests.ui_support import RunningApp, running_app
from web.settings import Settings

browser = browser_support.browser  # the Chromium fixture, used by name
MARKER = "window.__dashboardLoadedOnce"
WAIT_MS = 15_000  # the page polls every 2 s; the machine may be busy


async def open_dashboard(browser: Any, app: RunningApp) -> tuple[Any, list[str]]:
    page = await new_page(browser)
    await page.context.add_cookies(
        [{"name": "tc_session", "value": await login_token(app, ADMIN), "url": app.url}]
    )
    navigations: list[str] = []
    page.on(
        "framenavigated",
        lambda frame: navigations.append(frame.url) if frame == page.main_frame else None,
    )
    await page.goto(app.url + "/")
    await page.evaluate(f"{MARKER} = true")
    return page, navigations


async def assert_not_reloaded(page: Any, navigations: list[str]) -> None:
    assert await page.evaluate(MARKER) is True, "the page was reloaded"
    assert len(navigations) == 1, navigations


def room_row(room_id: str, presence: str) -> str:
    return f'tr[data-key="room:{room_id}"][data-presence="{presence}"]'


async def test_the_dashboard_shows_a_room_going_offline_and_back(
    browser: Any, tmp_path: Path
) -> None:
    async with running_app(Settings(data_dir=tmp_path)) as app, aiohttp.ClientSession() as http:
        net: Network = await app.services.db.run(make_network)

        def room() -> SignallingClient:
            return SignallingClient(
                http, app.url + "/ws", room_id=net.salle_bleue, key=net.salle_bleue_key
            )

        page, navigations = await open_dashboard(browser, app)
        await page.wait_for_selector(room_row(net.salle_bleue, "offline"))

        first = room()
        await first.connect()
        row = await page.wait_for_selector(room_row(net.salle_bleue, "online"), timeout=WAIT_MS)
        assert await row.inner_text() == "Salle Bleue\tOnline\tFree\tUnknown"
        announcer = page.locator("#dashboard-announcer")
        await page.wait_for_function(
            "document.getElementById('dashboard-announcer').textContent"
            ".includes('Salle Bleue (Fontainebleau): online')",
            timeout=WAIT_MS,
        )

        await first.close()
        await page.wait_for_selector(room_row(net.salle_bleue, "offline"), timeout=WAIT_MS)
        await page.wait_for_function(
            "document.getElementById('dashboard-announcer').textContent"
            ".includes('Salle Bleue (Fontainebleau): offline')",
            timeout=WAIT_MS,
        )

        again = room()
        await again.connect()
        try:
            await page.wait_for_selector(room_row(net.salle_bleue, "online"), timeout=WAIT_MS)
            # A booking made meanwhile appears too (the live part is swapped in whole).
            start = datetime.now(UTC) - timedelta(minutes=1)
            _, made = await app.services.db.run(
                lambda s: one_off.book(
                    s,
                    "Visite de la délégation",
                    start,
                    start + timedelta(hours=1),
                    [net.salle_bleue, net.smart_work_room],
                )
            )
            await page.wait_for_selector(f'article[data-key="session:{made.id}"]', timeout=WAIT_MS)
            await page.wait_for_selector(room_row(net.salle_bleue, "online"), timeout=WAIT_MS)
            assert await announcer.get_attribute("aria-live") == "polite"
            await assert_not_reloaded(page, navigations)
        finally:
            await again.close()


async def schedule_ticket(client: SignallingClient, session_id: str) -> str:
    """The room's ticket for the session, from the schedule the server pushes."""
    while True:
        message = await client.recv()
        if isinstance(message, p.Schedule):
            for entry in message.sessions:
                if entry.session_id == session_id:
                    return entry.ticket


async def test_the_dashboard_follows_a_session_through_its_states(
    browser: Any, tmp_path: Path
) -> None:
    t0 = datetime(2027, 3, 10, 9, 0, tzinfo=UTC)
    clock = FakeClock(t0.timestamp())
    start, end = t0 + timedelta(seconds=120), t0 + timedelta(seconds=520)
    async with (
        running_app(Settings(data_dir=tmp_path), clock=clock) as app,
        aiohttp.ClientSession() as http,
    ):
        scheduler = app.services.scheduler
        net: Network = await app.services.db.run(make_network)
        _, made = await app.services.db.run(
            lambda s: one_off.book(
                s,
                "Delegation Amsterdam – Seine-et-Marne",
                start,
                end,
                [net.salle_bleue, net.smart_work_room],
                lead_seconds=60,
            )
        )
        session = f'article[data-key="session:{made.id}"]'
        rooms = [
            SignallingClient(http, app.url + "/ws", room_id=room_id, key=key)
            for room_id, key in (
                (net.salle_bleue, net.salle_bleue_key),
                (net.smart_work_room, net.smart_work_room_key),
            )
        ]
        # The fake clock never wakes the scheduler's poll: one step hands signalling the
        # keys of the rooms made after the start, then the rooms can knock.
        await scheduler.step()
        for client in rooms:
            await client.connect()
        await scheduler.step()
        tickets = [await asyncio.wait_for(schedule_ticket(c, made.id), 10) for c in rooms]

        async def move_to(when: datetime, state: str) -> None:
            await clock.set(when.timestamp())
            await scheduler.step()
            await page.wait_for_selector(f'{session}[data-state="{state}"]', timeout=WAIT_MS)

        page, navigations = await open_dashboard(browser, app)
        await page.wait_for_selector(f'{session}[data-state="scheduled"]')

        await move_to(start - timedelta(seconds=60), "preparing")
        for client, ticket in zip(rooms, tickets, strict=True):
            await client.join(made.id, ticket)
        await page.wait_for_selector(
            f'tr[data-key="site:{made.id}:{net.salle_bleue}"] >> text=T-60.00 s', timeout=WAIT_MS
        )

        await move_to(start, "live")
        for client, far_room in zip(rooms, (net.smart_work_room, net.salle_bleue), strict=True):
            far = f"room:{far_room}"
            await client.send(p.Stats(session_id=made.id, event="first-frame", at=clock.now()))
            await client.send(p.Stats(session_id=made.id, event="live", at=clock.now() + 0.2))
            await client.send(
                p.Stats(
                    session_id=made.id,
                    media=[
                        p.MediaStats(
                            peer_id=far,
                            frames=150,
                            fps=29.7,
                            latency_p50_ms=84.0,
                            latency_p95_ms=131.0,
                            live=True,
                        )
                    ],
                )
            )
        site = page.locator(f'tr[data-key="site:{made.id}:{net.salle_bleue}"]')
        await page.wait_for_selector(
            f'tr[data-key="site:{made.id}:{net.salle_bleue}"][data-media="live"]', timeout=WAIT_MS
        )
        await page.wait_for_function(
            "document.querySelector('[data-key=\"site:"
            + made.id
            + ":"
            + net.salle_bleue
            + "\"] [data-field=\"latency_label\"]').textContent === '84 ms / 131 ms'",
            timeout=WAIT_MS,
        )
        assert "29.7 fps" in await site.inner_text()
        await page.wait_for_selector(room_row(net.salle_bleue, "online"))
        await page.screenshot(path=str(screenshot_path("dashboard-live-session")), full_page=True)

        await move_to(end - timedelta(seconds=300), "ending")
        # Issue 10: the script writes what "ending" means, the end the rooms' screens
        # announce, into the badge and its tooltip (it read a bare "Ending").
        badge = page.locator(f'{session} [data-field="state_label"]')
        await page.wait_for_function(
            f"document.querySelector('{session} [data-field=\"state_label\"]')"
            ".textContent.startsWith('Ends at ')",
            timeout=WAIT_MS,
        )
        said = (await badge.inner_text()).removeprefix("Ends at ")
        assert said[:1].isdigit(), said
        assert await badge.get_attribute("title") == (
            f"The rooms' screens warn that the session ends at {said}."
        )
        await move_to(end, "ended")
        # Issue 10: the ended session's sites keep their media (it said "No media").
        bleue = f'tr[data-key="site:{made.id}:{net.salle_bleue}"]'
        await page.wait_for_selector(f'{bleue}[data-media="kept"]', timeout=WAIT_MS)
        await page.wait_for_function(
            f"document.querySelector('{bleue} [data-field=\"fps_label\"]').textContent"
            " === '29.7 fps (mean)'",
            timeout=WAIT_MS,
        )
        assert "Over the session: mean 29.7 fps" in await site.inner_text()
        await page.screenshot(path=str(screenshot_path("dashboard-ended-session")), full_page=True)
        state = page.locator(f'{session} [data-field="state_label"]')
        assert await state.inner_text() == "Ended"
        assert await state.get_attribute("class") == "state state-ended"
        assert await state.get_attribute("title") is None  # "Ended" says it all
        await assert_not_reloaded(page, navigations)
        for client in rooms:
            await client.close()

        # Dashboard -> the ended session's page -> its booking.
        from playwright.async_api import expect

        await page.locator(f"{session} h3 a").click()
        await page.wait_for_url(f"**/sessions/{made.id}")
        await expect(page.get_by_role("heading", name="Transitions")).to_be_visible()
        record = page.locator(f'tr[data-room="{net.salle_bleue}"]')
        assert "29.7 fps" in await record.inner_text() and "84 ms" in await record.inner_text()
        steps = [t.split()[0] for t in await page.locator("ol.transitions li").all_inner_texts()]
        assert steps[0] == "Scheduled" and steps[-1] == "Ended", steps
        assert steps.index("Connecting") < steps.index("Live") < steps.index("End"), steps
        await page.screenshot(path=str(screenshot_path("session-history")), full_page=True)
        await page.get_by_role("link", name="Booking: Delegation Amsterdam").click()
        await page.wait_for_url(f"**/bookings/{made.booking_id}")
        await expect(page.get_by_role("heading", name="Last session")).to_be_visible()
        await expect(page.get_by_role("link", name="Session history")).to_have_attribute(
            "href", f"/sessions/{made.id}"
        )


async def test_the_usage_page_draws_its_charts_beside_their_tables(
    browser: Any, tmp_path: Path
) -> None:
    async with running_app(Settings(data_dir=tmp_path)) as app:
        await app.services.db.run(make_network)
        await app.services.db.run(lambda s: seed_usage_year(s, 2025))
        page = await new_page(browser, locale="fr-FR")
        await page.context.add_cookies(
            [{"name": "tc_session", "value": await login_token(app, ADMIN), "url": app.url}]
        )
        await page.goto(app.url + "/usage?year=2025")
        assert await page.title() == "Utilisation · telecentre"
        charts = page.locator("svg.usage-chart")
        assert await charts.count() == 3
        sessions_chart = charts.nth(0)
        assert await sessions_chart.is_visible()
        box = await sessions_chart.bounding_box()
        assert box is not None and box["width"] > 400 and box["height"] > 200
        bars = sessions_chart.locator("g.bars rect")
        assert await bars.count() > 12
        await page.screenshot(path=str(screenshot_path("usage")), full_page=False)
        # Each chart is beside its table, which the keyboard can reach and scroll.
        table = page.locator(".usage-table").nth(0)
        table_box = await table.bounding_box()
        assert table_box is not None and table_box["x"] > box["x"] + box["width"] - 1
        await page.keyboard.press("Tab")
        for _ in range(20):
            if await page.evaluate("document.activeElement.classList.contains('usage-table')"):
                break
            await page.keyboard.press("Tab")
        else:
            raise AssertionError("the first table is not reachable with the keyboard")
        await page.select_option("#usage-year", "2025")
        async with page.expect_download() as download:
            await page.click("text=Télécharger le CSV")
        saved = Path(await (await download.value).path())
        data = await asyncio.to_thread(saved.read_bytes)
        assert data.startswith(b"centre,month,sessions,minutes,rooms_used\r\n")
