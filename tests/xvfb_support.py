"""X displays for the room screen tests: Xvfb servers, screenshots through PyAV's
x11grab, a program that draws moving content, and in-process agents.

Xvfb picks its own free display number (``-displayfd``) and says so once it
accepts connections, so nothing here guesses a number or waits on a timer.
"""

from __future__ import annotations

import asyncio
import os
import select
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from tests.requirements import missing
from tests.signalling_fixtures import Harness

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOTS = ROOT / "test-output" / "screenshots"

Image = npt.NDArray[np.uint8]

# Draws a moving bar and a frame counter, as a shared screen would change.
MOVING_CONTENT = """
import os, sys
os.environ["PYGAME_HIDE_SUPPORT_PROMPT"] = "1"
import pygame
pygame.display.init(); pygame.font.init()
screen = pygame.display.set_mode((0, 0), pygame.FULLSCREEN)
w, h = screen.get_size()
font = pygame.font.Font(None, h // 6)
clock = pygame.time.Clock()
n = 0
while True:
    pygame.event.pump()
    screen.fill((250, 250, 240))
    pygame.draw.rect(screen, (20, 60, 200), ((n * 12) % w, h // 3, w // 8, h // 3))
    screen.blit(font.render(f"Slide 1 - {n}", True, (10, 10, 10)), (w // 10, h // 10))
    pygame.display.flip()
    n += 1
    clock.tick(10)
"""


def need_screen_tools() -> None:
    if shutil.which("Xvfb") is None:
        missing("Xvfb is not installed (scripts/services.sh installs the xvfb package)")
    try:
        import pygame  # noqa: F401
    except ImportError:
        missing("pygame is not installed (the agent extra)")


@dataclass
class Display:
    name: str  # ":12"
    width: int
    height: int
    proc: subprocess.Popen[bytes]

    def screenshot(self, path: Path | None = None) -> Image:
        """The whole display as RGB, through x11grab; saved as PNG when ``path`` is given."""
        import av

        with av.open(
            self.name, format="x11grab", options={"video_size": f"{self.width}x{self.height}"}
        ) as container:
            frame = next(container.decode(video=0))
            image = frame.to_image()
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            image.save(path)
        return np.asarray(image.convert("RGB"), dtype=np.uint8)


@contextmanager
def xvfb(width: int = 1280, height: int = 720, timeout: float = 20.0) -> Iterator[Display]:
    need_screen_tools()
    read_end, write_end = os.pipe()
    proc = subprocess.Popen(
        [
            *("Xvfb", "-displayfd", str(write_end), "-screen", "0", f"{width}x{height}x24"),
            *("-nolisten", "tcp", "-nocursor"),
        ],
        pass_fds=(write_end,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )
    os.close(write_end)
    try:
        ready, _, _ = select.select([read_end], [], [], timeout)
        number = os.read(read_end, 32).decode().strip() if ready else ""
        if not number.isdigit():
            raise AssertionError(f"Xvfb did not report a display within {timeout} s")
        yield Display(f":{number}", width, height, proc)
    finally:
        os.close(read_end)
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@contextmanager
def moving_content(display: Display) -> Iterator[subprocess.Popen[bytes]]:
    """A program that fills ``display`` with moving content."""
    env = {**os.environ, "DISPLAY": display.name, "SDL_NO_SIGNAL_HANDLERS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-c", MOVING_CONTENT],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield proc
    finally:
        proc.terminate()
        proc.wait(10)


def region(image: Image, rect: list[int]) -> Image:
    x, y, w, h = rect
    return image[y : y + h, x : x + w]


def changed(a: Image, b: Image) -> float:
    """Mean absolute difference of two images, in levels (0..255)."""
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


async def until(predicate: Any, what: str, within: float = 20.0) -> Any:
    """Poll ``predicate`` (bounded) from the event loop; its truthy value."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while loop.time() < deadline:
        value = predicate()
        if value:
            return value
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {within} s waiting for {what}")


@asynccontextmanager
async def agent(
    h: Harness, room_id: str, screen: Any = None, **settings: Any
) -> AsyncIterator[Any]:
    """A real RoomAgent for ``room_id`` at 640x360, 15 fps, connected to ``h``."""
    from room_agents.agent import RoomAgent
    from room_agents.config import AgentConfig
    from room_agents.ice import unpin_host_addresses

    options: dict[str, Any] = {"width": 640, "height": 360, "fps": 15, "label": room_id}
    options.update(settings)
    config = AgentConfig(server_url=h.url, key=h.keys[room_id], **options)
    room = RoomAgent(config, screen=screen)
    task = asyncio.create_task(room.run())
    try:
        await asyncio.wait_for(room.connected.wait(), 15)
        yield room
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        unpin_host_addresses()
