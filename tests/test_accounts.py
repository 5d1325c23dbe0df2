"""Logging in and out and a person's own settings, through the running service:
the login form, its refusals in the visitor's language, the throttle (driven by a
fake clock), the session cookie's attributes, logout, and /account."""

from __future__ import annotations

from collections.abc import AsyncIterator
from http.cookies import SimpleCookie
from pathlib import Path

import pytest
import pytest_asyncio
from aiohttp import ClientSession
from yarl import URL

from orchestrator.clock import FakeClock
from orchestrator.models import User
from orchestrator.people import accounts
from tests.accounts_support import (
    PARIS_ORGANISER,
    PARIS_STAFF,
    Network,
    add_network,
    browser_like,
    log_in,
    post_form,
)
from tests.ui_support import PASSWORD, RunningApp, csrf_of, running_app
from web.settings import Settings

START = 1_900_000_000.0  # 2030-03-17, a fixed instant for the fake clock


@pytest_asyncio.fixture
async def service(tmp_path: Path) -> AsyncIterator[tuple[RunningApp, FakeClock, Network]]:
    clock = FakeClock(START)
    async with running_app(Settings(data_dir=tmp_path), clock=clock) as app:
        network = await add_network(app.services.db)
        yield app, clock, network


async def _page(http: ClientSession, url: str) -> tuple[int, str, str]:
    async with http.get(url, allow_redirects=False) as response:
        return response.status, await response.text(), response.headers.get("Location", "")


# --- the login page -----------------------------------------------------------------------


async def test_login_page_is_a_labelled_form_in_the_visitors_language(
    service: tuple[RunningApp, FakeClock, Network],
) -> None:
    app, _, _ = service
    async with browser_like(**{"Accept-Language": "fr-FR,fr;q=0.9"}) as http:
        status, html, _ = await _page(http, f"{app.url}/login")
    assert status == 200
    assert '<html lang="fr">' in html
    assert '<label for="login-email">Adresse e-mail</label>' in html
    assert '<label for="login-password">Mot de passe</label>' in html
    assert 'name="csrf_token"' in html


async def test_login_opens_a_session_whose_cookie_is_httponly_and_samesite(
    service: tuple[RunningApp, FakeClock, Network],
) -> None:
    app, _, _ = service
    async with browser_like() as http:
        token = await csrf_of(http, f"{app.url}/login")
        async with http.post(
            f"{app.url}/login",
            data={
                "csrf_token": token,
                "email": PARIS_STAFF.upper(),
                "password": PASSWORD,
                "next": "/account",
            },
            allow_redirects=False,
        ) as response:
            assert response.status == 303
            assert response.headers["Location"] == "/account"
            cookies = SimpleCookie()
            for header in response.headers.getall("Set-Cookie"):
                cookies.load(header)
        session = cookies["tc_session"]
        assert session["httponly"] is True
        assert session["samesite"] == "Lax"
        assert session["path"] == "/"
        status, html, _ = await _page(http, f"{app.url}/account")
        assert status == 200 and "Paul Staff" in html and PARIS_STAFF in html


@pytest.mark.parametrize(
    "target", ["//evil.example/steal", "https://evil.example/", "/\\evil.example", "javascript:x"]
)
async def test_login_follows_next_only_within_the_site(
    service: tuple[RunningApp, FakeClock, Network], target: str
) -> None:
    app, _, _ = service
    async with browser_like() as http:
        token = await csrf_of(http, f"{app.url}/login")
        async with http.post(
            f"{app.url}/login",
            data={"csrf_token": token, "email": PARIS_STAFF, "password": PASSWORD, "next": target},
            allow_redirects=False,
        ) as response:
            assert response.status == 303
            assert response.headers["Location"] == "/"


async def test_a_page_for_people_sends_a_visitor_to_the_login_with_next(
    service: tuple[RunningApp, FakeClock, Network],
) -> None:
    app, _, _ = service
    async with browser_like() as http:
        status, _, location = await _page(http, f"{app.url}/account")
        assert status == 303 and location == "/login?next=/account"
        status, html, _ = await _page(http, f"{app.url}{location}")
        assert 'name="next" value="/account"' in html


async def test_a_wrong_password_is_refused_in_the_form_in_the_visitors_language(
    service: tuple[RunningApp, FakeClock, Network],
) -> None:
    app, _, _ = service
    async with browser_like(**{"Accept-Language": "fr"}) as http:
        status, html, _ = await post_form(
            http,
            app.url,
            "/login",
            {"email": PARIS_STAFF, "password": "not the password", "next": "/account"},
        )
    assert status == 400
    assert 'role="alert"' in html
    assert "Adresse e-mail ou mot de passe incorrect." in html
    # What was typed stays (not the password), and so does where to go next.
    assert f'value="{PARIS_STAFF}"' in html and "not the password" not in html
    assert 'name="next" value="/account"' in html
    assert "tc_session" not in http.cookie_jar.filter_cookies(URL(app.url))


async def test_five_failures_lock_the_login_even_with_the_right_password_until_the_window_ends(
    service: tuple[RunningApp, FakeClock, Network],
) -> None:
    app, clock, _ = service
    async with browser_like() as http:
        for _ in range(5):
            assert await log_in(http, app.url, PARIS_STAFF, "wrong password!") == 400
        token = await csrf_of(http, f"{app.url}/login")
        async with http.post(
            f"{app.url}/login",
            data={"csrf_token": token, "email": PARIS_STAFF, "password": PASSWORD},
            allow_redirects=False,
        ) as response:
            html = await response.text()
            assert response.status == 429
            assert int(response.headers["Retry-After"]) == 15 * 60 + 1
        assert "Too many failed attempts. Try again in 15 minutes." in html
        assert await log_in(http, app.url, PARIS_STAFF) == 429
        await clock.advance(15 * 60 - 1)
        assert await log_in(http, app.url, PARIS_STAFF) == 429
        await clock.advance(2)
        assert await log_in(http, app.url, PARIS_STAFF) == 303
        status, _, _ = await _page(http, f"{app.url}/account")
        assert status == 200


async def test_logout_ends_the_session_on_the_server(
    service: tuple[RunningApp, FakeClock, Network],
) -> None:
    app, _, _ = service
    async with browser_like() as http:
        assert await log_in(http, app.url, PARIS_ORGANISER) == 303
        cookie = http.cookie_jar.filter_cookies(URL(app.url))["tc_session"].value
        status, _, location = await post_form(http, app.url, "/logout", {}, page="/account")
        assert (status, location) == (303, "/login")
        assert "tc_session" not in http.cookie_jar.filter_cookies(URL(app.url))
    # The old cookie, replayed, no longer opens anything.
    async with browser_like() as thief:
        thief.cookie_jar.update_cookies({"tc_session": cookie})
        status, _, location = await _page(thief, f"{app.url}/account")
        assert status == 303 and location.startswith("/login")


# --- the person's own settings ------------------------------------------------------------


async def test_the_persons_language_applies_after_login(
    service: tuple[RunningApp, FakeClock, Network],
) -> None:
    app, _, _ = service
    await app.services.db.run(
        lambda s: accounts.update_profile(
            s, accounts.user_by_email(s, PARIS_STAFF).id, name="Paul", locale="fr", timezone=None
        )
    )
    async with browser_like(**{"Accept-Language": "en-GB"}) as http:
        _, html, _ = await _page(http, f"{app.url}/login")
        assert '<html lang="en">' in html
        assert await log_in(http, app.url, PARIS_STAFF, next_="/account") == 303
        _, html, _ = await _page(http, f"{app.url}/account")
        assert '<html lang="fr">' in html and "Votre compte" in html


async def test_account_settings_are_saved_and_bad_values_are_explained(
    service: tuple[RunningApp, FakeClock, Network],
) -> None:
    app, _, _ = service
    async with browser_like() as http:
        assert await log_in(http, app.url, PARIS_ORGANISER) == 303
        status, html, _ = await post_form(
            http,
            app.url,
            "/account",
            {"form": "profile", "name": "", "locale": "xx", "timezone": "Mars/Olympus"},
        )
        assert status == 400
        assert 'id="account-locale-error" role="alert"' in html
        assert 'id="account-timezone-error" role="alert"' in html
        status, html, location = await post_form(
            http,
            app.url,
            "/account",
            {"form": "profile", "name": "  ", "locale": "nl", "timezone": "America/Toronto"},
        )
        assert status == 400 and 'id="account-name-error" role="alert"' in html
        # The other values stay as typed.
        assert '<option value="America/Toronto" selected>' in html
        status, _, location = await post_form(
            http,
            app.url,
            "/account",
            {"form": "profile", "name": "Olga O.", "locale": "nl", "timezone": "America/Toronto"},
        )
        assert (status, location) == (303, "/account?saved=profile")
        status, html, _ = await _page(http, f"{app.url}{location}")
        assert '<html lang="nl">' in html and 'role="status"' in html
        assert 'value="Olga O."' in html
    user = await app.services.db.run(lambda s: accounts.user_by_email(s, PARIS_ORGANISER))
    assert isinstance(user, User)
    assert (user.name, user.locale, user.timezone) == ("Olga O.", "nl", "America/Toronto")


async def test_changing_the_password_needs_the_current_one_and_ends_other_logins(
    service: tuple[RunningApp, FakeClock, Network],
) -> None:
    app, _, _ = service
    new = "a much better password"
    async with browser_like() as other_device, browser_like() as http:
        assert await log_in(other_device, app.url, PARIS_ORGANISER) == 303
        assert await log_in(http, app.url, PARIS_ORGANISER) == 303
        form = {"form": "password", "new_password": new, "confirm_password": new}
        status, html, _ = await post_form(
            http, app.url, "/account", {**form, "current_password": "not it at all"}
        )
        assert status == 400 and 'id="account-current-error" role="alert"' in html
        status, html, _ = await post_form(
            http,
            app.url,
            "/account",
            {**form, "current_password": PASSWORD, "confirm_password": "something else"},
        )
        assert status == 400 and 'id="account-confirm-error" role="alert"' in html
        status, _, location = await post_form(
            http, app.url, "/account", {**form, "current_password": PASSWORD}
        )
        assert (status, location) == (303, "/account?saved=password")
        assert (await _page(http, f"{app.url}/account"))[0] == 200
        assert (await _page(other_device, f"{app.url}/account"))[0] == 303
    async with browser_like() as http:
        assert await log_in(http, app.url, PARIS_ORGANISER) == 400
        assert await log_in(http, app.url, PARIS_ORGANISER, new) == 303


# --- translations -------------------------------------------------------------------------

WEB = Path(__file__).resolve().parent.parent / "web"
AREA_FILES = [
    *sorted((WEB / "templates" / "accounts").glob("*.html")),
    *sorted((WEB / "templates" / "admin").glob("*.html")),
    WEB / "ui" / "accounts.py",
    WEB / "ui" / "forms.py",
    WEB / "ui" / "admin.py",
]


def _messages() -> set[str | tuple[str, str]]:
    """Every message of the accounts and admin pages, as Babel extracts them."""
    from babel.messages.extract import extract
    from jinja2.ext import babel_extract

    found: set[str | tuple[str, str]] = set()
    for path in AREA_FILES:
        with path.open("rb") as fh:
            if path.suffix == ".html":
                items = [
                    m for _, _, m, _ in babel_extract(fh, ("_", "gettext", "ngettext"), [], {})
                ]
            else:
                keywords = {"gettext": (2,), "N_": None, "ngettext": (2, 3)}
                items = [m for _, m, _, _ in extract("python", fh, keywords=keywords)]
        for message in items:
            if isinstance(message, tuple):
                parts = tuple(x for x in message if x is not None)
                found.add(parts[0] if len(parts) == 1 else (parts[0], parts[1]))
            else:
                found.add(message)
    return found


@pytest.mark.parametrize("lang", ["fr", "nl"])
def test_every_message_of_the_accounts_and_admin_pages_is_translated(lang: str) -> None:
    from web.ui import i18n

    messages = _messages()
    assert "Wrong email address or password." in messages and len(messages) > 100
    catalogue = i18n.catalogue(lang)
    missing = [
        m for m in messages if not (catalogue.get(m[0] if isinstance(m, tuple) else m) or None)
    ]
    assert missing == []
    plural = i18n.translations(lang).ngettext(
        "Too many failed attempts. Try again in %(count)d minute.",
        "Too many failed attempts. Try again in %(count)d minutes.",
        2,
    )
    assert "%(count)d" in plural and "attempts" not in plural
