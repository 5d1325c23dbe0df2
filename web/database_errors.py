"""Requests that meet a database fault: one clear 503, one log line per interval.

Every route reaches the database through ``Database.run``, which names its faults
(``orchestrator.db``): ``DatabaseBusy`` when another process held the database
locked for longer than ``database_busy_wait``, ``DatabaseUnavailable`` when the file
is damaged, is not a database, or cannot be read or written. This middleware turns
either into a 503 with its stable code:

- the API, calendar feeds and everything outside the pages: the API's error shape,
  ``{"error": {"code": "database-busy" | "database-unavailable", "message": ...}}``;
- the pages: the error page in the visitor's language. A login while the database is
  broken therefore says that the service cannot reach its database, never that the
  password was wrong (the login handler needs no rule of its own for it).

Both carry ``Retry-After``. The log gets one line per fault code and
``fault_log_interval``, without a traceback: a broken database fails every request
the same way, and the lines would drown everything else.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

from orchestrator.db import DatabaseBusy, DatabaseFault
from orchestrator.log_limit import LogLimiter
from web.ui.render import render_error
from web.ui.security import is_ui_path

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

BUSY_PAGE = "The database is busy. Try again in a moment."
UNAVAILABLE_PAGE = "The service cannot reach its database. Try again in a few minutes."
UNAVAILABLE_RETRY_AFTER = 30


def _retry_after(fault: DatabaseFault, busy_wait: float) -> str:
    if isinstance(fault, DatabaseBusy):
        return str(max(1, math.ceil(busy_wait)))
    return str(UNAVAILABLE_RETRY_AFTER)


async def fault_response(request: web.Request, fault: DatabaseFault) -> web.Response:
    """The 503 for ``fault``: a translated page on the pages' paths, JSON elsewhere."""
    if is_ui_path(request.path):
        if isinstance(fault, DatabaseBusy):
            return await render_error(request, 503, fault.code, BUSY_PAGE)
        return await render_error(request, 503, fault.code, UNAVAILABLE_PAGE)
    return web.json_response({"error": {"code": fault.code, "message": fault.message}}, status=503)


def database_fault_middleware(
    *, busy_wait: float, log_interval: float, limiter: LogLimiter | None = None
) -> Middleware:
    """The middleware (see the module's rules); ``busy_wait`` sets ``Retry-After``."""
    faults = limiter or LogLimiter(log, log_interval)

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except DatabaseFault as fault:
            faults.log(
                logging.ERROR if fault.code != DatabaseBusy.code else logging.WARNING,
                fault.code,
                "%s %s answered 503: %s",
                request.method,
                request.path,
                fault,
            )
            response = await fault_response(request, fault)
            response.headers["Retry-After"] = _retry_after(fault, busy_wait)
            return response

    return middleware
