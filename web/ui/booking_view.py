"""What the booking's page shows, read in one transaction (``detail_page``): the
booking, whether the person may manage it, the session under way or next (or, with
none ahead, the last one that took place) with its participants, the extensions
on offer and what limits them, which sessions are reminders
(``orchestrator.sessions.reminders``), and whether guests may still be invited
(``orchestrator.sessions.invitations``).

A participant taking part now shows its live figures; one that left, or whose
session is over, the figures it kept (``orchestrator.sessions.history``).

Beside the Extend buttons the page says what is true of the rooms
(``extension_hint``): with every extension on offer, that every room is free at
least until the longest would end; otherwise which room is booked from when to when
(``actions.extension_conflicts``, the first hold in the way of the shortest
extension refused). The room is always one of this booking's, which the page lists
to whoever may see it (``orchestrator.people.access``), so it is named, unlike on the room
panel; the other booking is not (its title may be another centre's business), as
in the refusal of an extension.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from orchestrator.booking.conflicts import Conflict
from orchestrator.booking.overview import BookingOverview, SessionLine
from orchestrator.db import DbSession
from orchestrator.errors import DomainError
from orchestrator.lifecycle import TERMINAL_STATES
from orchestrator.models import Booking, Centre
from orchestrator.people.accounts import Principal
from orchestrator.sessions import actions
from orchestrator.sessions.detail import SessionDetail, session_detail
from orchestrator.sessions.history import KeptMedia, kept_media
from orchestrator.sessions.invitations import Reason, closed_reason
from orchestrator.sessions.reminders import reminder_ids
from web.live_media import LiveMedia
from web.ui.organiser import organiser_label


@dataclass(frozen=True, slots=True)
class Participant:
    """A room in the session under way (or next) and what signalling reported."""

    room_id: str
    name: str
    centre: str
    approval: str | None
    joined_at: datetime | None
    first_frame_at: datetime | None
    live_at: datetime | None
    left_at: datetime | None
    released_at: datetime | None
    fps: float | None
    latency_ms: float | None
    kept: KeptMedia | None = None
    """The media summary kept for the room (its figures over the session)."""

    @property
    def present(self) -> bool:
        return self.joined_at is not None and self.left_at is None


@dataclass(frozen=True, slots=True)
class Blocker:
    """A hold that keeps the session from being extended: one of the booking's rooms
    and the other occurrence's times (aware UTC, buffer not included)."""

    room: str
    start: datetime
    end: datetime


@dataclass(frozen=True, slots=True)
class ExtendHint:
    """What the page says beside Extend: every room is free at least until
    ``free_until`` (None: no extension is offered), and the first hold in the way of
    the shortest extension refused (None: every one is offered)."""

    free_until: datetime | None
    blocker: Blocker | None


@dataclass(frozen=True, slots=True)
class DetailPage:
    booking: BookingOverview
    manage: bool
    viewer_zone: str
    current: SessionLine | None
    participants: tuple[Participant, ...]
    extend_options: tuple[int, ...]
    can_end: bool
    now: datetime
    invite_closed: Reason | None = "over"
    """Why no guest may be invited (``orchestrator.sessions.invitations``); None: they may."""
    last: SessionLine | None = None
    """With no session ahead: the last one that took place (shown with its participants)."""
    extend_hint: ExtendHint | None = None
    reminders: frozenset[str] = frozenset()
    """The booking's sessions shown that are reminders (no call)."""
    transparent: bool = False
    """The booking is free time in its calendar: its sessions not begun are reminders."""

    @property
    def can_invite(self) -> bool:
        return self.manage and self.invite_closed is None

    def is_reminder(self, session: SessionLine | None) -> bool:
        return session is not None and session.id in self.reminders

    @property
    def organiser(self) -> str | None:
        return organiser_label(self.booking.owner_name, self.booking.organiser)

    @property
    def zones(self) -> list[tuple[str, str]]:
        """(zone, centres there) for every site of the booking, the viewer's first."""
        found: dict[str, list[str]] = {}
        for room in self.booking.rooms:
            if room.in_booking and room.centre_name not in found.setdefault(room.timezone, []):
                found[room.timezone].append(room.centre_name)
        ordered = sorted(found.items(), key=lambda z: (z[0] != self.viewer_zone, z[0]))
        return [(zone, ", ".join(names)) for zone, names in ordered]


def viewer_zone(db: DbSession, user: Principal, fallback: str | None = None) -> str:
    """The person's own zone, else the fallback (the booking's), else their centre's."""
    if user.timezone:
        return user.timezone
    if fallback:
        return fallback
    centre = db.get(Centre, user.centre_id) if user.centre_id else None
    return centre.timezone if centre else "UTC"


def _media(
    live: Mapping[tuple[str, str], LiveMedia], session_id: str, room_id: str
) -> tuple[float | None, float | None]:
    """The room's frame rate (mean over its peers) and worst median latency, fresh."""
    report = live.get((session_id, room_id))
    peers = report.peers if report else ()
    rates = [p.fps for p in peers]
    latencies = [p.latency_p50_ms for p in peers if p.latency_p50_ms is not None]
    return (
        sum(rates) / len(rates) if rates else None,
        max(latencies) if latencies else None,
    )


def _participants(
    booking: BookingOverview,
    detail: SessionDetail | None,
    live: Mapping[tuple[str, str], LiveMedia],
) -> tuple[Participant, ...]:
    """The rooms of the session; a room that is not taking part now (it left, or the
    session is over) shows the figures it kept instead of live ones."""
    if detail is None:
        return ()
    rooms = {r.room_id: r for r in booking.rooms}
    found = []
    for p in detail.participations:
        room = rooms.get(p.room_id)
        fps, latency = _media(live, detail.id, p.room_id)
        kept = kept_media(p.media)
        taking_part = (
            p.joined_at is not None and p.left_at is None and detail.state not in TERMINAL_STATES
        )
        if kept is not None and not taking_part and fps is None and latency is None:
            fps, latency = kept.fps_mean, kept.latency_p50_ms_max
        found.append(
            Participant(
                room_id=p.room_id,
                name=p.room_name,
                centre=room.centre_name if room else "",
                approval=room.approval if room else None,
                joined_at=p.joined_at,
                first_frame_at=p.first_frame_at,
                live_at=p.live_at,
                left_at=p.left_at,
                released_at=p.released_at,
                fps=fps,
                latency_ms=latency,
                kept=kept,
            )
        )
    return tuple(found)


def _last_held(booking: BookingOverview) -> SessionLine | None:
    """The latest session over that was not cancelled (``past`` is latest first)."""
    return next((s for s in booking.past if s.state != "cancelled"), None)


def first_blocker(conflicts: Sequence[Conflict], names: dict[str, str]) -> Conflict | None:
    """The hold in the way that starts first (by room name among equals)."""
    if not conflicts:
        return None
    return min(conflicts, key=lambda c: (c.busy.start, names.get(c.room_id, c.room_id)))


def extension_hint(
    s: DbSession,
    session: SessionLine,
    options: tuple[int, ...],
    now: datetime,
    choices: Sequence[int] = actions.EXTENSION_CHOICES,
) -> ExtendHint | None:
    """What limits extending ``session`` (see the module doc); None when nothing
    true can be said (the session is over)."""
    free_until = session.end + timedelta(minutes=max(options)) if options else None
    refused = sorted(set(choices) - set(options))
    if not refused:
        return ExtendHint(free_until, None)
    try:
        conflicts = actions.extension_conflicts(s, session.id, refused[0], now)
    except DomainError:
        return None
    names = {r.room_id: r.name for r in actions.held_rooms(s, session.id)}
    first = first_blocker(conflicts, names)
    if first is None:
        return ExtendHint(free_until, None) if free_until else None
    blocker = Blocker(names.get(first.room_id, first.room_id), first.busy.start, first.busy.end)
    return ExtendHint(free_until, blocker)


def detail_page(
    s: DbSession,
    booking: BookingOverview,
    user: Principal,
    now: datetime,
    live: Mapping[tuple[str, str], LiveMedia],
) -> DetailPage:
    """The page of a booking the person may see."""
    manage = booking.manageable_by(user)
    current = booking.current
    last = _last_held(booking) if current is None else None
    shown = current or last
    detail = session_detail(s, shown.id) if shown else None
    reminders = reminder_ids(s, [x.id for x in booking.upcoming + booking.past])
    row = s.get(Booking, booking.id)
    transparent = row is not None and row.transparent
    options: tuple[int, ...] = ()
    hint = None
    extendable = current is not None and current.id not in reminders
    if manage and current is not None and extendable and booking.status != "cancelled":
        options = actions.extension_options(s, current.id, now)
        hint = extension_hint(s, current, options, now)
    return DetailPage(
        booking=booking,
        manage=manage,
        viewer_zone=viewer_zone(s, user, booking.timezone),
        current=current,
        participants=_participants(booking, detail, live),
        extend_options=options,
        can_end=manage and extendable and current is not None and current.start <= now,
        now=now,
        invite_closed=closed_reason(
            ((u.state, u.end) for u in booking.upcoming),
            now,
            transparent=transparent,
            connect_mode=booking.connect_mode,
        ),
        last=last,
        extend_hint=hint,
        reminders=reminders,
        transparent=transparent,
    )
