"""What every page shares: HTML error pages for the pages' paths, the security
middleware and headers, static files and the language switch. ``web.app`` installs
them, with each area's routes."""

from __future__ import annotations

from pathlib import Path
from typing import Final

from aiohttp import web

from orchestrator.errors import DomainError
from orchestrator.inputs import text_problem
from web.ui import i18n
from web.ui.render import render_error
from web.ui.security import (
    UNSAFE,
    CsrfRefused,
    Handler,
    is_ui_path,
    safe_next,
    security_middleware,
)

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
NOT_FOUND = frozenset({"not-found"})
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
CONFLICT = frozenset({"duplicate", "conflict"})


@web.middleware
async def html_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refusals on pages become a page naming the code; the API keeps JSON."""
    if not is_ui_path(request.path):
        return await handler(request)
    if any(text_problem(value) for value in request.match_info.values()):
        # An id with a control character names nothing (and PostgreSQL refuses NUL).
        return await render_error(request, 404, "not-found", "There is no such page.")
    if await _holds_nul(request):
        return await render_error(
            request, 400, "bad-request", "The form holds a character no field accepts (NUL)."
        )
    try:
        return await handler(request)
    except DomainError as exc:
        status = 404 if exc.code in NOT_FOUND else 409 if exc.code in CONFLICT else 400
        return await render_error(request, status, exc.code, exc.message)
    except CsrfRefused:
        return await render_error(
            request, 403, "csrf-failed", "This form has expired. Reload the page and try again."
        )
    except web.HTTPForbidden:
        return await render_error(request, 403, "forbidden", "You do not have access to this page.")
    except web.HTTPNotFound:
        return await render_error(request, 404, "not-found", "There is no such page.")


async def _holds_nul(request: web.Request) -> bool:
    """NUL in the query or a posted form: no field takes it (``inputs.text_problem``),
    and PostgreSQL refuses it even in a query for an id, so it stops here."""
    values = list(request.query.values())
    if request.method in UNSAFE and request.content_type in FORM_TYPES:
        values += [v for v in (await request.post()).values() if isinstance(v, str)]
    return any("\x00" in value for value in values)


FRAME_ANCESTORS = "frame-ancestors 'none'"
SECURITY_HEADERS = {
    # No page of ours is meant to be framed (the room panel is opened on a tablet,
    # not embedded): clickjacking defence for old browsers and new ones.
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    # Same-origin requests keep the Referer (CSRF checks, logs); other sites get none:
    # guest, panel and calendar URLs carry their secret in the path.
    "Referrer-Policy": "same-origin",
}


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """Every response (pages, error pages, redirects, static files, the API) refuses
    to be framed and to be sniffed. A header a handler set is kept (the guest and
    panel pages send no Referer at all); a Content-Security-Policy without
    ``frame-ancestors`` gets it added rather than replaced."""
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    policy = response.headers.get("Content-Security-Policy")
    if policy is None:
        response.headers["Content-Security-Policy"] = FRAME_ANCESTORS
    elif "frame-ancestors" not in policy.lower():
        response.headers["Content-Security-Policy"] = f"{policy.rstrip('; ')}; {FRAME_ANCESTORS}"


async def switch_language(request: web.Request) -> web.Response:
    """``/lang/fr?next=/path``: remember the choice in a cookie and go back."""
    code = request.match_info["code"]
    if code not in i18n.LANGUAGES:
        raise web.HTTPNotFound()
    response = web.HTTPSeeOther(safe_next(request.query.get("next")))
    response.set_cookie(
        i18n.LANG_COOKIE, code, max_age=365 * 86400, samesite="Lax", path="/", secure=request.secure
    )
    raise response


MIDDLEWARES: Final = (html_errors, security_middleware)
"""The pages' middlewares, outermost first (``web.app`` installs them after the API's)."""

routes: list[web.AbstractRouteDef] = [
    web.static("/static/", STATIC_DIR, name="static"),
    web.get("/lang/{code}", switch_language),
]
