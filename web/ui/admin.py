"""Staff-only administration pages.

- ``GET /admin``: administrators go to the list of centres, staff to their centre.
- ``GET /admin/centres`` (administrators): every centre; ``POST`` adds one.
- ``GET /admin/centres/{centre_id}`` (staff of that centre, administrators): its
  rooms with their online state and booking policy, a form per room to change it,
  key rotation and panel links (each secret shown once), and a form to add a room.
  - ``POST .../rooms``: add a room (its key is shown once).
  - ``POST .../rooms/{room_id}``: the room's policy (approval, buffer, maximum
    duration, how far ahead, aliases, relay only, small uplink).
  - ``POST .../rooms/{room_id}/key``: a new key; the old one stops working.
  - ``POST .../rooms/{room_id}/panel-link``: a new panel URL (shown once).
  - ``POST .../rooms/{room_id}/panel-links/revoke``: every panel URL stops working.
- ``GET/POST /admin/users`` (administrators): people, adding one with a role and
  centre (a password is generated and shown once unless one is given);
  ``POST /admin/users/{user_id}/disable`` and ``.../enable``.

Who may: ``orchestrator.people.access.can_manage_centre``; anyone else gets 403 (the error
page with the code ``forbidden``). The rules live in the orchestrator; this module
reads forms and shows results.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from orchestrator import centres as centre_commands
from orchestrator.db import DbSession
from orchestrator.errors import DomainError
from orchestrator.models import Centre, Room, User
from orchestrator.people import access, accounts
from orchestrator.people.accounts import Principal
from orchestrator.sessions import panels
from web.keys import SERVICES
from web.ui.accounts import time_zones
from web.ui.forms import FieldErrors, ngettext, number, posted
from web.ui.render import gettext, render
from web.ui.security import now_utc, require_user

ROLE_CHOICES = ("organiser", "staff", "admin")


@dataclass(frozen=True, slots=True)
class RoomRow:
    """A room as the centre page shows it."""

    id: str
    name: str
    online: bool
    requires_approval: bool
    buffer_minutes: int
    max_duration_minutes: int | None
    max_advance_days: int
    aliases: tuple[str, ...]
    key_generation: int
    relay_only: bool = False  # ICE policy "relay"
    small_uplink: bool = False  # its sessions run on the SFU

    def form_values(self) -> dict[str, str]:
        return {
            "requires_approval": "1" if self.requires_approval else "",
            "relay_only": "1" if self.relay_only else "",
            "small_uplink": "1" if self.small_uplink else "",
            "buffer": str(self.buffer_minutes),
            "max_duration": ""
            if self.max_duration_minutes is None
            else str(self.max_duration_minutes),
            "max_advance": str(self.max_advance_days),
            "aliases": ", ".join(self.aliases),
        }


def room_row(room: Room, online: frozenset[str] | set[str]) -> RoomRow:
    return RoomRow(
        id=room.id,
        name=room.name,
        online=room.id in online,
        requires_approval=room.requires_approval,
        buffer_minutes=room.buffer_seconds // 60,
        max_duration_minutes=None
        if room.max_duration_seconds is None
        else room.max_duration_seconds // 60,
        max_advance_days=room.max_advance_days,
        aliases=tuple(json.loads(room.aliases)),
        key_generation=room.key_generation,
        relay_only=room.ice_policy == "relay",
        small_uplink=room.small_uplink,
    )


def parse_aliases(text: str) -> list[str]:
    """Aliases are typed comma-separated; blanks and repeats are dropped."""
    seen: list[str] = []
    for alias in (a.strip() for a in text.split(",")):
        if alias and alias not in seen:
            seen.append(alias)
    return seen


def _may_manage(request: web.Request, centre_id: str) -> Principal:
    user = require_user(request)
    if not access.can_manage_centre(user, centre_id):
        raise web.HTTPForbidden()
    return user


def _room_of(s: DbSession, centre_id: str, room_id: str) -> Room:
    room = s.get(Room, room_id)
    if room is None or room.centre_id != centre_id:
        raise DomainError("not-found", f"no room {room_id!r} in this centre")
    return room


# --- the index ----------------------------------------------------------------------------


async def index(request: web.Request) -> web.StreamResponse:
    user = require_user(request)
    if user.is_admin:
        raise web.HTTPSeeOther("/admin/centres")
    if user.role == "staff" and user.centre_id is not None:
        raise web.HTTPSeeOther(f"/admin/centres/{user.centre_id}")
    raise web.HTTPForbidden()


async def centres_page(request: web.Request) -> web.StreamResponse:
    user = require_user(request, "admin")
    return await _centres_page(request, user)


async def _centres_page(
    request: web.Request,
    user: Principal,
    *,
    status: int = 200,
    values: Mapping[str, str] | None = None,
    errors: FieldErrors | None = None,
    added: str | None = None,
) -> web.Response:
    def load(s: DbSession) -> list[tuple[Centre, int]]:
        rooms = centre_commands.list_rooms(s)
        return [
            (c, sum(r.centre_id == c.id for r in rooms)) for c in centre_commands.list_centres(s)
        ]

    centres = await request.app[SERVICES].db.run(load)
    return render(
        request,
        "admin/centres.html",
        status=status,
        centres=centres,
        zones=time_zones(),
        values=values or {"name": "", "timezone": "Europe/Paris"},
        errors=errors or FieldErrors(),
        added=added,
        now=now_utc(request),
    )


async def add_centre(request: web.Request) -> web.StreamResponse:
    user = require_user(request, "admin")
    values = await posted(request)
    errors = FieldErrors()
    name, zone = values.get("name", ""), values.get("timezone", "")
    if zone not in time_zones():
        errors.add(request, "timezone", "unknown-timezone")
    if not errors:
        try:
            centre = await request.app[SERVICES].db.run(
                lambda s: centre_commands.add_centre(s, name, zone)
            )
        except DomainError as exc:
            if exc.code == "duplicate":
                errors.add(request, "name", "duplicate-centre")
            else:
                errors.add_domain(request, exc, {"invalid-name": "name"})
        else:
            raise web.HTTPSeeOther(f"/admin/centres/{centre.id}")
    return await _centres_page(request, user, status=400, values=values, errors=errors)


# --- a centre's page ----------------------------------------------------------------------


@dataclass(slots=True)
class CentreView:
    """What the centre page shows besides the rooms: a secret to show once, the
    form being corrected and its errors."""

    secret: dict[str, str] | None = None
    notice: str | None = None
    editing: str | None = None
    edit_values: Mapping[str, str] | None = None
    edit_errors: FieldErrors | None = None
    new_room: Mapping[str, str] | None = None
    new_room_errors: FieldErrors | None = None


async def centre_page(request: web.Request) -> web.StreamResponse:
    centre_id = request.match_info["centre_id"]
    _may_manage(request, centre_id)
    view = CentreView()
    saved = request.query.get("saved")
    if saved:
        view.notice = gettext(request, "The room's settings are saved.")
        view.editing = saved
    revoked = request.query.get("revoked")
    if revoked and revoked.isdigit():
        view.notice = ngettext(
            request,
            "%(count)d panel link of the room stopped working.",
            "%(count)d panel links of the room stopped working.",
            int(revoked),
        )
    return await _centre_page(request, centre_id, view)


async def _centre_page(
    request: web.Request, centre_id: str, view: CentreView, *, status: int = 200
) -> web.Response:
    services = request.app[SERVICES]

    def load(s: DbSession) -> tuple[Centre, list[Room]]:
        centre = s.get(Centre, centre_id)
        if centre is None:
            raise DomainError("not-found", f"no centre {centre_id!r}")
        return centre, centre_commands.list_rooms(s, centre_id)

    centre, rooms = await services.db.run(load)
    online = services.signalling.hub.online_rooms()
    rows = [room_row(r, online) for r in rooms]
    return render(
        request,
        "admin/centre.html",
        status=status,
        centre=centre,
        rooms=rows,
        view=view,
        now=now_utc(request),
    )


async def add_room(request: web.Request) -> web.StreamResponse:
    centre_id = request.match_info["centre_id"]
    _may_manage(request, centre_id)
    values = await posted(request)
    name = values.get("name", "")
    errors = FieldErrors()
    try:
        room, key = await request.app[SERVICES].db.run(
            lambda s: centre_commands.add_room(s, centre_id, name)
        )
    except DomainError as exc:
        if exc.code == "duplicate":
            errors.add(request, "name", "duplicate-room")
        else:
            errors.add_domain(request, exc, {"invalid-name": "name"})
        view = CentreView(new_room=values, new_room_errors=errors)
        return await _centre_page(request, centre_id, view, status=400)
    view = CentreView(
        secret={"kind": "room-key", "room": room.name, "room_id": room.id, "value": key}
    )
    return await _centre_page(request, centre_id, view, status=201)


def _apply_policy(
    s: DbSession, centre_id: str, room_id: str, parsed: Mapping[str, Any], refused: dict[str, str]
) -> None:
    """One setting at a time, so each refusal lands beside its own field (``refused``:
    field -> code); any refusal undoes the lot (the transaction rolls back)."""
    room = _room_of(s, centre_id, room_id)
    steps: list[tuple[str, str, dict[str, Any]]] = [
        ("buffer", "invalid-buffer", {"buffer_seconds": parsed["buffer"]}),
        ("max_advance", "invalid-max-advance", {"max_advance_days": parsed["max_advance"]}),
        ("max_duration", "invalid-max-duration", {"max_duration_seconds": parsed["max_duration"]}),
    ]
    for field, code, change in steps:
        if field in refused or next(iter(change.values())) is None:
            continue
        try:
            centre_commands.set_room_policy(s, room_id, **change)
        except DomainError:
            refused[field] = code
    try:
        centre_commands.set_room_policy(s, room_id, aliases=parsed["aliases"])
    except DomainError as exc:
        refused["aliases"] = exc.code
    centre_commands.set_room_policy(
        s,
        room_id,
        ice_policy="relay" if parsed["relay_only"] else "all",
        small_uplink=parsed["small_uplink"],
    )
    if parsed["max_duration"] is None and "max_duration" not in refused:
        room.max_duration_seconds = None  # an empty field: no limit
    room.requires_approval = parsed["requires_approval"]
    s.add(room)
    if refused:
        raise DomainError("invalid-policy", "the room's settings were not saved")


async def set_policy(request: web.Request) -> web.StreamResponse:
    centre_id, room_id = request.match_info["centre_id"], request.match_info["room_id"]
    _may_manage(request, centre_id)
    values = await posted(request)
    errors = FieldErrors()
    buffer = number(request, errors, values, "buffer")
    max_duration = number(request, errors, values, "max_duration", optional=True)
    max_advance = number(request, errors, values, "max_advance")
    parsed = {
        "requires_approval": values.get("requires_approval") == "1",
        "relay_only": values.get("relay_only") == "1",
        "small_uplink": values.get("small_uplink") == "1",
        "buffer": None if buffer is None else buffer * 60,
        "max_duration": None if max_duration is None else max_duration * 60,
        "max_advance": max_advance,
        "aliases": parse_aliases(values.get("aliases", "")),
    }
    refused = dict.fromkeys(errors, "invalid-number")
    if not errors:
        try:
            await request.app[SERVICES].db.run(
                lambda s: _apply_policy(s, centre_id, room_id, parsed, refused)
            )
        except DomainError as exc:
            if exc.code != "invalid-policy":
                raise
    for field, code in refused.items():
        errors.add(request, field, code)
    if errors:
        view = CentreView(editing=room_id, edit_values=values, edit_errors=errors)
        return await _centre_page(request, centre_id, view, status=400)
    raise web.HTTPSeeOther(f"/admin/centres/{centre_id}?saved={room_id}#room-{room_id}")


async def rotate_key(request: web.Request) -> web.StreamResponse:
    centre_id, room_id = request.match_info["centre_id"], request.match_info["room_id"]
    _may_manage(request, centre_id)

    def rotate(s: DbSession) -> tuple[str, str]:
        room = _room_of(s, centre_id, room_id)
        return room.name, centre_commands.rotate_room_key(s, room_id)

    name, key = await request.app[SERVICES].db.run(rotate)
    view = CentreView(secret={"kind": "room-key", "room": name, "room_id": room_id, "value": key})
    return await _centre_page(request, centre_id, view)


async def panel_link(request: web.Request) -> web.StreamResponse:
    centre_id, room_id = request.match_info["centre_id"], request.match_info["room_id"]
    _may_manage(request, centre_id)
    services = request.app[SERVICES]

    def create(s: DbSession) -> tuple[str, str]:
        room = _room_of(s, centre_id, room_id)
        return room.name, panels.create_panel_token(s, room_id)

    name, token = await services.db.run(create)
    base = (services.settings.public_url or str(request.url.origin())).rstrip("/")
    view = CentreView(
        secret={
            "kind": "panel-link",
            "room": name,
            "room_id": room_id,
            "value": f"{base}/panel/{token}",
        }
    )
    return await _centre_page(request, centre_id, view)


async def revoke_panel_links(request: web.Request) -> web.StreamResponse:
    centre_id, room_id = request.match_info["centre_id"], request.match_info["room_id"]
    _may_manage(request, centre_id)

    def revoke(s: DbSession) -> int:
        _room_of(s, centre_id, room_id)
        return panels.revoke_panel_tokens(s, room_id)

    count = await request.app[SERVICES].db.run(revoke)
    raise web.HTTPSeeOther(f"/admin/centres/{centre_id}?revoked={count}#room-{room_id}")


# --- people -------------------------------------------------------------------------------


async def users_page(request: web.Request) -> web.StreamResponse:
    me = require_user(request, "admin")
    return await _users_page(request, me)


async def _users_page(
    request: web.Request,
    me: Principal,
    *,
    status: int = 200,
    values: Mapping[str, str] | None = None,
    errors: FieldErrors | None = None,
    added: dict[str, str] | None = None,
) -> web.Response:
    def load(s: DbSession) -> tuple[list[User], list[Centre]]:
        return accounts.list_users(s), centre_commands.list_centres(s)

    users, centres = await request.app[SERVICES].db.run(load)
    done = request.query.get("done")
    return render(
        request,
        "admin/users.html",
        status=status,
        me=me,
        people=users,
        centres=centres,
        centre_names={c.id: c.name for c in centres},
        roles=ROLE_CHOICES,
        values=values or {"email": "", "name": "", "role": "organiser", "centre_id": ""},
        errors=errors or FieldErrors(),
        added=added,
        done=done if done in ("disabled", "enabled") else None,
    )


async def add_user(request: web.Request) -> web.StreamResponse:
    me = require_user(request, "admin")
    values = await posted(request)
    errors = FieldErrors()
    email, name = values.get("email", ""), values.get("name", "")
    role, centre_id = values.get("role", ""), values.get("centre_id", "") or None
    password = values.get("password", "")
    generated = not password
    if generated:
        password = secrets.token_urlsafe(12)
    if role not in ROLE_CHOICES:
        errors.add(request, "role", "invalid-role")
    if not errors:
        try:
            user = await request.app[SERVICES].db.run(
                lambda s: accounts.create_user(s, email, name, password, role, centre_id)
            )
        except DomainError as exc:
            if exc.code == "duplicate":
                errors.add(request, "email", "duplicate-email")
            else:
                errors.add_domain(
                    request,
                    exc,
                    {
                        "invalid-email": "email",
                        "invalid-name": "name",
                        "weak-password": "password",
                        "invalid-role": "role",
                        "needs-centre": "centre_id",
                        "unknown-centre": "centre_id",
                    },
                )
        else:
            added = {"name": user.name, "email": user.email}
            if generated:
                added["password"] = password
            return await _users_page(request, me, status=201, added=added)
    shown = {k: v for k, v in values.items() if k != "password"}
    return await _users_page(request, me, status=400, values=shown, errors=errors)


async def _set_disabled(request: web.Request, disabled: bool) -> web.StreamResponse:
    me = require_user(request, "admin")
    user_id = request.match_info["user_id"]
    if disabled and user_id == me.id:
        errors = FieldErrors()
        errors.add(request, "_table", "disable-self")
        return await _users_page(request, me, status=400, errors=errors)
    await request.app[SERVICES].db.run(lambda s: accounts.set_disabled(s, user_id, disabled))
    raise web.HTTPSeeOther(f"/admin/users?done={'disabled' if disabled else 'enabled'}")


async def disable_user(request: web.Request) -> web.StreamResponse:
    return await _set_disabled(request, True)


async def enable_user(request: web.Request) -> web.StreamResponse:
    return await _set_disabled(request, False)


routes: list[web.AbstractRouteDef] = [
    web.get("/admin", index, name="admin"),
    web.get("/admin/centres", centres_page, name="admin-centres"),
    web.post("/admin/centres", add_centre),
    web.get("/admin/centres/{centre_id}", centre_page, name="admin-centre"),
    web.post("/admin/centres/{centre_id}/rooms", add_room),
    web.post("/admin/centres/{centre_id}/rooms/{room_id}", set_policy),
    web.post("/admin/centres/{centre_id}/rooms/{room_id}/key", rotate_key),
    web.post("/admin/centres/{centre_id}/rooms/{room_id}/panel-link", panel_link),
    web.post("/admin/centres/{centre_id}/rooms/{room_id}/panel-links/revoke", revoke_panel_links),
    web.get("/admin/users", users_page, name="admin-users"),
    web.post("/admin/users", add_user),
    web.post("/admin/users/{user_id}/disable", disable_user),
    web.post("/admin/users/{user_id}/enable", enable_user),
]
