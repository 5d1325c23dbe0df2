"""No page can be framed (clickjacking) or sniffed: every response, whatever answered
it (a page, an error page, a redirect, a static file, the API, a calendar feed),
carries ``X-Frame-Options: DENY``, a Content-Security-Policy with ``frame-ancestors
'none'``, ``X-Content-Type-Options: nosniff`` and a referrer policy.

The GET routes are taken from the application's own route table, so a new page
cannot forget the headers; each is requested with real ids (a booking, its session,
a guest link, a room panel link, a calendar token), as an administrator and as a
visitor (who gets redirects and refusals instead).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest_asyncio
from aiohttp import ClientResponse, ClientSession, web

from orchestrator.booking import one_off
from orchestrator.calendars import tokens
from orchestrator.clock import FakeClock
from orchestrator.db import DbSession
from orchestrator.people import api_tokens
from orchestrator.sessions import guests, panels
from tests.accounts_support import ADMIN, PARIS_ORGANISER, add_network, browser_like, log_in
from tests.ui_support import RunningApp, running_app
from web.settings import Settings
from web.ui.base import STATIC_DIR, security_headers

NOW = datetime(2030, 6, 3, 7, 0, tzinfo=UTC)
PARAM = re.compile(r"\{([^}:]+)(?::[^}]*)?\}")
SKIPPED = frozenset({"/ws"})
"""The WebSocket endpoint answers an upgrade, not a page."""
TOKENS = {"/join/": "guest_token", "/panel/": "panel_token", "/calendars/": "calendar_token"}
"""Which secret a ``{token}`` stands for, by the path it is in."""

Site = tuple[RunningApp, dict[str, str]]


@pytest_asyncio.fixture
async def site(tmp_path: Path) -> AsyncIterator[Site]:
    clock = FakeClock(NOW.timestamp())
    async with running_app(Settings(data_dir=tmp_path), clock=clock) as app:
        network = await add_network(app.services.db)

        def setup(s: DbSession) -> dict[str, str]:
            start = NOW + timedelta(minutes=10)
            rooms = [network.paris_room, network.amsterdam_room]
            booking, session = one_off.book(s, "Comité", start, start + timedelta(hours=1), rooms)
            guest, guest_token = guests.add_guest(s, booking.id, "Ada Lovelace", now=NOW)
            return {
                "booking_id": booking.id,
                "session_id": session.id,
                "guest_id": guest.id,
                "centre_id": network.paris,
                "room_id": network.paris_room,
                "code": "fr",
                "user_id": "0123456789abcdef0123456789abcdef",
                "guest_token": guest_token,
                "panel_token": panels.create_panel_token(s, network.paris_room),
                "calendar_token": tokens.create_room_token(s, network.paris_room).token,
                "api_token": api_tokens.create_api_token(s, "headers"),
            }

        yield app, await app.services.db.run(setup)


def get_paths(app: web.Application, ids: dict[str, str]) -> list[str]:
    """Every GET route with its parameters filled with real ids; a static file."""
    paths: list[str] = []
    for route in app.router.routes():
        if route.method != "GET" or route.resource is None:
            continue
        info = route.resource.get_info()
        if "directory" in info:
            first = sorted(p.name for p in STATIC_DIR.iterdir() if p.is_file())[0]
            paths.append(f"{info['prefix']}/{first}")
            continue
        formatter = str(info.get("path") or info["formatter"])
        for name in PARAM.findall(formatter):
            key = next((k for prefix, k in TOKENS.items() if formatter.startswith(prefix)), name)
            formatter = formatter.replace("{" + name + "}", ids.get(key, ids.get(name, "x")), 1)
        if formatter not in SKIPPED:
            paths.append(formatter)
    return sorted(set(paths))


def assert_unframeable(response: ClientResponse, what: str) -> None:
    headers = response.headers
    assert headers.get("X-Frame-Options") == "DENY", what
    policies = headers.getall("Content-Security-Policy", [])
    assert len(policies) == 1, what
    assert "frame-ancestors 'none'" in policies[0], what
    assert headers.get("X-Content-Type-Options") == "nosniff", what
    assert headers.get("Referrer-Policy") in ("same-origin", "no-referrer"), what


async def _check(http: ClientSession, url: str, method: str = "GET", **kw: object) -> int:
    async with http.request(method, url, allow_redirects=False, **kw) as response:  # type: ignore[arg-type]
        await response.read()
        assert_unframeable(response, f"{method} {url} -> {response.status}")
        return response.status


async def test_every_get_route_answers_with_the_framing_headers(site: Site) -> None:
    app, ids = site
    paths = get_paths(app.app, ids)
    assert any(p.startswith("/panel/") for p in paths) and any(
        p.startswith("/join/") for p in paths
    )
    auth = {"Authorization": f"Bearer {ids['api_token']}"}
    statuses: set[int] = set()
    async with browser_like() as admin, browser_like() as visitor:
        assert await log_in(admin, app.url, ADMIN) == 303
        for path in paths:
            statuses.add(await _check(admin, app.url + path, headers=auth))
            statuses.add(await _check(visitor, app.url + path))
    # Pages, redirects to the login and refusals were all among them.
    assert {200, 303} <= statuses


async def test_error_pages_and_refusals_carry_the_framing_headers(site: Site) -> None:
    app, _ = site
    async with browser_like() as organiser, browser_like() as visitor:
        assert await log_in(organiser, app.url, PARIS_ORGANISER) == 303
        assert await _check(organiser, app.url + "/no/such/page") == 404
        assert await _check(organiser, app.url + "/admin/users") == 403
        assert await _check(organiser, app.url + "/admin/centres", "POST", data={}) == 403
        assert await _check(visitor, app.url + "/logout") == 405
        status = await _check(
            visitor, app.url + "/login", "POST", data={"email": "a@b.org", "password": "x"}
        )
        assert status == 403  # no CSRF token
        assert await _check(visitor, app.url + "/join/tcg_nope") == 404
        assert await _check(visitor, app.url + "/api/v1/centres") == 401


async def test_a_header_a_page_sets_is_kept_and_a_policy_is_extended_not_replaced() -> None:
    response = web.Response(
        headers={"Referrer-Policy": "no-referrer", "Content-Security-Policy": "img-src 'self';"}
    )
    await security_headers(None, response)  # type: ignore[arg-type]
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["Content-Security-Policy"] == "img-src 'self'; frame-ancestors 'none'"
    framed = web.Response(headers={"Content-Security-Policy": "frame-ancestors 'self'"})
    await security_headers(None, framed)  # type: ignore[arg-type]
    assert framed.headers["Content-Security-Policy"] == "frame-ancestors 'self'"


def test_the_route_walk_covers_every_get_route(tmp_path: Path) -> None:
    from web.app import create_app

    app = create_app(Settings(data_dir=tmp_path))
    canonical = {
        r.resource.canonical for r in app.router.routes() if r.method == "GET" and r.resource
    }
    paths = get_paths(app, {})
    assert len(paths) == len(canonical - SKIPPED)
    assert not any("{" in p for p in paths)
