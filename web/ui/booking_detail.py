"""Bookings a person may see, one booking in full, and what one does to its sessions.

- ``GET /bookings?when=upcoming|past``: the person's bookings (and, for staff, their
  centre's; every booking for an administrator).
- ``GET /bookings/{booking_id}``: title, organiser, rooms with their centre and
  approval, each site's local time, the sessions, the participants of the session
  under way (or next) with their state, the guests; for those who may manage it,
  the forms: extend, end now, cancel one occurrence or the series, guests. With no
  session ahead, the last one that took place is shown with its participants and
  the media they kept.
- ``GET /sessions/{session_id}``: the session's own page, its history kept after it
  ended (``web.ui.session_page``); each occurrence on the booking's page links to it.
- ``POST /sessions/{session_id}/extend`` (``minutes``), ``.../end``, ``.../cancel``;
  ``POST /bookings/{booking_id}/cancel``; ``POST /bookings/{booking_id}/guests``
  (``name``, ``email``), ``.../guests/{guest_id}/revoke``, ``.../new-link``.

Privacy (``orchestrator.people.access``): a booking someone may not see does not exist for
them (404); someone who may see but not manage it sees no forms and their POSTs are
refused (403). Guests are invited only while the booking has a call ahead or under
way (``orchestrator.sessions.invitations``, which ``guests.add_guest`` applies): the form is
offered only then, and a late POST, or one for a booking whose sessions ahead are
reminders, is refused with ``invitations-closed`` (409), saying which. The rules and
the commands are the orchestrator's (``booking_overview``, ``session_actions``,
``guests``, ``invitations``); ``web.ui.booking_view`` reads what the page shows;
this module reads forms and shows results. A guest's link is shown once, on the page answering
the POST that made it.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from common.peers import guest_peer_id
from orchestrator.booking.overview import (
    BookingOverview,
    When,
    booking_of_session,
    booking_overview,
    list_bookings_for,
)
from orchestrator.booking.store import BookingConflict
from orchestrator.db import DbSession
from orchestrator.errors import DomainError
from orchestrator.models import Guest
from orchestrator.people.accounts import Principal
from orchestrator.sessions import actions as session_actions
from orchestrator.sessions import guests
from orchestrator.sessions.guests import REVOCATION_MEMORY
from orchestrator.sessions.invitations import CLOSED, NEEDS_CALL, InvitationsClosed
from orchestrator.sessions.reminders import reminder_ids
from web.keys import SERVICES
from web.ui import session_page as session_pages
from web.ui.booking_view import DetailPage, detail_page
from web.ui.booking_view import viewer_zone as viewer_zone  # the approvals page's too
from web.ui.i18n import Formatter
from web.ui.render import gettext, language, render
from web.ui.security import now_utc, require_user

ID = "{%s:[0-9a-f]{32}}"
NOTICES = {
    "extended": "The session was extended.",
    "ended": "The session ends now; the rooms leave within a few seconds.",
    "cancelled": "The occurrence was cancelled.",
    "series-cancelled": "The booking was cancelled.",
    "guest-revoked": "The guest's link no longer works.",
}

REFUSALS = {
    "conflict": "A room was booked meanwhile. Reload the page and try again.",
    "ended": "This session has already ended.",
    "not-begun": "This session has not begun: cancel it instead.",
    "past": "An occurrence that has ended cannot be cancelled.",
    "invalid-extension": "Choose one of the extensions offered.",
    "bad-request": "Enter the guest's name (at most 100 characters).",
    "bad-guest": "Enter the guest's name (at most 100 characters).",
    "invalid-email": "Enter an email address such as name@example.org.",
    NEEDS_CALL: "A reserve-only booking sets up no call, so it has no guests.",
    CLOSED: "Every session of this booking is over, so no guest can be invited any more.",
}
NO_CALL_AHEAD = (
    "The sessions ahead are reminders (free time in a calendar): no room connects to them, "
    "so no guest can be invited."
)
"""``invitations-closed`` for a booking whose sessions ahead are all reminders."""
CONFLICTS = frozenset({"conflict", "ended", "past", "not-begun", CLOSED})
"""Refusals that are about the booking's state, not the form (409)."""


def _visible_or_404(booking: BookingOverview, user: Principal) -> None:
    if not booking.visible_to(user):
        raise web.HTTPNotFound()


async def load_page(request: web.Request, booking_id: str, user: Principal) -> DetailPage:
    services = request.app[SERVICES]
    now = now_utc(request)

    def load(s: DbSession) -> DetailPage:
        booking = booking_overview(s, booking_id, now)
        _visible_or_404(booking, user)
        return detail_page(s, booking, user, now, services.live.media)

    return await services.db.run(load)


async def show(
    request: web.Request,
    booking_id: str,
    user: Principal,
    *,
    status: int = 200,
    errors: dict[str, str] | None = None,
    error_codes: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
    new_link: tuple[str, str] | None = None,
) -> web.Response:
    page = await load_page(request, booking_id, user)
    notice = NOTICES.get(request.query.get("done", ""))
    return render(
        request,
        "booking_detail/detail.html",
        status=status,
        page=page,
        b=page.booking,
        notice=gettext(request, notice) if notice else None,
        errors=errors or {},
        error_codes=error_codes or {},
        values=values or {},
        new_link=new_link,
    )


# --- pages -------------------------------------------------------------------------------


async def bookings_page(request: web.Request) -> web.Response:
    user = require_user(request)
    when: When = "past" if request.query.get("when") == "past" else "upcoming"
    now = now_utc(request)

    def load(s: DbSession) -> tuple[list[Any], str, frozenset[str]]:
        lines = list_bookings_for(s, user, now, when)
        shown = [line.session_id for line in lines if line.session_id]
        return lines, viewer_zone(s, user), reminder_ids(s, shown)

    lines, zone, reminders = await request.app[SERVICES].db.run(load)
    return render(
        request,
        "booking_detail/list.html",
        lines=lines,
        when=when,
        zone=zone,
        now=now,
        reminders=reminders,
    )


async def booking_page(request: web.Request) -> web.Response:
    user = require_user(request)
    return await show(request, request.match_info["booking_id"], user)


# --- actions -------------------------------------------------------------------------------


async def _managed(
    request: web.Request, booking_id: str | None, session_id: str | None
) -> tuple[Principal, str]:
    """The person and the booking, if they may manage it: 404 if they may not see it
    (or it does not exist), 403 if they may only see it."""
    user = require_user(request)
    now = now_utc(request)

    def check(s: DbSession) -> str:
        found = booking_id or (booking_of_session(s, session_id) if session_id else None)
        if found is None:
            raise web.HTTPNotFound()
        booking = booking_overview(s, found, now)
        _visible_or_404(booking, user)
        if not booking.manageable_by(user):
            raise web.HTTPForbidden()
        return found

    return user, await request.app[SERVICES].db.run(check)


def _refusal(request: web.Request, page_rooms: dict[str, tuple[str, str]], exc: DomainError) -> str:
    """A refused action in the visitor's words: which room is taken, and when there."""
    if isinstance(exc, BookingConflict) and exc.conflicts:
        fmt = Formatter(language(request))
        parts = []
        for c in exc.conflicts:
            name, zone = page_rooms.get(c.room_id, (c.room_id, "UTC"))
            parts.append(
                gettext(
                    request,
                    "%(room)s is booked from %(start)s to %(end)s (%(zone)s).",
                    room=name,
                    start=fmt.time(c.busy.start, zone),
                    end=fmt.time(c.busy.end, zone),
                    zone=zone,
                )
            )
        return gettext(request, "Not every room is free:") + " " + " ".join(dict.fromkeys(parts))
    if isinstance(exc, InvitationsClosed) and exc.reason == "reminders":
        return gettext(request, NO_CALL_AHEAD)
    return gettext(request, REFUSALS.get(exc.code, exc.message))


async def _act(
    request: web.Request,
    booking_id: str,
    user: Principal,
    form_key: str,
    action: Any,
    done: str,
    anchor: str = "",
) -> web.Response:
    services = request.app[SERVICES]
    try:
        await services.db.run(action)
    except DomainError as exc:
        rooms = await services.db.run(
            lambda s: {
                r.room_id: (r.name, r.timezone)
                for r in booking_overview(s, booking_id, now_utc(request)).rooms
            }
        )
        status = 409 if exc.code in CONFLICTS else 400
        return await show(
            request,
            booking_id,
            user,
            status=status,
            errors={form_key: _refusal(request, rooms, exc)},
        )
    raise web.HTTPSeeOther(f"/bookings/{booking_id}?done={done}{anchor}")


async def extend(request: web.Request) -> web.Response:
    session_id = request.match_info["session_id"]
    user, booking_id = await _managed(request, None, session_id)
    form = await request.post()
    try:
        minutes = int(str(form.get("minutes", "")))
    except ValueError:
        minutes = 0
    now = now_utc(request)
    settings = request.app[SERVICES].booking_settings
    return await _act(
        request,
        booking_id,
        user,
        "extend",
        lambda s: session_actions.extend(s, session_id, minutes, now, settings),
        "extended",
        f"#session-{session_id}",
    )


async def end_now(request: web.Request) -> web.Response:
    session_id = request.match_info["session_id"]
    user, booking_id = await _managed(request, None, session_id)
    now = now_utc(request)
    return await _act(
        request,
        booking_id,
        user,
        "end",
        lambda s: session_actions.end_now(s, session_id, now),
        "ended",
        f"#session-{session_id}",
    )


async def cancel_occurrence(request: web.Request) -> web.Response:
    session_id = request.match_info["session_id"]
    user, booking_id = await _managed(request, None, session_id)
    now = now_utc(request)
    return await _act(
        request,
        booking_id,
        user,
        "cancel",
        lambda s: session_actions.cancel_occurrence(s, session_id, now),
        "cancelled",
        f"#session-{session_id}",
    )


async def cancel_series(request: web.Request) -> web.Response:
    user, booking_id = await _managed(request, request.match_info["booking_id"], None)
    now = now_utc(request)
    return await _act(
        request,
        booking_id,
        user,
        "series",
        lambda s: session_actions.cancel_series(s, booking_id, now),
        "series-cancelled",
    )


def guest_url(request: web.Request, token: str) -> str:
    """The guest's personal address, under the service's public address."""
    settings = request.app[SERVICES].settings
    base = (settings.public_url or f"{request.scheme}://{request.host}").rstrip("/")
    resource = request.app.router.named_resources().get("guest-join")
    path = str(resource.url_for(token=token)) if resource else f"/join/{token}"
    return base + path


async def _issue(
    request: web.Request, booking_id: str, user: Principal, make: Any, values: dict[str, str]
) -> web.Response:
    """Run ``make`` (returns ``(guest, token)``) and show the link once."""
    try:
        guest, token = await request.app[SERVICES].db.run(make)
    except DomainError as exc:
        return await show(
            request,
            booking_id,
            user,
            status=409 if exc.code in CONFLICTS else 400,
            errors={"guest": _refusal(request, {}, exc)},
            error_codes={"guest": exc.code},
            values=values,
        )
    return await show(request, booking_id, user, new_link=(guest.name, guest_url(request, token)))


async def add_guest(request: web.Request) -> web.Response:
    user, booking_id = await _managed(request, request.match_info["booking_id"], None)
    form = await request.post()
    name, email = str(form.get("name", "")), str(form.get("email", "")).strip()
    now = now_utc(request)

    def make(s: DbSession) -> tuple[Any, str]:
        return guests.add_guest(s, booking_id, name, email or None, now=now)

    return await _issue(request, booking_id, user, make, {"name": name, "email": email})


def _guest_of(s: DbSession, booking_id: str, guest_id: str) -> Guest:
    guest = s.get(Guest, guest_id)
    if guest is None or guest.booking_id != booking_id:
        raise web.HTTPNotFound()
    return guest


async def revoke_guest(request: web.Request) -> web.Response:
    booking_id, guest_id = request.match_info["booking_id"], request.match_info["guest_id"]
    user, _ = await _managed(request, booking_id, None)
    now = now_utc(request)

    def revoke(s: DbSession) -> None:
        _guest_of(s, booking_id, guest_id)
        guests.revoke_guest(s, guest_id, now)

    try:
        return await _act(request, booking_id, user, "guest", revoke, "guest-revoked", "#guests")
    except web.HTTPSeeOther:
        await _withdraw(request, guest_id)
        raise


async def _withdraw(request: web.Request, guest_id: str) -> None:
    """A revoked guest already in a session leaves it now, and no ticket it still
    holds opens another (signalling refuses its peer id)."""
    services = request.app[SERVICES]
    until = services.clock.now() + REVOCATION_MEMORY.total_seconds()
    await services.signalling.revoke_peer(guest_peer_id(guest_id), until)


async def new_link(request: web.Request) -> web.Response:
    """A new link for a guest who lost theirs: the old one stops working."""
    booking_id, guest_id = request.match_info["booking_id"], request.match_info["guest_id"]
    user, _ = await _managed(request, booking_id, None)
    now = now_utc(request)

    def make(s: DbSession) -> tuple[Any, str]:
        old = _guest_of(s, booking_id, guest_id)
        made = guests.add_guest(s, booking_id, old.name, old.email, now=now)
        guests.revoke_guest(s, guest_id, now)
        return made

    response = await _issue(request, booking_id, user, make, {})
    if response.status < 400:
        await _withdraw(request, guest_id)
    return response


_BOOKING = "/bookings/" + ID % "booking_id"
_SESSION = "/sessions/" + ID % "session_id"
_GUEST = _BOOKING + "/guests/" + ID % "guest_id"
routes: list[web.AbstractRouteDef] = [
    web.get("/bookings", bookings_page, name="bookings"),
    web.get(_BOOKING, booking_page, name="booking-detail"),
    web.get(_SESSION, session_pages.page, name="session-detail"),
    web.post(_SESSION + "/extend", extend),
    web.post(_SESSION + "/end", end_now),
    web.post(_SESSION + "/cancel", cancel_occurrence),
    web.post(_BOOKING + "/cancel", cancel_series),
    web.post(_BOOKING + "/guests", add_guest),
    web.post(_GUEST + "/revoke", revoke_guest),
    web.post(_GUEST + "/new-link", new_link),
]
