"""Acceptance 1 in real headless Chromium: log in, find a common free time across two
centres, book it with a guest and see the guest's link, see the conflict explained
when booking an overlapping time (with alternatives), switch to French and back.
Screenshots of the finder, the form, the conflict and the French page."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from tests.booking_world import service_with_world
from tests.browser_support import browser, new_page, screenshot_path
from tests.ui_support import PASSWORD

__all__ = ["browser"]


async def test_find_book_conflict_and_switch_language(browser: Any, tmp_path: Path) -> None:
    from playwright.async_api import expect

    async with service_with_world(tmp_path) as (app, world, _clock):
        page = await new_page(browser)
        # Log in through the login form.
        await page.goto(app.url + "/availability")
        await page.get_by_label("Email address").fill(world.organiser)
        await page.get_by_label("Password").fill(PASSWORD)
        await page.get_by_role("button", name="Log in").click()
        await expect(page.get_by_role("heading", name="Find a common free time")).to_be_visible()

        # Rooms in two centres, one day.
        await page.get_by_label("Salle Bleue").check()
        await page.get_by_label("Salle du Fleuve").check()
        await page.get_by_label("Date", exact=True).fill("2026-03-24")
        await page.get_by_role("button", name="Show availability").click()
        proposals = page.locator("li.proposal")
        await expect(proposals).to_have_count(5)
        # 13:00 in Paris is 08:00 in Montreal: the first time both sites are open.
        await expect(proposals.first).to_contain_text("1:00 PM")
        await expect(proposals.first).to_contain_text("Montréal 8:00 AM")
        await expect(page.locator("table.avail tr.site-hours")).to_have_count(2)
        await page.screenshot(path=str(screenshot_path("booking-finder")), full_page=True)

        # Take the first proposal into the form, with a guest.
        await proposals.first.get_by_role("link", name=re.compile("Book this time")).click()
        await expect(page.get_by_role("heading", name="Book rooms")).to_be_visible()
        await expect(page.locator("#start")).to_have_value("13:00")
        await expect(page.locator("#site-times")).to_contain_text("Montréal 8:00 AM–9:00 AM")
        await page.get_by_label("Title").fill("Comité de pilotage")
        await page.get_by_label("Guest 1: name").fill("Gaëlle Invitée")
        await page.get_by_label("Guest 1: email (optional)").fill("gaelle@example.org")
        # The sites' local times follow what is typed (the server computes them).
        await page.locator("#end").fill("14:30")
        await expect(page.locator("#site-times")).to_contain_text("8:00 AM–9:30 AM")
        await page.locator("#end").fill("14:00")
        await expect(page.locator("#site-times")).to_contain_text("8:00 AM–9:00 AM")
        await page.screenshot(path=str(screenshot_path("booking-form")), full_page=True)
        await page.get_by_role("button", name="Book", exact=True).click()
        await expect(page.get_by_role("heading", name="Booked: Comité de pilotage")).to_be_visible()
        link = page.get_by_label("Personal link of Gaëlle Invitée")
        await expect(link).to_have_value(re.compile(r"^http://127\.0\.0\.1:\d+/join/tcg_"))
        await expect(page.get_by_role("heading", name="Waiting for approval")).to_be_visible()

        # An overlapping booking is refused and explained, with alternatives.
        await page.goto(app.url + "/bookings/new")
        await page.get_by_label("Title").fill("Atelier")
        await page.get_by_label("Salle Bleue").check()
        await page.get_by_label("Salle du Fleuve").check()
        await page.get_by_label("Date", exact=True).fill("2026-03-24")
        await page.locator("#start").fill("13:30")
        await page.locator("#end").fill("14:30")
        await page.get_by_role("button", name="Book", exact=True).click()
        conflicts = page.locator("#conflicts")
        await expect(conflicts).to_contain_text("These rooms are taken at that time.")
        await expect(conflicts).to_contain_text(
            "Salle Bleue (Fontainebleau) is taken by “Comité de pilotage”"
        )
        await expect(conflicts).to_contain_text("8:00 AM–9:00 AM (America/Montreal)")
        alternatives = page.locator("button.alternative")
        await expect(alternatives.first).to_be_visible()
        await expect(page.get_by_label("Title")).to_have_value("Atelier")
        await page.screenshot(path=str(screenshot_path("booking-conflict")), full_page=True)
        # An alternative refills the form in place; nothing is booked yet.
        await alternatives.first.click()
        await expect(page.locator("#start")).to_have_value("14:00")
        await expect(page.locator("#end")).to_have_value("15:00")
        await expect(page.locator("#book")).to_be_focused()

        # Switch to French with the header's switch, and back.
        await page.goto(
            app.url
            + f"/availability?room={world.paris_room}&room={world.montreal_room}"
            + "&date=2026-03-24&duration=60&zone=Europe/Paris"
        )
        await page.get_by_role("link", name="Français").click()
        await expect(
            page.get_by_role("heading", name="Trouver un créneau libre commun")
        ).to_be_visible()
        await expect(page.locator("html")).to_have_attribute("lang", "fr")
        await expect(
            page.get_by_role("heading", name="Premiers créneaux libres communs")
        ).to_be_visible()
        # 13:00-14:00 is taken now: the first common hours are 14:00 and 15:00.
        await expect(page.locator("li.proposal").first).to_contain_text("14:00–15:00")
        await page.screenshot(path=str(screenshot_path("booking-finder-fr")), full_page=True)
        await page.get_by_role("link", name="English").click()
        await expect(page.get_by_role("heading", name="Find a common free time")).to_be_visible()
        await expect(page.locator("html")).to_have_attribute("lang", "en")
