"""The headless screen: drains every received track and measures what it carries.

Rules:

- A received track is drained from the moment it is attached until it ends or is
  detached: aiortc queues decoded frames without bound for a track nobody reads
  (DESIGN "aiortc facts"). A newer track for the same peer and kind, attached while
  the older one still runs (a member's SFU subscription arriving beside its mesh call,
  room_agents.sfu "make-before-break"), takes over at its first decoded frame: until
  then the older track's frames are counted and shown, after it only the newer's, and
  the older one keeps being drained, uncounted, until it ends or is detached.
  ``first_frame(track)`` tells when a track delivered its first decoded frame.
- Video: every frame counts; a frame whose stamp (room_agents.stamp) reads gives a
  glass-to-glass latency sample, ``clock.now() * 1000 - stamp.capture_ms``, and its
  camera and privacy flags. A peer is live once a camera frame arrived. A peer is
  in privacy while its latest stamped frame is its privacy card
  (``privacy_frames`` counts them); ``no_camera_frames`` counts its "camera
  unavailable" card.
- Freezes follow the W3C webrtc-stats ``freezeCount`` rule: an inter-frame gap
  longer than ``max(3 * mean, mean + 150 ms)``, where ``mean`` is the mean of the
  last ``FREEZE_HISTORY`` inter-frame gaps that were not freezes themselves (so one
  freeze does not hide the next). Gaps are judged once ``FREEZE_MIN_HISTORY`` gaps
  are known, on the monotonic loop clock, and counted when the frame that ends the
  freeze arrives: a stall still in progress shows as a low fps and a stale
  ``last_frame_at`` instead. Re-attaching a peer restarts the gap history, so time
  spent away is not a freeze.
- Gaps over ``LONG_GAP_S`` (issue 12's freeze: over 1 s without a frame) are counted
  apart (``long_gaps``), with the longest gap seen (``longest_gap_s``), so a reader
  of the totals can tell whether one happened between two of its readings.
- Audio: frames are counted and the level is the RMS of all samples in the period,
  as a fraction of full scale (0..1). Each counted frame is also handed to
  ``on_audio_frame`` (the room's speaker), after it is measured.
- Who speaks (room_agents.speaker): each peer's level is the RMS of its audio over
  the last ``LEVEL_WINDOW`` seconds (from the squares already summed for the figures
  above: no extra decoding), and the speaker is re-judged at most every
  ``SPEAKER_INTERVAL`` seconds as audio arrives (``speaking``).
- Content share: a peer's second video track (its shared screen, see
  room_agents.content) is drained and counted apart (``content_frames``); it never
  counts as camera video, in the stats or the milestones. A peer shares while its
  content frames keep coming (the latest less than ``CONTENT_STALE`` seconds ago):
  a room that stops sharing simply stops sending them.
- ``snapshot()`` reports per attached peer over the period since the last reset;
  ``totals()`` reports cumulative figures for every peer ever attached.
- ``Screen`` is the interface the agent uses; ``HeadlessScreen`` implements it
  without a window (servers, tests), room_agents.room_screen with one.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from typing import Final, Protocol

import av
import numpy as np
import numpy.typing as npt
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError

from room_agents.layout import RoomView, Source
from room_agents.media import Clock
from room_agents.speaker import LEVEL_WINDOW, Speaking, speaker
from room_agents.stamp import BLOCK, Stamp, read_stamp, stamp_rows
from signalling.protocol import MediaStats

logger = logging.getLogger(__name__)

LATENCY_WINDOW: Final = 600
# Cumulative latencies are kept as a histogram of whole milliseconds; clamping keeps
# it bounded even if a peer's clock is wildly off.
LATENCY_CLAMP_MS: Final = 60_000
FREEZE_HISTORY: Final = 30
FREEZE_MIN_HISTORY: Final = 5
FREEZE_FACTOR: Final = 3.0
FREEZE_EXTRA_S: Final = 0.150
LONG_GAP_S: Final = 1.0
S16_FULL_SCALE_SQUARED: Final = float(2**15) ** 2
CONTENT_STALE: Final = 1.5
# A gap between two of a peer's video frames at least this long is an outage (the path
# died and was rebuilt, the peer's network changed): its start and end are kept, so an
# operator, or a test, can tell how long the picture was gone last time.
OUTAGE_S: Final = 0.5
SPEAKER_INTERVAL: Final = 0.05

FirstFrameCallback = Callable[[str, float], None]
AudioFrameCallback = Callable[[str, av.AudioFrame], None]
Totals = dict[str, float | int | None]
ViewSource = Callable[[], RoomView]


# --- pure helpers ---------------------------------------------------------------------


def is_freeze(gap: float, mean_interval: float) -> bool:
    """W3C webrtc-stats freezeCount: gap > max(3 * mean, mean + 150 ms)."""
    return gap > max(FREEZE_FACTOR * mean_interval, mean_interval + FREEZE_EXTRA_S)


def percentile(values: Iterable[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100); None for no values."""
    ordered = sorted(values)
    if not ordered:
        return None
    rank = max(math.ceil(q / 100.0 * len(ordered)), 1)
    return float(ordered[rank - 1])


def histogram_percentile(histogram: Mapping[int, int], q: float) -> float | None:
    """Nearest-rank percentile of a histogram {value: count}; None when empty."""
    total = sum(histogram.values())
    if total == 0:
        return None
    rank = max(math.ceil(q / 100.0 * total), 1)
    seen = 0
    for value in sorted(histogram):
        seen += histogram[value]
        if seen >= rank:
            return float(value)
    raise AssertionError("unreachable: rank <= total")


def luma_rows(frame: av.VideoFrame, rows: int) -> npt.NDArray[np.uint8]:
    """The top ``rows`` rows of a frame's luma plane, without converting the frame."""
    if frame.format.name in ("yuv420p", "yuvj420p", "yuv422p", "yuv444p", "nv12", "gray"):
        plane = frame.planes[0]
        rows = min(rows, plane.height)
        data = np.frombuffer(memoryview(plane), np.uint8, count=plane.line_size * rows)
        return data.reshape(rows, plane.line_size)[:, : frame.width]
    return np.asarray(frame.to_ndarray(format="gray"), dtype=np.uint8)[:rows]


def frame_stamp(frame: av.VideoFrame) -> Stamp | None:
    if frame.width < BLOCK:
        return None
    return read_stamp(luma_rows(frame, stamp_rows(frame.width) * BLOCK))


def audio_energy(frame: av.AudioFrame) -> tuple[float, int]:
    """Sum of squared samples (as fractions of full scale) and the number of samples."""
    if frame.format.name == "s16":  # what aiortc's Opus decoder gives: read it in place
        count = frame.samples * len(frame.layout.channels)
        pcm = np.frombuffer(memoryview(frame.planes[0]), np.int16, count).astype(np.float32)
        return float(np.dot(pcm, pcm)) / S16_FULL_SCALE_SQUARED, count
    samples = frame.to_ndarray()
    full_scale = 2.0 ** (8 * samples.dtype.itemsize - 1)
    if samples.dtype.kind == "i":
        scaled = samples.astype(np.float64) / full_scale
    elif samples.dtype.kind == "u":  # unsigned PCM is offset by half its range
        scaled = (samples.astype(np.float64) - full_scale) / full_scale
    else:
        scaled = samples.astype(np.float64)
    return float(np.square(scaled).sum()), int(scaled.size)


# --- per-peer figures -------------------------------------------------------------------


class PeerMedia:
    """What one remote peer's tracks delivered; plain state, fed by the screen."""

    def __init__(self, peer_id: str, mono_now: float) -> None:
        self.peer_id = peer_id
        self.frames = 0
        self.stamped_frames = 0
        self.camera_frames = 0
        self.privacy_frames = 0
        self.no_camera_frames = 0
        self.privacy = False  # the latest stamped frame was the privacy card
        self.freezes = 0
        self.long_gaps = 0
        self.longest_gap_s = 0.0
        self.audio_frames = 0
        self.content_frames = 0
        self.content_last_at: float | None = None  # wall clock
        self.content_last_mono: float | None = None
        self.first_frame_at: float | None = None
        self.first_camera_at: float | None = None
        self.last_frame_at: float | None = None
        # The latest outage: (last frame before it, first frame after it), wall clock.
        self.last_outage: tuple[float, float] | None = None
        self._latency_hist: Counter[int] = Counter()
        self._last_mono: float | None = None
        self._intervals: deque[float] = deque(maxlen=FREEZE_HISTORY)
        self._period_start = mono_now
        self._period_frames = 0
        self._period_freezes = 0
        self._period_latency: deque[float] = deque(maxlen=LATENCY_WINDOW)
        self._period_audio_frames = 0
        self._period_energy = 0.0
        self._period_samples = 0
        self._total_energy = 0.0
        self._total_samples = 0
        self._recent_audio: deque[tuple[float, float, int]] = deque()  # (mono, energy, n)

    def restart_gaps(self) -> None:
        self._last_mono = None
        self._intervals.clear()

    def add_video_frame(self, mono_now: float, wall_now: float, stamp: Stamp | None) -> None:
        self.frames += 1
        self._period_frames += 1
        if self.last_frame_at is not None and wall_now - self.last_frame_at >= OUTAGE_S:
            self.last_outage = (self.last_frame_at, wall_now)
        self.last_frame_at = wall_now
        if self.first_frame_at is None:
            self.first_frame_at = wall_now
        if self._last_mono is not None:
            gap = mono_now - self._last_mono
            self.longest_gap_s = max(self.longest_gap_s, gap)
            self.long_gaps += gap > LONG_GAP_S
            if len(self._intervals) >= FREEZE_MIN_HISTORY and is_freeze(
                gap, sum(self._intervals) / len(self._intervals)
            ):
                self.freezes += 1
                self._period_freezes += 1
            else:
                self._intervals.append(gap)
        self._last_mono = mono_now
        if stamp is None:
            return
        self.stamped_frames += 1
        latency = wall_now * 1000.0 - stamp.capture_ms
        self._period_latency.append(latency)
        clamped = max(-LATENCY_CLAMP_MS, min(LATENCY_CLAMP_MS, round(latency)))
        self._latency_hist[clamped] += 1
        self.privacy = stamp.privacy
        if stamp.privacy:
            self.privacy_frames += 1
        if stamp.no_camera:
            self.no_camera_frames += 1
        if stamp.camera:
            self.camera_frames += 1
            if self.first_camera_at is None:
                self.first_camera_at = wall_now

    def add_content_frame(self, mono_now: float, wall_now: float) -> None:
        self.content_frames += 1
        self.content_last_at = wall_now
        self.content_last_mono = mono_now

    def sharing(self, mono_now: float) -> bool:
        last = self.content_last_mono
        return last is not None and mono_now - last < CONTENT_STALE

    def level(self, mono_now: float) -> float:
        """The RMS of the audio received over the last ``LEVEL_WINDOW`` seconds (0..1)."""
        recent = self._recent_audio
        while recent and recent[0][0] < mono_now - LEVEL_WINDOW:
            recent.popleft()
        samples = sum(n for _, _, n in recent)
        return math.sqrt(sum(e for _, e, _ in recent) / samples) if samples else 0.0

    def add_audio_frame(self, energy: float, samples: int, mono_now: float | None = None) -> None:
        if mono_now is not None:
            self._recent_audio.append((mono_now, energy, samples))
            self.level(mono_now)  # drop what fell out of the window
        self.audio_frames += 1
        self._total_energy += energy
        self._total_samples += samples
        self._period_audio_frames += 1
        self._period_energy += energy
        self._period_samples += samples

    def period(self, mono_now: float, reset: bool) -> MediaStats:
        elapsed = mono_now - self._period_start
        level = (
            math.sqrt(self._period_energy / self._period_samples) if self._period_samples else 0.0
        )
        stats = MediaStats(
            peer_id=self.peer_id,
            frames=self._period_frames,
            fps=self._period_frames / elapsed if elapsed > 0 else 0.0,
            latency_p50_ms=percentile(self._period_latency, 50),
            latency_p95_ms=percentile(self._period_latency, 95),
            freezes=self._period_freezes,
            audio_frames=self._period_audio_frames,
            audio_level=level,
            live=self.camera_frames > 0,
            privacy=self.privacy,
        )
        if reset:
            self._period_start = mono_now
            self._period_frames = self._period_freezes = self._period_audio_frames = 0
            self._period_latency.clear()
            self._period_energy = 0.0
            self._period_samples = 0
        return stats

    def totals(self) -> Totals:
        return {
            "frames": self.frames,
            "stamped_frames": self.stamped_frames,
            "camera_frames": self.camera_frames,
            "privacy_frames": self.privacy_frames,
            "no_camera_frames": self.no_camera_frames,
            "privacy": self.privacy,
            "freezes": self.freezes,
            "long_gaps": self.long_gaps,
            "longest_gap_s": round(self.longest_gap_s, 3),
            "audio_frames": self.audio_frames,
            "content_frames": self.content_frames,
            "content_last_frame_at": self.content_last_at,
            "audio_level": (
                math.sqrt(self._total_energy / self._total_samples) if self._total_samples else None
            ),
            "first_frame_at": self.first_frame_at,
            "first_camera_at": self.first_camera_at,
            "last_frame_at": self.last_frame_at,
            "outage_from": self.last_outage[0] if self.last_outage is not None else None,
            "outage_to": self.last_outage[1] if self.last_outage is not None else None,
            "latency_p50_ms": histogram_percentile(self._latency_hist, 50),
            "latency_p95_ms": histogram_percentile(self._latency_hist, 95),
        }


# --- the screen -------------------------------------------------------------------------


class Screen(Protocol):
    """What the agent needs from its screen (headless or a window)."""

    on_first_frame: FirstFrameCallback | None
    on_first_camera_frame: FirstFrameCallback | None
    on_audio_frame: AudioFrameCallback | None

    @property
    def peers(self) -> list[str]: ...
    def show(self, view: ViewSource) -> None: ...
    async def start(self) -> None: ...
    def attach_video(self, peer_id: str, track: MediaStreamTrack) -> None: ...
    def attach_audio(self, peer_id: str, track: MediaStreamTrack) -> None: ...
    def attach_content(self, peer_id: str, track: MediaStreamTrack) -> None: ...
    async def detach(self, peer_id: str) -> None: ...
    async def first_frame(self, track: MediaStreamTrack) -> bool: ...
    async def close(self) -> None: ...
    def snapshot(self, reset: bool = True) -> list[MediaStats]: ...
    def totals(self) -> dict[str, Totals]: ...
    def in_privacy(self, peer_id: str) -> bool: ...


class HeadlessScreen:
    """Sink for every remote track of a call; owns the tasks that drain them."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.on_first_frame: FirstFrameCallback | None = None
        self.on_first_camera_frame: FirstFrameCallback | None = None
        self.on_audio_frame: AudioFrameCallback | None = None
        self._media: dict[str, PeerMedia] = {}
        self._attached: dict[str, set[asyncio.Task[None]]] = {}
        # The task whose frames count, per (peer, kind); superseded tasks still drain.
        self._current: dict[tuple[str, str], asyncio.Task[None]] = {}
        # A newer task that takes over from the current one at its first frame.
        self._pending: dict[tuple[str, str], asyncio.Task[None]] = {}
        # Per track being drained: resolved True at its first frame, False if it ends
        # (or is detached) before one.
        self._first: dict[MediaStreamTrack, asyncio.Future[bool]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._view: ViewSource = RoomView
        self._speaking: Speaking | None = None
        self._speaker_judged = -math.inf

    @property
    def peers(self) -> list[str]:
        """Peers with at least one attached track."""
        return list(self._attached)

    def show(self, view: ViewSource) -> None:
        """Where the room's own state comes from (read on every paint)."""
        self._view = view

    async def start(self) -> None:
        """Nothing to open without a window."""

    def sources(self) -> list[Source]:
        """The pictures there are to show: every attached peer's camera, and the
        content of the peers sharing now."""
        mono_now = asyncio.get_running_loop().time()
        out = []
        for peer_id in self._attached:
            if (peer_id, "video") in self._current:
                out.append(Source(peer_id))
            if (peer_id, "content") in self._current and self._media[peer_id].sharing(mono_now):
                out.append(Source(peer_id, content=True))
        return out

    def attach_video(self, peer_id: str, track: MediaStreamTrack) -> None:
        self._attach(peer_id, "video", track)

    def attach_audio(self, peer_id: str, track: MediaStreamTrack) -> None:
        self._attach(peer_id, "audio", track)

    def attach_content(self, peer_id: str, track: MediaStreamTrack) -> None:
        """A peer's shared content (its second video track)."""
        self._attach(peer_id, "content", track)

    async def detach(self, peer_id: str) -> None:
        """Stop draining a peer's tracks (its connection is gone); keep its totals."""
        tasks = self._attached.pop(peer_id, set())
        for kind in ("video", "audio", "content"):
            self._current.pop((peer_id, kind), None)
            self._pending.pop((peer_id, kind), None)
        await _cancel(tasks)

    async def first_frame(self, track: MediaStreamTrack) -> bool:
        """Wait until the screen decoded a first frame from ``track``: True then (at
        once if it already did), False if the track ends or is detached before one, or
        is not attached."""
        future = self._first.get(track)
        if future is None:
            return False
        return await asyncio.shield(future)

    async def close(self) -> None:
        self._attached.clear()
        self._current.clear()
        self._pending.clear()
        await _cancel(set(self._tasks))

    def snapshot(self, reset: bool = True) -> list[MediaStats]:
        mono_now = asyncio.get_running_loop().time()
        return [self._media[p].period(mono_now, reset) for p in self._attached]

    def totals(self) -> dict[str, Totals]:
        return {peer_id: media.totals() for peer_id, media in self._media.items()}

    def levels(self) -> dict[str, float]:
        """Each attached peer's audio level over the last ``LEVEL_WINDOW`` seconds."""
        mono_now = asyncio.get_running_loop().time()
        return {peer: self._media[peer].level(mono_now) for peer in self._attached}

    @property
    def speaking(self) -> str | None:
        """The peer whose tile is highlighted as speaking (room_agents.speaker)."""
        if self._speaking is not None and self._speaking.peer_id not in self._attached:
            self._speaking = None  # left: at once
        return self._speaking.peer_id if self._speaking is not None else None

    def judge_speaker(self) -> None:
        """Re-judge who speaks (on audio frames, and by the room screen as it paints:
        the hold runs out while nobody sends a frame)."""
        now = asyncio.get_running_loop().time()
        self._speaker_judged = now
        self._speaking = speaker(self.levels(), self._speaking, now)

    def in_privacy(self, peer_id: str) -> bool:
        """Whether the peer's latest stamped frame was its privacy card."""
        media = self._media.get(peer_id)
        return media is not None and media.privacy

    def _attach(self, peer_id: str, kind: str, track: MediaStreamTrack) -> None:
        loop = asyncio.get_running_loop()
        media = self._media.get(peer_id)
        if media is None:
            media = self._media[peer_id] = PeerMedia(peer_id, loop.time())
        key = (peer_id, kind)
        running = self._current.get(key)
        self._first[track] = loop.create_future()
        task = loop.create_task(self._drain(peer_id, track, kind), name=f"screen-{kind}-{peer_id}")
        if running is not None and not running.done():
            # Make-before-break: the running track counts until this one delivers, so
            # the gap across the switch (if any) is measured like any other.
            self._pending[key] = task
        else:
            self._current[key] = task
            if kind == "video":
                media.restart_gaps()
        self._attached.setdefault(peer_id, set()).add(task)
        self._tasks.add(task)
        task.add_done_callback(self._forget)

    def _forget(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        for tasks in self._attached.values():
            tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("screen task %s failed", task.get_name(), exc_info=task.exception())

    def _counts(self, peer_id: str, kind: str) -> bool:
        return self._current.get((peer_id, kind)) is asyncio.current_task()

    def _delivered(self, peer_id: str, kind: str, track: MediaStreamTrack) -> None:
        """A track's first decoded frame: a pending track takes over from the current."""
        key = (peer_id, kind)
        task = asyncio.current_task()
        if task is not None and self._pending.get(key) is task:
            del self._pending[key]
            self._current[key] = task
        self._settle(track, True)

    def _settle(self, track: MediaStreamTrack, delivered: bool) -> None:
        future = self._first.get(track)
        if future is not None and not future.done():
            future.set_result(delivered)

    async def _drain(self, peer_id: str, track: MediaStreamTrack, kind: str) -> None:
        """Drain a track; when it ends (the track ended, or was detached), a wait for
        its first frame ends too."""
        try:
            if kind == "audio":
                await self._drain_audio(peer_id, track)
            else:
                await self._drain_video(peer_id, track, kind)
        finally:
            self._settle(track, False)
            self._first.pop(track, None)

    async def _drain_video(self, peer_id: str, track: MediaStreamTrack, kind: str) -> None:
        on_frame = self._on_content_frame if kind == "content" else self._on_video_frame
        first = True
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return  # the track ended: its connection closed
            if not isinstance(frame, av.VideoFrame):
                continue
            if first:
                first = False
                self._delivered(peer_id, kind, track)
            if not self._counts(peer_id, kind):
                continue
            try:
                on_frame(peer_id, frame)
            except Exception:
                # Measuring must never stop the draining.
                logger.exception("screen: cannot measure a video frame from %s", peer_id)

    async def _drain_audio(self, peer_id: str, track: MediaStreamTrack) -> None:
        first = True
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            if not isinstance(frame, av.AudioFrame):
                continue
            if first:
                first = False
                self._delivered(peer_id, "audio", track)
            if not self._counts(peer_id, "audio"):
                continue
            try:
                now = asyncio.get_running_loop().time()
                self._media[peer_id].add_audio_frame(*audio_energy(frame), now)
                if now - self._speaker_judged >= SPEAKER_INTERVAL:
                    self.judge_speaker()
                if self.on_audio_frame is not None:
                    self.on_audio_frame(peer_id, frame)
            except Exception:
                logger.exception("screen: cannot measure or play an audio frame from %s", peer_id)

    def _on_video_frame(self, peer_id: str, frame: av.VideoFrame) -> None:
        media = self._media[peer_id]
        wall_now = self.clock.now()
        first_frame = media.first_frame_at is None
        first_camera = media.first_camera_at is None
        media.add_video_frame(asyncio.get_running_loop().time(), wall_now, frame_stamp(frame))
        if first_frame and media.first_frame_at is not None:
            self._fire(self.on_first_frame, peer_id, wall_now)
        if first_camera and media.first_camera_at is not None:
            self._fire(self.on_first_camera_frame, peer_id, wall_now)

    def _on_content_frame(self, peer_id: str, frame: av.VideoFrame) -> None:
        loop = asyncio.get_running_loop()
        self._media[peer_id].add_content_frame(loop.time(), self.clock.now())

    def _fire(self, callback: FirstFrameCallback | None, peer_id: str, at: float) -> None:
        if callback is None:
            return
        try:
            callback(peer_id, at)
        except Exception:
            logger.exception("screen: first-frame callback failed for %s", peer_id)


async def _cancel(tasks: set[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    # Failures were already logged by _forget; cancelling must not raise them again.
    await asyncio.gather(*tasks, return_exceptions=True)
