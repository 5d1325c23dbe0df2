"""The guest join page: a personal link opens one session's page, with a camera and
microphone check, and hands the browser a join ticket for the signalling protocol.

Routes (no login: the link's secret is the credential):

- ``GET /join/{token}``: the page, while the link is open (``orchestrator.sessions.guests``:
  from 15 minutes before a session's start to its end, not revoked, booking not
  cancelled). A refusal is a page naming its code: ``guest-link-invalid`` (404),
  ``guest-link-revoked`` (410), ``guest-link-outside-window`` (403, saying when the
  link opens if it will), ``guest-link-no-call`` (403: the meeting is a reminder, free
  time in a calendar, or reserve-only, so no room connects and there is nothing to
  join).
- ``POST /join/{token}/ticket`` (CSRF header): re-checks the link, then answers JSON
  ``{ticket, session_id, ws_url, ice_servers, joinable_at, server_time}``. The
  ticket is a guest ticket (``sub`` ``guest:<guest id>``, claim ``name``) over the
  session's ticket window; ``joinable_at`` is its ``nbf``, before which signalling
  refuses it, so the page waits until then. Refusals answer
  ``{"error": {"code", "message", "opens_at"?}}`` with the page's status codes
  (``guest-link-no-call``'s message in the visitor's language, for the page to show).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime

from aiohttp import web
from sqlmodel import col, select

from common.peers import guest_peer_id, room_peer_id
from orchestrator.db import DbSession
from orchestrator.errors import DomainError
from orchestrator.models import BookingRoom, Centre, Room
from orchestrator.sessions import guests
from orchestrator.sessions.guests import NO_CALL, GuestAccess, GuestLinkClosed
from orchestrator.sessions.tickets import ticket_window
from web.keys import SERVICES
from web.ui.render import gettext, render
from web.ui.security import now_utc

REFUSAL_STATUS: dict[str, int] = {
    "guest-link-invalid": 404,
    "guest-link-revoked": 410,
    "guest-link-outside-window": 403,
    NO_CALL: 403,
}
GUEST_AGENT = "telecentre-guest/0.1"
# The link's secret is in the path: keep it out of Referer headers and search engines.
PRIVATE_HEADERS = {"Referrer-Policy": "no-referrer", "X-Robots-Tag": "noindex, nofollow"}


@dataclass(frozen=True, slots=True)
class Site:
    """One room of the session, with its centre's zone (each site's local time)."""

    room_id: str
    room: str
    centre: str
    timezone: str

    @property
    def peer_id(self) -> str:
        return room_peer_id(self.room_id)


def sites_of(db: DbSession, booking_id: str) -> list[Site]:
    rows = db.exec(
        select(Room.id, Room.name, Centre.name, Centre.timezone)
        .join(BookingRoom, col(BookingRoom.room_id) == col(Room.id))
        .join(Centre, col(Centre.id) == col(Room.centre_id))
        .where(col(BookingRoom.booking_id) == booking_id)
        .order_by(col(Centre.name), col(Room.name))
    ).all()
    return [Site(*row) for row in rows]


def ws_url(request: web.Request) -> str:
    """The signalling endpoint on this service, secure when the page is."""
    return f"{'wss' if request.secure else 'ws'}://{request.host}/ws"


def refusal_messages(request: web.Request, exc: DomainError) -> tuple[str, str]:
    """A refusal's heading and explanation, in the visitor's language."""
    if exc.code == "guest-link-invalid":
        return (
            gettext(request, "This link is not valid"),
            gettext(
                request,
                "Check that you opened the whole link from your invitation, "
                "or ask the organiser for a new one.",
            ),
        )
    if exc.code == "guest-link-revoked":
        return (
            gettext(request, "This link was withdrawn"),
            gettext(
                request, "The organiser withdrew this invitation. Ask them if you need a new link."
            ),
        )
    if exc.code == NO_CALL:
        return (
            gettext(request, "This meeting has no call"),
            gettext(
                request,
                "It is marked as free time in the organiser's calendar: a reminder, to "
                "which no room connects, so there is nothing to join. Ask the organiser "
                "if you expected a video meeting.",
            ),
        )
    if isinstance(exc, GuestLinkClosed) and exc.opens is not None:
        return (
            gettext(request, "This meeting is not open yet"),
            gettext(
                request,
                "Your link opens 15 minutes before the meeting starts. Come back then: "
                "the same link will work.",
            ),
        )
    return (
        gettext(request, "This meeting is not open"),
        gettext(request, "The meeting is over or was cancelled, so this link opens nothing now."),
    )


async def _resolve(request: web.Request, with_sites: bool) -> tuple[GuestAccess, list[Site]]:
    token = request.match_info["token"]
    now = now_utc(request)

    def work(db: DbSession) -> tuple[GuestAccess, list[Site]]:
        access = guests.resolve_link(db, token, now)
        return access, sites_of(db, access.booking_id) if with_sites else []

    return await request.app[SERVICES].db.run(work)


def _opens(exc: DomainError) -> datetime | None:
    return exc.opens if isinstance(exc, GuestLinkClosed) else None


async def join_page(request: web.Request) -> web.StreamResponse:
    try:
        access, sites = await _resolve(request, with_sites=True)
    except DomainError as exc:
        if exc.code not in REFUSAL_STATUS:
            raise
        heading, explanation = refusal_messages(request, exc)
        response = render(
            request,
            "guest/refused.html",
            status=REFUSAL_STATUS[exc.code],
            code=exc.code,
            heading=heading,
            explanation=explanation,
            opens=_opens(exc),
        )
        response.headers.update(PRIVATE_HEADERS)
        return response
    response = render(
        request,
        "guest/join.html",
        access=access,
        sites=sites,
        config={
            "ticket_url": f"{request.path}/ticket",
            "session_id": access.session_id,
            "start": access.start.timestamp(),
            "end": access.end.timestamp(),
            "sites": [{"peer_id": s.peer_id, "name": s.room, "centre": s.centre} for s in sites],
            "camera": dict(
                zip(
                    ("width", "height", "fps"),
                    request.app[SERVICES].settings.guest_camera(),
                    strict=True,
                )
            ),
        },
    )
    response.headers.update(PRIVATE_HEADERS)
    return response


async def join_ticket(request: web.Request) -> web.Response:
    """A guest ticket for the session the link opens now (the link is checked again)."""
    try:
        access, _ = await _resolve(request, with_sites=False)
    except DomainError as exc:
        if exc.code not in REFUSAL_STATUS:
            raise
        message = refusal_messages(request, exc)[1] if exc.code == NO_CALL else exc.message
        error: dict[str, object] = {"code": exc.code, "message": message}
        if (opens := _opens(exc)) is not None:
            error["opens_at"] = opens.timestamp()
        return web.json_response(
            {"error": error}, status=REFUSAL_STATUS[exc.code], headers=PRIVATE_HEADERS
        )
    services = request.app[SERVICES]
    now = services.clock.now()
    not_before, expires = ticket_window(
        access.start.timestamp(), access.end.timestamp(), access.lead_seconds
    )
    ticket, _ = services.signer.mint(
        guest_peer_id(access.guest_id),
        access.session_id,
        "guest",
        not_before,
        expires,
        issued_at=now,
        name=access.name,
    )
    ice_servers = [
        {k: v for k, v in asdict(server).items() if v is not None}
        for server in services.signalling.settings.ice_servers
    ]
    body = {
        "ticket": ticket,
        "session_id": access.session_id,
        "ws_url": ws_url(request),
        "ice_servers": ice_servers,
        "joinable_at": not_before,
        "server_time": now,
        "end": access.end.timestamp(),
    }
    return web.json_response(body, headers={"Cache-Control": "no-store", **PRIVATE_HEADERS})


routes: list[web.AbstractRouteDef] = [
    web.get("/join/{token}", join_page, name="guest-join"),
    web.post("/join/{token}/ticket", join_ticket, name="guest-ticket"),
]
