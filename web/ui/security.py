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
import re
import secrets
import unicodedata
from collections.abc import Awaitable, Callable
from datetime import datetime
from urllib.parse import quote, unquote

from aiohttp import web

from orchestrator.clock import instant
from orchestrator.people import accounts
from orchestrator.people.accounts import Principal
from web.keys import SERVICES

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
DEFAULT_NEXT = "/"
MAX_NEXT = 2000
_DECODINGS = 4
# RFC 3986 unreserved, sub-delims, ":", "@", "/", "?", "#" and "%": printable ASCII
# without space, backslash, quotes and angle brackets, braces, "|", "^" and "`".
_URL_CHARS = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=:@/?#%]+")


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
    """A form without its CSRF token: ``web.ui.base.html_errors`` answers the page."""


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
        raise CsrfRefused()
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
        # The path as the browser sent it, still percent-encoded, so that safe_next
        # reads it the same way after the query string is decoded.
        raise web.HTTPSeeOther(f"/login?next={_quote(request.rel_url.raw_path_qs)}")
    if roles and user.role not in roles and not user.is_admin:
        raise web.HTTPForbidden(text="forbidden")
    return user


def _quote(path: str) -> str:
    return quote(path, safe="")


def _unsafe_layer(layer: str) -> bool:
    """Whether one reading of a ``next`` value could leave the site or be read so: a
    character that is not printable (browsers drop tab, CR and LF anywhere:
    ``/\\t/evil`` is ``//evil``), or, as given or NFKC-folded, not a path-absolute
    reference, a backslash (browsers read ``\\`` as ``/`` in http URLs), an empty
    segment (``//host`` is another origin; ``/a//b`` is not, but nothing of ours
    needs it) or a dot segment (``/..//evil`` resolves to the path ``//evil``, which
    the next reader may take for a host)."""
    if not layer.isprintable():  # controls, line separators, format characters
        return True
    # NFKC folds the fullwidth solidus U+FF0F to "/", as some servers do.
    for reading in {layer, unicodedata.normalize("NFKC", layer)}:
        path = reading.split("?", 1)[0].split("#", 1)[0]
        segments = path.split("/")[1:]
        if (
            not reading.startswith("/")
            or "\\" in reading
            or any(segment in ("", ".", "..") for segment in segments[:-1])
            or segments[-1] in (".", "..")
        ):
            return True
    return False


def safe_next(value: str | None) -> str:
    """Where to go after the login or the language switch: ``value`` when it is
    surely a path of this site, else ``DEFAULT_NEXT``.

    Refused rather than mended: anything but printable ASCII from the URL grammar
    (RFC 3986: no space, no backslash, no control character, no non-ASCII, so
    nothing a browser strips or rewrites, WHATWG URL "remove all ASCII tab or
    newline", "\\ is /"); a value that, read as given or after percent-decoding
    (once or more: a proxy, aiohttp or the next page may decode ``%2F%2F``, ``%5C``,
    ``%09``), does not start with one ``/`` or holds an empty or dot path segment
    (``_unsafe_layer``); longer than ``MAX_NEXT``.
    """
    if not value or len(value) > MAX_NEXT or not _URL_CHARS.fullmatch(value):
        return DEFAULT_NEXT
    layer = value
    for _ in range(_DECODINGS):
        if _unsafe_layer(layer):
            return DEFAULT_NEXT
        decoded = unquote(layer)
        if decoded == layer:
            return value
        layer = decoded
    return DEFAULT_NEXT  # still encoded after that many readings: nothing of ours
