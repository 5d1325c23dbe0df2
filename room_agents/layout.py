"""What the room screen shows, as pure rules: where the tiles go, and what the idle
view and the warnings say.

Rules:

- The screen is a header band (the room's name, the clock, the "live", privacy and
  sharing indicators) over a body. Everything below is computed for a screen of a
  given size at a given instant; nothing here draws, reads a clock or a track.
- **Grid** (no content share): n remote sites in the grid of ``cols x rows`` cells
  that gives each 16:9 picture the largest area; an incomplete last row is
  centred. Every tile is role ``main``.
- **Content share**: the shared content takes the body above a strip
  (``STRIP_FRACTION`` of the body's height) in which the sites' pictures sit in one
  row, centred (role ``strip``); the content tile has role ``content``. When
  several sites share at once, the first by site name is large and the other
  content tiles join the strip.
- Up to 8 sites (an SFU session) fit either way: at 1920x1080 eight sites take a
  3x3 grid with the last row centred, and under content a strip of eight.
- **Speaking**: the camera tile of the site that speaks (room_agents.speaker) is
  marked ``speaking``, and the screen draws a border around it; never a content tile.
- Pictures are fitted into their tile keeping their aspect (``fit``).
- **Idle view** (not in a call, or in one with nobody there yet): the room's
  name, the clock and date in the room's local time, the next session (title,
  local start and end, the other sites) with a countdown to its start, and the
  sessions after it (``IDLE_BOOKINGS`` at most). Countdowns read ``M:SS`` below an
  hour, ``H h MM min`` below a day, and the weekday and time beyond.
- **Pre-roll**: in a session that has not started (the rooms join at
  ``start - lead`` behind their starting cards), the header counts down to the start.
- **End warnings** (docs/protocol.md, DESIGN "Session lifecycle"): in a session, a
  warning of level 5 from ``end - 5 min`` and of level 1 from ``end - 1 min``,
  with the time left as ``M:SS``.
- Local times are the room PC's own zone unless a zone is given: the room PC
  stands in the room.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, tzinfo
from typing import Final, Literal, NamedTuple

from common.peers import room_peer_id
from common.sessions import TERMINAL_STATES
from signalling import protocol as p

ASPECT: Final = 16 / 9
HEADER_FRACTION: Final = 1 / 14
STRIP_FRACTION: Final = 0.24
GAP_FRACTION: Final = 1 / 120
IDLE_BOOKINGS: Final = 3
WARN_FIRST: Final = 300.0  # seconds before the end: the 5-minute warning
WARN_LAST: Final = 60.0  # the 1-minute warning

Role = Literal["main", "strip", "content"]


class Rect(NamedTuple):
    x: int
    y: int
    w: int
    h: int


@dataclass(frozen=True, slots=True)
class Booking:
    """A session of the room's schedule, as the screen shows it."""

    session_id: str
    title: str
    start: float
    end: float
    sites: tuple[str, ...] = ()  # the other rooms' names


@dataclass(frozen=True, slots=True)
class RoomView:
    """What the agent tells its screen; the screen reads it on every paint."""

    room_name: str = ""
    bookings: tuple[Booking, ...] = ()
    session_id: str | None = None  # the session the room is in (joined last)
    live: bool = False  # the room's own camera is being sent
    privacy: bool = False
    sharing: bool = False  # the room shares its content
    names: Mapping[str, str] = field(default_factory=dict)  # peer id -> site name


@dataclass(frozen=True, slots=True)
class Source:
    """A remote picture the screen could show: a site's camera or its content."""

    peer_id: str
    content: bool = False


@dataclass(frozen=True, slots=True)
class Tile:
    peer_id: str
    site: str
    rect: Rect
    role: Role
    content: bool = False
    speaking: bool = False


@dataclass(frozen=True, slots=True)
class EndWarning:
    level: int  # 5 or 1 (minutes)
    text: str


@dataclass(frozen=True, slots=True)
class IdleView:
    clock: str
    date: str
    next_title: str | None  # None: nothing booked
    next_when: str | None
    next_sites: str | None
    countdown: str | None
    later: tuple[str, ...] = ()

    def lines(self) -> list[str]:
        """The idle view's text, top to bottom (what the screen draws)."""
        out = [self.clock, self.date]
        if self.next_title is None:
            out.append("No sessions booked")
        else:
            out += ["Next session", self.next_title, self.next_when or ""]
            if self.next_sites:
                out.append(self.next_sites)
            if self.countdown:
                out.append(self.countdown)
        if self.later:
            out.append("Later")
            out += list(self.later)
        return out


@dataclass(frozen=True, slots=True)
class Header:
    room: str
    clock: str
    live: bool
    privacy: bool
    sharing: bool
    session: str | None  # the title of the session the room is in
    countdown: str | None = None  # before that session starts (pre-roll)


@dataclass(frozen=True, slots=True)
class ScreenPlan:
    size: tuple[int, int]
    header_rect: Rect
    body: Rect
    header: Header
    tiles: tuple[Tile, ...] = ()
    idle: IdleView | None = None
    waiting: str | None = None  # in a session, nobody there yet
    warning: EndWarning | None = None

    @property
    def mode(self) -> str:
        return "call" if self.tiles else "idle"

    def structure(self) -> tuple[object, ...]:
        """What changes the arrangement (a full repaint); the clock does not."""
        return (self.size, self.tiles, self.idle is None, self.waiting)


# --- geometry ---------------------------------------------------------------------------


def fit(src_w: int, src_h: int, box: Rect) -> Rect:
    """The largest rectangle of the source's aspect inside ``box``, centred."""
    if src_w <= 0 or src_h <= 0 or box.w <= 0 or box.h <= 0:
        return Rect(box.x, box.y, 0, 0)
    scale = min(box.w / src_w, box.h / src_h)
    w, h = max(int(src_w * scale) // 2 * 2, 2), max(int(src_h * scale) // 2 * 2, 2)
    return Rect(box.x + (box.w - w) // 2, box.y + (box.h - h) // 2, min(w, box.w), min(h, box.h))


def grid_shape(n: int, width: int, height: int, aspect: float = ASPECT) -> tuple[int, int]:
    """(cols, rows) for ``n`` pictures of ``aspect`` that gives each the largest area;
    ties go to fewer rows."""
    if n <= 0:
        return (0, 0)
    best, best_area = (n, 1), -1.0
    for cols in range(1, n + 1):
        rows = math.ceil(n / cols)
        cell_w, cell_h = width / cols, height / rows
        pic_w = min(cell_w, cell_h * aspect)
        area = pic_w * pic_w / aspect
        if area > best_area + 1e-9:
            best, best_area = (cols, rows), area
    return best


def grid(n: int, area: Rect, gap: int = 0, aspect: float = ASPECT) -> list[Rect]:
    """``n`` tiles of ``aspect`` in the best grid inside ``area``, rows centred."""
    cols, rows = grid_shape(n, area.w, area.h, aspect)
    if n <= 0:
        return []
    cell_w = (area.w - gap * (cols - 1)) / cols
    cell_h = (area.h - gap * (rows - 1)) / rows
    tile_w = int(min(cell_w, cell_h * aspect))
    tile_h = int(tile_w / aspect)
    block_h = rows * tile_h + (rows - 1) * gap
    top = area.y + (area.h - block_h) // 2
    out: list[Rect] = []
    for row in range(rows):
        in_row = min(cols, n - row * cols)
        row_w = in_row * tile_w + (in_row - 1) * gap
        left = area.x + (area.w - row_w) // 2
        y = top + row * (tile_h + gap)
        out += [Rect(left + i * (tile_w + gap), y, tile_w, tile_h) for i in range(in_row)]
    return out


def strip(n: int, area: Rect, gap: int = 0, aspect: float = ASPECT) -> list[Rect]:
    """``n`` tiles in one row inside ``area``, as large as fits, centred."""
    if n <= 0:
        return []
    tile_w = int(min((area.w - gap * (n - 1)) / n, area.h * aspect))
    tile_h = int(tile_w / aspect)
    row_w = n * tile_w + (n - 1) * gap
    left = area.x + (area.w - row_w) // 2
    y = area.y + (area.h - tile_h) // 2
    return [Rect(left + i * (tile_w + gap), y, tile_w, tile_h) for i in range(n)]


def content_split(area: Rect, strip_count: int, gap: int = 0) -> tuple[Rect, Rect]:
    """(content, strip): the strip along the bottom, or nothing when it is empty."""
    if strip_count <= 0:
        return area, Rect(area.x, area.y + area.h, area.w, 0)
    strip_h = int(area.h * STRIP_FRACTION)
    content = Rect(area.x, area.y, area.w, area.h - strip_h - gap)
    return content, Rect(area.x, area.y + area.h - strip_h, area.w, strip_h)


def screen_areas(width: int, height: int) -> tuple[Rect, Rect]:
    """(header, body) of a screen."""
    header_h = max(int(height * HEADER_FRACTION), 16)
    return Rect(0, 0, width, header_h), Rect(0, header_h, width, height - header_h)


def arrange(
    sources: Sequence[Source],
    names: Mapping[str, str],
    body: Rect,
    gap: int = 0,
    speaker: str | None = None,
) -> tuple[Tile, ...]:
    """Tiles for the remote pictures: a grid, or content large over a strip; the
    camera tile of ``speaker`` is marked as speaking."""
    return tuple(
        replace(t, speaking=True) if t.peer_id == speaker and not t.content else t
        for t in _arrange(sources, names, body, gap)
    )


def _arrange(
    sources: Sequence[Source], names: Mapping[str, str], body: Rect, gap: int
) -> tuple[Tile, ...]:

    def site(source: Source) -> str:
        return names.get(source.peer_id) or source.peer_id

    ordered = sorted(sources, key=lambda s: (site(s), s.peer_id, s.content))
    shared = [s for s in ordered if s.content]
    if not shared:
        rects = grid(len(ordered), body, gap)
        return tuple(
            Tile(s.peer_id, site(s), r, "main") for s, r in zip(ordered, rects, strict=True)
        )
    large, rest = shared[0], [s for s in ordered if s is not shared[0]]
    content_rect, strip_rect = content_split(body, len(rest), gap)
    tiles = [Tile(large.peer_id, site(large), content_rect, "content", content=True)]
    for s, r in zip(rest, strip(len(rest), strip_rect, gap), strict=True):
        tiles.append(Tile(s.peer_id, site(s), r, "strip", content=s.content))
    return tuple(tiles)


# --- words and times ---------------------------------------------------------------------


def local(t: float, tz: tzinfo | None) -> datetime:
    """``t`` in ``tz``; None is the machine's own zone (DST-correct for that instant)."""
    return datetime.fromtimestamp(t, tz) if tz is not None else datetime.fromtimestamp(t)


def clock_text(t: float, tz: tzinfo | None) -> str:
    return local(t, tz).strftime("%H:%M")


def date_text(t: float, tz: tzinfo | None) -> str:
    d = local(t, tz)
    return f"{d:%A} {d.day} {d:%B %Y}"


def span_text(start: float, end: float, now: float, tz: tzinfo | None) -> str:
    """``14:00 - 15:00`` (an en dash), with the day in front when it is not today."""
    s, e, today = local(start, tz), local(end, tz), local(now, tz).date()
    day = "" if s.date() == today else f"{s:%a} {s.day} {s:%b} "
    return f"{day}{s:%H:%M} – {e:%H:%M}"


def duration_text(seconds: float) -> str:
    """``M:SS`` below an hour, ``H h MM min`` beyond; never negative."""
    total = max(math.ceil(seconds), 0)
    if total < 3600:
        return f"{total // 60}:{total % 60:02d}"
    minutes = total // 60
    return f"{minutes // 60} h {minutes % 60:02d} min"


def countdown_text(start: float, now: float, tz: tzinfo | None) -> str:
    left = start - now
    if left <= 0:
        return "Starting now"
    if left < 86400:
        return f"Starts in {duration_text(left)}"
    s = local(start, tz)
    return f"Starts {s:%A} at {s:%H:%M}"


def end_warning(end: float, now: float) -> EndWarning | None:
    """Level 5 from ``end - 5 min``, level 1 from ``end - 1 min``; none after the end."""
    left = end - now
    if left <= 0 or left > WARN_FIRST:
        return None
    level = 1 if left <= WARN_LAST else 5
    return EndWarning(level, f"This session ends in {duration_text(left)}")


def upcoming(bookings: Sequence[Booking], now: float) -> list[Booking]:
    """Bookings not over yet, soonest first."""
    return sorted((b for b in bookings if b.end > now), key=lambda b: (b.start, b.session_id))


def idle_view(bookings: Sequence[Booking], now: float, tz: tzinfo | None) -> IdleView:
    coming = [b for b in upcoming(bookings, now) if b.start > now] or upcoming(bookings, now)
    clock, date = clock_text(now, tz), date_text(now, tz)
    if not coming:
        return IdleView(clock, date, None, None, None, None)
    nxt, later = coming[0], coming[1 : 1 + IDLE_BOOKINGS]
    return IdleView(
        clock=clock,
        date=date,
        next_title=nxt.title or "Session",
        next_when=span_text(nxt.start, nxt.end, now, tz),
        next_sites=("with " + ", ".join(nxt.sites)) if nxt.sites else None,
        countdown=countdown_text(nxt.start, now, tz),
        later=tuple(f"{span_text(b.start, b.end, now, tz)}  {b.title}" for b in later),
    )


def plan_screen(
    view: RoomView,
    sources: Sequence[Source],
    now: float,
    size: tuple[int, int],
    tz: tzinfo | None = None,
    speaker: str | None = None,
) -> ScreenPlan:
    """Everything the screen shows at ``now`` (``speaker``: the site that speaks)."""
    width, height = size
    header_rect, body = screen_areas(width, height)
    session = next((b for b in view.bookings if b.session_id == view.session_id), None)
    header = Header(
        room=view.room_name,
        clock=clock_text(now, tz),
        live=view.live and not view.privacy and view.session_id is not None,
        privacy=view.privacy,
        sharing=view.sharing,
        session=session.title if session else None,
        countdown=(
            countdown_text(session.start, now, tz)
            if session is not None and now < session.start
            else None
        ),
    )
    warning = end_warning(session.end, now) if session is not None else None
    gap = max(int(width * GAP_FRACTION), 2)
    tiles = arrange(sources, view.names, body, gap, speaker) if view.session_id is not None else ()
    plan = ScreenPlan(size, header_rect, body, header, tiles=tiles, warning=warning)
    if tiles:
        return plan
    if session is not None:
        waiting = (
            f"{session.title} – waiting for {', '.join(session.sites)}"
            if session.sites
            else f"{session.title} – waiting for the other sites"
        )
        if now < session.start:
            waiting += f" – {countdown_text(session.start, now, tz).lower()}"
        return ScreenPlan(size, header_rect, body, header, waiting=waiting, warning=warning)
    return ScreenPlan(
        size, header_rect, body, header, idle=idle_view(view.bookings, now, tz), warning=warning
    )


# --- from the schedule --------------------------------------------------------------------


def bookings_from_schedule(
    entries: Sequence[p.ScheduleEntry], self_peer_id: str
) -> tuple[Booking, ...]:
    """The room's coming sessions (terminal ones left out), with the other rooms' names."""
    out = []
    for e in entries:
        if e.state in TERMINAL_STATES:
            continue
        sites = tuple(r.name for r in e.rooms if room_peer_id(r.room_id) != self_peer_id)
        out.append(Booking(e.session_id, e.title, e.start, e.end, sites))
    return tuple(out)


def names_from_schedule(entries: Sequence[p.ScheduleEntry]) -> dict[str, str]:
    """Peer id -> room name, for every room of the schedule."""
    return {room_peer_id(r.room_id): r.name for e in entries for r in e.rooms}
