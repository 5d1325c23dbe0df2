"""No open redirect: the ``next`` target of the login and of the language switch never
leads a browser to another site.

Each hostile value goes through each door (GET /login?next= as a logged-in person and
as a visitor, the language switch, POST /login), and the Location answered is
followed as a browser would: the WHATWG URL parser drops tabs and line breaks
anywhere and leading or trailing spaces and control characters, and reads ``\\`` as
``/`` in http URLs; the result is joined to the page's URL with yarl and with
urllib, and again after percent-decoding (a proxy or the next page may decode it).
The host must stay the site's, and the path must not begin with ``//``.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

import pytest
import pytest_asyncio
from aiohttp import ClientSession
from yarl import URL

from tests.accounts_support import PARIS_STAFF, Network, add_network, browser_like, log_in
from tests.ui_support import PASSWORD, RunningApp, csrf_of, running_app
from web.settings import Settings
from web.ui.security import DEFAULT_NEXT, safe_next

HOSTILE = (
    "//evil.test/steal",
    "///evil.test",
    "https://evil.test/",
    "http:evil.test",
    "javascript:alert(1)",
    "/\\evil.test",
    "\\\\evil.test",
    "/\\/evil.test",
    "/\t/evil.test",
    "/\n/evil.test",
    "/\r\n/evil.test",
    "\t//evil.test",
    " //evil.test",
    "/ /evil.test",
    "/%0A/evil.test",
    "/%0D%0A/evil.test",
    "/%09/evil.test",
    "/%2F%2Fevil.test",
    "/%2f/evil.test",
    "/%5Cevil.test",
    "/%5C%5Cevil.test",
    "/%252F%252Fevil.test",
    "/%25252F%25252Fevil.test",
    "/..//evil.test",
    "/a/..//evil.test",
    "/.//evil.test",
    "/%2e%2e//evil.test",
    "/%2E%2E/%2Fevil.test",
    "/\x00/evil.test",
    "/\x0b/evil.test",
    "/\u2028/evil.test",
    "/\uff0f\uff0fevil.test",  # fullwidth solidus: some parsers fold it to "/"
    "/%E2%80%A8/evil.test",
    "/%EF%BC%8F%EF%BC%8Fevil.test",
    "/%C2%85/evil.test",
    "/@evil.test/..",
    "",
    "/" + "a" * 2100,
)
SAME_SITE = (
    "/",
    "/account",
    "/bookings/0123456789abcdef0123456789abcdef",
    "/availability?room=a&room=b&date=2030-06-03&zone=Europe/Paris",
    "/login?next=%2Faccount",
    "/bookings#upcoming",
)
CONTROLS_STRIPPED = re.compile("[\t\n\r]")


def browser_resolve(base: str, location: str) -> URL:
    """``location`` resolved against ``base`` as a browser would (WHATWG URL parsing:
    strip C0 controls and spaces at both ends, remove tab/LF/CR anywhere, ``\\`` is
    ``/`` and any run of slashes before a host is two, for http(s))."""
    value = location.strip("".join(map(chr, range(0x21))))
    value = CONTROLS_STRIPPED.sub("", value).replace("\\", "/")
    # Special schemes skip every slash before the authority: "///host" is "//host".
    value = re.sub("^/{2,}", "//", value)
    return URL(base).join(URL(value, encoded=True))


def assert_stays_on_site(base: str, location: str) -> None:
    site = URL(base)
    readings = {location, unquote(location), unquote(unquote(location))}
    for reading in readings:
        resolved = browser_resolve(base, reading)
        assert (resolved.host, resolved.port) == (site.host, site.port), (location, resolved)
        assert not resolved.raw_path.startswith("//"), (location, resolved)
        cleaned = CONTROLS_STRIPPED.sub("", reading.strip()).replace("\\", "/")
        joined = urlsplit(urljoin(base, re.sub("^/{2,}", "//", cleaned)))
        assert joined.netloc == f"{site.host}:{site.port}", (location, joined)


@pytest.mark.parametrize("value", HOSTILE)
def test_safe_next_refuses_every_form_that_could_leave_the_site(value: str) -> None:
    assert safe_next(value) == DEFAULT_NEXT


@pytest.mark.parametrize("value", SAME_SITE)
def test_safe_next_keeps_the_sites_own_paths(value: str) -> None:
    assert safe_next(value) == value


def test_the_browser_model_of_this_test_sees_the_attacks() -> None:
    """The resolver is what makes the page tests meaningful: without the checks,
    these Locations would lead elsewhere."""
    base = "http://127.0.0.1:8080/login"
    for attack in ("/\t/evil.test", "/\\evil.test", "//evil.test", " //evil.test", "///evil.test"):
        assert browser_resolve(base, attack).host == "evil.test"
    with pytest.raises(AssertionError):
        assert_stays_on_site(base, "/%2F%2Fevil.test")


@pytest_asyncio.fixture
async def site(tmp_path: Path) -> AsyncIterator[tuple[RunningApp, Network]]:
    async with running_app(Settings(data_dir=tmp_path)) as app:
        yield app, await add_network(app.services.db)


async def _location(http: ClientSession, url: URL) -> str:
    async with http.get(url, allow_redirects=False) as response:
        await response.read()
        assert response.status == 303, (url, response.status)
        return response.headers["Location"]


async def _refused_outright(http: ClientSession, base: str, value: str) -> None:
    """A NUL never reaches a handler (PostgreSQL refuses it even in a query): every
    door answers 400 and redirects nowhere, which is as safe as the default."""
    for path in ("/lang/fr", "/login"):
        async with http.get(_with_next(base, path, value), allow_redirects=False) as response:
            await response.read()
            assert response.status == 400 and "Location" not in response.headers, (path, value)
    token = await csrf_of(http, f"{base}/login")
    form = {"csrf_token": token, "email": PARIS_STAFF, "password": PASSWORD, "next": value}
    async with http.post(f"{base}/login", data=form, allow_redirects=False) as response:
        await response.read()
        assert response.status == 400 and "Location" not in response.headers, value


def _with_next(base: str, path: str, value: str) -> URL:
    return URL(base + path).with_query({"next": value})


async def _follow(http: ClientSession, base: str, location: str) -> None:
    """The next hop is served by the site itself (no error on its own path)."""
    target = browser_resolve(base, location)
    async with http.get(target, allow_redirects=False) as response:
        await response.read()
        assert response.status < 500, (target, response.status)


async def test_every_door_falls_back_to_the_default_for_hostile_targets(
    site: tuple[RunningApp, Network],
) -> None:
    app, _ = site
    async with browser_like() as visitor:
        for value in HOSTILE:
            if "\x00" in value:
                await _refused_outright(visitor, app.url, value)
                continue
            # The language switch.
            location = await _location(visitor, _with_next(app.url, "/lang/fr", value))
            assert location == DEFAULT_NEXT, (value, location)
            assert_stays_on_site(app.url + "/lang/fr", location)
            # The login form, as a visitor: the target carried in the form.
            async with visitor.get(
                _with_next(app.url, "/login", value), allow_redirects=False
            ) as response:
                html = await response.text()
            assert response.status == 200
            assert f'name="next" value="{DEFAULT_NEXT}"' in html, value
            # POST /login with the value typed into the form.
            token = await csrf_of(visitor, f"{app.url}/login")
            async with visitor.post(
                f"{app.url}/login",
                data={
                    "csrf_token": token,
                    "email": PARIS_STAFF,
                    "password": PASSWORD,
                    "next": value,
                },
                allow_redirects=False,
            ) as response:
                await response.read()
                assert response.status == 303, value
                location = response.headers["Location"]
            assert location == DEFAULT_NEXT, (value, location)
            assert_stays_on_site(app.url + "/login", location)
            await _follow(visitor, app.url, location)
            # GET /login?next= when logged in redirects at once.
            location = await _location(visitor, _with_next(app.url, "/login", value))
            assert location == DEFAULT_NEXT, (value, location)
            assert_stays_on_site(app.url + "/login", location)
            async with visitor.post(
                f"{app.url}/logout", data={"csrf_token": token}, allow_redirects=False
            ) as response:
                assert response.status == 303


async def test_every_door_keeps_a_same_site_target(site: tuple[RunningApp, Network]) -> None:
    app, _ = site
    async with browser_like() as http:
        for value in SAME_SITE:
            location = await _location(http, _with_next(app.url, "/lang/en", value))
            assert unquote(location) == unquote(value)  # aiohttp may normalise escapes
            assert_stays_on_site(app.url, location)
        assert await log_in(http, app.url, PARIS_STAFF, next_="/account") == 303
        for value in SAME_SITE:
            location = await _location(http, _with_next(app.url, "/login", value))
            assert unquote(location) == unquote(value)
