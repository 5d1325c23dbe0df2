"""iCalendar over HTTP: subscription feeds, free/busy, invitations, feed tokens.

- ``GET /calendars/{token}.ics``: the feed of the token's room or centre, with a
  strong ETag (the body's hash) and Last-Modified; If-None-Match, or failing it
  If-Modified-Since, answers 304 (RFC 9110 §13.2.2 order).
- ``GET /calendars/{token}/freebusy.ics?from=&to=``: VFREEBUSY of the token's
  room (or of each room of its centre); the next 7 days by default.
- ``GET /api/v1/bookings/{booking_id}/invitation.ics``: METHOD:REQUEST, or with
  ``method=cancel`` METHOD:CANCEL (``occurrence=`` an ISO instant for one
  occurrence); ``join=`` the join link, ``sequence=`` the update's SEQUENCE.
- ``POST /api/v1/{rooms|centres}/{id}/calendar-token``: a new token, shown once.
- ``DELETE /api/v1/calendar-tokens/{token_id}``: revoke one.

A token that is unknown, revoked or malformed is ``404 not-found``, the same answer
whatever the room behind it, so the URL space reveals nothing. The /api/v1 routes
are behind the admin token (web/api.py's middleware). Documents are built off the
event loop and outside the database transaction.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from aiohttp import web

from orchestrator import inputs
from orchestrator.calendars import tokens as calendar_tokens
from orchestrator.calendars.ical_out.export import (
    BusyPeriod,
    FeedData,
    FeedDocument,
    RoomInfo,
    cancellation_ics,
    feed_document,
    freebusy_ics,
    invitation_ics,
    load_booking,
    load_centre,
    load_centre_feed,
    load_freebusy,
    load_room_feed,
)
from orchestrator.calendars.tokens import CalendarScope, IssuedCalendarToken
from orchestrator.clock import instant
from orchestrator.db import DbSession
from orchestrator.errors import DomainError
from orchestrator.models import Centre
from web.api import API, parse_instant
from web.keys import SERVICES

CALENDAR_TYPE = "text/calendar"
FEED_HISTORY = timedelta(days=90)
"""Bookings over for longer than this drop out of feeds."""
FREEBUSY_DEFAULT = timedelta(days=7)
FREEBUSY_MAX = timedelta(days=366)
"""The widest free/busy window one request may ask for."""
CACHE_CONTROL = "private, no-cache"
"""Revalidate every time (cheap with ETag); never in a shared cache, the URL is a secret."""


def _not_found() -> DomainError:
    return DomainError("not-found", "no such calendar")


def _resolve(db: DbSession, token: str) -> CalendarScope:
    scope = calendar_tokens.resolve(db, token)
    if scope is None:
        raise _not_found()
    return scope


def _now(request: web.Request) -> datetime:
    return instant(request.app[SERVICES].clock)


def _calendar_response(body: bytes, method: str | None = None) -> web.Response:
    kind = f"{CALENDAR_TYPE}; charset=utf-8" + (f"; method={method}" if method else "")
    return web.Response(body=body, headers={"Content-Type": kind, "Cache-Control": CACHE_CONTROL})


def _etag_matches(header: str, etag: str) -> bool:
    """If-None-Match uses the weak comparison (RFC 9110 §13.1.2)."""
    if header.strip() == "*":
        return True
    wanted = etag.removeprefix("W/")
    return any(tag.strip().removeprefix("W/") == wanted for tag in header.split(","))


def _not_modified(request: web.Request, doc: FeedDocument) -> bool:
    if_none_match = request.headers.get("If-None-Match")
    if if_none_match is not None:
        return _etag_matches(if_none_match, doc.etag)
    since = request.if_modified_since
    if since is None or doc.last_modified is None:
        return False
    return doc.last_modified.replace(microsecond=0) <= since


def _feed_data(db: DbSession, token: str, since: datetime) -> FeedData:
    scope = _resolve(db, token)
    try:
        if scope.room_id is not None:
            return load_room_feed(db, scope.room_id, since=since)
        if scope.centre_id is not None:
            return load_centre_feed(db, scope.centre_id, since=since)
    except DomainError:
        pass  # the room or centre went away: the token opens nothing
    raise _not_found()


async def feed(request: web.Request) -> web.StreamResponse:
    token = request.match_info["token"]
    since = _now(request) - FEED_HISTORY
    data = await request.app[SERVICES].db.run(lambda s: _feed_data(s, token, since))
    doc = await asyncio.to_thread(feed_document, data)
    headers = {"ETag": doc.etag, "Cache-Control": CACHE_CONTROL}
    if _not_modified(request, doc):
        response = web.Response(status=304, headers=headers)
    else:
        response = _calendar_response(doc.body)
        response.headers["ETag"] = doc.etag
    if doc.last_modified is not None:
        response.last_modified = doc.last_modified
    return response


def _window(request: web.Request) -> tuple[datetime, datetime]:
    query = request.query
    if "from" in query:
        since = parse_instant(query["from"]).astimezone(UTC)
    else:
        since = _now(request).replace(second=0, microsecond=0)
    until = parse_instant(query["to"]).astimezone(UTC) if "to" in query else None
    until = until or since + FREEBUSY_DEFAULT
    if until <= since:
        raise DomainError("invalid-time", "'to' comes after 'from'")
    if until - since > FREEBUSY_MAX:
        raise DomainError("window-too-large", f"ask for at most {FREEBUSY_MAX.days} days")
    return since, until


async def freebusy(request: web.Request) -> web.Response:
    token = request.match_info["token"]
    since, until = _window(request)
    stamp = _now(request)

    def load(db: DbSession) -> list[tuple[RoomInfo, list[BusyPeriod]]]:
        scope = _resolve(db, token)
        if scope.room_id is not None:
            rooms = load_freebusy(db, [scope.room_id], since, until)
        elif scope.centre_id is not None and db.get(Centre, scope.centre_id) is not None:
            room_ids = [r.id for r in load_centre(db, scope.centre_id)[1]]
            return load_freebusy(db, room_ids, since, until)
        else:
            rooms = []
        if not rooms:  # the room or centre went away: the token opens nothing
            raise _not_found()
        return rooms

    rooms = await request.app[SERVICES].db.run(load)
    body = await asyncio.to_thread(lambda: freebusy_ics(rooms, since, until, stamp=stamp))
    return _calendar_response(body, "PUBLISH")


def _join_url(value: str | None) -> str | None:
    if value is None:
        return None
    if not value.isprintable():  # no space or format character in a link either
        raise DomainError("bad-request", "join is an http(s) URL")
    return inputs.check_url(value, "join")


def _sequence(value: str | None) -> int | None:
    if value is None:
        return None
    if not value.isdigit() or len(value) > 9:
        raise DomainError("bad-request", "sequence is a non-negative integer")
    return int(value)


async def invitation(request: web.Request) -> web.Response:
    booking_id = request.match_info["booking_id"]
    query = request.query
    method = query.get("method", "request").lower()
    if method not in ("request", "cancel"):
        raise DomainError("bad-request", "method is request or cancel")
    sequence = _sequence(query.get("sequence"))
    occurrence = parse_instant(query["occurrence"]) if "occurrence" in query else None
    if occurrence is not None and method != "cancel":
        raise DomainError("bad-request", "occurrence goes with method=cancel")
    join_url = _join_url(query.get("join"))
    stamp = _now(request)
    booking = await request.app[SERVICES].db.run(lambda s: load_booking(s, booking_id))
    if method == "cancel":
        body = await asyncio.to_thread(
            lambda: cancellation_ics(
                booking,
                stamp=stamp,
                occurrence=occurrence.astimezone(UTC) if occurrence else None,
                sequence=sequence,
            )
        )
        return _calendar_response(body, "CANCEL")
    body = await asyncio.to_thread(
        lambda: invitation_ics(booking, stamp=stamp, join_url=join_url, sequence=sequence)
    )
    return _calendar_response(body, "REQUEST")


def _token_json(request: web.Request, issued: IssuedCalendarToken) -> web.Response:
    origin = request.url.origin()
    return web.json_response(
        {
            "id": issued.id,
            "token": issued.token,
            "url": str(origin.with_path(f"/calendars/{issued.token}.ics")),
            "freebusy_url": str(origin.with_path(f"/calendars/{issued.token}/freebusy.ics")),
        },
        status=201,
    )


async def create_room_token(request: web.Request) -> web.Response:
    room_id = request.match_info["room_id"]
    issued = await request.app[SERVICES].db.run(
        lambda s: calendar_tokens.create_room_token(s, room_id)
    )
    return _token_json(request, issued)


async def create_centre_token(request: web.Request) -> web.Response:
    centre_id = request.match_info["centre_id"]
    issued = await request.app[SERVICES].db.run(
        lambda s: calendar_tokens.create_centre_token(s, centre_id)
    )
    return _token_json(request, issued)


async def revoke_token(request: web.Request) -> web.Response:
    token_id = request.match_info["token_id"]
    if not await request.app[SERVICES].db.run(lambda s: calendar_tokens.revoke_id(s, token_id)):
        raise DomainError("not-found", f"no calendar token {token_id!r}")
    return web.Response(status=204)


routes: list[web.AbstractRouteDef] = [
    web.get("/calendars/{token:[A-Za-z0-9_-]+}.ics", feed),
    web.get("/calendars/{token:[A-Za-z0-9_-]+}/freebusy.ics", freebusy),
    web.get(API + "/bookings/{booking_id}/invitation.ics", invitation),
    web.post(API + "/rooms/{room_id}/calendar-token", create_room_token),
    web.post(API + "/centres/{centre_id}/calendar-token", create_centre_token),
    web.delete(API + "/calendar-tokens/{token_id}", revoke_token),
]
