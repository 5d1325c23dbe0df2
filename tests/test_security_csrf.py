"""Security of the pages: every unsafe request to a page path needs the CSRF token
(iterated over the application's own route table, so a new form cannot forget it),
and staff-only pages refuse organisers and staff of other centres."""

from __future__ import annotations

import itertools
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from aiohttp import ClientSession, web
from yarl import URL

from orchestrator.centres import get_room, list_rooms
from tests.accounts_support import (
    ADMIN,
    AMSTERDAM_STAFF,
    PARIS_ORGANISER,
    PARIS_STAFF,
    Network,
    add_network,
    browser_like,
    log_in,
    post_form,
)
from tests.ui_support import RunningApp, csrf_of, running_app
from web.settings import Settings
from web.ui.security import CSRF_COOKIE, UNSAFE, is_ui_path

PARAM = re.compile(r"\{([^}:]+)(?::[^}]*)?\}")
# Values tried for a path parameter, the first that the route's pattern accepts wins:
# an id, a panel token, a guest token, a language code, a plain word.
CANDIDATES = (
    "0123456789abcdef0123456789abcdef",
    "tcp_" + "A" * 43,
    "tcg_" + "A" * 43,
    "fr",
    "dummy",
)


@pytest_asyncio.fixture
async def site(tmp_path: Path) -> AsyncIterator[tuple[RunningApp, Network]]:
    async with running_app(Settings(data_dir=tmp_path)) as app:
        yield app, await add_network(app.services.db)


def unsafe_page_routes(app: web.Application) -> list[tuple[str, str]]:
    """(method, concrete path) of every unsafe route outside the API, each path
    parameter replaced by a value the route's own pattern accepts."""
    found: list[tuple[str, str]] = []
    for route in app.router.routes():
        if route.method not in UNSAFE or route.resource is None:
            continue
        info = route.resource.get_info()
        if "path" in info:
            path = str(info["path"])
        else:
            formatter, pattern = str(info["formatter"]), info["pattern"]
            names = PARAM.findall(formatter)
            for values in itertools.product(CANDIDATES, repeat=len(names)):
                path = formatter
                for name, value in zip(names, values, strict=True):
                    path = path.replace("{" + name + "}", value, 1)
                if pattern.fullmatch(path):
                    break
            else:
                raise AssertionError(f"no dummy value fits {formatter}")
        if is_ui_path(path):
            found.append((route.method, path))
    return found


async def test_every_unsafe_page_request_without_a_valid_csrf_token_is_refused(
    site: tuple[RunningApp, Network],
) -> None:
    app, _ = site
    routes = unsafe_page_routes(app.app)
    paths = {path for _, path in routes}
    # The iteration reaches the forms of every area, not just a few.
    for expected in ("/login", "/logout", "/account", "/admin/users"):
        assert expected in paths
    assert any(p.startswith("/admin/centres/") for p in paths)
    assert len(routes) >= 15
    async with browser_like() as http:
        assert await log_in(http, app.url, ADMIN) == 303
        cookie = http.cookie_jar.filter_cookies(URL(app.url))[CSRF_COOKIE].value
        for method, path in routes:
            attempts = {
                "no token": {"data": {"name": "x"}},
                "wrong token": {"data": {"csrf_token": "not-" + cookie}},
                "wrong header": {"headers": {"X-CSRF-Token": cookie[::-1]}},
                "json body": {"json": {"csrf_token": cookie}},
            }
            for label, kwargs in attempts.items():
                async with http.request(
                    method, app.url + path, allow_redirects=False, **kwargs
                ) as response:
                    body = await response.text()
                    assert response.status == 403, f"{method} {path} ({label}): {response.status}"
                    assert "csrf-failed" in body, f"{method} {path} ({label})"
        # Nothing happened: logout was refused, so the admin is still logged in.
        async with http.get(f"{app.url}/account", allow_redirects=False) as response:
            assert response.status == 200


async def test_a_request_from_another_site_without_the_cookie_is_refused(
    site: tuple[RunningApp, Network],
) -> None:
    """A forged form carries a token it cannot know the cookie of: the browser sends
    no ``tc_csrf`` cookie cross-site (SameSite=Strict), so nothing matches."""
    app, _ = site
    async with browser_like() as http:
        assert await log_in(http, app.url, ADMIN) == 303
        session = http.cookie_jar.filter_cookies(URL(app.url))["tc_session"].value
    async with ClientSession(cookies={"tc_session": session}) as forger:
        async with forger.post(
            f"{app.url}/logout", data={"csrf_token": "guessed"}, allow_redirects=False
        ) as response:
            assert response.status == 403 and "csrf-failed" in await response.text()


async def test_a_valid_token_is_accepted_on_logout_and_account(
    site: tuple[RunningApp, Network],
) -> None:
    app, _ = site
    async with browser_like() as http:
        assert await log_in(http, app.url, PARIS_ORGANISER) == 303
        status, _, location = await post_form(
            http,
            app.url,
            "/account",
            {"form": "profile", "name": "Olga", "locale": "", "timezone": ""},
        )
        assert (status, location) == (303, "/account?saved=profile")
        # The header works too (what fetch() sends).
        token = await csrf_of(http, f"{app.url}/account")
        async with http.post(
            f"{app.url}/logout", headers={"X-CSRF-Token": token}, allow_redirects=False
        ) as response:
            assert response.status == 303 and response.headers["Location"] == "/login"
        async with http.get(f"{app.url}/account", allow_redirects=False) as response:
            assert response.status == 303


# --- staff-only pages ------------------------------------------------------------------------


async def _status(http: ClientSession, url: str) -> tuple[int, str]:
    async with http.get(url, allow_redirects=False) as response:
        return response.status, await response.text()


@pytest.mark.parametrize("who", [PARIS_ORGANISER, AMSTERDAM_STAFF])
async def test_organisers_and_staff_of_another_centre_get_403_on_a_centres_admin_pages(
    site: tuple[RunningApp, Network], who: str
) -> None:
    app, net = site
    async with browser_like() as http:
        assert await log_in(http, app.url, who) == 303
        status, html = await _status(http, f"{app.url}/admin/centres/{net.paris}")
        assert status == 403
        assert "<code>forbidden</code>" in html and "Salle Bleue" not in html
        status, html = await _status(http, f"{app.url}/admin/users")
        assert status == 403 and "<code>forbidden</code>" in html
        status, _ = await _status(http, f"{app.url}/admin/centres")
        assert status == 403
        # Nor can they change anything there, even with a valid form token.
        page = "/account"
        base = f"/admin/centres/{net.paris}/rooms/{net.paris_room}"
        form = {"buffer": "60", "max_duration": "", "max_advance": "30", "aliases": "hijacked"}
        for path, data in (
            (base, form),
            (f"{base}/key", {}),
            (f"{base}/panel-link", {}),
            (f"/admin/centres/{net.paris}/rooms", {"name": "Intruder"}),
            ("/admin/users", {"email": "x@example.org", "name": "X", "role": "admin"}),
        ):
            status, html, _ = await post_form(http, app.url, path, data, page=page)
            assert status == 403, path
            assert "<code>forbidden</code>" in html
    room = await app.services.db.run(lambda s: get_room(s, net.paris_room))
    assert (room.buffer_seconds, room.aliases, room.key_generation) == (0, "[]", 1)
    rooms = await app.services.db.run(lambda s: list_rooms(s, net.paris))
    assert [r.name for r in rooms] == ["Salle Bleue"]


async def test_staff_of_the_centre_and_administrators_may_open_it(
    site: tuple[RunningApp, Network],
) -> None:
    app, net = site
    for who, users_status in ((PARIS_STAFF, 403), (ADMIN, 200)):
        async with browser_like() as http:
            assert await log_in(http, app.url, who) == 303
            status, html = await _status(http, f"{app.url}/admin/centres/{net.paris}")
            assert status == 200 and "Salle Bleue" in html
            assert (await _status(http, f"{app.url}/admin/users"))[0] == users_status


async def test_a_visitor_is_sent_to_the_login_page(site: tuple[RunningApp, Network]) -> None:
    app, net = site
    async with browser_like() as http:
        for path in (f"/admin/centres/{net.paris}", "/admin/users", "/admin"):
            async with http.get(app.url + path, allow_redirects=False) as response:
                assert response.status == 303
                assert response.headers["Location"].startswith("/login?next=/admin")
