"""Outgoing media: a stamped synthetic camera, the "starting", privacy and "camera
unavailable" cards, and their tracks.

Rules:

- Every video frame carries a capture-time stamp (room_agents.stamp) taken from the
  injected ``Clock`` at the moment the frame is built, so any receiver can measure
  glass-to-glass latency against the same (server) time base.
- Frames are built directly as yuv420p from numpy: no RGB conversion per frame.
  Anything drawn with Pillow (text) is drawn once and cached as luma.
- Tracks are paced in real time on the loop's monotonic clock, video on the 90 kHz
  RTP clock and audio on the 48 kHz sample clock, like aiortc's
  ``VideoStreamTrack.next_timestamp``; a track that falls behind skips the missed
  ticks instead of bursting them.
- ``OutgoingVideoTrack`` picks its source per frame, so ``set_live`` and
  ``set_privacy`` take effect on the next frame. Privacy wins over everything: a
  room in privacy sends its privacy card (stamp flag ``FLAG_PRIVACY``), never its
  camera, and its audio track sends silence. It is meant to be shared through
  ``MediaRelay().subscribe(track, buffered=False)``: one source, one frame per tick,
  every subscriber gets the same frame objects.
- The sources sit behind ``VideoSource`` and ``AudioSource`` so that a real camera
  and microphone (room_agents.capture) can replace them; a camera that cannot be
  opened sends ``UnavailableCard`` (stamp flag ``FLAG_NO_CAMERA``) instead.
"""

from __future__ import annotations

import asyncio
import fractions
import math
from typing import Final, Protocol

import av
import numpy as np
import numpy.typing as npt
from aiortc import MediaStreamTrack
from aiortc.mediastreams import VIDEO_CLOCK_RATE, MediaStreamError
from PIL import Image, ImageDraw, ImageFont

from room_agents.stamp import BLOCK, stamp_rows, write_stamp

AUDIO_SAMPLE_RATE: Final = 48_000
AUDIO_PTIME: Final = 0.020
AUDIO_SAMPLES: Final = int(AUDIO_SAMPLE_RATE * AUDIO_PTIME)  # 960
VIDEO_TIME_BASE: Final = fractions.Fraction(1, VIDEO_CLOCK_RATE)
AUDIO_TIME_BASE: Final = fractions.Fraction(1, AUDIO_SAMPLE_RATE)
# Ticks more than this many periods late are skipped rather than sent back to back.
MAX_LATE_PERIODS: Final = 2.0

LUMA_BLACK: Final = 16
LUMA_WHITE: Final = 235
MIN_FONT: Final = 8

Luma = npt.NDArray[np.uint8]


class Clock(Protocol):
    def now(self) -> float:
        """Epoch seconds on the server's clock, as this process estimates it."""
        ...


class VideoSource(Protocol):
    def next_frame(self) -> av.VideoFrame:
        """Build the frame to show now; the caller sets pts and time_base."""
        ...


class CardSource(VideoSource, Protocol):
    def set_title(self, title: str) -> None: ...


class AudioSource(Protocol):
    def read(self, start_sample: int, samples: int) -> npt.NDArray[np.int16]:
        """``samples`` s16 mono 48 kHz samples for the tick that starts at ``start_sample``
        (the track's sample clock); silence where the source has nothing."""
        ...


# --- pure helpers -------------------------------------------------------------------


def check_frame_size(width: int, height: int) -> None:
    """yuv420p needs even sizes; the stamp needs its rows of blocks on top."""
    if width <= 0 or height <= 0 or width % 2 or height % 2:
        raise ValueError(f"frame size {width}x{height} must be positive and even")
    if stamp_rows(width) * BLOCK > height:
        raise ValueError(f"a {width}x{height} frame cannot hold the stamp")


def stamp_band(width: int, height: int) -> int:
    """Rows of pixels reserved at the top for the stamp: its rows of blocks plus one
    block of margin, or no margin where the frame is too short for it."""
    rows = stamp_rows(width) * BLOCK
    return rows + BLOCK if rows + BLOCK < height else min(rows, height)


def font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=max(size, MIN_FONT))


def fitted(
    text: str, size: int, width: int
) -> tuple[str, ImageFont.FreeTypeFont | ImageFont.ImageFont]:
    """``text`` and a font of at most ``size`` px in which it fits ``width`` px: the
    font shrinks down to ``MIN_FONT``, then the text is cut short with an ellipsis."""
    face = font(size)
    length = face.getlength(text)
    if text and length > width and size > MIN_FONT:
        face = font(max(int(size * width / length), MIN_FONT))
    while text and face.getlength(text) > width:
        text = text[:-2] + "…" if len(text) > 1 else ""
    return text, face


def render_text_lines(
    width: int, height: int, lines: list[tuple[str, int]], background: int, ink: int
) -> Luma:
    """Luma image of centred text lines (text, font size), spread down the frame below
    the stamp; a line too wide for the frame shrinks, then is cut short."""
    image = Image.new("L", (width, height), background)
    draw = ImageDraw.Draw(image)
    top = stamp_band(width, height)
    step = (height - top) / (len(lines) + 1)
    for i, (text, size) in enumerate(lines):
        text, face = fitted(text, min(size, int(step)), width - BLOCK)
        if text:
            y = top + step * (i + 1)
            draw.text((width / 2, y), text, fill=ink, font=face, anchor="mm")
    return np.asarray(image, dtype=np.uint8).copy()


def render_label(text: str, size: int, max_width: int) -> Luma:
    """A white-on-black label box, as luma, to paste over moving content; at most
    ``max_width`` px wide (the text shrinks, then is cut short)."""
    pad = max(size // 3, 2)
    text, face = fitted(text, size, max(max_width - 2 * pad, 1))
    left, top, right, bottom = face.getbbox(text) if text else (0, 0, 0, 0)
    width, height = int(right - left) + 2 * pad, int(bottom - top) + 2 * pad
    image = Image.new("L", (max(min(width, max_width), 1), max(height, 1)), LUMA_BLACK)
    ImageDraw.Draw(image).text((pad - left, pad - top), text, fill=LUMA_WHITE, font=face)
    return np.asarray(image, dtype=np.uint8).copy()


def scrolling_ramp(width: int, height: int, period: int) -> Luma:
    """A diagonal luma ramp ``period`` px wide, extended so any ``width`` slice scrolls."""
    x = np.arange(width + period)[np.newaxis, :]
    y = np.arange(height)[:, np.newaxis]
    phase = (x + y // 2) % period
    return (LUMA_BLACK + 40 + phase * 140 // period).astype(np.uint8)


def chroma_planes(yuv: Luma, width: int, height: int) -> tuple[Luma, Luma]:
    """Views of the U and V planes inside a contiguous yuv420p array."""
    flat = yuv.reshape(-1)
    size = (height // 2) * (width // 2)
    start = width * height
    u = flat[start : start + size].reshape(height // 2, width // 2)
    v = flat[start + size : start + 2 * size].reshape(height // 2, width // 2)
    return u, v


def sine_tone(
    start_sample: int, samples: int, hz: float, amplitude: float
) -> npt.NDArray[np.int16]:
    """s16 samples of a sine wave, continuous across calls by absolute sample index."""
    t = (start_sample + np.arange(samples)) / AUDIO_SAMPLE_RATE
    wave = amplitude * 32767.0 * np.sin(2.0 * math.pi * hz * t)
    return wave.astype(np.int16)


def capture_ms(clock: Clock) -> int:
    return int(clock.now() * 1000)


# --- pacing ---------------------------------------------------------------------------


class Pacer:
    """Releases ticks at ``rate`` per second on the loop's monotonic clock.

    ``wait()`` returns the tick's timestamp in units of ``clock_rate`` (the RTP
    clock). Ticks more than ``MAX_LATE_PERIODS`` late are skipped (the timestamp
    jumps) so that a stalled loop does not produce a burst of frames.
    """

    def __init__(self, rate: float, clock_rate: int) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self._period = 1.0 / rate
        self._step = clock_rate / rate
        self._start: float | None = None
        self._index = 0

    async def wait(self) -> int:
        loop = asyncio.get_running_loop()
        now = loop.time()
        if self._start is None:
            self._start = now
        else:
            self._index += 1
            due = self._start + self._index * self._period
            if now - due > MAX_LATE_PERIODS * self._period:
                self._index = int((now - self._start) / self._period)
                due = self._start + self._index * self._period
            if due > now:
                await asyncio.sleep(due - now)
        return round(self._index * self._step)


# --- sources --------------------------------------------------------------------------


class SyntheticCamera:
    """A moving test picture (scrolling ramp, sweeping bar, tinted chroma), stamped camera."""

    RAMP_PERIOD: Final = 256
    SCROLL_PX_PER_S: Final = 96
    SWEEP_SECONDS: Final = 2.0

    def __init__(
        self, clock: Clock, width: int = 640, height: int = 360, fps: int = 30, label: str = ""
    ) -> None:
        check_frame_size(width, height)
        self.clock = clock
        self.width, self.height, self.fps = width, height, fps
        self._index = 0
        self._yuv = np.empty((height * 3 // 2, width), np.uint8)
        self._u, self._v = chroma_planes(self._yuv, width, height)
        self._ramp = scrolling_ramp(width, height, self.RAMP_PERIOD)
        # The label sits below the stamp, clipped to the frame once, here: at a size
        # where it does not fit, the frame is all stamp and ramp (it once raised
        # "could not broadcast" on every frame at 160x120, and the room never went live).
        self._label_top = stamp_band(width, height)
        self._label: Luma | None = None
        if label:
            box = render_label(label, max(height // 18, 10), width - 2 * BLOCK)
            box = box[: height - self._label_top, : width - BLOCK]
            self._label = box if box.size else None

    def next_frame(self) -> av.VideoFrame:
        w, h = self.width, self.height
        seconds = self._index / self.fps  # motion follows frames, so it is reproducible
        self._index += 1
        shift = int(seconds * self.SCROLL_PX_PER_S) % self.RAMP_PERIOD
        luma = self._yuv[:h]
        luma[:] = self._ramp[:, shift : shift + w]
        bar_w = max(w // 16, 2)
        x0 = int((seconds / self.SWEEP_SECONDS) % 1.0 * (w + bar_w)) - bar_w
        luma[:, max(x0, 0) : max(x0 + bar_w, 0)] = LUMA_WHITE
        self._u[:] = 128 + int(30 * math.sin(seconds))
        self._v[:] = 128 + int(30 * math.cos(seconds))
        if self._label is not None:
            lh, lw = self._label.shape
            top = self._label_top
            luma[top : top + lh, BLOCK : BLOCK + lw] = self._label
        write_stamp(self._yuv, w, h, capture_ms(self.clock), camera=True)
        return av.VideoFrame.from_ndarray(self._yuv, format="yuv420p")


class StartingCard:
    """The privacy card sent before a session is live; static but for its stamp."""

    BACKGROUND: Final = 40
    TINT_U: Final = 150  # a dark blue, so the card is told apart from a camera at a glance
    TINT_V: Final = 115

    def __init__(
        self,
        clock: Clock,
        width: int = 640,
        height: int = 360,
        fps: int = 30,
        label: str = "",
        title: str = "",
    ) -> None:
        check_frame_size(width, height)
        self.clock = clock
        self.width, self.height, self.fps = width, height, fps
        self.label = label
        self._yuv = np.empty((height * 3 // 2, width), np.uint8)
        self._card = np.empty_like(self._yuv)
        self.set_title(title)

    @property
    def title(self) -> str:
        return self._title

    def set_title(self, title: str) -> None:
        """Redraw the card; Pillow runs only here, never per frame."""
        self._title = title
        w, h = self.width, self.height
        lines = [("Starting soon", h // 8), (title, h // 14), (self.label, h // 18)]
        self._card[:h] = render_text_lines(w, h, lines, self.BACKGROUND, LUMA_WHITE)
        u, v = chroma_planes(self._card, w, h)
        u[:], v[:] = self.TINT_U, self.TINT_V

    def next_frame(self) -> av.VideoFrame:
        np.copyto(self._yuv, self._card)
        write_stamp(self._yuv, self.width, self.height, capture_ms(self.clock), camera=False)
        return av.VideoFrame.from_ndarray(self._yuv, format="yuv420p")


class _StillCard:
    """A static card shown instead of the camera; only its stamp changes per frame.
    Subclasses give the text, the colours and the stamp flags that tell receivers
    which card it is."""

    BACKGROUND: int = 24
    TINT_U: int = 128
    TINT_V: int = 128
    PRIVACY: bool = False
    NO_CAMERA: bool = False

    def __init__(
        self, clock: Clock, width: int = 640, height: int = 360, fps: int = 30, label: str = ""
    ) -> None:
        check_frame_size(width, height)
        self.clock = clock
        self.width, self.height, self.fps = width, height, fps
        self._yuv = np.empty((height * 3 // 2, width), np.uint8)
        self._card = np.empty_like(self._yuv)
        lines = [*self.lines(height), (label, height // 18)]
        self._card[:height] = render_text_lines(width, height, lines, self.BACKGROUND, LUMA_WHITE)
        u, v = chroma_planes(self._card, width, height)
        u[:], v[:] = self.TINT_U, self.TINT_V

    def lines(self, height: int) -> list[tuple[str, int]]:
        raise NotImplementedError

    def next_frame(self) -> av.VideoFrame:
        np.copyto(self._yuv, self._card)
        write_stamp(
            self._yuv,
            self.width,
            self.height,
            capture_ms(self.clock),
            camera=False,
            privacy=self.PRIVACY,
            no_camera=self.NO_CAMERA,
        )
        return av.VideoFrame.from_ndarray(self._yuv, format="yuv420p")


class PrivacyCard(_StillCard):
    """Sent instead of the camera while the room is in privacy; its stamp carries
    ``FLAG_PRIVACY`` so a receiver can tell it from the starting card."""

    BACKGROUND = 24
    TINT_U = 118  # a dark red: neither the camera nor the blue starting card
    TINT_V = 160
    PRIVACY = True

    def lines(self, height: int) -> list[tuple[str, int]]:
        return [("Privacy", height // 8), ("Camera and microphone off", height // 14)]


class UnavailableCard(_StillCard):
    """Sent instead of the camera while the room's camera cannot be opened (missing,
    busy, unplugged); its stamp carries ``FLAG_NO_CAMERA`` so a receiver can tell."""

    BACKGROUND = 48
    TINT_U = 112  # a dark amber: neither the camera, the blue nor the red card
    TINT_V = 142
    NO_CAMERA = True

    def lines(self, height: int) -> list[tuple[str, int]]:
        return [("Camera unavailable", height // 9), ("Staff have been told", height // 16)]


class SineSource:
    """The synthetic microphone: a quiet sine tone, continuous across ticks."""

    def __init__(self, hz: float = 440.0, amplitude: float = 0.05) -> None:
        self.hz = hz
        self.amplitude = amplitude

    def read(self, start_sample: int, samples: int) -> npt.NDArray[np.int16]:
        return sine_tone(start_sample, samples, self.hz, self.amplitude)


# --- tracks ---------------------------------------------------------------------------


class OutgoingVideoTrack(MediaStreamTrack):
    """The room's outgoing video: the card until ``set_live(True)``, then the camera;
    the privacy card whenever privacy is on."""

    kind = "video"

    def __init__(
        self,
        camera: VideoSource,
        card: CardSource,
        fps: int = 30,
        privacy_card: VideoSource | None = None,
    ) -> None:
        super().__init__()
        self.camera = camera
        self.card = card
        self.privacy_card = privacy_card
        self.fps = fps
        self._live = False
        self._privacy = False
        self._pacer = Pacer(fps, VIDEO_CLOCK_RATE)

    @property
    def live(self) -> bool:
        return self._live

    @property
    def privacy(self) -> bool:
        return self._privacy

    def set_live(self, live: bool) -> None:
        self._live = live

    def set_privacy(self, on: bool) -> None:
        if on and self.privacy_card is None:
            raise ValueError("this track has no privacy card")
        self._privacy = on

    def set_card_title(self, title: str) -> None:
        self.card.set_title(title)

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        pts = await self._pacer.wait()
        if self.readyState != "live":
            # Stopped while waiting: a MediaRelay reading us must see the end.
            raise MediaStreamError
        # The source is chosen after the wait, so a switch lands on the next frame.
        source: VideoSource = self.card
        if self._privacy and self.privacy_card is not None:
            source = self.privacy_card
        elif self._live:
            source = self.camera
        frame = source.next_frame()
        frame.pts = pts
        frame.time_base = VIDEO_TIME_BASE
        return frame


class OutgoingAudioTrack(MediaStreamTrack):
    """20 ms frames, s16 mono 48 kHz, from ``source`` (by default the synthetic tone,
    quiet but non-zero so sinks can tell); digital silence while ``muted`` (privacy)."""

    kind = "audio"

    def __init__(self, source: AudioSource | None = None) -> None:
        super().__init__()
        self.source: AudioSource = source if source is not None else SineSource()
        self.muted = False
        self._pacer = Pacer(1.0 / AUDIO_PTIME, AUDIO_SAMPLE_RATE)

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        pts = await self._pacer.wait()
        if self.readyState != "live":
            raise MediaStreamError
        if self.muted:
            samples = np.zeros(AUDIO_SAMPLES, np.int16)
        else:
            samples = self.source.read(pts, AUDIO_SAMPLES)
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = AUDIO_SAMPLE_RATE
        frame.pts = pts
        frame.time_base = AUDIO_TIME_BASE
        return frame


# The name the calls and the tests know the room's audio track by; its default source
# is the synthetic tone.
SyntheticAudioTrack = OutgoingAudioTrack
