"""Logging in and out, and a person's own settings.

- ``GET/POST /login``: email and password; ``next`` is followed only to a path of
  this site (``safe_next``). Refusals (``login-failed``, ``login-throttled``) are
  shown in the form, in the visitor's language; the throttle (an account per source
  address, an address, an account from everywhere except the addresses it logged in
  from) lives in ``orchestrator.people.accounts.login``. After a login the person's own
  language, if they chose one, replaces the one the visitor had.
- ``POST /logout``: ends the login session on the server and forgets the cookie.
- ``GET/POST /account``: name, language, time zone; password change with the
  current password (every other login of that person ends).
"""

from __future__ import annotations

from functools import cache
from zoneinfo import available_timezones

from aiohttp import web

from orchestrator.errors import DomainError
from orchestrator.people import accounts
from orchestrator.people.accounts import LoginThrottled, Principal
from web.keys import SERVICES
from web.ui import i18n
from web.ui.forms import FieldErrors, ngettext, posted
from web.ui.render import gettext, render
from web.ui.security import (
    SESSION_COOKIE,
    client_address,
    current_user,
    now_utc,
    require_user,
    safe_next,
    set_session_cookie,
)

_ZONE_AREAS = (
    "Africa",
    "America",
    "Antarctica",
    "Asia",
    "Atlantic",
    "Australia",
    "Europe",
    "Indian",
    "Pacific",
)


@cache
def time_zones() -> tuple[str, ...]:
    """The IANA zones a person picks from: geographic names only (no ``Etc/GMT+3``,
    no legacy aliases such as ``US/Eastern``), and UTC."""
    zones = (z for z in available_timezones() if z.split("/")[0] in _ZONE_AREAS)
    return ("UTC", *sorted(zones))


def _remember_language(
    request: web.Request, response: web.StreamResponse, lang: str | None
) -> None:
    """The person's language becomes the visitor's choice (the switch cookie wins
    over the stored preference, so the cookie is what must change)."""
    if lang in i18n.LANGUAGES:
        response.set_cookie(
            i18n.LANG_COOKIE,
            lang,
            max_age=365 * 86400,
            samesite="Lax",
            path="/",
            secure=request.secure,
        )
    else:
        response.del_cookie(i18n.LANG_COOKIE, path="/")


# --- login and logout -------------------------------------------------------------------


async def login_page(request: web.Request) -> web.StreamResponse:
    target = safe_next(request.query.get("next"))
    if current_user(request) is not None:
        raise web.HTTPSeeOther(target)
    return render(request, "accounts/login.html", next=target, email="", error=None)


async def login_submit(request: web.Request) -> web.StreamResponse:
    values = await posted(request)
    email = values.get("email", "").strip()
    password = values.get("password", "")
    target = safe_next(values.get("next"))
    services = request.app[SERVICES]
    now = now_utc(request)
    client = client_address(request)
    try:
        if not email or not password:
            raise DomainError("login-failed", "wrong email address or password")
        person, token = await services.db.run(
            lambda s: accounts.login(s, email, password, client, now)
        )
    except LoginThrottled as exc:
        # retry_after counts the second under way; a 15-minute lock reads "15 minutes".
        minutes = max(1, -(-(exc.retry_after - 1) // 60))
        error = ngettext(
            request,
            "Too many failed attempts. Try again in %(count)d minute.",
            "Too many failed attempts. Try again in %(count)d minutes.",
            minutes,
        )
        response = render(
            request, "accounts/login.html", status=429, next=target, email=email, error=error
        )
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    except DomainError as exc:
        if exc.code != "login-failed":
            raise
        error = gettext(request, "Wrong email address or password.")
        return render(
            request, "accounts/login.html", status=400, next=target, email=email, error=error
        )
    response = web.HTTPSeeOther(target)
    if old := request.cookies.get(SESSION_COOKIE):
        await services.db.run(lambda s: accounts.logout(s, old))
    set_session_cookie(request, response, token)
    if person.locale:
        _remember_language(request, response, person.locale)
    raise response


async def logout(request: web.Request) -> web.StreamResponse:
    if token := request.cookies.get(SESSION_COOKIE):
        await request.app[SERVICES].db.run(lambda s: accounts.logout(s, token))
    response = web.HTTPSeeOther("/login")
    response.del_cookie(SESSION_COOKIE, path="/")
    raise response


# --- the person's own settings ----------------------------------------------------------


def _account_page(
    request: web.Request,
    me: Principal,
    *,
    status: int = 200,
    profile: dict[str, str] | None = None,
    errors: FieldErrors | None = None,
    saved: str | None = None,
) -> web.Response:
    values = profile or {
        "name": me.name,
        "locale": me.locale or "",
        "timezone": me.timezone or "",
    }
    return render(
        request,
        "accounts/account.html",
        status=status,
        me=me,
        values=values,
        errors=errors or FieldErrors(),
        saved=saved,
        zones=time_zones(),
        now=now_utc(request),
    )


async def account_page(request: web.Request) -> web.StreamResponse:
    me = require_user(request)
    saved = request.query.get("saved")
    return _account_page(request, me, saved=saved if saved in ("profile", "password") else None)


async def account_submit(request: web.Request) -> web.StreamResponse:
    me = require_user(request)
    values = await posted(request)
    if values.get("form") == "password":
        return await _change_password(request, me, values)
    return await _save_profile(request, me, values)


async def _save_profile(
    request: web.Request, me: Principal, values: dict[str, str]
) -> web.StreamResponse:
    errors = FieldErrors()
    name = values.get("name", "")
    locale = values.get("locale", "") or None
    zone = values.get("timezone", "") or None
    if locale is not None and locale not in i18n.LANGUAGES:
        errors.add(request, "locale", "invalid-language")
    if zone is not None and zone not in time_zones():
        errors.add(request, "timezone", "unknown-timezone")
    if not errors:
        try:
            await request.app[SERVICES].db.run(
                lambda s: accounts.update_profile(s, me.id, name=name, locale=locale, timezone=zone)
            )
        except DomainError as exc:
            errors.add_domain(
                request, exc, {"invalid-name": "name", "unknown-timezone": "timezone"}
            )
    if errors:
        shown = {"name": name, "locale": locale or "", "timezone": zone or ""}
        return _account_page(request, me, status=400, profile=shown, errors=errors)
    response = web.HTTPSeeOther("/account?saved=profile")
    _remember_language(request, response, locale)
    raise response


async def _change_password(
    request: web.Request, me: Principal, values: dict[str, str]
) -> web.StreamResponse:
    errors = FieldErrors()
    current = values.get("current_password", "")
    new = values.get("new_password", "")
    if new != values.get("confirm_password", ""):
        errors.add(request, "confirm_password", "password-mismatch")
    token = None
    if not errors:
        now = now_utc(request)
        try:
            token = await request.app[SERVICES].db.run(
                lambda s: accounts.change_password(s, me.id, current, new, now)
            )
        except DomainError as exc:
            errors.add_domain(
                request,
                exc,
                {
                    "wrong-password": "current_password",
                    "weak-password": "new_password",
                    "same-password": "new_password",
                },
            )
    if token is None:
        return _account_page(request, me, status=400, errors=errors)
    response = web.HTTPSeeOther("/account?saved=password")
    set_session_cookie(request, response, token)
    raise response


routes: list[web.AbstractRouteDef] = [
    web.get("/login", login_page, name="login"),
    web.post("/login", login_submit),
    web.post("/logout", logout, name="logout"),
    web.get("/account", account_page, name="account"),
    web.post("/account", account_submit),
]
