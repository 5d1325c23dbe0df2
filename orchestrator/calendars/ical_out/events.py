"""VEVENTs of a booking: the series, its overrides, and the text each site reads.

Times are written as the booking's wall-clock times with its TZID (RFC 5545
§3.3.5 form 3), so a weekly 09:00 Europe/Paris series stays at 09:00 across DST
in every client; all-day bookings are written as VALUE=DATE.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from icalendar import Event, vCalAddress, vRecur

from orchestrator.booking.values import CANCELLED
from orchestrator.calendars.ical_out.model import (
    BookingInfo,
    RoomInfo,
    SessionInfo,
    changed_sessions,
    day_span,
    local,
    room_address,
)

BUSY = "Busy"
"""What a ``busy_only`` feed shows instead of a title."""
DEFAULT_ORGANISER = "mailto:bookings@telecentre.invalid"
"""ORGANIZER of an invitation whose booking names nobody (RFC 5546 requires one)."""

_STATUS = {"confirmed": "CONFIRMED", "tentative": "TENTATIVE", "cancelled": "CANCELLED"}


@dataclass(frozen=True, slots=True)
class Style:
    """How a booking is written.

    ``stamp``: DTSTAMP; None in feeds, where RFC 5545 §3.8.7.2 makes it the time the
    event was last revised (so an unchanged feed is byte-identical). ``invitation``:
    rooms carry ROLE/PARTSTAT/RSVP and cancelled occurrences become EXDATE (a REQUEST
    restates the series; each occurrence's cancellation went out as its own CANCEL).
    """

    busy_only: bool = False
    stamp: datetime | None = None
    invitation: bool = False
    join_url: str | None = None
    organiser: str | None = None
    sequence: int | None = None


def mailto(address: str) -> str:
    """A calendar user address: ``mailto:`` added to a bare e-mail address."""
    address = address.strip()
    return address if ":" in address else f"mailto:{address}"


def _clock(moment: datetime) -> str:
    return moment.strftime("%H:%M")


def site_times(start: datetime, zone: str, rooms: Sequence[RoomInfo]) -> str:
    """The start as each site reads it, e.g. ``Fontainebleau 09:00 (Europe/Paris) /
    Montréal 03:00 (America/Toronto)``: one entry per centre, in room order, led by
    the booking's own zone when no centre shares it; ``+1 day`` marks a site whose
    date differs from the booking zone's."""
    home = start.astimezone(ZoneInfo(zone))
    parts: list[str] = []
    if zone not in {r.timezone for r in rooms}:
        parts.append(f"{zone} {_clock(home)}")
    seen: set[str] = set()
    for room in rooms:
        if room.centre in seen:
            continue
        seen.add(room.centre)
        there = start.astimezone(ZoneInfo(room.timezone))
        shift = (there.date() - home.date()).days
        marker = f" {shift:+d} day" if shift else ""
        parts.append(f"{room.centre} {_clock(there)}{marker} ({room.timezone})")
    return " / ".join(parts)


def _description(booking: BookingInfo, start: datetime | None, style: Style) -> str | None:
    lines: list[str] = []
    if start is not None and not booking.all_day:
        lines.append(site_times(start, booking.timezone, booking.rooms))
        if booking.recurring and start == _instant(booking, booking.start_local):
            lines.append(
                f"Local times of the first occurrence, {booking.start_local.date().isoformat()}."
            )
    if style.join_url:
        lines.append(f"Join: {style.join_url}")
    return "\n".join(lines) or None


def _instant(booking: BookingInfo, wall: datetime) -> datetime:
    return wall.replace(tzinfo=ZoneInfo(booking.timezone))


def when(booking: BookingInfo, wall: datetime) -> datetime | date:
    """A wall-clock time of the booking as written: a date for all-day bookings,
    else the time with the booking's zone (TZID)."""
    return wall.date() if booking.all_day else _instant(booking, wall)


def _span(booking: BookingInfo, start: datetime, end: datetime) -> tuple[datetime, datetime]:
    return day_span(start, end) if booking.all_day else (start, end)


def _rooms(event: Event, rooms: Sequence[RoomInfo], invitation: bool) -> None:
    event.add("LOCATION", ", ".join(f"{r.name} ({r.centre})" for r in rooms))
    for room in rooms:
        attendee = vCalAddress(room_address(room.id))
        attendee.params["CUTYPE"] = "ROOM"
        attendee.params["CN"] = room.name
        if invitation:
            attendee.params["ROLE"] = "REQ-PARTICIPANT"
            attendee.params["PARTSTAT"] = "ACCEPTED"
            attendee.params["RSVP"] = "FALSE"
        event.add("ATTENDEE", attendee)


def _organiser(booking: BookingInfo, style: Style) -> str | None:
    chosen = style.organiser or booking.organiser
    if chosen is None and style.invitation:
        chosen = DEFAULT_ORGANISER
    return mailto(chosen) if chosen else None


def base_event(
    booking: BookingInfo,
    style: Style,
    *,
    start_local: datetime,
    end_local: datetime,
    start: datetime | None,
    title: str,
    status: str,
    revised: datetime,
) -> Event:
    """One VEVENT with what every form of a booking shares. ``start`` is the aware
    instant the site times are computed from (None: no site times)."""
    event = Event()
    event.add("UID", booking.uid)
    event.add("DTSTAMP", style.stamp or revised)
    event.add("LAST-MODIFIED", revised)
    event.add("SEQUENCE", booking.sequence if style.sequence is None else style.sequence)
    event.add("SUMMARY", BUSY if style.busy_only else title)
    first, after = _span(booking, start_local, end_local)
    event.add("DTSTART", when(booking, first))
    event.add("DTEND", when(booking, after))
    event.add("STATUS", _STATUS.get(status, status.upper()))
    event.add("TRANSP", "TRANSPARENT" if booking.transparent else "OPAQUE")
    _rooms(event, booking.rooms, style.invitation)
    organiser = None if style.busy_only else _organiser(booking, style)
    if organiser is not None:
        event.add("ORGANIZER", vCalAddress(organiser))
    description = None if style.busy_only else _description(booking, start, style)
    if description is not None:
        event.add("DESCRIPTION", description)
    if style.join_url and not style.busy_only:
        event.add("URL", style.join_url)
    return event


def _moved(session: SessionInfo) -> bool:
    return session.start != session.recurrence_id


def master_event(
    booking: BookingInfo, style: Style, *, extra_exdates: Sequence[datetime] = ()
) -> Event:
    """The series VEVENT (or the single event). A single booking's one session is
    folded in: its move, new title or cancellation is the event's own."""
    start_local, end_local, title = booking.start_local, booking.end_local, booking.title
    status, revised = booking.status, booking.updated_at
    if not booking.recurring and booking.sessions:
        only = booking.sessions[0]
        if _moved(only) or only.end != _instant(booking, end_local):
            start_local = local(only.start, booking.timezone)
            end_local = local(only.end, booking.timezone)
        title = only.title or title
        status = CANCELLED if only.state == CANCELLED else status
        revised = max(revised, only.updated_at)
    event = base_event(
        booking,
        style,
        start_local=start_local,
        end_local=end_local,
        start=_instant(booking, start_local),
        title=title,
        status=status,
        revised=revised,
    )
    if booking.recurring:
        for rule in booking.rrules:
            event.add("RRULE", vRecur.from_ical(rule))
        if booking.rdates:
            event.add("RDATE", [when(booking, d) for d in booking.rdates])
        exdates = sorted({*booking.exdates, *extra_exdates})
        if exdates:
            event.add("EXDATE", [when(booking, d) for d in exdates])
    return event


def override_event(booking: BookingInfo, session: SessionInfo, style: Style) -> Event:
    """The VEVENT of one occurrence that left the rule, named by its RECURRENCE-ID."""
    cancelled = session.state == CANCELLED or booking.cancelled
    event = base_event(
        booking,
        style,
        start_local=local(session.start, booking.timezone),
        end_local=local(session.end, booking.timezone),
        start=session.start,
        title=session.title or booking.title,
        status=CANCELLED if cancelled else booking.status,
        revised=max(booking.updated_at, session.updated_at),
    )
    event.add("RECURRENCE-ID", when(booking, local(session.recurrence_id, booking.timezone)))
    return event


def series_events(booking: BookingInfo, style: Style) -> list[Event]:
    """The master VEVENT, then one per changed occurrence by original start.

    Feeds write a cancelled occurrence as its own VEVENT with STATUS:CANCELLED and
    its RECURRENCE-ID; invitations (``style.invitation``) fold it into EXDATE.
    """
    if not booking.recurring:
        return [master_event(booking, style)]
    changed = changed_sessions(booking)
    cancelled = [s for s in changed if s.state == CANCELLED] if style.invitation else []
    master = master_event(
        booking,
        style,
        extra_exdates=[local(s.recurrence_id, booking.timezone) for s in cancelled],
    )
    return [master] + [override_event(booking, s, style) for s in changed if s not in cancelled]


def occurrence_times(booking: BookingInfo, recurrence_id: datetime) -> SessionInfo:
    """The stored session of an occurrence, or what the rule gives it when none is
    stored (the occurrence is past the booking horizon)."""
    for session in booking.sessions:
        if session.recurrence_id == recurrence_id:
            return session
    length = _instant(booking, booking.end_local) - _instant(booking, booking.start_local)
    return SessionInfo(recurrence_id, recurrence_id, recurrence_id + max(length, timedelta(0)))
