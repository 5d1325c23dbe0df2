"""The JSON API under /api/v1, protected by an admin bearer token.

Every error is ``{"error": {"code": ..., "message": ...}}`` with a stable code;
domain rules stay in the orchestrator, this module only translates.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from aiohttp import web
from sqlmodel import select

from orchestrator import centres, inputs, reported
from orchestrator.booking import one_off
from orchestrator.booking.policy import AUTOMATIC
from orchestrator.booking.recurrence import RecurrenceError
from orchestrator.calendars.ical_in.parse import MAX_BYTES, CalendarError
from orchestrator.clock import instant
from orchestrator.db import DbSession
from orchestrator.desk import door
from orchestrator.errors import DomainError
from orchestrator.models import Booking, CalDavLink, Feed, Room
from orchestrator.people import api_tokens
from orchestrator.sessions import detail as session_reads
from orchestrator.sessions import readiness
from orchestrator.sessions.detail import SessionDetail
from web.api_json import (
    booking_json,
    centre_json,
    iso,
    readiness_json,
    room_json,
    session_detail_json,
    session_json,
)
from web.import_titles import request_language, untitled
from web.keys import SERVICES
from web.openapi import OPENAPI_PATH, openapi_document

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
API = "/api/v1"
NOT_FOUND_CODES = frozenset({"not-found", "unknown-room"})
CONFLICT_CODES = frozenset({"duplicate", "conflict"})
MAX_BODY = 64 * 1024
MAX_JSON_DEPTH = 32
"""Our bodies nest three levels; Python's parser gives up near a thousand."""
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
"""NUL (PostgreSQL text cannot hold it) and unpaired surrogates (not Unicode text)."""
MAX_JSON_INT = 2**53 - 1
"""Integers beyond this are not exchanged reliably in JSON (RFC 7493 §2.2); they would
also overflow the database's 64-bit integers and Python's timedelta."""
MAX_FEED_INTERVAL = 7 * 86400
"""The longest occurrence limit a room policy may set (a timedelta must hold it)."""


def error_response(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Translate errors at the boundary: domain errors keep their code, anything
    unexpected becomes ``internal`` without leaking details (or secrets) to the client."""
    try:
        return await handler(request)
    except CalendarError as exc:
        return error_response(413 if exc.code == "too-large" else 400, exc.code, exc.message)
    except RecurrenceError as exc:
        # The booking commands translate these; a path that missed one still answers
        # its code rather than a 500.
        return error_response(400, exc.code, exc.message)
    except DomainError as exc:
        status = 404 if exc.code in NOT_FOUND_CODES else 409 if exc.code in CONFLICT_CODES else 400
        response = error_response(status, exc.code, exc.message)
        conflicts = getattr(exc, "conflicts", None)
        if conflicts:
            # Which room, which booking: the organiser needs both to choose another slot.
            return web.json_response(
                {
                    "error": {
                        "code": exc.code,
                        "message": exc.message,
                        "conflicts": [
                            {
                                "room_id": c.room_id,
                                "booking_id": c.booking_id,
                                "session_id": c.session_id,
                                "start": c.occurrence.start.isoformat(),
                                "end": c.occurrence.end.isoformat(),
                            }
                            for c in conflicts
                        ],
                    }
                },
                status=status,
            )
        return response
    except web.HTTPException:
        raise
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "internal", "internal error")


async def _authorised(request: web.Request) -> bool:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return False
    services = request.app[SERVICES]
    return await services.db.run(lambda s: api_tokens.check_api_token(s, token.strip()))


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    # The OpenAPI document is public: it describes the API's shape, holds no data.
    path = request.path
    if not path.startswith(API + "/"):
        return await handler(request)
    if path != OPENAPI_PATH and not await _authorised(request):
        return error_response(401, "unauthorised", "an admin bearer token is required")
    if not path_ids_readable(request):
        return error_response(404, "not-found", "no such resource")
    if any("\x00" in value for value in request.query.values()):
        return error_response(400, "bad-request", "a query parameter holds NUL")
    return await handler(request)


def path_ids_readable(request: web.Request) -> bool:
    """An id in the path with a control character or an unpaired surrogate names
    nothing, and must not reach the database (PostgreSQL refuses NUL in text)."""
    return all(inputs.text_problem(value) is None for value in request.match_info.values())


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e400 reads as infinity
        raise ValueError(text)
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(name)  # NaN, Infinity: not JSON (RFC 8259 §6)


def _check_json_value(value: Any) -> None:
    """Walk the decoded body without recursion: at most ``MAX_JSON_DEPTH`` levels, and
    in no string or key an unpaired surrogate (I-JSON, RFC 7493 §2.1: it is not
    Unicode text, and the database or the page could not encode it) or NUL (no field
    takes it, and PostgreSQL refuses it even in a query for an id)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if _UNSTORABLE.search(item):
                raise DomainError("bad-json", "a string holds NUL or an unpaired surrogate")
        elif isinstance(item, dict | list):
            if depth > MAX_JSON_DEPTH:
                raise DomainError("bad-json", f"JSON nests at most {MAX_JSON_DEPTH} levels")
            children = [*item.keys(), *item.values()] if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)


def parse_json(text: str) -> Any:
    """A JSON document as the API reads it, or ``DomainError("bad-json")``: not JSON,
    nested too deep (Python's parser recurses: RecursionError), a number too long to
    read (over 4300 digits) or out of float range, NaN or Infinity, an unpaired
    surrogate or NUL in a string."""
    try:
        data = json.loads(text, parse_float=_finite, parse_constant=_no_constant)
    except (ValueError, RecursionError):
        raise DomainError("bad-json", "the body is not valid JSON") from None
    _check_json_value(data)
    return data


async def _body(request: web.Request) -> dict[str, Any]:
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise DomainError("too-large", "request bodies are limited to 64 KiB")
    try:
        text = await request.text()
    except UnicodeDecodeError:
        raise DomainError("bad-json", "the body is not UTF-8") from None
    data = parse_json(text)
    if not isinstance(data, dict):
        raise DomainError("bad-request", "the body is a JSON object")
    return data


def _field(data: dict[str, Any], name: str, kind: type, default: Any = ...) -> Any:
    value = data.get(name)
    if value is None:  # absent or null: the default, when the field has one
        if default is ...:
            raise DomainError("bad-request", f"missing field {name!r}")
        return default
    # JSON true is not a number, though Python's bool is an int.
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise DomainError("bad-request", f"field {name!r} has the wrong type")
    if isinstance(value, int) and not -MAX_JSON_INT <= value <= MAX_JSON_INT:
        raise DomainError("bad-request", f"field {name!r} is out of range")
    return value


def parse_instant(text: str) -> datetime:
    """An ISO 8601 instant with its offset (``inputs.parse_instant``: ``invalid-time``
    for a bare local time or one outside the range every computation holds)."""
    return inputs.parse_instant(text)


async def list_centres(request: web.Request) -> web.Response:
    rows = await request.app[SERVICES].db.run(centres.list_centres)
    return web.json_response({"centres": [centre_json(c) for c in rows]})


async def add_centre(request: web.Request) -> web.Response:
    data = await _body(request)
    name, tz = _field(data, "name", str), _field(data, "timezone", str)
    centre = await request.app[SERVICES].db.run(lambda s: centres.add_centre(s, name, tz))
    return web.json_response(centre_json(centre), status=201)


async def list_rooms(request: web.Request) -> web.Response:
    services = request.app[SERVICES]

    def load(s: DbSession) -> tuple[list[Room], dict[str, readiness.ReadinessView]]:
        return centres.list_rooms(s), readiness.latest_by_room(s)

    rows, ready = await services.db.run(load)
    online = services.signalling.hub.online_rooms()
    return web.json_response(
        {"rooms": [room_json(r, r.id in online, ready.get(r.id)) for r in rows]}
    )


async def room_health(request: web.Request) -> web.Response:
    """The room's latest readiness check and, from its agent's latest stats report,
    its media figures and its process's CPU and memory."""
    services = request.app[SERVICES]
    room_id = request.match_info["room_id"]

    def load(s: DbSession) -> readiness.ReadinessView | None:
        centres.get_room(s, room_id)
        return readiness.latest_by_room(s, [room_id]).get(room_id)

    ready = await services.db.run(load)
    report = services.live.rooms.get(room_id)
    media = None
    if report is not None:
        media = {
            "session_id": report.session_id,
            "at": _report_time(report.at),
            "process": report.process_json(),
            "peers": report.peers_json(),
        }
    return web.json_response(
        {
            "room_id": room_id,
            "online": room_id in services.signalling.hub.online_rooms(),
            "readiness": readiness_json(ready),
            "media": media,
        }
    )


def _report_time(at: object) -> str | None:
    """An agent's report time as ISO 8601; None when it is no instant the protocol
    allows (``reported.instant``: a huge number overflowed ``fromtimestamp``)."""
    if not isinstance(at, int | float):
        return None
    try:
        return reported.instant(at).isoformat()
    except DomainError:
        return None


async def add_room(request: web.Request) -> web.Response:
    data = await _body(request)
    centre_id, name = _field(data, "centre_id", str), _field(data, "name", str)
    room, key = await request.app[SERVICES].db.run(lambda s: centres.add_room(s, centre_id, name))
    return web.json_response({**room_json(room, False), "key": key}, status=201)


async def set_room(request: web.Request) -> web.Response:
    data = await _body(request)
    room_id = request.match_info["room_id"]
    aliases = _field(data, "aliases", list, None)
    if aliases is not None and not all(isinstance(a, str) for a in aliases):
        raise DomainError("bad-request", "aliases is a list of names")
    max_duration = _field(data, "max_duration_seconds", int, None)
    room = await request.app[SERVICES].db.run(
        lambda s: centres.set_room_policy(
            s,
            room_id,
            buffer_seconds=_field(data, "buffer_seconds", int, None),
            max_duration_seconds=max_duration,
            max_advance_days=_field(data, "max_advance_days", int, None),
            aliases=aliases,
            ice_policy=_field(data, "ice_policy", str, None),
            small_uplink=_field(data, "small_uplink", bool, None),
        )
    )
    online = room.id in request.app[SERVICES].signalling.hub.online_rooms()
    ready = await request.app[SERVICES].db.run(
        lambda s: readiness.latest_by_room(s, [room.id]).get(room.id)
    )
    return web.json_response(room_json(room, online, ready))


async def rotate_key(request: web.Request) -> web.Response:
    room_id = request.match_info["room_id"]
    key = await request.app[SERVICES].db.run(lambda s: centres.rotate_room_key(s, room_id))
    return web.json_response({"room_id": room_id, "key": key})


async def list_bookings(request: web.Request) -> web.Response:
    rows = await request.app[SERVICES].db.run(lambda s: one_off.list_bookings(s))
    return web.json_response({"bookings": [booking_json(b) for b in rows]})


async def add_booking(request: web.Request) -> web.Response:
    """A booking, one-off or recurring (``rrule``: RFC 5545 RRULE values, expanded in
    ``timezone``, by default the first room's), with ``on_conflict`` "reject" (the
    whole series fails) or "skip" (conflicting dates are left out and listed)."""
    data = await _body(request)
    title = _field(data, "title", str)
    start = parse_instant(_field(data, "start", str))
    end = parse_instant(_field(data, "end", str))
    room_ids = _field(data, "room_ids", list)
    if not all(isinstance(r, str) for r in room_ids):
        raise DomainError("bad-request", "room_ids is a list of room ids")
    lead = _field(data, "lead_seconds", int, 60)
    rrule = _field(data, "rrule", str, None)
    on_conflict = _field(data, "on_conflict", str, "reject")
    connect_mode = _field(data, "connect_mode", str, AUTOMATIC)
    zone = _field(data, "timezone", str, None)
    if on_conflict not in ("reject", "skip"):
        raise DomainError("bad-request", "on_conflict is reject or skip")
    services = request.app[SERVICES]
    now = instant(services.clock)

    def book(s: DbSession) -> tuple[Booking, list[str], list[str]]:
        wanted = door.at_instants(
            title,
            room_ids,
            start,
            end,
            door.zone_for(s, room_ids, zone),
            rrule=rrule,
            connect_mode=connect_mode,
            lead_seconds=lead,
            on_conflict=on_conflict,
        )
        result = door.book(s, wanted, None, now=now, settings=services.booking_settings)
        booking = s.get(Booking, result.booking_id)
        assert booking is not None
        return booking, list(result.session_ids), [str(c) for c in result.conflicts]

    booking, session_ids, skipped = await services.db.run(book)
    return web.json_response(
        {
            "booking": booking_json(booking),
            "session_id": session_ids[0] if session_ids else None,
            "session_ids": session_ids,
            "skipped": skipped,
        },
        status=201,
    )


async def list_sessions(request: web.Request) -> web.Response:
    since = parse_instant(request.query["from"]) if "from" in request.query else None
    until = parse_instant(request.query["to"]) if "to" in request.query else None
    rows = await request.app[SERVICES].db.run(
        lambda s: session_reads.list_sessions(s, since, until)
    )
    return web.json_response({"sessions": [session_json(x) for x in rows]})


async def get_session(request: web.Request) -> web.Response:
    session_id = request.match_info["session_id"]

    def load(s: DbSession) -> tuple[SessionDetail, dict[str, readiness.ReadinessView]]:
        return session_reads.session_detail(s, session_id), readiness.for_session(s, session_id)

    detail, ready = await request.app[SERVICES].db.run(load)
    return web.json_response(session_detail_json(detail, ready))


async def import_calendar(request: web.Request) -> web.Response:
    """Import an iCalendar file for the rooms given (``room_id``, repeatable) or, when
    none is given, for the rooms its events name. An event that names nothing is
    titled "Busy" in the language of the request's Accept-Language."""
    rooms = tuple(request.query.getall("room_id", []))
    if request.content_length is not None and request.content_length > MAX_BYTES:
        raise CalendarError("too-large", f"calendars are limited to {MAX_BYTES} bytes")
    body = await request.read()
    name = inputs.check_text(
        request.query.get("name", "api"), code="bad-request", what="a name", max_length=200
    )
    lang = request_language(request.headers.get("Accept-Language", ""))
    report = await request.app[SERVICES].calendars.import_file(body, rooms, name, untitled(lang))
    return web.json_response(report.as_dict())


def feed_json(f: Feed) -> dict[str, Any]:
    return {
        "id": f.id,
        "url": f.url,
        "room_id": f.room_id,
        "interval_seconds": f.interval_seconds,
        "last_polled_at": iso(f.last_polled_at),
        "last_status": json.loads(f.last_status) if f.last_status else None,
    }


async def add_feed(request: web.Request) -> web.Response:
    data = await _body(request)
    url = _field(data, "url", str)
    if url.startswith("webcal://"):
        url = "https://" + url[len("webcal://") :]
    url = inputs.check_url(url, "a feed URL")
    room_id = _field(data, "room_id", str, None)
    interval = _field(data, "interval_seconds", int, 300)
    if interval < 60:
        raise DomainError("bad-request", "feeds are polled at most once a minute")
    if interval > MAX_FEED_INTERVAL:
        raise DomainError("bad-request", "feeds are polled at least once a week")

    def add(s: DbSession) -> Feed:
        if room_id is not None:
            centres.get_room(s, room_id)
        feed = Feed(url=url, room_id=room_id, interval_seconds=interval)
        s.add(feed)
        s.flush()
        return feed

    feed = await request.app[SERVICES].db.run(add)
    return web.json_response(feed_json(feed), status=201)


async def list_feeds(request: web.Request) -> web.Response:
    rows = await request.app[SERVICES].db.run(lambda s: list(s.exec(select(Feed)).all()))
    return web.json_response({"feeds": [feed_json(f) for f in rows]})


async def add_caldav_link(request: web.Request) -> web.Response:
    data = await _body(request)
    room_id = _field(data, "room_id", str)
    url = inputs.check_url(_field(data, "calendar_url", str), "a calendar URL")
    username = _field(data, "username", str, None)
    password = _field(data, "password", str, None)
    for value, what in ((username, "a user name"), (password, "a password")):
        if value is not None:
            inputs.check_text(value, code="bad-request", what=what, max_length=1000)

    def add(s: DbSession) -> CalDavLink:
        centres.get_room(s, room_id)
        link = CalDavLink(room_id=room_id, calendar_url=url, username=username, password=password)
        s.add(link)
        s.flush()
        return link

    link = await request.app[SERVICES].db.run(add)
    return web.json_response({"id": link.id, "room_id": room_id, "calendar_url": url}, status=201)


async def sync_caldav_link(request: web.Request) -> web.Response:
    link_id = request.match_info["link_id"]
    services = request.app[SERVICES]
    if not await services.db.run(lambda s: s.get(CalDavLink, link_id) is not None):
        raise DomainError("not-found", f"no CalDAV link {link_id!r}")
    report = await services.calendars.sync_caldav(link_id)
    return web.json_response(report.as_dict())


routes: list[web.AbstractRouteDef] = [
    web.get(OPENAPI_PATH, openapi_document),
    web.get(API + "/centres", list_centres),
    web.post(API + "/centres", add_centre),
    web.get(API + "/rooms", list_rooms),
    web.post(API + "/rooms", add_room),
    web.post(API + "/rooms/{room_id}/rotate-key", rotate_key),
    web.patch(API + "/rooms/{room_id}", set_room),
    web.get(API + "/rooms/{room_id}/health", room_health),
    web.get(API + "/bookings", list_bookings),
    web.post(API + "/bookings", add_booking),
    web.get(API + "/sessions", list_sessions),
    web.get(API + "/sessions/{session_id}", get_session),
    web.post(API + "/calendars/import", import_calendar),
    web.get(API + "/feeds", list_feeds),
    web.post(API + "/feeds", add_feed),
    web.post(API + "/caldav-links", add_caldav_link),
    web.post(API + "/caldav-links/{link_id}/sync", sync_caldav_link),
]
"""The JSON API (``auth_middleware`` checks the bearer token; ``web.app`` installs it)."""
