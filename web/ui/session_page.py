"""One session's page, ``GET /sessions/{session_id}``: what happened in it, kept after
it ended. Its sites, when each joined, saw its first frame, went live and left (or
was released as a no-show), the media figures each kept (``orchestrator.
sessions.history``), and its lifecycle transitions with their times.

A reminder (``orchestrator.sessions.reminders``: a transparent booking's session, which never
connects) reads as one: no sites to follow, nothing to expect of them. An ``ending``
session says when it ends, as the rooms' screens do.

The dashboard links each session one may see to this page, and the booking's page
links each of its occurrences. Access is the booking's (``orchestrator.people.access``):
someone who may not see the booking gets 404, so a title, an organiser or a guest
never shows to them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from aiohttp import web

from orchestrator.booking.overview import BookingOverview, booking_of_session, booking_overview
from orchestrator.db import DbSession
from orchestrator.lifecycle import TERMINAL_STATES
from orchestrator.sessions.detail import SessionDetail, session_detail
from orchestrator.sessions.history import KeptMedia, kept_media
from orchestrator.sessions.reminders import reminder_ids
from web.keys import SERVICES
from web.ui.i18n import Formatter, translations
from web.ui.media_labels import KeptLabels, kept_labels
from web.ui.organiser import organiser_label
from web.ui.render import language, render
from web.ui.security import now_utc, require_user


@dataclass(frozen=True, slots=True)
class SiteLine:
    """A room's part in the session (its CDR line) and the media it kept."""

    room_id: str
    name: str
    centre: str
    timezone: str
    joined_at: datetime | None
    first_frame_at: datetime | None
    live_at: datetime | None
    left_at: datetime | None
    released_at: datetime | None
    rejoins: int
    kept: KeptMedia | None
    labels: KeptLabels | None


@dataclass(frozen=True, slots=True)
class TransitionLine:
    seq: int
    state: str
    at: datetime
    when: str
    """The time in the viewer's zone, with its date when not the session's day."""
    offset: str
    """Relative to the booked start ("T-60 s")."""


@dataclass(frozen=True, slots=True)
class SessionPage:
    detail: SessionDetail
    booking: BookingOverview
    title: str
    organiser: str | None
    viewer_zone: str
    sites: tuple[SiteLine, ...]
    transitions: tuple[TransitionLine, ...]
    over: bool
    now: datetime
    reminder: bool = False
    """The session is (or ended as) a reminder: no call."""


NEAR = 86400.0
"""Transitions further than this from the start (the booking itself, made weeks
before) show no offset: a count of seconds that large says nothing."""


def relative(at: datetime, start: datetime, lang: str) -> str:
    """``at`` as seconds from the start, signed, to the tenth ("T-60 s", "T+0.2 s");
    "" beyond ``NEAR``."""
    seconds = (at - start).total_seconds()
    if abs(seconds) > NEAR:
        return ""
    return f"T{Formatter(lang).number(seconds, 1, sign=True)} s"


def _when(fmt: Formatter, at: datetime, start: datetime, zone: str) -> str:
    if fmt.date(at, zone) == fmt.date(start, zone):
        return fmt.time(at, zone, "medium")
    return fmt.datetime(at, zone, "medium")


def build_page(
    detail: SessionDetail,
    booking: BookingOverview,
    viewer_zone: str,
    now: datetime,
    lang: str,
    gettext_: Callable[[str], str],
    *,
    reminder: bool = False,
) -> SessionPage:
    fmt = Formatter(lang)
    rooms = {r.room_id: r for r in booking.rooms}
    sites = []
    for p in detail.participations:
        room = rooms.get(p.room_id)
        kept = kept_media(p.media)
        sites.append(
            SiteLine(
                room_id=p.room_id,
                name=p.room_name,
                centre=room.centre_name if room else "",
                timezone=room.timezone if room else detail.timezone,
                joined_at=p.joined_at,
                first_frame_at=p.first_frame_at,
                live_at=p.live_at,
                left_at=p.left_at,
                released_at=p.released_at,
                rejoins=p.rejoins,
                kept=kept,
                labels=kept_labels(kept, lang, gettext_) if kept is not None else None,
            )
        )
    return SessionPage(
        detail=detail,
        booking=booking,
        title=detail.session_title or detail.title,
        organiser=organiser_label(booking.owner_name, booking.organiser),
        viewer_zone=viewer_zone,
        sites=tuple(sites),
        transitions=tuple(
            TransitionLine(
                t.seq,
                t.state,
                t.at,
                _when(fmt, t.at, detail.start, viewer_zone),
                relative(t.at, detail.start, lang),
            )
            for t in detail.transitions
        ),
        over=detail.state in TERMINAL_STATES or detail.end <= now,
        now=now,
        reminder=reminder,
    )


async def page(request: web.Request) -> web.Response:
    user = require_user(request)
    session_id = request.match_info["session_id"]
    now = now_utc(request)
    lang = language(request)
    translate = translations(lang).gettext

    def load(s: DbSession) -> SessionPage:
        booking_id = booking_of_session(s, session_id)
        if booking_id is None:
            raise web.HTTPNotFound()
        booking = booking_overview(s, booking_id, now)
        if not booking.visible_to(user):
            raise web.HTTPNotFound()
        detail = session_detail(s, session_id)
        zone = user.timezone or booking.timezone
        return build_page(
            detail,
            booking,
            zone,
            now,
            lang,
            translate,
            reminder=session_id in reminder_ids(s, [session_id]),
        )

    found = await request.app[SERVICES].db.run(load)
    return render(request, "session/page.html", page=found, b=found.booking, d=found.detail)
