"""The network dashboard's state: a pure function of what the database holds (a
``NetworkSnapshot``), what signalling knows now (rooms online, fresh media
reports), each room's readiness, who is looking and when.

The same state renders the page and answers ``GET /dashboard/state`` (JSON), so the
page and its live updates never disagree. Each item carries machine values (for
scripts and tests) and labels in the viewer's language (for the page), plus
``announce``: the short sentence screen readers hear when it changes.

Privacy: a session's title, organiser and guest names are shown only to people
``orchestrator.people.access.can_see_booking`` allows; others see "Session" and "busy".

A session's badge (``badge``, ``state_label``, ``state_title``) says what its state
means to people: a reminder (``orchestrator.sessions.reminders``: a transparent booking's
session, which never connects) reads "Reminder — no call" and lists no sites, so
nothing is expected of its rooms (no joins, no media, no "Not joined") and they stay
free; an ``ending`` session names its end in the viewer's zone ("Ends at 14:30"),
the time the rooms' screens are warning about.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from common.sessions import AUTOMATIC, MANUAL, ONE_BUTTON, RESERVE_ONLY
from orchestrator.people.access import can_see_booking
from orchestrator.people.accounts import Principal
from orchestrator.reports.network import UNDER_WAY, NetworkSnapshot, SessionRow
from orchestrator.sessions.history import KeptMedia
from signalling.ports import SessionTopology
from web.live_media import LiveMedia
from web.ui.dashboard_sites import SiteView, ViewContext, iso, site_view
from web.ui.i18n import Formatter, with_colon
from web.ui.organiser import organiser_label

UNKNOWN = "unknown"
Gettext = Callable[[str], str]


@dataclass(frozen=True, slots=True)
class Readiness:
    """A room's readiness check (issue 5: the room agent tests camera, microphone,
    screen and network before a session). ``value``: ``ready``, ``degraded``,
    ``failing`` or ``unknown``; ``detail``: what the agent said, if anything."""

    value: str = UNKNOWN
    detail: str | None = None
    checked_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class CentreView:
    key: str
    id: str
    name: str
    timezone: str
    local_time: str
    announce: str


@dataclass(frozen=True, slots=True)
class RoomView:
    key: str
    id: str
    name: str
    centre_id: str
    centre_name: str
    timezone: str
    online: bool
    presence: str
    presence_label: str
    activity: str
    activity_label: str
    session_id: str | None
    readiness: str
    readiness_label: str
    readiness_checked_at: str | None
    announce: str


@dataclass(frozen=True, slots=True)
class SessionView:
    key: str
    id: str
    booking_id: str
    visible: bool
    title: str
    organiser: str | None
    url: str | None
    """The session's page (its history), for those who may see the booking."""
    state: str
    state_label: str
    state_title: str
    """The badge's tooltip: what the state means ("" when its label says it all)."""
    badge: str
    """The badge's kind: the state, or ``reminder``."""
    reminder: bool
    """A reminder: no call, no sites (``orchestrator.sessions.reminders``)."""
    note: str
    """What the page says under the session instead of its sites ("" when it has them)."""
    under_way: bool
    start: str
    end: str
    timezone: str
    when_label: str
    connect_mode: str
    connect_mode_label: str
    media_path: str
    """How the session's media flows when it runs on an SFU: which Janus, and the
    latest move ("" for a mesh)."""
    sites: tuple[SiteView, ...]
    announce: str


@dataclass(frozen=True, slots=True)
class DashboardState:
    generated_at: str
    viewer_timezone: str
    now_label: str
    day_label: str
    layout: str
    centres: tuple[CentreView, ...]
    rooms: tuple[RoomView, ...]
    sessions: tuple[SessionView, ...]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _known_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ValueError, ZoneInfoNotFoundError):
        return False
    return True


def viewer_zone(user: Principal | None, centre_zones: Mapping[str, str]) -> str:
    """The person's own zone, else their centre's, else UTC (always shown with it)."""
    if user is not None and user.timezone and _known_zone(user.timezone):
        return user.timezone
    if user is not None and user.centre_id is not None and user.centre_id in centre_zones:
        return centre_zones[user.centre_id]
    return "UTC"


def day_window(now: datetime, zone: str) -> tuple[datetime, datetime]:
    """Today in ``zone`` as UTC instants (23 or 25 hours long on DST days)."""
    tz = ZoneInfo(zone)
    today: date = now.astimezone(tz).date()
    start = datetime.combine(today, time(0), tz)
    end = datetime.combine(today + timedelta(days=1), time(0), tz)
    return start.astimezone(UTC), end.astimezone(UTC)


def _state_labels(_: Gettext) -> dict[str, str]:
    return {
        "scheduled": _("Scheduled"),
        "preparing": _("Preparing"),
        "live": _("Live"),
        "ended": _("Ended"),
        "cancelled": _("Cancelled"),
        "failed": _("Failed"),
    }


@dataclass(frozen=True, slots=True)
class Badge:
    kind: str
    label: str
    title: str


def state_badge(state: str, end: datetime, reminder: bool, zone: str, ctx: ViewContext) -> Badge:
    """A session's badge (see the module doc); ``zone``: the viewer's."""
    _ = ctx._
    if reminder:
        return Badge(
            "reminder",
            _("Reminder — no call"),
            _("Free time in a calendar: no room connects and no one joins."),
        )
    if state == "ending":
        at = ctx.time(end, zone, "short")
        return Badge(
            state,
            _("Ends at %(time)s") % {"time": at},
            _("The rooms' screens warn that the session ends at %(time)s.") % {"time": at},
        )
    return Badge(state, _state_labels(_).get(state, state), "")


def _connect_mode_labels(_: Gettext) -> dict[str, str]:
    return {
        AUTOMATIC: _("Automatic connect"),
        ONE_BUTTON: _("One button"),
        MANUAL: _("One button"),
        RESERVE_ONLY: _("Reserve only"),
    }


def _readiness_labels(_: Gettext) -> dict[str, str]:
    return {
        "ready": _("Ready"),
        "degraded": _("Degraded"),
        "failing": _("Failing"),
        UNKNOWN: _("Unknown"),
    }


def _session(session: SessionRow, ctx: ViewContext, viewer: str, reminder: bool) -> SessionView:
    """``viewer``: the viewer's zone; ``reminder``: the session is a reminder."""
    _ = ctx._
    room_centres = [ctx.room_centres.get(s.room_id, "") for s in session.sites]
    visible = can_see_booking(ctx.user, session.owner_id, session.owner_centre_id, room_centres)
    title = session.title if visible else _("Session")
    badge = state_badge(session.state, session.end, reminder, viewer, ctx)
    rooms = ", ".join(ctx.room_names.get(s.room_id, s.room_id) for s in session.sites)
    note = _("No call: the rooms stay free (%(rooms)s).") % {"rooms": rooms} if reminder else ""
    zone = session.timezone
    when = "{} {}–{} {}".format(
        ctx.fmt.date(session.start, zone, "medium"),
        ctx.time(session.start, zone, "short"),
        ctx.time(session.end, zone, "short"),
        zone,
    )
    return SessionView(
        key=f"session:{session.id}",
        id=session.id,
        booking_id=session.booking_id,
        visible=visible,
        title=title,
        organiser=(
            organiser_label(ctx.owners.get(session.owner_id or ""), session.organiser)
            if visible
            else None
        ),
        url=f"/sessions/{session.id}" if visible else None,
        state=session.state,
        state_label=badge.label,
        state_title=badge.title,
        badge=badge.kind,
        reminder=reminder,
        note=note,
        under_way=session.state in UNDER_WAY,
        start=iso(session.start) or "",
        end=iso(session.end) or "",
        timezone=zone,
        when_label=when,
        connect_mode=session.connect_mode,
        connect_mode_label=_connect_mode_labels(_).get(session.connect_mode, session.connect_mode),
        media_path=media_path(ctx.sfu.get(session.id), viewer, ctx) if under_way(session) else "",
        sites=() if reminder else tuple(site_view(session, s, ctx, visible) for s in session.sites),
        announce=f"{with_colon(_, title)} {badge.label}",
    )


def under_way(session: SessionRow) -> bool:
    return session.state in UNDER_WAY


def media_path(placed: SessionTopology | None, zone: str, ctx: ViewContext) -> str:
    """ "SFU: <janus>", with "moved from <old> at <time>" after a Janus died."""
    _ = ctx._
    if placed is None:
        return ""
    if placed.previous is not None and placed.reason == "janus-down":
        return _("SFU: %(server)s (moved from %(previous)s at %(time)s)") % {
            "server": placed.server,
            "previous": placed.previous,
            "time": ctx.time(datetime.fromtimestamp(placed.at, UTC), zone, "medium"),
        }
    return _("SFU: %(server)s") % {"server": placed.server}


def _room_activity(
    room_id: str,
    sessions: Sequence[tuple[SessionRow, SessionView]],
    zone: str,
    ctx: ViewContext,
) -> tuple[str, str, str | None]:
    """(activity, label, session id): in a session under way, next today, or free."""
    _ = ctx._
    taking_part = [
        (row, s)
        for row, s in sessions
        if any(site.room_id == room_id and not site.released for site in s.sites)
    ]
    for _row, s in taking_part:
        if s.under_way:
            if s.visible:
                return "in-session", _("In session: %(title)s") % {"title": s.title}, s.id
            return "in-session", _("In session (busy)"), s.id
    upcoming = [
        (row, s) for row, s in taking_part if s.state == "scheduled" and row.start > ctx.now
    ]
    if upcoming:
        row, nxt = upcoming[0]
        at = ctx.time(row.start, zone, "short")
        if nxt.visible:
            return (
                "booked",
                _("Next %(time)s: %(title)s") % {"time": at, "title": nxt.title},
                nxt.id,
            )
        return "booked", _("Next %(time)s (busy)") % {"time": at}, nxt.id
    return "free", _("Free"), None


def build_state(
    snapshot: NetworkSnapshot,
    *,
    online: set[str] | frozenset[str],
    media: Mapping[tuple[str, str], LiveMedia],
    readiness: Mapping[str, Readiness],
    user: Principal | None,
    now: datetime,
    fmt: Formatter,
    gettext: Gettext,
    kept: Mapping[tuple[str, str], KeptMedia] | None = None,
    owners: Mapping[str, str] | None = None,
    reminders: frozenset[str] = frozenset(),
    sfu: Mapping[str, SessionTopology] | None = None,
) -> DashboardState:
    """``kept``: each site's kept media ((session id, room id) -> figures);
    ``owners``: booking owner id -> name; ``reminders``: the sessions that are
    reminders (``orchestrator.sessions.reminders``)."""
    _ = gettext
    zones = {c.id: c.timezone for c in snapshot.centres}
    ctx = ViewContext(
        user=user,
        now=now,
        fmt=fmt,
        _=gettext,
        zones=zones,
        centre_names={c.id: c.name for c in snapshot.centres},
        room_names={r.id: r.name for r in snapshot.rooms},
        room_centres={r.id: r.centre_id for r in snapshot.rooms},
        online=frozenset(online),
        media=media,
        kept=kept or {},
        owners=owners or {},
        sfu=sfu or {},
    )
    zone = viewer_zone(user, zones)
    pairs = [(s, _session(s, ctx, zone, s.id in reminders)) for s in snapshot.sessions]
    sessions = tuple(view for _row, view in pairs)
    centres = tuple(
        CentreView(
            key=f"centre:{c.id}",
            id=c.id,
            name=c.name,
            timezone=c.timezone,
            local_time=ctx.time(now, c.timezone, "short"),
            announce="",
        )
        for c in snapshot.centres
    )
    readiness_labels = _readiness_labels(_)
    rooms = []
    for centre in snapshot.centres:
        for room in snapshot.rooms:
            if room.centre_id != centre.id:
                continue
            activity, activity_label, session_id = _room_activity(
                room.id, pairs, centre.timezone, ctx
            )
            is_online = room.id in ctx.online
            presence_label = _("Online") if is_online else _("Offline")
            ready = readiness.get(room.id, Readiness())
            readiness_label = readiness_labels.get(ready.value, ready.value)
            if ready.detail:
                readiness_label = f"{readiness_label} ({ready.detail})"
            in_session = (_("in session") + " ") if activity == "in-session" else ""
            rooms.append(
                RoomView(
                    key=f"room:{room.id}",
                    id=room.id,
                    name=room.name,
                    centre_id=centre.id,
                    centre_name=centre.name,
                    timezone=centre.timezone,
                    online=is_online,
                    presence="online" if is_online else "offline",
                    presence_label=presence_label,
                    activity=activity,
                    activity_label=activity_label,
                    session_id=session_id,
                    readiness=ready.value,
                    readiness_label=readiness_label,
                    readiness_checked_at=iso(ready.checked_at),
                    announce=f"{with_colon(_, f'{room.name} ({centre.name})')} "
                    + presence_label.lower()
                    + (f", {in_session.strip()}" if in_session else ""),
                )
            )
    layout = hashlib.sha256(
        "|".join(
            [r.key for r in rooms]
            + [s.key for s in sessions]
            + [x.key for s in sessions for x in s.sites]
        ).encode()
    ).hexdigest()[:16]
    return DashboardState(
        generated_at=iso(now) or "",
        viewer_timezone=zone,
        now_label=f"{fmt.time(now, zone, 'medium')} {zone}",
        day_label=fmt.date(now, zone),
        layout=layout,
        centres=centres,
        rooms=tuple(rooms),
        sessions=sessions,
    )
