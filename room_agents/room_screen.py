"""The room screen: a fullscreen window (SDL2 through pygame) showing the remote sites,
their shared content, and, between sessions, the room's next bookings.

Rules:

- ``RoomScreen`` is a ``HeadlessScreen`` (room_agents.screen) that also shows what
  it drains: it measures exactly as the headless screen does, and the agent cannot
  tell them apart (``Screen``). What is drawn where is room_agents.layout's
  ``plan_screen``, recomputed on every paint from the agent's ``RoomView``.
- The event loop never waits on the window. SDL, the pixel conversion (swscale,
  which runs without the GIL) and the blits run on one thread of their own
  (``Painter``), which opens the window, paints and closes it: SDL wants one thread
  for a window. The loop hands it, ``fps`` times a second, the plan and the latest
  decoded frame of each tile, and waits for it without blocking; a paint that takes
  longer than a period delays the next one, frames are never queued.
- Only what changed is repainted: a tile with a new frame, the header when its text
  changes, everything when the arrangement changes (or the window was exposed).
- A display that cannot be opened (no X server, a wrong ``DISPLAY``) is logged and
  reported, and the room carries on headless: the call matters more than the screen.
- The screen writes a report (JSON, atomically, twice a second and on close) of
  what it shows: the mode, each tile (peer id, site name, rectangle, role
  ``main``/``strip``/``content``, frames received and shown, ``speaking``), the header, the end
  warning and the idle view's lines, plus the render thread's CPU time. Tests read
  it; so can a technician.
- SDL must not take SIGINT/SIGTERM from the agent, which leaves its sessions on
  them (``SDL_NO_SIGNAL_HANDLERS``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import tzinfo
from pathlib import Path
from typing import Any, Final

import av

from room_agents.layout import Rect, ScreenPlan, Tile, fit, plan_screen
from room_agents.media import Clock
from room_agents.screen import HeadlessScreen

log = logging.getLogger(__name__)

REPORT_INTERVAL: Final = 0.5
NO_SCREEN_DRIVERS: Final = frozenset({"offscreen", "dummy"})
Key = tuple[str, bool]  # (peer id, content)

BACKGROUND: Final = (16, 18, 24)
HEADER_BG: Final = (32, 36, 46)
TILE_BG: Final = (0, 0, 0)
TEXT: Final = (240, 240, 240)
DIM: Final = (160, 166, 178)
ACCENT: Final = (120, 190, 255)
LIVE: Final = (214, 40, 40)
PRIVACY: Final = (200, 120, 20)
SHARING: Final = (40, 110, 200)
WARN_5: Final = (200, 140, 0)
WARN_1: Final = (200, 30, 30)
SPEAKING: Final = (80, 220, 120)


def tile_key(tile: Tile) -> Key:
    return (tile.peer_id, tile.content)


@dataclass(slots=True)
class PaintResult:
    shown: list[Key]  # tiles that got a new frame
    full: bool  # the whole screen was repainted
    cpu: float  # render thread CPU seconds spent in this paint
    wall: float  # seconds the paint took, the display's own work included


class Painter:
    """Owns the window; every method runs on the screen's own thread."""

    def __init__(self, size: tuple[int, int] | None, display: str | None, title: str) -> None:
        self.requested = size
        self.display = display
        self.title = title
        self.size = (0, 0)
        self._pg: Any = None
        self._surface: Any = None
        self._fonts: dict[int, Any] = {}
        self._reformatters: dict[Key, Any] = {}
        self._pictures: dict[Key, tuple[Any, Any, Rect]] = {}  # frame, rgb frame, rect
        self._last_structure: object = None
        self._last_texts: object = None

    def open(self) -> tuple[int, int]:
        os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
        os.environ.setdefault("SDL_NO_SIGNAL_HANDLERS", "1")
        os.environ.setdefault("SDL_VIDEO_WINDOW_POS", "0,0")
        import pygame

        self._pg = pygame
        before = os.environ.get("DISPLAY")
        if self.display is not None:
            os.environ["DISPLAY"] = self.display
        try:
            pygame.display.init()
            pygame.font.init()
            if self.requested is None:
                self._surface = pygame.display.set_mode((0, 0), pygame.FULLSCREEN)
            else:
                self._surface = pygame.display.set_mode(self.requested, pygame.NOFRAME)
        finally:
            if self.display is not None:
                if before is None:
                    os.environ.pop("DISPLAY", None)
                else:
                    os.environ["DISPLAY"] = before
        if pygame.display.get_driver() in NO_SCREEN_DRIVERS:
            # SDL falls back to drawing into memory when no display answers.
            driver = pygame.display.get_driver()
            pygame.display.quit()
            raise RuntimeError(f"no display to draw on (SDL fell back to its {driver} driver)")
        pygame.display.set_caption(self.title)
        pygame.mouse.set_visible(False)
        self.size = self._surface.get_size()
        return self.size

    def close(self) -> None:
        if self._pg is not None:
            self._pictures.clear()
            self._pg.display.quit()
            self._pg.font.quit()
            self._pg = None

    # -- painting --

    def paint(
        self, plan: ScreenPlan, frames: Mapping[Key, tuple[av.VideoFrame, bool]]
    ) -> PaintResult:
        """Paint ``plan``; ``frames`` holds each tile's latest frame and whether it is
        new since the previous paint."""
        started, began = time.thread_time(), time.perf_counter()
        pg = self._pg
        exposed = False
        for event in pg.event.get():
            if event.type in (pg.VIDEOEXPOSE, pg.WINDOWEXPOSED, pg.WINDOWSIZECHANGED):
                exposed = True
        structure = plan.structure()
        texts = (plan.header, plan.warning, plan.idle, plan.waiting)
        full = exposed or structure != self._last_structure
        dirty: list[Rect] = []
        if full:
            self._surface.fill(BACKGROUND)
            self._pictures = {k: v for k, v in self._pictures.items() if k in frames}
            for tile in plan.tiles:
                self._fill(tile.rect, TILE_BG)
        if full or texts != self._last_texts:
            self._paint_header(plan)
            dirty.append(plan.header_rect)
            if not plan.tiles:
                self._surface.fill(BACKGROUND, plan.body)
                self._paint_body_text(plan)
                dirty.append(plan.body)
        shown: list[Key] = []
        for tile in plan.tiles:
            key = tile_key(tile)
            frame, new = frames.get(key, (None, False))
            if frame is None:
                if full:
                    self._text_centred("Connecting…", tile.rect, DIM, tile.rect.h // 10)
                continue
            if new or full:
                self._blit_frame(key, tile, frame)
                if tile.speaking:
                    self._border(tile.rect, SPEAKING)
                dirty.append(tile.rect)
                if new:
                    shown.append(key)
        self._last_structure, self._last_texts = structure, texts
        if full:
            pg.display.flip()
        elif dirty:
            pg.display.update([pg.Rect(*r) for r in dirty])
        return PaintResult(shown, full, time.thread_time() - started, time.perf_counter() - began)

    def _blit_frame(self, key: Key, tile: Tile, frame: av.VideoFrame) -> None:
        from av.video.reformatter import VideoReformatter

        pg = self._pg
        box = fit(frame.width, frame.height, tile.rect)
        # A width of whole 16-pixel groups makes rgb0 rows 64-byte aligned, so the
        # converted plane has no padding and pygame can borrow it as it is.
        width = box.w // 16 * 16
        box = Rect(box.x + (box.w - width) // 2, box.y, width, box.h)
        if box.w <= 0 or box.h <= 0:
            return
        reformatter = self._reformatters.get(key)
        if reformatter is None:
            reformatter = self._reformatters[key] = VideoReformatter()
        rgb = reformatter.reformat(frame, width=box.w, height=box.h, format="rgb0")
        plane = rgb.planes[0]
        if plane.line_size != box.w * 4:
            raise ValueError(f"unexpected row padding: {plane.line_size} for {box.w} px")
        picture = pg.image.frombuffer(memoryview(plane), (box.w, box.h), "RGBX")
        old = self._pictures.get(key)
        if old is not None and old[2] != box:
            self._fill(tile.rect, TILE_BG)  # the picture changed shape: clear the bars
        self._surface.blit(picture, (box.x, box.y))
        self._pictures[key] = (frame, rgb, box)  # the surface borrows rgb's memory
        label = f"Shared by {tile.site}" if tile.content else tile.site
        size = max(tile.rect.h // (16 if tile.role == "content" else 9), 12)
        self._label(label, box, size)

    # -- text --

    def _font(self, px: int) -> Any:
        px = max(int(px), 8)
        font = self._fonts.get(px)
        if font is None:
            font = self._fonts[px] = self._pg.font.Font(None, px)
        return font

    def _border(self, rect: Rect, colour: tuple[int, int, int]) -> None:
        """A frame inside ``rect``, drawn over the picture (the speaker's highlight)."""
        width = max(rect.w // 120, 3)
        self._pg.draw.rect(self._surface, colour, self._pg.Rect(*rect), width)

    def _fill(self, rect: Rect, colour: tuple[int, int, int]) -> None:
        self._surface.fill(colour, self._pg.Rect(*rect))

    def _render(self, text: str, px: int, colour: tuple[int, int, int]) -> Any:
        return self._font(px).render(text, True, colour)

    def _text_centred(self, text: str, box: Rect, colour: tuple[int, int, int], px: int) -> None:
        image = self._render(text, px, colour)
        w, h = image.get_size()
        self._surface.blit(image, (box.x + (box.w - w) // 2, box.y + (box.h - h) // 2))

    def _label(self, text: str, box: Rect, px: int) -> None:
        image = self._render(text, px, TEXT)
        w, h = image.get_size()
        pad = max(px // 4, 3)
        back = Rect(box.x, box.y + box.h - h - 2 * pad, min(w + 2 * pad, box.w), h + 2 * pad)
        self._fill(back, (0, 0, 0))
        self._surface.blit(image, (back.x + pad, back.y + pad))

    def _pill(self, text: str, colour: tuple[int, int, int], right: int, header: Rect) -> int:
        """Draw a coloured pill ending at ``right``; return where it starts."""
        px = int(header.h * 0.5)
        image = self._render(text, px, TEXT)
        w, h = image.get_size()
        pad = px // 3
        dot = h // 3  # a white dot before the word, as on a camera's tally light
        inner = w + dot * 2 + pad
        box = Rect(
            right - inner - 2 * pad, header.y + (header.h - h - pad) // 2, inner + 2 * pad, h + pad
        )
        self._fill(box, colour)
        self._pg.draw.circle(self._surface, TEXT, (box.x + pad + dot, box.y + box.h // 2), dot)
        self._surface.blit(image, (box.x + 2 * pad + 2 * dot, box.y + pad // 2))
        return box.x

    def _paint_header(self, plan: ScreenPlan) -> None:
        header, hr = plan.header, plan.header_rect
        self._fill(hr, HEADER_BG)
        px = int(hr.h * 0.6)
        margin = hr.h // 3
        room = self._render(header.room, px, TEXT)
        self._surface.blit(room, (hr.x + margin, hr.y + (hr.h - room.get_height()) // 2))
        clock = self._render(header.clock, px, TEXT)
        right = hr.x + hr.w - margin - clock.get_width()
        self._surface.blit(clock, (right, hr.y + (hr.h - clock.get_height()) // 2))
        for on, text, colour in (
            (header.live, "LIVE", LIVE),
            (header.privacy, "PRIVACY: CAMERA AND MICROPHONE OFF", PRIVACY),
            (header.sharing, "SHARING", SHARING),
        ):
            if on:
                right = self._pill(text, colour, right - margin, hr)
        middle = Rect(hr.x + hr.w // 4, hr.y, hr.w // 2, hr.h)
        if plan.warning is not None:
            colour = WARN_1 if plan.warning.level == 1 else WARN_5
            self._fill(Rect(middle.x, hr.y + 2, middle.w, hr.h - 4), colour)
            self._text_centred(plan.warning.text, middle, TEXT, px)
        elif header.session and header.countdown:
            text = f"{header.session} – {header.countdown.lower()}"
            self._text_centred(text, middle, TEXT, int(px * 0.8))
        elif header.session:
            self._text_centred(header.session, middle, DIM, int(px * 0.8))

    def _paint_body_text(self, plan: ScreenPlan) -> None:
        body = plan.body
        unit = body.h / 24
        if plan.waiting is not None:
            self._text_centred(plan.waiting, body, TEXT, int(unit * 1.6))
            return
        idle = plan.idle
        if idle is None:
            return
        rows: list[tuple[str, float, tuple[int, int, int]]] = [
            (plan.header.room, 1.6, DIM),
            (idle.clock, 4.5, TEXT),
            (idle.date, 1.3, DIM),
        ]
        if idle.next_title is None:
            rows.append(("No sessions booked", 1.6, DIM))
        else:
            rows += [("Next session", 1.1, DIM), (idle.next_title, 2.0, TEXT)]
            rows.append((idle.next_when or "", 1.4, TEXT))
            if idle.next_sites:
                rows.append((idle.next_sites, 1.2, DIM))
            if idle.countdown:
                rows.append((idle.countdown, 2.2, ACCENT))
        if idle.later:
            rows.append(("Later", 1.0, DIM))
            rows += [(line, 1.0, DIM) for line in idle.later]
        total = sum(size for _, size, _ in rows) * 1.15
        scale = min(1.0, 22 / total)
        y = body.y + (body.h - total * unit * scale) / 2
        for text, size, colour in rows:
            height = size * unit * scale * 1.15
            if text:
                self._text_centred(
                    text,
                    Rect(body.x, int(y), body.w, int(height)),
                    colour,
                    int(size * unit * scale),
                )
            y += height


# --- the screen ---------------------------------------------------------------------------


class RoomScreen(HeadlessScreen):
    """The headless screen's measurements, shown in a window on the room's display."""

    def __init__(
        self,
        clock: Clock,
        *,
        size: tuple[int, int] | None = None,
        fps: float = 30.0,
        report_path: Path | None = None,
        tz: tzinfo | None = None,
        display: str | None = None,
        title: str = "telecentre",
    ) -> None:
        super().__init__(clock)
        self.fps = fps
        self.report_path = report_path
        self.tz = tz
        self.error: str | None = None
        self._painter = Painter(size, display, title)
        self._executor: ThreadPoolExecutor | None = None
        self._render_task: asyncio.Task[None] | None = None
        self._latest: dict[Key, av.VideoFrame] = {}
        self._received: dict[Key, int] = {}
        self._painted_seq: dict[Key, int] = {}
        self._shown: dict[Key, int] = {}
        self._plan: ScreenPlan | None = None
        self._paints = 0
        self._full_paints = 0
        self._cpu = 0.0
        self._paint_wall = 0.0
        self._started_at: float | None = None

    @property
    def size(self) -> tuple[int, int]:
        return self._painter.size

    async def start(self) -> None:
        """Open the window and start painting; a display that cannot be opened leaves
        the screen headless (logged, and in the report)."""
        if self._render_task is not None:
            return
        loop = asyncio.get_running_loop()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="room-screen")
        try:
            size = await loop.run_in_executor(self._executor, self._painter.open)
        except Exception as exc:
            self.error = f"cannot open the room screen: {exc}"
            log.error("%s; carrying on without a screen", self.error)
            self._executor.shutdown(wait=False)
            self._executor = None
            self._write_report()
            return
        log.info("room screen open at %dx%d", *size)
        self._started_at = time.monotonic()
        self._render_task = loop.create_task(self._render_loop(), name="room-screen")

    async def close(self) -> None:
        task, self._render_task = self._render_task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        if self._executor is not None:
            loop = asyncio.get_running_loop()
            with contextlib.suppress(Exception):
                await loop.run_in_executor(self._executor, self._painter.close)
            self._executor.shutdown(wait=True)
            self._executor = None
        self._write_report()
        await super().close()

    async def detach(self, peer_id: str) -> None:
        await super().detach(peer_id)
        for key in [k for k in self._latest if k[0] == peer_id]:
            del self._latest[key]

    # -- frames, from the drain tasks (on the loop) --

    def _on_video_frame(self, peer_id: str, frame: av.VideoFrame) -> None:
        super()._on_video_frame(peer_id, frame)
        self._keep((peer_id, False), frame)

    def _on_content_frame(self, peer_id: str, frame: av.VideoFrame) -> None:
        super()._on_content_frame(peer_id, frame)
        self._keep((peer_id, True), frame)

    def _keep(self, key: Key, frame: av.VideoFrame) -> None:
        self._latest[key] = frame
        self._received[key] = self._received.get(key, 0) + 1

    # -- painting --

    def plan(self) -> ScreenPlan:
        self.judge_speaker()  # the hold runs out even when nobody sends audio
        return plan_screen(
            self._view(), self.sources(), self.clock.now(), self.size, self.tz, self.speaking
        )

    async def _render_loop(self) -> None:
        loop = asyncio.get_running_loop()
        period = 1.0 / self.fps
        next_report = 0.0
        while True:
            began = loop.time()
            try:
                await self._paint_once(loop)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("room screen: paint failed")
            if began >= next_report:
                self._write_report()
                next_report = began + REPORT_INTERVAL
            await asyncio.sleep(max(period - (loop.time() - began), 0.002))

    async def _paint_once(self, loop: asyncio.AbstractEventLoop) -> None:
        plan = self._plan = self.plan()
        frames: dict[Key, tuple[av.VideoFrame, bool]] = {}
        for tile in plan.tiles:
            key = tile_key(tile)
            frame = self._latest.get(key)
            if frame is not None:
                seq = self._received.get(key, 0)
                frames[key] = (frame, seq != self._painted_seq.get(key))
                self._painted_seq[key] = seq
        assert self._executor is not None
        result = await loop.run_in_executor(self._executor, self._painter.paint, plan, frames)
        self._paints += 1
        self._full_paints += result.full
        self._cpu += result.cpu
        self._paint_wall += result.wall
        for key in result.shown:
            self._shown[key] = self._shown.get(key, 0) + 1

    # -- the report --

    def report(self) -> dict[str, Any]:
        plan = self._plan
        elapsed = time.monotonic() - self._started_at if self._started_at else 0.0
        tiles = []
        for tile in plan.tiles if plan else ():
            key = tile_key(tile)
            tiles.append(
                {
                    "peer_id": tile.peer_id,
                    "site": tile.site,
                    "rect": list(tile.rect),
                    "role": tile.role,
                    "content": tile.content,
                    "frames_received": self._received.get(key, 0),
                    "frames_shown": self._shown.get(key, 0),
                    "speaking": tile.speaking,
                }
            )
        return {
            "time": self.clock.now(),
            "open": self._render_task is not None,
            "error": self.error,
            "size": list(self.size),
            "mode": plan.mode if plan else None,
            "header": asdict(plan.header) if plan else None,
            "tiles": tiles,
            "waiting": plan.waiting if plan else None,
            "warning": asdict(plan.warning) if plan and plan.warning else None,
            "idle": (
                {**asdict(plan.idle), "lines": plan.idle.lines()} if plan and plan.idle else None
            ),
            "paints": self._paints,
            "full_paints": self._full_paints,
            "cpu_seconds": round(self._cpu, 4),
            "paint_seconds": round(self._paint_wall, 4),
            "elapsed_seconds": round(elapsed, 3),
        }

    def _write_report(self) -> None:
        if self.report_path is None:
            return
        tmp = self.report_path.with_suffix(".tmp")
        try:
            tmp.write_text(json.dumps(self.report(), indent=1), encoding="utf-8")
            os.replace(tmp, self.report_path)
        except OSError as exc:
            log.warning("room screen: cannot write %s: %s", self.report_path, exc)


def make_screen(
    mode: str,
    clock: Clock,
    report_path: Path | None = None,
    fps: float = 30.0,
    factory: Callable[..., RoomScreen] = RoomScreen,
) -> HeadlessScreen:
    """``headless``: no window; ``fullscreen``: the room screen on ``$DISPLAY``."""
    if mode == "fullscreen":
        return factory(clock, fps=fps, report_path=report_path)
    return HeadlessScreen(clock)
