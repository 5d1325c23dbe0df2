"""Server-rendered pages (jinja2). The dashboard shows the network at a glance."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import jinja2
from aiohttp import web

from orchestrator import service
from orchestrator.db import DbSession
from orchestrator.service import SessionDetail
from web.app import SERVICES

TEMPLATES = web.AppKey("templates", jinja2.Environment)


@dataclass(frozen=True, slots=True)
class RoomRow:
    id: str
    name: str
    centre: str
    timezone: str
    online: bool


def _local(value: datetime | None, tz: str) -> str:
    if value is None:
        return "–"
    return value.astimezone(ZoneInfo(tz)).strftime("%H:%M:%S")


def _offset(value: datetime | None, start: datetime) -> str:
    """A time relative to the booked start, which is what staff compare against."""
    if value is None:
        return ""
    seconds = (value - start).total_seconds()
    return f"T{seconds:+.2f} s"


async def dashboard(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    now = datetime.fromtimestamp(services.clock.now(), UTC)
    day_start = now.replace(hour=0, minute=0, second=0, microsecond=0)

    def load(s: DbSession) -> tuple[list[RoomRow], list[SessionDetail], dict[str, str]]:
        centres = {c.id: c for c in service.list_centres(s)}
        rooms = [
            RoomRow(r.id, r.name, centres[r.centre_id].name, centres[r.centre_id].timezone, False)
            for r in service.list_rooms(s)
        ]
        sessions = service.list_sessions(s, day_start, day_start + timedelta(days=2))
        zones = {c.id: c.timezone for c in centres.values()}
        return rooms, [service.session_detail(s, x.id) for x in sessions], zones

    rooms, sessions, zones = await services.db.run(load)
    online = services.signalling.hub.online_rooms()
    rooms = [RoomRow(r.id, r.name, r.centre, r.timezone, r.id in online) for r in rooms]
    template = request.app[TEMPLATES].get_template(
        "dashboard_body.html" if request.query.get("fragment") else "dashboard.html"
    )
    html = template.render(
        now=now,
        rooms=rooms,
        sessions=sessions,
        zones=zones,
        live=services.live.media,
        local=_local,
        offset=_offset,
    )
    return web.Response(text=html, content_type="text/html")


def setup(app: web.Application) -> None:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,
    )
    app[TEMPLATES] = env
    app.router.add_get("/", dashboard)
