"""The room panel: the page for the tablet or touch panel beside a room's screen.

Routes (the secret token in the URL is the credential; there is no login):

- ``GET /panel/{token}``: the full-screen page (404 ``panel-link-invalid``);
- ``GET /panel/{token}/state``: the page's state as JSON (``web.ui.panel_state``),
  polled every second;
- ``POST /panel/{token}/command``: ``{"command", "args"}`` with the ``X-CSRF-Token``
  header. ``join``/``leave`` ``{session_id}``, ``privacy``/``content-share`` ``{on}``
  go to the room agent through the signalling hub; ``extend`` ``{session_id,
  minutes?}`` goes to ``orchestrator.sessions.actions.extend``. The answer is
  ``{"ok", "command", "state", "error": null | {"code", "message"}}`` (``state``: the
  room's control state after the command; ``extend`` adds ``session``). HTTP 200
  when the room answered (``ok`` says whether it obeyed), else 400 ``bad-command``,
  ``bad-json`` or ``unknown-session``; 404 ``panel-link-invalid``; 409
  ``not-joinable``, ``conflict`` or ``ended``; 503 ``room-offline``; 504
  ``control-timeout``;
- ``POST /api/v1/rooms/{room_id}/panel-token`` (admin bearer token): a new panel
  link, ``{"room_id", "url"}`` with status 201.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web

from common.peers import room_peer_id
from orchestrator import centres
from orchestrator.db import DbSession
from orchestrator.errors import DomainError
from orchestrator.models import Room
from orchestrator.sessions import actions, panels
from signalling import protocol as p
from web.api import parse_json
from web.keys import SERVICES
from web.ui import i18n
from web.ui.i18n import Formatter
from web.ui.panel_state import (
    EXTEND_MINUTES,
    EXTENDABLE_PHASES,
    AgentState,
    ExtendBlock,
    agent_json,
    countdown,
    panel_state,
)
from web.ui.render import language, render
from web.ui.security import now_utc

AGENT_COMMANDS = frozenset(p.CONTROL_COMMANDS)
COMMANDS = AGENT_COMMANDS | {"extend"}
SESSION_COMMANDS = frozenset({"join", "leave", "extend"})
EXTEND_CHOICES = tuple(actions.EXTENSION_CHOICES)
STATUS = {
    "panel-link-invalid": 404,
    "not-joinable": 409,
    "conflict": 409,
    "ended": 409,
    p.ErrorCode.ROOM_OFFLINE: 503,
    p.ErrorCode.CONTROL_TIMEOUT: 504,
}
MAX_BODY = 4096
INVALID_LINK = "This panel link is not valid. Ask the centre's staff for a new one."

# What the page's script says, by key (English msgids; translated per request).
MESSAGES: dict[str, str] = {
    "starts_in": "Starts in {time}",
    "starting": "Starting now",
    "ends_at": "Ends at {time}",
    "time_left": "{time} left",
    "warning_first": "Ending soon: this session ends at {time}.",
    "warning_final": "Last minute: this session ends at {time}.",
    "free": "The room is free",
    "no_more": "No more bookings today or tomorrow.",
    "booked": "Booked",
    "today": "Today",
    "tomorrow": "Tomorrow",
    "next": "Next: {title} at {time}",
    "with": "With {sites}",
    "phase_scheduled": "Upcoming",
    "phase_preparing": "Starting",
    "phase_live": "In session",
    "phase_ending": "Ends in {time}",
    "join": "Join",
    "leave": "Leave",
    "joined": "This room is in the session.",
    "left": "This room left the session.",
    "privacy_on": "Privacy mute is on: the other sites neither see nor hear this room.",
    "privacy_off": "Privacy mute is off: camera and microphone are on again.",
    "share_on": "Content is being shared.",
    "share_off": "Content sharing stopped.",
    "no_content": "No content source is connected to this room.",
    "extended": "The session now ends at {time}.",
    "extend_blocked": "Cannot extend: {room} is booked from {start} to {end}.",
    "extend_blocked_unnamed": "Cannot extend: another room of this session is booked from {start} to {end}.",
    "online": "Room system online",
    "offline": "Room system offline",
    "offline_hint": "Commands cannot reach the room while its system is offline.",
    "connection_lost": "Connection to the server lost. Retrying…",
    "working": "Sending…",
    "error_room-offline": "The room's system is offline: the command could not reach it.",
    "error_control-timeout": "The room's system did not answer in time. Try again.",
    "error_not-joinable": "This session cannot be joined now.",
    "error_no-content-source": "No content source is connected to this room.",
    "error_not-in-session": "This room is not in the session.",
    "error_conflict": "The session cannot be extended: a room is booked right after it.",
    "error_ended": "This session has ended.",
    "error_unknown-session": "This session is no longer on this room's schedule.",
    "error_session-full": "The session is full.",
    "error_panel-link-invalid": INVALID_LINK,
    "error_csrf-failed": "This page has expired. Reload it and try again.",
    "error_other": "The command failed.",
}


CONTEXT = "panel"
"""The panel's messages are looked up in their own gettext context: short words such
as "Join" or "Today" may be translated differently on other pages."""


def translate(request: web.Request, message: str) -> str:
    return str(i18n.translations(language(request)).pgettext(CONTEXT, message))


def messages(request: web.Request) -> dict[str, str]:
    return {key: translate(request, text) for key, text in MESSAGES.items()}


def json_error(status: int, code: str, message: str, command: str | None = None) -> web.Response:
    body = {
        "ok": False,
        "command": command,
        "state": None,
        "error": {"code": code, "message": message},
    }
    return web.json_response(body, status=status, headers={"Cache-Control": "no-store"})


async def _room(request: web.Request) -> Room:
    token = request.match_info["token"]
    return await request.app[SERVICES].db.run(lambda s: panels.resolve_panel(s, token))


def agent_state(state: p.RoomControlState) -> AgentState:
    return AgentState(state.privacy, state.content_share, state.content_available, state.session_id)


def _agent(request: web.Request, room_id: str) -> AgentState | None:
    state = request.app[SERVICES].signalling.hub.room_state(room_id)
    return None if state is None else agent_state(state)


def extension_block(
    db: DbSession, view: panels.PanelView, room_id: str, now: datetime
) -> ExtendBlock | None:
    """What keeps the room's current session from being extended by
    ``EXTEND_MINUTES`` now: the hold that starts first (this room's first among
    equals). Another room is named only when the panel shows the session's title
    (a booking of this room's centre, ``orchestrator.sessions.panels``): otherwise even which
    rooms hold the session is not the panel's to say."""
    current = panels.current_session(view.sessions, now)
    if current is None:
        return None
    timing = panels.session_timing(
        current.start, current.end, current.lead_seconds, current.connect_mode, now
    )
    if timing.phase not in EXTENDABLE_PHASES:
        return None
    try:
        conflicts = actions.extension_conflicts(db, current.session_id, EXTEND_MINUTES, now)
    except DomainError:
        return None
    if not conflicts:
        return None
    names = {r.room_id: r.name for r in actions.held_rooms(db, current.session_id)}
    first = min(
        conflicts,
        key=lambda c: (c.busy.start, c.room_id != room_id, names.get(c.room_id, c.room_id)),
    )
    named = first.room_id == room_id or current.title is not None
    return ExtendBlock(
        names.get(first.room_id) if named else None, first.busy.start, first.busy.end
    )


async def _state(request: web.Request, room: Room) -> dict[str, Any]:
    services = request.app[SERVICES]
    now = now_utc(request)

    def read(db: DbSession) -> tuple[panels.PanelView, ExtendBlock | None]:
        view = panels.panel_view(db, room.id, now)
        return view, extension_block(db, view, room.id, now)

    view, blocked = await services.db.run(read)
    online = services.signalling.hub.connected(room_peer_id(room.id))
    return panel_state(
        view, now, _agent(request, room.id), online, Formatter(language(request)), blocked
    )


async def panel_page(request: web.Request) -> web.Response:
    try:
        room = await _room(request)
    except DomainError as exc:
        return render(
            request,
            "error.html",
            status=404,
            code=exc.code,
            message=translate(request, INVALID_LINK),
        )
    token = request.match_info["token"]
    response = render(
        request,
        "panel/panel.html",
        state=await _state(request, room),
        messages=messages(request),
        base=f"/panel/{token}",
        countdown=countdown,
    )
    # The secret is in the URL: it must not leak through a Referer or a cache.
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


async def panel_state_json(request: web.Request) -> web.Response:
    try:
        room = await _room(request)
    except DomainError as exc:
        return json_error(404, exc.code, translate(request, INVALID_LINK))
    return web.json_response(
        await _state(request, room),
        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
    )


def parse_command(body: object) -> tuple[str, dict[str, Any]]:
    """``{"command": ..., "args": {...}}``, checked; ``bad-command`` otherwise."""
    if not isinstance(body, dict):
        raise DomainError("bad-command", "the body is a JSON object with command and args")
    command, args = body.get("command"), body.get("args", {})
    if not isinstance(command, str) or command not in COMMANDS:
        raise DomainError("bad-command", f"command is one of {', '.join(sorted(COMMANDS))}")
    if not isinstance(args, dict):
        raise DomainError("bad-command", "args is a JSON object")
    if command in SESSION_COMMANDS:
        session_id = args.get("session_id")
        if not isinstance(session_id, str) or not session_id:
            raise DomainError("bad-command", f"{command}: args.session_id is a session id")
    if command in AGENT_COMMANDS:
        try:
            p.check_control(command, args)
        except p.ProtocolError as exc:
            raise DomainError("bad-command", exc.message) from None
        return command, {name: args[name] for name in p.CONTROL_COMMANDS[command]}
    minutes = args.get("minutes", EXTEND_MINUTES)
    if isinstance(minutes, bool) or minutes not in EXTEND_CHOICES:
        choices = ", ".join(str(m) for m in EXTEND_CHOICES)
        raise DomainError("bad-command", f"extend: args.minutes is one of {choices}")
    return command, {"session_id": args["session_id"], "minutes": minutes}


async def _extend(request: web.Request, room: Room, args: dict[str, Any]) -> web.Response:
    services = request.app[SERVICES]
    now = now_utc(request)

    def extend(db: DbSession) -> tuple[datetime, str]:
        panels.room_session(db, room.id, args["session_id"], now)
        session = actions.extend(
            db, args["session_id"], args["minutes"], now, services.booking_settings
        )
        return session.end_utc, centres.room_zone(db, room.id)

    end, zone = await services.db.run(extend)
    body = {
        "ok": True,
        "command": "extend",
        "state": agent_json(_agent(request, room.id)),
        "error": None,
        "session": {
            "id": args["session_id"],
            "end": end.isoformat(),
            "end_local": Formatter(language(request)).time(end, zone),
        },
    }
    return web.json_response(body, headers={"Cache-Control": "no-store"})


async def panel_command(request: web.Request) -> web.Response:
    command: str | None = None
    try:
        room = await _room(request)
        if request.content_length is not None and request.content_length > MAX_BODY:
            raise DomainError("bad-command", f"a command is at most {MAX_BODY} bytes")
        try:
            text = await request.text()
        except UnicodeDecodeError:
            raise DomainError("bad-json", "the body is not UTF-8") from None
        body = parse_json(text)
        command, args = parse_command(body)
        if command == "extend":
            return await _extend(request, room, args)
        if command in SESSION_COMMANDS:
            now = now_utc(request)
            _, timing = await request.app[SERVICES].db.run(
                lambda s: panels.room_session(s, room.id, args["session_id"], now)
            )
            if command == "join" and not timing.joinable:
                raise DomainError("not-joinable", "this session cannot be joined now")
        hub = request.app[SERVICES].signalling.hub
        try:
            result = await hub.control(room.id, command, args)
        except p.ProtocolError as exc:
            code = "bad-command" if exc.code == p.ErrorCode.BAD_MESSAGE else exc.code
            raise DomainError(code, exc.message) from None
    except DomainError as exc:
        message = (
            translate(request, INVALID_LINK) if exc.code == "panel-link-invalid" else exc.message
        )
        return json_error(STATUS.get(exc.code, 400), exc.code, message, command)
    body = {
        "ok": result.ok,
        "command": command,
        "state": agent_json(agent_state(result.state)),
        "error": None
        if result.ok
        else {"code": result.error_code or "refused", "message": result.message or ""},
    }
    return web.json_response(body, headers={"Cache-Control": "no-store"})


async def create_panel_link(request: web.Request) -> web.Response:
    """A new panel link for the room (the admin API; earlier links keep working)."""
    room_id = request.match_info["room_id"]
    services = request.app[SERVICES]
    token = await services.db.run(lambda s: panels.create_panel_token(s, room_id))
    base = (services.settings.public_url or str(request.url.origin())).rstrip("/")
    return web.json_response({"room_id": room_id, "url": f"{base}/panel/{token}"}, status=201)


routes: list[web.AbstractRouteDef] = [
    web.get("/panel/{token}", panel_page),
    web.get("/panel/{token}/state", panel_state_json),
    web.post("/panel/{token}/command", panel_command),
    web.post("/api/v1/rooms/{room_id}/panel-token", create_panel_link),
]
