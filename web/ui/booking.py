"""The availability finder and the booking form.

- ``GET /availability``: rooms of several centres, a day or a week, a duration and
  the organiser's zone -> the free/busy grid in each site's local time and the first
  common free slots, each a link into the booking form.
- ``GET /bookings/new``, ``POST /bookings``: the booking form; a refused booking comes
  back as typed, with each conflict explained and free alternatives that refill it.
- ``GET /bookings/{id}/created``: what the booking set off, with the guests' links
  shown this once; ``GET /bookings/{id}/invitation.ics``: the invitation.
- ``GET /booking-form/site-times``: each site's local time of the form's times (the
  form's script asks for it as the organiser types).

The rules are in ``orchestrator.booking.availability``, ``orchestrator.desk.web_booking``
(what the pages read) and ``orchestrator.desk.door`` (the one door a booking comes in by).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import urlencode

from aiohttp import web

from orchestrator.booking.availability import RoomSite, Slot, availability, site_times, window
from orchestrator.booking.recurrence import localize, to_wall
from orchestrator.booking.series import find_booking
from orchestrator.booking.store import BookingConflict
from orchestrator.db import DbSession
from orchestrator.desk import door, web_booking
from orchestrator.desk.door import BookingMail
from orchestrator.errors import DomainError
from orchestrator.people import access
from orchestrator.people.accounts import Principal
from web.keys import RESULTS, SERVICES
from web.links import Links
from web.ui.booking_form import (
    DURATIONS,
    BookingForm,
    all_zones,
    booking_from,
    check_booking,
    check_finder,
    error_for,
    finder_from,
    is_zone,
    prefill,
    wall_times,
)
from web.ui.booking_mail import Messages
from web.ui.hour_labels import HOUR_COLUMNS, hour_label
from web.ui.render import language, render
from web.ui.security import now_utc, require_user

BOOKERS = ("organiser", "staff", "admin")
GUEST_PATH = "/join/{token}"
"""Where a guest's personal link leads: the guest join page (route ``guest-join``)."""


@dataclass(frozen=True, slots=True)
class CentreRooms:
    centre_id: str
    name: str
    timezone: str
    rooms: tuple[RoomSite, ...]


def by_centre(sites: Sequence[RoomSite]) -> list[CentreRooms]:
    groups: dict[str, list[RoomSite]] = {}
    for site in sites:
        groups.setdefault(site.centre_id, []).append(site)
    return [
        CentreRooms(cid, rooms[0].centre, rooms[0].timezone, tuple(rooms))
        for cid, rooms in groups.items()
    ]


def zone_choices(sites: Sequence[RoomSite], extra: Sequence[str]) -> tuple[list[str], list[str]]:
    """The network's zones (and the person's) first, then every other zone."""
    network = list(dict.fromkeys([*extra, *(s.timezone for s in sites)]))
    network = [z for z in network if z]
    return network, [z for z in all_zones() if z not in network]


def slot_fields(slot: Slot, zone: str) -> dict[str, str]:
    """A slot as the booking form's date, start and end in ``zone``."""
    start, end = to_wall(slot.start, zone), to_wall(slot.end, zone)
    return {
        "date": start.date().isoformat(),
        "start": start.strftime("%H:%M"),
        "end": end.strftime("%H:%M"),
    }


def book_link(slot: Slot, zone: str, room_ids: Sequence[str]) -> str:
    query = [("room", r) for r in room_ids] + list(slot_fields(slot, zone).items())
    return "/bookings/new?" + urlencode([*query, ("zone", zone)])


def base_url(request: web.Request) -> str:
    configured = request.app[SERVICES].settings.public_url
    return configured.rstrip("/") if configured else f"{request.scheme}://{request.host}"


def guest_path(request: web.Request) -> str:
    """The guest join page's path with a ``{token}`` placeholder (guest tokens are
    URL-safe, so the placeholder is replaced as is)."""
    resource = request.app.router.named_resources().get("guest-join")
    if resource is None:
        return GUEST_PATH
    return str(resource.url_for(token="TOKEN")).replace("TOKEN", "{token}")


def _default_zone(user: Principal, home: str | None, sites: Sequence[RoomSite]) -> str:
    return user.timezone or (sites[0].timezone if sites else None) or home or "UTC"


async def _sites(request: web.Request, user: Principal) -> tuple[list[RoomSite], str | None]:
    def load(s: DbSession) -> tuple[list[RoomSite], str | None]:
        return web_booking.load_sites(s), web_booking.centre_zone(s, user.centre_id)

    return await request.app[SERVICES].db.run(load)


# --- the availability finder ------------------------------------------------------------


async def availability_page(request: web.Request) -> web.Response:
    user = require_user(request, *BOOKERS)
    now = now_utc(request)
    sites, home = await _sites(request, user)
    centres = by_centre(sites)
    form = finder_from(request.query, [c.centre_id for c in centres])
    chosen = [s for s in sites if s.room_id in form.rooms]
    if not form.zone:
        form.zone = _default_zone(user, home, chosen)
    if not form.date:
        form.date = (
            to_wall(now, form.zone if form.zone in all_zones() else "UTC").date().isoformat()
        )
    submitted = "room" in request.query or "date" in request.query
    if submitted and not chosen:
        form.errors["rooms"] = "Choose at least one room."
    query = check_finder(form) if submitted else None
    result = None
    if query is not None and chosen:
        since, until = window(query.first_day, query.days, query.zone)
        holds = await request.app[SERVICES].db.run(
            lambda s: web_booking.load_holds(s, chosen, since, until + query.duration)
        )
        result = availability(
            query.first_day,
            query.days,
            query.zone,
            chosen,
            holds,
            query.duration,
            viewer=user,
            hours=query.hours,
            now=now,
        )
    network, others = zone_choices(sites, [user.timezone or "", home or ""])
    return render(
        request,
        "booking/availability.html",
        status=400 if form.errors else 200,
        form=form,
        centres=centres,
        chosen=chosen,
        result=result,
        durations=DURATIONS,
        network_zones=network,
        other_zones=others,
        site_times=site_times,
        book_link=lambda slot: book_link(slot, form.zone, [s.room_id for s in chosen]),
        busy_label=access.BUSY,
        hour_label=hour_label(language(request)),
        hour_columns=HOUR_COLUMNS,
    )


# --- the booking form -----------------------------------------------------------------------


@dataclass(slots=True)
class FormPage:
    """What the form page shows beside the fields."""

    conflicts: list[web_booking.ConflictView] = field(default_factory=list)
    alternatives: list[Slot] = field(default_factory=list)
    refused: str | None = None
    code: str | None = None
    """The refusal's stable code (the API's and the CLI's), on the page as ``data-code``."""


def _times(form: BookingForm) -> tuple[datetime, datetime] | None:
    walls = wall_times(form)
    if walls is None or not is_zone(form.zone):
        return None
    try:
        start, end = localize(walls[0], form.zone), localize(walls[1], form.zone)
    except ValueError:
        return None
    return (start, end) if end > start else None


async def _render_form(
    request: web.Request,
    form: BookingForm,
    sites: list[RoomSite],
    home: str | None,
    user: Principal,
    *,
    page: FormPage | None = None,
    status: int = 200,
) -> web.Response:
    chosen = [s for s in sites if s.room_id in form.rooms]
    times = _times(form)
    network, others = zone_choices(sites, [user.timezone or "", home or ""])
    return render(
        request,
        "booking/form.html",
        status=status,
        form=form,
        centres=by_centre(sites),
        chosen=chosen,
        times=times,
        local_times=site_times(times[0], times[1], form.zone, chosen) if times else [],
        network_zones=network,
        other_zones=others,
        page=page or FormPage(),
        slot_fields=lambda slot: slot_fields(slot, form.zone),
        site_times=site_times,
    )


def _may_book(request: web.Request) -> Principal:
    user = require_user(request, *BOOKERS)
    if not access.can_book(user):
        raise web.HTTPForbidden()
    return user


async def new_booking(request: web.Request) -> web.Response:
    user = _may_book(request)
    sites, home = await _sites(request, user)
    form = BookingForm(**prefill(request.query, request.query.getall("room", [])))
    chosen = [s for s in sites if s.room_id in form.rooms]
    if not form.zone:
        form.zone = _default_zone(user, home, chosen)
    if not form.date or not form.start:
        zone = form.zone if form.zone in all_zones() else "UTC"
        local = to_wall(now_utc(request), zone)
        next_hour = local.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
        form.date = form.date or next_hour.date().isoformat()
        form.start = form.start or next_hour.strftime("%H:%M")
        form.end = form.end or (next_hour + timedelta(hours=1)).strftime("%H:%M")
    return await _render_form(request, form, sites, home, user)


async def create_booking(request: web.Request) -> web.Response:
    user = _may_book(request)
    services = request.app[SERVICES]
    data = await request.post()
    form = booking_from(data)
    sites, home = await _sites(request, user)
    refill = data.get("refill")
    if isinstance(refill, str) and refill.count("|") == 2:
        # An alternative chosen after a conflict: the same form at that time.
        day, start, end = refill.split("|")
        return await _render_form(request, form.refill(day, start, end), sites, home, user)
    booking_request = check_booking(form)
    if booking_request is None:
        return await _render_form(request, form, sites, home, user, status=400)
    now = now_utc(request)
    mail = BookingMail(
        Links(base_url(request), guest_path(request)),
        Messages(language(request)),
        language(request),
    )
    try:
        result = await services.db.run(
            lambda s: door.book(
                s,
                booking_request,
                user,
                now=now,
                settings=services.booking_settings,
                mail=mail,
            )
        )
    except BookingConflict as exc:
        page = await _explain(request, user, exc, booking_request, form, now)
        return await _render_form(request, form, sites, home, user, page=page, status=409)
    except DomainError as exc:
        if exc.code == "duplicate" and booking_request.uid:
            # The same form sent twice (a double click, a reload): it is booked already.
            uid = booking_request.uid
            existing = await services.db.run(lambda s: find_booking(s, "local", uid))
            if existing is not None and existing.owner_id == user.id:
                raise web.HTTPSeeOther(f"/bookings/{existing.id}") from None
        name, message = error_for(exc.code)
        form.errors[name] = message
        refused = FormPage(refused=exc.code if name == "form" else None, code=exc.code)
        return await _render_form(request, form, sites, home, user, page=refused, status=400)
    key = request.app[RESULTS].put(user.id, result, services.clock.now())
    raise web.HTTPSeeOther(f"/bookings/{result.booking_id}/created?{urlencode({'r': key})}")


async def _explain(
    request: web.Request,
    user: Principal,
    exc: BookingConflict,
    wanted: door.BookingRequest,
    form: BookingForm,
    now: datetime,
) -> FormPage:
    duration = wanted.end - wanted.start

    def load(s: DbSession) -> FormPage:
        views = web_booking.explain_conflicts(s, exc.conflicts, user)
        others = web_booking.alternatives(
            s, wanted.room_ids, wanted.timezone, wanted.start_local.date(), duration, now=now
        )
        return FormPage(views, others)

    page = await request.app[SERVICES].db.run(load)
    form.errors["form"] = "These rooms are taken at that time."
    return page


# --- after booking ----------------------------------------------------------------------------


async def created_page(request: web.Request) -> web.Response:
    user = require_user(request, *BOOKERS)
    booking_id = request.match_info["booking_id"]
    services = request.app[SERVICES]
    result = request.app[RESULTS].take(
        request.query.get("r", ""), user.id, booking_id, services.clock.now()
    )
    now = now_utc(request)
    found = await services.db.run(
        lambda s: web_booking.load_invitation(s, booking_id, user, now=now)
    )
    if found is None:
        raise web.HTTPForbidden()
    info, _ = found
    sites = await services.db.run(lambda s: web_booking.load_sites(s, [r.id for r in info.rooms]))
    start = localize(info.start_local, info.timezone)
    end = localize(info.end_local, info.timezone)
    return render(
        request,
        "booking/created.html",
        booking=info,
        result=result,
        start=start,
        end=end,
        local_times=site_times(start, end, info.timezone, sites),
        pending=[s for s in sites if result is not None and s.room_id in result.pending_room_ids],
    )


async def invitation(request: web.Request) -> web.Response:
    user = require_user(request)
    booking_id = request.match_info["booking_id"]
    now = now_utc(request)
    found = await request.app[SERVICES].db.run(
        lambda s: web_booking.load_invitation(s, booking_id, user, now=now)
    )
    if found is None:
        raise web.HTTPForbidden()
    _, body = found
    return web.Response(
        body=body,
        content_type="text/calendar",
        charset="utf-8",
        headers={
            "Content-Disposition": 'attachment; filename="invitation.ics"',
            "Cache-Control": "no-store",
        },
    )


async def site_times_fragment(request: web.Request) -> web.Response:
    """Each chosen site's local time of the form's times, for the form's script."""
    user = require_user(request, *BOOKERS)
    sites, _ = await _sites(request, user)
    form = BookingForm(**prefill(request.query, request.query.getall("room", [])))
    chosen = [s for s in sites if s.room_id in form.rooms]
    times = _times(form)
    return render(
        request,
        "booking/_site_times.html",
        form=form,
        chosen=chosen,
        times=times,
        local_times=site_times(times[0], times[1], form.zone, chosen) if times else [],
    )


routes: list[web.AbstractRouteDef] = [
    web.get("/availability", availability_page),
    web.get("/bookings/new", new_booking),
    web.post("/bookings", create_booking),
    web.get("/bookings/{booking_id}/created", created_page),
    web.get("/bookings/{booking_id}/invitation.ics", invitation),
    web.get("/booking-form/site-times", site_times_fragment),
]
