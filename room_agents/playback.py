"""The room's loudspeaker: the far rooms' decoded audio, mixed and written to an ALSA
PCM (``alsa:default``, ``alsa:plughw:CARD=PCH,DEV=0``, ``alsa:null``) or a file
(``file:/path/out.wav``).

Rules:

- Each remote peer's frames are converted to s16 mono 48 kHz and queued in that
  peer's ``SampleFifo``; the writer mixes one 20 ms period from every queue (a
  plain sum, clipped) and writes it, on its own thread, because a sound card's
  write blocks. Silence is written when nobody talks, so the card never runs dry
  and a file's length is the time it was open.
- The writer paces itself on the monotonic clock (ALSA's ``null`` PCM and files
  do not block); a writer more than ``MAX_LATE`` behind skips ahead rather than
  bursting. Queues are bounded (``MAX_QUEUE``): a peer whose clock runs fast loses
  its oldest samples, so the delay never grows.
- A speaker that cannot be opened is logged with the reason and retried every
  ``retry`` seconds; the call goes on without it.
- Echo cancellation is the operating system's (deploy/echo-cancellation.md): point
  the speaker and the microphone at the echo-cancelled PCMs.
"""

from __future__ import annotations

import collections
import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Any, Final

import av
import numpy as np
import numpy.typing as npt

from room_agents.device_thread import DeviceThread
from room_agents.devices import DeviceError, DeviceSpec, open_error, open_output
from room_agents.media import AUDIO_PTIME, AUDIO_SAMPLE_RATE, AUDIO_SAMPLES

log = logging.getLogger(__name__)

Samples = npt.NDArray[np.int16]

MAX_QUEUE: Final = AUDIO_SAMPLE_RATE // 5  # 200 ms
PREFILL: Final = 2 * AUDIO_SAMPLES  # 40 ms banked before playing after running dry
HIGH_WATER: Final = PREFILL + 2 * AUDIO_SAMPLES  # 80 ms: more is trimmed back to PREFILL
MAX_LATE: Final = 0.2
IDLE_PEER: Final = 10.0  # seconds without audio before a peer's queue is dropped


# --- pure helpers ---------------------------------------------------------------------


class SampleFifo:
    """A bounded, thread-safe queue of s16 mono samples between a producer and a
    reader that takes fixed periods.

    ``read`` returns exactly the samples asked for, padding with silence when the
    queue runs dry; after running dry it waits until ``prefill`` samples are banked,
    so a producer that delivers in bursts is not heard as crackle. A queue found
    holding more than ``high_water`` samples is trimmed back to ``prefill`` (the
    oldest go), so a delay banked once, at start-up or after a stall, is not kept
    for the rest of the call. ``push`` drops the oldest samples beyond
    ``max_samples``.
    """

    def __init__(
        self, max_samples: int = MAX_QUEUE, prefill: int = PREFILL, high_water: int = HIGH_WATER
    ) -> None:
        if not prefill <= high_water <= max_samples:
            raise ValueError("expected prefill <= high_water <= max_samples")
        self.max_samples = max_samples
        self.prefill = prefill
        self.high_water = high_water
        self._chunks: collections.deque[Samples] = collections.deque()
        self._size = 0
        self._dry = True
        self._lock = threading.Lock()
        self.dropped = 0
        self.underruns = 0
        self.trims = 0
        self.last_push: float | None = None  # monotonic

    def __len__(self) -> int:
        return self._size

    def push(self, samples: Samples) -> None:
        chunk = np.asarray(samples, dtype=np.int16).reshape(-1)
        if not chunk.size:
            return
        with self._lock:
            self._chunks.append(chunk)
            self._size += chunk.size
            if self._size > self.max_samples:
                self._drop(self._size - self.max_samples)
            self.last_push = time.monotonic()

    def _drop(self, count: int) -> None:
        """Drop the ``count`` oldest samples (the lock is held)."""
        self.dropped += count
        self._size -= count
        while count:
            head = self._chunks[0]
            if head.size <= count:
                self._chunks.popleft()
                count -= head.size
            else:
                self._chunks[0] = head[count:]
                count = 0

    def read(self, start_sample: int, samples: int) -> Samples:
        """``AudioSource.read``: the next ``samples`` samples (``start_sample`` unused:
        a queue has no random access)."""
        out = np.zeros(samples, np.int16)
        with self._lock:
            if self._dry and self._size < self.prefill:
                return out
            self._dry = False
            if self._size > self.high_water:
                self._drop(self._size - self.prefill)
                self.trims += 1
            filled = 0
            while filled < samples and self._chunks:
                head = self._chunks[0]
                take = min(samples - filled, head.size)
                out[filled : filled + take] = head[:take]
                filled += take
                if take == head.size:
                    self._chunks.popleft()
                else:
                    self._chunks[0] = head[take:]
                self._size -= take
            if filled < samples:
                self._dry = True
                self.underruns += 1
        return out


def mix(periods: list[Samples]) -> Samples:
    """Sum periods of s16 samples, clipped to the s16 range."""
    if not periods:
        return np.zeros(AUDIO_SAMPLES, np.int16)
    total = np.stack(periods).astype(np.int32).sum(axis=0)
    mixed: Samples = np.clip(total, -32768, 32767).astype(np.int16)
    return mixed


def rms(samples: Samples) -> float:
    """Root mean square as a fraction of full scale (0..1)."""
    if not samples.size:
        return 0.0
    return math.sqrt(float(np.mean(np.square(samples.astype(np.float64))))) / 32768.0


def to_mono_48k(resampler: Any, frame: av.AudioFrame) -> Samples:
    """The frame's samples as s16 mono 48 kHz, through ``resampler``."""
    frame.pts = None  # a peer's timestamps jump across reconnections; order is enough
    chunks = [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
    if not chunks:
        return np.zeros(0, np.int16)
    samples: Samples = np.concatenate(chunks).astype(np.int16, copy=False)
    return samples


def new_resampler() -> Any:
    return av.AudioResampler(format="s16", layout="mono", rate=AUDIO_SAMPLE_RATE)


# --- the speaker ----------------------------------------------------------------------


class Speaker(DeviceThread):
    """Mixes the far rooms' audio into one output, written on its own thread."""

    working_state = "playing"

    def __init__(
        self,
        spec: DeviceSpec,
        retry: float = 3.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(spec, retry, name="speaker", label=f"speaker {spec}")
        self._clock = clock
        self._queues: dict[str, SampleFifo] = {}
        self._resamplers: dict[str, Any] = {}
        self._lock = threading.Lock()
        self.periods_written = 0
        self.level = 0.0  # RMS of the latest period written
        self.loudest = 0.0  # the highest period RMS since start

    # -- the loop's side --

    def feed(self, peer_id: str, frame: av.AudioFrame) -> None:
        """A decoded remote frame (called on the event loop, by the screen)."""
        resampler = self._resamplers.get(peer_id)
        if resampler is None:
            resampler = self._resamplers[peer_id] = new_resampler()
        samples = to_mono_48k(resampler, frame)
        with self._lock:
            queue = self._queues.get(peer_id)
            if queue is None:
                queue = self._queues[peer_id] = SampleFifo()
        queue.push(samples)

    def status(self) -> dict[str, Any]:
        return {
            "spec": str(self.spec),
            "state": self.state,
            "error": self.error.message if self.error else None,
            "periods_written": self.periods_written,
            "level": self.level,
            "peers": sorted(self._queues),
        }

    # -- the writer thread --

    def _next_period(self) -> Samples:
        now = time.monotonic()
        with self._lock:
            queues = list(self._queues.items())
        periods = []
        for peer_id, queue in queues:
            if queue.last_push is not None and now - queue.last_push > IDLE_PEER:
                with self._lock:
                    self._queues.pop(peer_id, None)
                self._resamplers.pop(peer_id, None)  # dict ops are atomic under the GIL
                continue
            periods.append(queue.read(0, AUDIO_SAMPLES))
        return mix(periods)

    def _run(self) -> None:
        self._thread.repeat(self._attempt, lambda: self.retry, self._crashed)

    def _attempt(self) -> bool:
        """Open the output and write to it until it fails or the speaker stops."""
        try:
            container = open_output(self.spec)
        except DeviceError as exc:
            self._unavailable(exc)
            return False
        try:
            self._write(container)
        except av.FFmpegError as exc:
            self._unavailable(open_error(self.spec, "speaker", exc.errno, str(exc)))
        finally:
            try:
                container.close()
            except (av.FFmpegError, OSError) as exc:
                log.warning("speaker %s: closing: %s", self.spec, exc)
        return False

    def _crashed(self, exc: Exception) -> None:
        log.exception("speaker %s failed", self.spec)
        self._unavailable(DeviceError("device-failed", f"speaker {self.spec} failed"))

    def _write(self, container: Any) -> None:
        stream = container.add_stream("pcm_s16le", rate=AUDIO_SAMPLE_RATE, layout="mono")
        pts = 0
        due = self._clock()
        while not self._thread.stopping:
            samples = self._next_period()
            frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
            frame.sample_rate = AUDIO_SAMPLE_RATE
            frame.pts = pts
            pts += AUDIO_SAMPLES
            for packet in stream.encode(frame):
                container.mux(packet)
            self._working("playing")
            self.periods_written += 1
            self.level = rms(samples)
            self.loudest = max(self.loudest, self.level)
            due += AUDIO_PTIME
            late = self._clock() - due
            if late > MAX_LATE:
                due = self._clock()  # a stall (or a blocking card): skip, do not burst
            elif late < 0:
                self._thread.wait(-late)
        for packet in stream.encode(None):
            container.mux(packet)
