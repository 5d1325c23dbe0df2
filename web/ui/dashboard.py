"""The network dashboard: every centre and room with its state, today's and live
sessions with each site's media, updated in place every two seconds.

Routes (all need a login: the audience is staff and organisers; an anonymous visit
to ``/`` goes to ``/login``, the JSON and the fragment answer 401):

- ``GET /``: the page (rendered complete, so it reads without JavaScript). A session
  the viewer may see links to its page (``/sessions/{id}``, ``web.ui.session_page``),
  which keeps its history once it ended.
- ``GET /dashboard/state``: the same state as JSON (``DashboardState.to_json``),
  polled by ``/static/dashboard.js``, which patches the page in place.
- ``GET /dashboard/fragment``: the page's live part as HTML, which the script swaps
  in when rooms or sessions appear or go (the ``layout`` value changes).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

from aiohttp import web

from orchestrator.centres import list_centres
from orchestrator.db import DbSession
from orchestrator.people.accounts import Principal
from orchestrator.reports.network import NetworkSnapshot, network_snapshot
from orchestrator.sessions.history import KeptMedia, kept_media_of, owner_names
from orchestrator.sessions.readiness import ReadinessView, verdict
from orchestrator.sessions.reminders import reminder_ids
from web.keys import SERVICES
from web.ui.dashboard_state import DashboardState, Readiness, build_state, day_window, viewer_zone
from web.ui.i18n import Formatter
from web.ui.render import gettext, language, render
from web.ui.security import current_user, now_utc, require_user


def room_readiness(views: Mapping[str, ReadinessView]) -> dict[str, Readiness]:
    """Each room's latest readiness check as the dashboard shows it: ``ready``,
    ``degraded`` or ``failing`` (``readiness.verdict``), with the failing checks."""
    return {
        room_id: Readiness(
            value=verdict(view), detail=", ".join(view.failing) or None, checked_at=view.checked_at
        )
        for room_id, view in views.items()
    }


class _Loaded(NamedTuple):
    snapshot: NetworkSnapshot
    kept: dict[tuple[str, str], KeptMedia]
    owners: dict[str, str]
    reminders: frozenset[str]


async def dashboard_state(request: web.Request, user: Principal) -> DashboardState:
    services = request.app[SERVICES]
    now = now_utc(request)

    def load(s: DbSession) -> _Loaded:
        zone = viewer_zone(user, {c.id: c.timezone for c in list_centres(s)})
        since, until = day_window(now, zone)
        snapshot = network_snapshot(s, since, until)
        sessions = [row.id for row in snapshot.sessions]
        owners = {row.owner_id for row in snapshot.sessions if row.owner_id}
        return _Loaded(
            snapshot,
            kept_media_of(s, sessions),
            owner_names(s, owners),
            reminder_ids(s, sessions),
        )

    snapshot, kept, owners, reminders = await services.db.run(load)
    return build_state(
        snapshot,
        online=services.signalling.hub.online_rooms(),
        media=services.live.media,
        readiness=room_readiness(services.live.readiness),
        user=user,
        now=now,
        fmt=Formatter(language(request)),
        gettext=lambda message: gettext(request, message),
        kept=kept,
        owners=owners,
        reminders=reminders,
        sfu=services.live.sfu,
    )


def _logged_in_or_401(request: web.Request) -> Principal:
    user = current_user(request)
    if user is None:
        raise web.HTTPUnauthorized(
            text='{"error": {"code": "login-required", "message": "log in to see the network"}}',
            content_type="application/json",
        )
    return user


async def page(request: web.Request) -> web.Response:
    user = require_user(request)
    state = await dashboard_state(request, user)
    return render(request, "dashboard/page.html", state=state)


async def state_json(request: web.Request) -> web.Response:
    user = _logged_in_or_401(request)
    state = await dashboard_state(request, user)
    response = web.json_response(state.to_json())
    response.headers["Cache-Control"] = "no-store"
    return response


async def fragment(request: web.Request) -> web.Response:
    user = _logged_in_or_401(request)
    state = await dashboard_state(request, user)
    return render(request, "dashboard/body.html", state=state)


routes: list[web.AbstractRouteDef] = [
    web.get("/", page),
    web.get("/dashboard/state", state_json),
    web.get("/dashboard/fragment", fragment),
]
