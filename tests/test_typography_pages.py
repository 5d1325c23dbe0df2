"""Issue 10 on real pages: French and Dutch pages write numbers with a decimal comma and
labels with their language's colon (tests/test_typography.py holds the rules and checks
the catalogues).

The pages render in-process on a fake clock, in both languages: the dashboard, the room
panel, the booking form, a booking's and a session's page, the bookings list,
availability, approvals, usage, and the pages that name a label (a centre, people, an
account, a guest's invitation, an error). What is checked is what a person
reads: text, the labels and tooltips a screen reader or a mouse shows, and the messages
the panel's and the guest page's scripts write into the page. A French figure the
dashboard's script writes in is checked in real Chromium.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from orchestrator.booking import one_off
from orchestrator.clock import FakeClock
from orchestrator.db import DbSession
from orchestrator.sessions import guests, panels, participation
from signalling.ports import MediaReport
from signalling.protocol import MediaStats
from tests import browser_support
from tests.browser_support import new_page, screenshot_path
from tests.dashboard_support import ADMIN, Network, login_token, make_network, seed_usage_year
from tests.test_typography import CHECKS, NBSP
from tests.ui_support import RunningApp, running_app
from web.settings import Settings
from web.ui import i18n

browser = browser_support.browser  # the Chromium fixture, used by name
SHOWN_ATTRIBUTES = ("aria-label", "title", "alt", "placeholder")
# Scripts whose JSON holds messages the page shows: the script's id -> the key of the
# messages in it (None: all of it).
SCRIPT_MESSAGES: dict[str, str | None] = {"panel-messages": None, "guest-config": "messages"}


class VisibleText(HTMLParser):
    """What a person reads or hears on a page: text outside scripts and styles, the
    attributes shown as labels and tooltips, and the messages a page's script shows."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping: str | None = None
        self.script: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        self.parts += [f"\n{values[a]}\n" for a in SHOWN_ATTRIBUTES if values.get(a)]
        if tag in ("script", "style"):
            self.skipping = tag
            self.script = values.get("id")

    def handle_endtag(self, tag: str) -> None:
        if tag == self.skipping:
            self.skipping = self.script = None

    def handle_data(self, data: str) -> None:
        if self.skipping is None:
            self.parts.append(data)
        elif self.script in SCRIPT_MESSAGES:
            messages = json.loads(data)
            key = SCRIPT_MESSAGES[self.script]
            messages = messages[key] if key else messages
            self.parts += [f"\n{v}\n" for v in messages.values() if isinstance(v, str)]


# What dashboard.js writes into the page from /dashboard/state: the fields the page
# marks with data-field, and the sentences it announces.
DASHBOARD_BODY = Path(__file__).resolve().parent.parent / "web/templates/dashboard/body.html"
SCRIPT_FIELDS = set(re.findall(r'data-field="(\w+)"', DASHBOARD_BODY.read_text())) | {"announce"}


def script_text(state: Any) -> str:
    """The texts of ``SCRIPT_FIELDS`` anywhere in a dashboard state, one a line."""
    if isinstance(state, list):
        return "".join(script_text(item) for item in state)
    if not isinstance(state, dict):
        return ""
    return "".join(
        f"\n{value}\n" if key in SCRIPT_FIELDS and isinstance(value, str) else script_text(value)
        for key, value in state.items()
    )


def visible_text(html: str) -> str:
    parser = VisibleText()
    parser.feed(html)
    parser.close()
    return "".join(parser.parts)


def page_problems(lang: str, text: str) -> list[str]:
    return [p for line in text.splitlines() if line.strip() for p in CHECKS[lang](line)]


def test_the_page_check_reads_labels_tooltips_and_script_messages() -> None:
    html = (
        '<p title="Organisateur:">a</p><svg><title>Paris, mai: 3</title></svg>'
        '<script>var x = "1.5";</script><p>Quand</p>:'
        '<script type="application/json" id="panel-messages">{"next": "Ensuite: {title}"}</script>'
        '<script type="application/json" id="guest-config">'
        '{"offset": 1.5, "messages": {"live": "Délai 2.5 s"}}</script>'
    )
    text = visible_text(html)
    assert "1.5" not in text
    assert len(page_problems("fr", text)) == 5
    assert page_problems("fr", f"À 10:00{NBSP}: voir https://example.org/?a=1") == []


# A weekday mid-morning in Paris and Amsterdam: the session is on the viewer's today.
NOW = datetime(2026, 12, 8, 9, 0, tzinfo=UTC)
ORGANISER = "olga@fontainebleau.example"
JOINED_BEFORE = 19.95


@dataclass(frozen=True, slots=True)
class Scene:
    net: Network
    booking_id: str
    session_id: str
    panel_token: str
    guest_token: str

    def paths(self) -> dict[str, tuple[str, int]]:
        """Each page's path and the status it answers with."""
        return {
            "dashboard": ("/", 200),
            "dashboard fragment": ("/dashboard/fragment", 200),
            "panel": (f"/panel/{self.panel_token}", 200),
            "booking form": ("/bookings/new", 200),
            "booking": (f"/bookings/{self.booking_id}", 200),
            "session": (f"/sessions/{self.session_id}", 200),
            "bookings": ("/bookings", 200),
            "availability": ("/availability", 200),
            "approvals": ("/approvals", 200),
            "account": ("/account", 200),
            "people": ("/admin/users", 200),
            "usage": ("/usage?year=2025", 200),
            "centre": (f"/admin/centres/{self.net.paris}", 200),
            "guest": (f"/join/{self.guest_token}", 200),
            "guest refused": ("/join/tcg_unknown", 404),
            "error": ("/bookings/no-such-booking", 404),
        }


async def set_the_scene(app: RunningApp) -> Scene:
    """A live session between Paris and Amsterdam whose Paris room joined 19.95 s
    before the start and reports figures with decimals; a year of usage."""
    db = app.services.db
    net = await db.run(make_network)
    start = NOW - timedelta(minutes=2)

    def book(s: DbSession) -> Scene:
        booking, session = one_off.book(
            s,
            "Comité de pilotage",
            start,
            start + timedelta(hours=1),
            [net.salle_bleue, net.smart_work_room],
        )
        booking.organiser = ORGANISER
        s.add(booking)
        at = start.timestamp() - JOINED_BEFORE
        participation.record_joined(s, session.id, net.salle_bleue, at)
        _, guest_token = guests.add_guest(s, booking.id, "Invitée", now=start)
        seed_usage_year(s, 2025)
        token = panels.create_panel_token(s, net.salle_bleue)
        return Scene(net, booking.id, session.id, token, guest_token)

    scene = await db.run(book)
    await app.services.scheduler.step()
    app.services.live.listen(
        MediaReport(
            seq=1,
            session_id=scene.session_id,
            peer_id=f"room:{net.salle_bleue}",
            room_id=net.salle_bleue,
            at=app.services.clock.now(),
            media=(
                MediaStats(
                    peer_id=f"room:{net.smart_work_room}",
                    fps=24.5,
                    latency_p50_ms=80.25,
                    latency_p95_ms=131.5,
                    live=True,
                ),
            ),
        )
    )
    return scene


def at_mid_morning(tmp_path: Path) -> Any:
    return running_app(Settings(data_dir=tmp_path), clock=FakeClock(NOW.timestamp()))


@pytest.mark.wall_clock  # the pages read dates (the browser test below shows the same day)
async def test_french_and_dutch_pages_write_numbers_and_colons_their_way(tmp_path: Path) -> None:
    texts: dict[tuple[str, str], str] = {}
    async with at_mid_morning(tmp_path) as app:
        scene = await set_the_scene(app)
        token = await login_token(app, ADMIN)
        for lang in CHECKS:
            cookies = {"tc_session": token, i18n.LANG_COOKIE: lang}
            async with aiohttp.ClientSession(cookies=cookies) as http:
                for name, (path, status) in scene.paths().items():
                    async with http.get(app.url + path) as response:
                        body = await response.text()
                        assert response.status == status, (lang, name, body)
                        assert response.headers["Content-Language"] == lang, (lang, name)
                        texts[lang, name] = visible_text(body)
                async with http.get(app.url + "/dashboard/state") as response:
                    texts[lang, "dashboard state"] = script_text(await response.json())

    problems = [
        f"{lang} {name}: {problem}"
        for (lang, name), text in texts.items()
        for problem in page_problems(lang, text)
    ]
    assert not problems, "\n".join(problems)
    # The figures and labels are there, written the language's way.
    for lang, (organiser, code) in {
        "fr": (f"Organisateur{NBSP}:", f"Code d’erreur{NBSP}:"),
        "nl": ("Organisator:", "Foutcode:"),
    }.items():
        dashboard = texts[lang, "dashboard"]
        assert "T-19,95 s" in dashboard, lang
        assert "24,5" in dashboard and "80,2 ms" in dashboard, lang
        assert f"{organiser} {ORGANISER}" in dashboard, lang
        assert f"{organiser} {ORGANISER}" in texts[lang, "dashboard fragment"], lang
        assert code in texts[lang, "error"] and code in texts[lang, "guest refused"], lang
        assert "T-19,95 s" in texts[lang, "dashboard state"], lang
    assert f"Salle Bleue{NBSP}: " in texts["fr", "dashboard state"]  # an announcement


async def test_a_figure_the_dashboard_script_writes_is_french(browser: Any, tmp_path: Path) -> None:
    """The page loads before the room joins; the offset the script then writes in
    (from the state it polls) has a decimal comma."""
    async with at_mid_morning(tmp_path) as app:
        db = app.services.db
        net = await db.run(make_network)
        start = NOW - timedelta(minutes=2)
        _, session = await db.run(
            lambda s: one_off.book(
                s,
                "Comité de pilotage",
                start,
                start + timedelta(hours=1),
                [net.salle_bleue, net.smart_work_room],
            )
        )
        page = await new_page(browser, locale="fr-FR")
        await page.context.add_cookies(
            [{"name": "tc_session", "value": await login_token(app, ADMIN), "url": app.url}]
        )
        await page.goto(app.url + "/")
        offset = page.locator(
            f'tr[data-key="site:{session.id}:{net.salle_bleue}"] [data-field="joined_offset"]'
        )
        assert await offset.inner_text() == ""
        await db.run(
            lambda s: participation.record_joined(
                s, session.id, net.salle_bleue, start.timestamp() - JOINED_BEFORE
            )
        )
        await page.wait_for_function(
            "el => el.textContent === 'T-19,95 s'", arg=await offset.element_handle()
        )
        assert await page.evaluate("document.documentElement.lang") == "fr"
        await page.screenshot(path=str(screenshot_path("dashboard-french-offset")), full_page=True)
