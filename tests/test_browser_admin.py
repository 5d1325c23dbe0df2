"""The login page and a centre's administration page in real headless Chromium: a
refused login explained in French, the throttle's lock, logging in through the
form, changing a room's policy with the keyboard, a new room's key shown once.
Screenshots of the login page (English and French) and of the centre page."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from tests.accounts_support import PARIS_STAFF, add_network
from tests.browser_support import browser, new_page, screenshot_path
from tests.ui_support import PASSWORD, running_app
from web.settings import Settings

__all__ = ["browser"]


async def test_login_and_the_centre_page_in_chromium(browser: Any, tmp_path: Path) -> None:
    from playwright.async_api import expect

    async with running_app(Settings(data_dir=tmp_path)) as app:
        net = await add_network(app.services.db)

        # A refused login, in French, keeps the address and says why.
        page = await new_page(browser, locale="fr-FR")
        await page.goto(f"{app.url}/admin/centres/{net.paris}")
        await expect(page).to_have_url(f"{app.url}/login?next=/admin/centres/{net.paris}")
        await expect(page.get_by_role("heading", name="Se connecter")).to_be_visible()
        await page.get_by_label("Adresse e-mail").fill(PARIS_STAFF)
        await page.get_by_label("Mot de passe").fill("pas le bon mot de passe")
        await page.get_by_role("button", name="Se connecter").click()
        alert = page.get_by_role("alert")
        await expect(alert).to_have_text("Adresse e-mail ou mot de passe incorrect.")
        await expect(page.get_by_label("Adresse e-mail")).to_have_value(PARIS_STAFF)
        await expect(page.get_by_label("Mot de passe")).to_be_focused()
        await page.screenshot(path=str(screenshot_path("login-failed-fr")), full_page=True)
        await page.context.close()

        # The English page, then in through the form, back to where we were going.
        page = await new_page(browser)
        await page.goto(f"{app.url}/admin/centres/{net.paris}")
        await expect(page.get_by_label("Email address")).to_be_focused()
        await page.screenshot(path=str(screenshot_path("login")), full_page=True)
        await page.keyboard.type(PARIS_STAFF)
        await page.keyboard.press("Tab")
        await page.keyboard.type(PASSWORD)
        await page.keyboard.press("Enter")
        await expect(page.get_by_role("heading", name="Fontainebleau", level=1)).to_be_visible()
        await expect(page).to_have_url(f"{app.url}/admin/centres/{net.paris}")

        # The room's policy, changed from the keyboard.
        room = page.locator(f"#room-{net.paris_room}")
        await room.get_by_label("Bookings by other centres wait for our approval").check()
        buffer = room.get_by_label("Buffer between bookings (minutes)")
        await buffer.fill("15")
        await room.get_by_label("Aliases").fill("Blue room")
        await room.get_by_label("Aliases").press("Enter")
        await expect(page.get_by_role("status")).to_have_text("The room's settings are saved.")
        row = page.locator(f'tr[data-room="{net.paris_room}"]')
        await expect(row).to_contain_text("Required for other centres")
        await expect(row).to_contain_text("15 min")
        await expect(row).to_contain_text("Blue room")

        # A bad value is explained beside its field, announced, and nothing is saved.
        room = page.locator(f"#room-{net.paris_room}")
        await room.get_by_label("How far ahead it may be booked (days)").fill("5000")
        await room.get_by_role("button", name="Save the settings").click()
        field_error = page.locator(f"#r-{net.paris_room}-max-advance-error")
        await expect(field_error).to_have_text("Rooms are booked 1 to 1095 days ahead.")
        await expect(field_error).to_have_attribute("role", "alert")

        # A new room: its key is shown once.
        await page.get_by_label("Name of the room").fill("Salle Verte")
        await page.get_by_role("button", name="Add the room").click()
        key = page.get_by_label("Room key")
        await expect(key).to_have_value(re.compile(r"^\S{32,}$"))
        await expect(page.locator("tr", has_text="Salle Verte")).to_contain_text("Offline")
        await page.screenshot(path=str(screenshot_path("admin-centre")), full_page=True)
        await page.goto(f"{app.url}/admin/centres/{net.paris}")
        await expect(page.locator("tr", has_text="Salle Verte")).to_be_visible()
        await expect(page.get_by_label("Room key")).to_have_count(0)
        await page.context.close()
