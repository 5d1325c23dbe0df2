"""Approvals: a centre's staff decide on bookings from other centres for their rooms.

- ``GET /approvals`` (staff, administrators): the requests waiting for their rooms,
  with each site's local time, and a form per request: approve or decline, with
  an optional note for the organiser.
- ``POST /approvals/{booking_id}/{room_id}`` (``decision`` = ``approve`` or
  ``decline``, ``note``): the decision; the organiser is mailed in their language.

The rules are ``orchestrator.booking.approvals``'s (who decides, what a decline does); this
module reads the form, writes the organiser's mail texts and shows the outcome.
"""

from __future__ import annotations

from aiohttp import web

from orchestrator.booking import approvals
from orchestrator.booking.approvals import DecisionNotice
from orchestrator.db import DbSession
from orchestrator.errors import DomainError
from web.keys import SERVICES
from web.ui import i18n
from web.ui.booking_detail import viewer_zone
from web.ui.render import gettext, render
from web.ui.security import now_utc, require_user

DONE = {
    "approved": "Approved: the room joins the booking's sessions.",
    "declined": "Declined: the room left the booking and the organiser was told.",
}
ERRORS = {
    "decided": "This request was already decided.",
    "invalid-note": "A note has at most 500 characters.",
}


class MailTexts:
    """The organiser's mail, in the organiser's language (``approvals.po``)."""

    def approval_decision(self, locale: str | None, notice: DecisionNotice) -> tuple[str, str]:
        lang = locale if locale in i18n.LANGUAGES else i18n.DEFAULT_LANGUAGE
        _ = i18n.translations(lang).gettext
        values = {"room": notice.room_name, "centre": notice.centre_name, "title": notice.title}
        if notice.approved:
            subject = _("%(room)s (%(centre)s) approved “%(title)s”") % values
            lines = [_("%(centre)s approved room %(room)s for “%(title)s”.") % values]
        else:
            subject = _("%(room)s (%(centre)s) declined “%(title)s”") % values
            lines = [
                _("%(centre)s declined room %(room)s for “%(title)s”: the room left the booking.")
                % values
            ]
        if notice.note:
            lines.append(_("Their note: %(note)s") % {"note": notice.note})
        if notice.cancelled:
            lines.append(_("No room is left, so the booking is cancelled."))
        elif notice.reserve_only:
            lines.append(_("One room is left: the booking now only reserves it, with no call."))
        if notice.booking_url:
            lines.append(_("The booking: %(url)s") % {"url": notice.booking_url})
        return subject, "\n\n".join(lines) + "\n"


def booking_url(request: web.Request, booking_id: str) -> str:
    settings = request.app[SERVICES].settings
    base = (settings.public_url or f"{request.scheme}://{request.host}").rstrip("/")
    return f"{base}/bookings/{booking_id}"


async def _page(
    request: web.Request,
    *,
    status: int = 200,
    errors: dict[tuple[str, str], str] | None = None,
    notes: dict[tuple[str, str], str] | None = None,
) -> web.Response:
    user = require_user(request, "staff", "admin")

    def load(s: DbSession) -> tuple[list[approvals.PendingApproval], str]:
        return approvals.pending_for(s, user), viewer_zone(s, user)

    pending, zone = await request.app[SERVICES].db.run(load)
    shown = {(p.booking_id, p.room_id) for p in pending}
    done = DONE.get(request.query.get("done", ""))
    return render(
        request,
        "approvals/list.html",
        status=status,
        pending=pending,
        zone=zone,
        notice=gettext(request, done) if done else None,
        errors=errors or {},
        general=[m for key, m in (errors or {}).items() if key not in shown],
        notes=notes or {},
    )


async def approvals_page(request: web.Request) -> web.Response:
    return await _page(request)


async def decide(request: web.Request) -> web.Response:
    user = require_user(request, "staff", "admin")
    booking_id, room_id = request.match_info["booking_id"], request.match_info["room_id"]
    form = await request.post()
    decision = str(form.get("decision", ""))
    note = str(form.get("note", ""))
    if decision not in ("approve", "decline"):
        key = (booking_id, room_id)
        message = gettext(request, "Choose approve or decline.")
        return await _page(request, status=400, errors={key: message}, notes={key: note})
    now = now_utc(request)
    url = booking_url(request, booking_id)
    try:
        done = await request.app[SERVICES].db.run(
            lambda s: approvals.decide(
                s,
                booking_id,
                room_id,
                decision == "approve",
                user,
                now,
                note,
                messages=MailTexts(),
                booking_url=url,
            )
        )
    except DomainError as exc:
        if exc.code == "forbidden":
            raise web.HTTPForbidden() from None
        if exc.code == "not-found":
            raise web.HTTPNotFound() from None
        key = (booking_id, room_id)
        message = gettext(request, ERRORS.get(exc.code, exc.message))
        status = 409 if exc.code == "decided" else 400
        return await _page(request, status=status, errors={key: message}, notes={key: note})
    raise web.HTTPSeeOther(f"/approvals?done={done.state}")


routes: list[web.AbstractRouteDef] = [
    web.get("/approvals", approvals_page, name="approvals"),
    web.post("/approvals/{booking_id}/{room_id}", decide),
]
