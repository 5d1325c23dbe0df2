"""axe-core (tests/js, from the npm registry) on every page of the application, in real
headless Chromium: no violation of impact serious or critical.

The pages are read from the router, not listed by hand: every GET route outside the
API, the calendar feeds and the static files is opened with real ids from a seeded
network (two centres, three rooms, a booking with a guest and a room awaiting
approval, a panel link), as an administrator, an organiser and a visitor who is not
logged in, in English and in French. A route whose parameters the seed cannot fill
fails the test, so a new page cannot slip past; answers that are not whole HTML
pages (JSON state, HTML fragments, CSV, iCalendar) are left out and listed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlmodel import select
from yarl import URL

from orchestrator.booking import commands
from orchestrator.booking.values import SeriesSpec
from orchestrator.centres import add_centre, add_room
from orchestrator.clock import FakeClock
from orchestrator.db import DbSession
from orchestrator.models import Approval, Booking, Room, Session
from orchestrator.people import accounts
from orchestrator.sessions import guests, panels
from tests.browser_support import browser, screenshot_path
from tests.requirements import missing
from tests.ui_support import PASSWORD, RunningApp, running_app
from web.openapi import path_template
from web.settings import Settings
from web.ui.security import SESSION_COOKIE, is_ui_path

__all__ = ["browser"]

ROOT = Path(__file__).resolve().parent
AXE = ROOT / "js" / "node_modules" / "axe-core" / "axe.min.js"
NOW = datetime(2030, 3, 4, 8, 30, tzinfo=UTC)  # Monday 09:30 in Paris
BLOCKING = ("serious", "critical")
NOT_PAGES = ("/static/", "/lang/")
"""Routes that are never pages: files, and the language switch (a redirect)."""
LANG_COOKIE = "tc_lang"
RUN_AXE = """async () => {
  const result = await axe.run(document, {resultTypes: ["violations"]});
  return result.violations.map(v => ({
    id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.map(n => ({target: n.target.join(" "), html: n.html.slice(0, 160),
                              summary: n.failureSummary}))
  }));
}"""


@dataclass(frozen=True, slots=True)
class Seed:
    values: dict[str, str]
    guest_token: str
    panel_token: str
    emails: dict[str, str]

    def fill(self, path: str) -> str | None:
        """The route with real ids; None when a parameter has no seeded value."""
        import re

        names = re.findall(r"\{([^}:]+)\}", path)
        values = dict(self.values)
        values["token"] = self.panel_token if path.startswith("/panel/") else self.guest_token
        if any(name not in values for name in names):
            return None
        return re.sub(r"\{([^}:]+)\}", lambda m: values[m.group(1)], path)


def seed_network(s: DbSession) -> Seed:
    paris = add_centre(s, "Fontainebleau", "Europe/Paris")
    adam = add_centre(s, "Amsterdam", "Europe/Amsterdam")
    blue = add_room(s, paris.id, "Salle Bleue")[0]
    add_room(s, paris.id, "Salle Verte")
    smart = add_room(s, adam.id, "Smart Work Room")[0]
    smart_row = s.get(Room, smart.id)
    assert smart_row is not None
    smart_row.requires_approval = True
    s.add(smart_row)
    people = {
        "admin": ("admin@telecentre.example", "Ada Admin", "admin", None),
        "organiser": ("org@fontainebleau.fr", "Odile Organisatrice", "organiser", paris.id),
        "staff": ("staff@amsterdam.nl", "Sanne Staff", "staff", adam.id),
    }
    users = {
        role: accounts.create_user(s, email, name, PASSWORD, kind, centre)
        for role, (email, name, kind, centre) in people.items()
    }
    organiser = users["organiser"]
    start = datetime(2030, 3, 5, 9, 0)  # Paris wall clock, tomorrow
    spec = SeriesSpec(
        uid="a11y-delegation@telecentre",
        title="Delegation from Amsterdam",
        timezone="Europe/Paris",
        start_local=start,
        duration=timedelta(hours=1),
        rrules=(),
    )
    result = commands.create_series(s, spec, [blue.id, smart.id], now=NOW)
    booking = s.get(Booking, result.booking_id)
    assert booking is not None
    booking.owner_id, booking.owner_centre_id = organiser.id, paris.id
    s.add(booking)
    s.add(Approval(booking_id=booking.id, room_id=smart.id, requested_at=NOW))
    # A meeting under way, so the dashboard and the session page show a live session.
    bright = add_room(s, adam.id, "Bright City")[0]
    green = s.exec(select(Room).where(Room.name == "Salle Verte")).one()
    now_spec = SeriesSpec(
        uid="a11y-review@telecentre",
        title="Weekly review",
        timezone="Europe/Paris",
        start_local=datetime(2030, 3, 4, 9, 0),
        duration=timedelta(minutes=90),
        rrules=(),
    )
    live = commands.create_series(s, now_spec, [green.id, bright.id], lead_seconds=0, now=NOW)
    live_booking = s.get(Booking, live.booking_id)
    live_session = s.get(Session, live.session_ids[0])
    assert live_booking is not None and live_session is not None
    live_booking.owner_id, live_booking.owner_centre_id = organiser.id, paris.id
    live_session.state = "live"
    s.add_all([live_booking, live_session])
    guest, guest_token = guests.add_guest(
        s, booking.id, "Greta Guest", "greta@example.org", now=NOW
    )
    panel_token = panels.create_panel_token(s, blue.id)
    s.flush()
    return Seed(
        values={
            "centre_id": paris.id,
            "room_id": blue.id,
            "booking_id": booking.id,
            "session_id": live.session_ids[0],
            "guest_id": guest.id,
            "user_id": organiser.id,
        },
        guest_token=guest_token,
        panel_token=panel_token,
        emails={role: email for role, (email, *_rest) in people.items()},
    )


def page_routes(app: Any) -> list[str]:
    """Every GET path template that may be a page (sorted, once each)."""
    found = set()
    for route in app.router.routes():
        path = path_template(route)
        if route.method == "GET" and is_ui_path(path) and not path.startswith(NOT_PAGES):
            found.add(path)
    return sorted(found)


def describe(violations: Iterable[dict[str, Any]]) -> str:
    lines = []
    for v in violations:
        lines.append(f"  [{v['impact']}] {v['id']}: {v['help']}")
        for node in v["nodes"][:5]:
            lines.append(f"      {node['target']}  {node['html']}")
            summary = " ".join(node["summary"].split())
            lines.append(f"        {summary[:300]}")
    return "\n".join(lines)


async def blocking_violations(page: Any) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations on the page as it is now."""
    await page.add_script_tag(path=str(AXE))
    return [v for v in await page.evaluate(RUN_AXE) if v["impact"] in BLOCKING]


async def check_pages(
    browser: Any, run: RunningApp, seed: Seed, role: str | None, lang: str
) -> tuple[list[str], list[str], list[str]]:
    """(checked, skipped, problems) for one person in one language."""
    context = await browser.new_context(
        ignore_https_errors=True,
        locale="fr-FR" if lang == "fr" else "en-GB",
        viewport={"width": 1280, "height": 900},
        bypass_csp=True,
    )
    cookies = [{"name": LANG_COOKIE, "value": lang, "url": run.url}]
    if role is not None:
        email = seed.emails[role]
        _, token = await run.services.db.run(
            lambda s: accounts.login(s, email, PASSWORD, "a11y", NOW)
        )
        cookies.append({"name": SESSION_COOKIE, "value": token, "url": run.url})
    await context.add_cookies(cookies)
    jar = aiohttp.CookieJar(unsafe=True)
    jar.update_cookies({c["name"]: c["value"] for c in cookies}, URL(run.url))
    http = aiohttp.ClientSession(cookie_jar=jar)
    page = await context.new_page()
    page.set_default_timeout(15_000)
    checked: list[str] = []
    skipped: list[str] = []
    problems: list[str] = []
    seen: set[tuple[str, int]] = set()
    try:
        for template in page_routes(run.app):
            path = seed.fill(template)
            if path is None:
                problems.append(f"{template}: no seeded value for its parameters")
                continue
            # Look first (downloads and JSON are not pages), then open it in Chromium.
            async with http.get(run.url + path) as probe:
                kind = probe.headers.get("Content-Type", "?")
                head = (await probe.read()).lstrip()[:20].lower()
                if probe.status >= 500:
                    problems.append(f"{path}: answered {probe.status}")
                    continue
            if not head.startswith(b"<!doctype html"):
                skipped.append(f"{template} ({kind.split(';')[0]})")
                continue
            response = await page.goto(run.url + path, wait_until="load")
            assert response is not None
            status = response.status
            final = page.url.removeprefix(run.url).split("?")[0]
            # One check per page actually shown: redirects to the login page and the
            # same refusal page repeat themselves.
            key = (final if status < 400 else f"error-{status}", status)
            if key in seen:
                continue
            seen.add(key)
            violations = await blocking_violations(page)
            checked.append(f"{path} -> {final} ({status})")
            if violations:
                name = f"a11y-{role or 'visitor'}-{lang}-{len(problems)}"
                await page.screenshot(path=str(screenshot_path(name)), full_page=True)
                problems.append(f"{path} ({status}, screenshot {name}):\n{describe(violations)}")
        if role is None:
            # A form shown again with its error: the login refused.
            await page.goto(run.url + "/login", wait_until="load")
            await page.fill('input[name="email"]', seed.emails["organiser"])
            await page.fill('input[name="password"]', "not the password")
            async with page.expect_navigation(wait_until="load"):
                await page.click('form[action="/login"] [type="submit"]')
            if await page.locator('[role="alert"]').count() == 0:
                problems.append("POST /login (refused): no error announced with role=alert")
            violations = await blocking_violations(page)
            checked.append("POST /login (refused)")
            if violations:
                problems.append(f"POST /login (refused):\n{describe(violations)}")
    finally:
        await http.close()
        await context.close()
    return checked, skipped, problems


@pytest.mark.parametrize("lang", ["en", "fr"])
@pytest.mark.parametrize(
    "role", ["admin", "organiser", None], ids=["admin", "organiser", "visitor"]
)
async def test_axe_finds_no_serious_violation_on_any_page(
    browser: Any,
    tmp_path: Path,
    role: str | None,
    lang: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    if not AXE.exists():
        missing("axe-core is not installed: npm ci --prefix tests/js (scripts/services.sh)")
    async with running_app(Settings(data_dir=tmp_path), clock=FakeClock(NOW.timestamp())) as run:
        seed = await run.services.db.run(seed_network)
        checked, skipped, problems = await check_pages(browser, run, seed, role, lang)
    with capsys.disabled():
        print(
            f"\naxe-core as {role or 'visitor'} in {lang}: {len(checked)} pages checked, "
            f"{len(skipped)} routes not pages: {', '.join(skipped)}"
        )
    assert not problems, "\n".join(problems)
    assert checked, "no page was checked"


def test_every_page_route_gets_real_ids(tmp_path: Path) -> None:
    """The seed fills every page route's parameters (a new page with a new kind of id
    must be seeded here, or the axe run above reports it)."""
    from web.app import create_app

    app = create_app(Settings(data_dir=tmp_path))
    seed = Seed(
        values=dict.fromkeys(
            ["centre_id", "room_id", "booking_id", "session_id", "guest_id", "user_id"], "x"
        ),
        guest_token="g",
        panel_token="p",
        emails={},
    )
    routes = page_routes(app)
    assert "/" in routes and "/login" in routes
    assert [r for r in routes if seed.fill(r) is None] == []
    assert seed.fill("/panel/{token}") == "/panel/p"
    assert seed.fill("/join/{token}") == "/join/g"


async def test_the_harness_reports_an_unlabelled_field_and_poor_contrast(browser: Any) -> None:
    """The check can fail: a page with the faults axe must catch is reported."""
    if not AXE.exists():
        missing("axe-core is not installed: npm ci --prefix tests/js (scripts/services.sh)")
    page = await browser.new_page()
    try:
        await page.set_content(
            '<!doctype html><html lang="en"><head><title>t</title></head><body><main>'
            '<h1>Book</h1><input type="text" name="title">'
            '<p style="color:#aaa;background:#fff">Faint text</p></main></body></html>'
        )
        found = {v["id"] for v in await blocking_violations(page)}
        await page.set_content(
            '<!doctype html><html lang="en"><head><title>t</title></head><body><main>'
            '<h1>Book</h1><label>Title <input type="text" name="title"></label>'
            '<p style="color:#333;background:#fff">Clear text</p></main></body></html>'
        )
        fixed = await blocking_violations(page)
    finally:
        await page.close()
    assert {"label", "color-contrast"} <= found
    assert fixed == []
