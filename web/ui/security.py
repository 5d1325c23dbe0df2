"""Logins and forms: the session cookie, CSRF protection, the current person, roles.

- ``tc_session``: a random secret (its SHA-256 is in ``web_session``); HttpOnly,
  SameSite=Lax, Secure when the page was served over TLS.
- ``tc_csrf``: a random token every visitor gets; every unsafe request outside the
  bearer-token API must repeat it in the form field ``csrf_token`` or the header
  ``X-CSRF-Token`` (double submit; the cookie is HttpOnly and SameSite=Lax, the
  page carries the value it was rendered with).
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Awaitable, Callable
from datetime import datetime

from aiohttp import web

from orchestrator import accounts
from orchestrator.accounts import Principal
from orchestrator.clock import instant
from web.app import SERVICES

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
SESSION_COOKIE = "tc_session"
CSRF_COOKIE = "tc_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# The JSON API authenticates each call with a bearer token and sets no cookie;
# the WebSocket authenticates in its first message; calendar feeds are read by
# calendar programs (secret URL, GET only) and answer errors in JSON; static files
# need no person, so they cost no session lookup.
EXEMPT_PREFIXES = ("/api/", "/ws", "/calendars/", "/healthz", "/static/")
USER: web.RequestKey[Principal | None] = web.RequestKey("user")
CSRF = web.RequestKey("csrf", str)


def is_ui_path(path: str) -> bool:
    return not path.startswith(EXEMPT_PREFIXES)


def now_utc(request: web.Request) -> datetime:
    return instant(request.app[SERVICES].clock)


def client_address(request: web.Request) -> str:
    return request.remote or "unknown"


def csrf_token(request: web.Request) -> str:
    return request.get(CSRF) or request.cookies.get(CSRF_COOKIE, "")


def current_user(request: web.Request) -> Principal | None:
    return request.get(USER)


class CsrfRefused(web.HTTPForbidden):
    pass


async def _csrf_ok(request: web.Request, expected: str | None) -> bool:
    if not expected:
        return False
    given = request.headers.get(CSRF_HEADER)
    if given is None and request.content_type in (
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    ):
        form = await request.post()
        value = form.get(CSRF_FIELD)
        given = value if isinstance(value, str) else None
    return given is not None and hmac.compare_digest(given, expected)


@web.middleware
async def security_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not is_ui_path(request.path):
        return await handler(request)
    cookie = request.cookies.get(CSRF_COOKIE)
    if request.method in UNSAFE and not await _csrf_ok(request, cookie):
        from web.ui.render import render_error

        return await render_error(
            request, 403, "csrf-failed", "This form has expired. Reload the page and try again."
        )
    request[CSRF] = cookie or secrets.token_urlsafe(24)
    request[USER] = None
    if token := request.cookies.get(SESSION_COOKIE):
        now = now_utc(request)
        request[USER] = await request.app[SERVICES].db.run(
            lambda s: accounts.session_user(s, token, now)
        )
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        # Redirects and refusals raised as exceptions carry the cookie too.
        if cookie is None:
            _set_csrf_cookie(request, exc)
        raise
    if cookie is None:
        _set_csrf_cookie(request, response)
    return response


def _set_csrf_cookie(request: web.Request, response: web.StreamResponse) -> None:
    response.set_cookie(
        CSRF_COOKIE,
        request[CSRF],
        httponly=True,
        samesite="Lax",
        secure=request.secure,
        path="/",
    )


def set_session_cookie(request: web.Request, response: web.StreamResponse, token: str) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        token,
        httponly=True,
        samesite="Lax",
        secure=request.secure,
        path="/",
        max_age=int(accounts.SESSION_LIFETIME.total_seconds()),
    )


def require_user(request: web.Request, *roles: str) -> Principal:
    """The logged-in person, or a redirect to the login page; 403 for a wrong role."""
    user = current_user(request)
    if user is None:
        raise web.HTTPSeeOther(f"/login?next={_quote(request.path_qs)}")
    if roles and user.role not in roles and not user.is_admin:
        raise web.HTTPForbidden(text="forbidden")
    return user


def _quote(path: str) -> str:
    from urllib.parse import quote

    return quote(path, safe="")


def safe_next(value: str | None) -> str:
    """Only same-site paths are followed after login (no open redirect)."""
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/"
