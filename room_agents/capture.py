"""Capture from real devices: the camera and the microphone, each read on its own
thread through PyAV, and the room's devices put together from the configuration.

Rules:

- A capture thread opens its device spec (room_agents.devices), decodes, and hands
  each frame on; it never raises. A device that cannot be opened, fails while
  read, or stalls longer than ``read_timeout`` is logged with the reason (once per
  distinct reason) and retried every ``retry`` seconds until it comes back. A file
  that ends is opened again at once, so a file camera loops.
- Devices pace themselves; lavfi and files decode as fast as they can, so their
  frames are released on their own timestamps (``DeviceSpec.live``).
- Camera frames are converted and scaled to the configured size (yuv420p, by
  swscale) and stamped on the capture thread with the capture time from the
  agent's clock, camera flag set, as the synthetic camera stamps its frames: the
  stamp overwrites a band at the top of the picture, and glass-to-glass latency
  reads from it the same way. The track takes the latest frame at its own rate
  (a faster camera drops frames, a slower one repeats them, with their original
  capture time).
- With no frame for ``stale_after`` seconds (a missing, busy, unplugged or stalled
  camera), the camera source sends the "camera unavailable" card instead
  (``FLAG_NO_CAMERA``), and the camera again as soon as it delivers.
- Microphone samples are converted to s16 mono 48 kHz and queued (bounded) for the
  audio track; a microphone that cannot be opened leaves the track silent.
- The camera and microphone sources the tracks read are guarded
  (``GuardedCamera``, ``GuardedMicrophone``): an exception from a source (the
  synthetic camera included) never reaches the track, whose death would silence
  the room for the rest of the call. The camera sends the "camera unavailable"
  card instead and the microphone silence; the source is tried again on every
  tick, and its failure shows in ``RoomDevices.status()`` (state ``unavailable``,
  code ``device-failed``) until it delivers again. The guards call ``on_change``
  when a source fails or comes back, so the readiness check runs at once.
- Every thread is started and stopped by ``RoomDevices``, which the agent owns.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any, Final

import av
import numpy as np
import numpy.typing as npt

from room_agents.config import AgentConfig
from room_agents.device_thread import DeviceThread
from room_agents.devices import (
    DEVICE_FAILED,
    DEVICE_MISSING,
    DEVICE_STALLED,
    DeviceError,
    DeviceSpec,
    Kind,
    open_error,
    open_input,
    parse_spec,
    use_system_alsa,
)
from room_agents.media import (
    AudioSource,
    Clock,
    SineSource,
    SyntheticCamera,
    UnavailableCard,
    VideoSource,
    capture_ms,
    check_frame_size,
)
from room_agents.playback import SampleFifo, Speaker, new_resampler, rms, to_mono_48k
from room_agents.stamp import write_stamp

log = logging.getLogger(__name__)

RETRY: Final = 3.0
MAX_FAULT: Final = 200  # characters of a source's exception kept for the status
READ_TIMEOUT: Final = 2.0
STALE_AFTER: Final = 1.5
# A period quieter than this (about -80 dBFS) counts as silence for ``last_sound``.
SOUND_FLOOR: Final = 1e-4

Yuv = npt.NDArray[np.uint8]


class CaptureThread(DeviceThread):
    """Reads one device spec on a thread, forever, until stopped; subclasses pick the
    stream and take the frames."""

    kind: Kind = "camera"

    def __init__(self, spec: DeviceSpec, retry: float = RETRY, read_timeout: float = READ_TIMEOUT):
        super().__init__(spec, retry, name=f"{self.kind}-capture", label=f"{self.kind} {spec}")
        self.read_timeout = read_timeout
        self.frames = 0
        self.opened = 0  # how many times the device was opened
        self.last_frame: float | None = None  # monotonic

    def status(self) -> dict[str, Any]:
        age = None if self.last_frame is None else time.monotonic() - self.last_frame
        return {
            "spec": str(self.spec),
            "state": self.state,
            "error": self.error.message if self.error else None,
            "error_code": self.error.code if self.error else None,
            "frames": self.frames,
            "opened": self.opened,
            "last_frame_age": age,
        }

    # -- the thread --

    def _select(self, container: Any) -> Any:
        raise NotImplementedError

    def _take(self, frame: Any) -> None:
        raise NotImplementedError

    def _run(self) -> None:
        self._thread.repeat(self._attempt, lambda: self.retry, self._crashed)

    def _attempt(self) -> bool:
        """Open the device and read it until it fails or ends; True: read it again now."""
        try:
            container = open_input(self.spec, self.kind, self.read_timeout)
        except DeviceError as exc:
            self._unavailable(exc)
            return False
        self.opened += 1
        before = self.frames
        try:
            self._read(container, self._select(container))
        except DeviceError as exc:
            self._unavailable(exc)
        except av.ExitError:
            self._unavailable(
                DeviceError(
                    DEVICE_STALLED,
                    f"{self.kind} {self.spec}: nothing for {self.read_timeout:.0f} s",
                )
            )
        except av.FFmpegError as exc:
            self._unavailable(open_error(self.spec, self.kind, exc.errno, str(exc)))
        else:
            if self._thread.stopping:
                return False
            if not self.spec.live and self.frames > before:
                return True  # a file or a finite lavfi graph: loop it
            self._unavailable(
                DeviceError(DEVICE_MISSING, f"{self.kind} {self.spec}: the input ended")
            )
        finally:
            with contextlib.suppress(av.FFmpegError, OSError):
                container.close()
        return False

    def _crashed(self, exc: Exception) -> None:
        log.exception("%s %s: capture failed", self.kind, self.spec)
        self._unavailable(DeviceError(DEVICE_FAILED, f"{self.kind} {self.spec} failed"))

    def _read(self, container: Any, stream: Any) -> None:
        origin: float | None = None
        for frame in container.decode(stream):
            if self._thread.stopping:
                return
            if not self.spec.live and frame.time is not None:
                now = time.monotonic()
                if origin is None:
                    origin = now - frame.time
                delay = origin + frame.time - now
                if delay > 0 and self._thread.wait(delay):
                    return
            self._take(frame)
            self.frames += 1
            self.last_frame = time.monotonic()
            self._working("delivers")


class VideoCapture(CaptureThread):
    """A camera (or a screen, for content): frames scaled to ``width`` x ``height``
    yuv420p and stamped at capture."""

    def __init__(
        self,
        spec: DeviceSpec,
        clock: Clock,
        width: int,
        height: int,
        kind: Kind = "camera",
        retry: float = RETRY,
        read_timeout: float = READ_TIMEOUT,
    ) -> None:
        super().__init__(spec, retry, read_timeout)
        check_frame_size(width, height)
        self.kind = kind
        self.clock = clock
        self.width, self.height = width, height
        self._latest: tuple[Yuv, float] | None = None

    def latest(self, max_age: float) -> Yuv | None:
        """The latest stamped picture, if it is at most ``max_age`` seconds old."""
        latest = self._latest
        if latest is None or time.monotonic() - latest[1] > max_age:
            return None
        return latest[0]

    def _select(self, container: Any) -> Any:
        if not container.streams.video:
            raise DeviceError(DEVICE_FAILED, f"{self.kind} {self.spec}: no video in it")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"  # MJPEG and H.264 cameras decode on several cores
        return stream

    def _take(self, frame: Any) -> None:
        picture = frame.reformat(width=self.width, height=self.height, format="yuv420p")
        yuv = np.ascontiguousarray(picture.to_ndarray(), dtype=np.uint8)
        write_stamp(yuv, self.width, self.height, capture_ms(self.clock), camera=True)
        self._latest = (yuv, time.monotonic())


class AudioCapture(CaptureThread):
    """A microphone: samples as s16 mono 48 kHz into ``fifo``."""

    kind: Kind = "microphone"

    def __init__(
        self,
        spec: DeviceSpec,
        fifo: SampleFifo,
        retry: float = RETRY,
        read_timeout: float = READ_TIMEOUT,
    ) -> None:
        super().__init__(spec, retry, read_timeout)
        self.fifo = fifo
        self.level = 0.0  # RMS of the latest frame, fraction of full scale
        self.last_sound: float | None = None  # monotonic, the latest frame above the floor
        self._resampler: Any = None

    def status(self) -> dict[str, Any]:
        status = super().status()
        status["level"] = self.level
        status["last_sound_age"] = (
            None if self.last_sound is None else time.monotonic() - self.last_sound
        )
        return status

    def _select(self, container: Any) -> Any:
        if not container.streams.audio:
            raise DeviceError(DEVICE_FAILED, f"microphone {self.spec}: no audio in it")
        self._resampler = new_resampler()
        return container.streams.audio[0]

    def _take(self, frame: Any) -> None:
        samples = to_mono_48k(self._resampler, frame)
        self.fifo.push(samples)
        self.level = rms(samples)
        if self.level > SOUND_FLOOR:
            self.last_sound = time.monotonic()


class CameraSource:
    """``VideoSource`` for a real camera: its latest picture, or the unavailable card."""

    def __init__(
        self, capture: VideoCapture, unavailable: VideoSource, stale_after: float = STALE_AFTER
    ) -> None:
        self.capture = capture
        self.unavailable = unavailable
        self.stale_after = stale_after

    def next_frame(self) -> av.VideoFrame:
        yuv = self.capture.latest(self.stale_after)
        if yuv is None:
            return self.unavailable.next_frame()
        return av.VideoFrame.from_ndarray(yuv, format="yuv420p")


class SourceGuard:
    """The failure bookkeeping of a guarded source: the current error (None while it
    delivers), how many ticks failed, and ``on_change`` when it fails or comes back.
    A traceback is logged once per distinct error, not on every tick."""

    def __init__(self, kind: Kind, spec: DeviceSpec) -> None:
        self.kind = kind
        self.spec = spec
        self.error: str | None = None
        self.failures = 0
        self.on_change: Callable[[], None] | None = None
        self._logged: set[str] = set()

    def failed(self, exc: Exception) -> None:
        self.failures += 1
        message = f"{self.kind} {self.spec} failed: {type(exc).__name__}: {exc}"[:MAX_FAULT]
        if message not in self._logged:
            self._logged.add(message)
            log.error("%s; sending %s instead", message, self._instead, exc_info=exc)
        first = self.error is None
        self.error = message
        if first:
            self._changed()

    def delivered(self) -> None:
        if self.error is not None:
            log.info("%s %s delivers again", self.kind, self.spec)
            self.error = None
            self._changed()

    @property
    def _instead(self) -> str:
        return "the unavailable card" if self.kind == "camera" else "silence"

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change()


class GuardedCamera(SourceGuard):
    """``VideoSource``: the camera source's frame, or ``unavailable``'s while it raises."""

    def __init__(self, source: VideoSource, unavailable: VideoSource, spec: DeviceSpec) -> None:
        super().__init__("camera", spec)
        self.source = source
        self.unavailable = unavailable

    def next_frame(self) -> av.VideoFrame:
        try:
            frame = self.source.next_frame()
        except Exception as exc:
            self.failed(exc)
            return self.unavailable.next_frame()
        self.delivered()
        return frame


class GuardedMicrophone(SourceGuard):
    """``AudioSource``: the microphone source's samples, or silence while it raises."""

    def __init__(self, source: AudioSource, spec: DeviceSpec) -> None:
        super().__init__("microphone", spec)
        self.source = source

    def read(self, start_sample: int, samples: int) -> npt.NDArray[np.int16]:
        try:
            out = self.source.read(start_sample, samples)
        except Exception as exc:
            self.failed(exc)
            return np.zeros(samples, np.int16)
        self.delivered()
        return out


class RoomDevices:
    """The room's camera, microphone and speaker, from the configuration; owns their
    threads (``start``, ``close``)."""

    def __init__(self, config: AgentConfig, clock: Clock) -> None:
        w, h, fps, label = config.width, config.height, config.fps, config.label
        self.camera_spec = parse_spec(config.camera, "camera")
        self.microphone_spec = parse_spec(config.microphone, "microphone")
        self.speaker_spec = parse_spec(config.speaker, "speaker")
        self.camera_capture: VideoCapture | None = None
        self.microphone_capture: AudioCapture | None = None
        self.speaker: Speaker | None = None
        retry = config.device_retry
        unavailable = UnavailableCard(clock, w, h, fps, label=label)
        camera: VideoSource
        if self.camera_spec.synthetic:
            camera = SyntheticCamera(clock, w, h, fps, label=label)
        else:
            self.camera_capture = VideoCapture(self.camera_spec, clock, w, h, retry=retry)
            camera = CameraSource(self.camera_capture, unavailable)
        self.camera = GuardedCamera(camera, unavailable, self.camera_spec)
        microphone: AudioSource = SineSource()
        if not self.microphone_spec.synthetic:
            fifo = SampleFifo()
            microphone = fifo
            self.microphone_capture = AudioCapture(self.microphone_spec, fifo, retry=retry)
        self.microphone = GuardedMicrophone(microphone, self.microphone_spec)
        if not self.speaker_spec.none:
            self.speaker = Speaker(self.speaker_spec, retry=retry)

    @property
    def on_change(self) -> Callable[[], None] | None:
        """Called when the camera or the microphone source fails or comes back."""
        return self.camera.on_change

    @on_change.setter
    def on_change(self, callback: Callable[[], None] | None) -> None:
        self.camera.on_change = self.microphone.on_change = callback

    @property
    def feed_speaker(self) -> Callable[[str, av.AudioFrame], None] | None:
        return self.speaker.feed if self.speaker is not None else None

    def start(self) -> None:
        # One frame now: a camera source that cannot build one shows in the status (and
        # the first readiness check) before the first call, not only once it is live.
        self.camera.next_frame()
        specs = (self.camera_spec, self.microphone_spec, self.speaker_spec)
        if any(spec.format == "alsa" for spec in specs):
            use_system_alsa()
        for capture in (self.camera_capture, self.microphone_capture):
            if capture is not None:
                capture.start()
        if self.speaker is not None:
            self.speaker.start()

    async def close(self) -> None:
        """Stop every thread (off the event loop: a device read may take a moment)."""
        for stoppable in (self.camera_capture, self.microphone_capture, self.speaker):
            if stoppable is not None:
                await asyncio.to_thread(stoppable.stop)

    def status(self) -> dict[str, Any]:
        def synthetic(spec: DeviceSpec) -> dict[str, Any]:
            return {"spec": str(spec), "state": "ok" if not spec.none else "none"}

        def guarded(status: dict[str, Any], guard: SourceGuard) -> dict[str, Any]:
            if guard.error is None:
                return status
            return {
                **status,
                "state": "unavailable",
                "error": guard.error,
                "error_code": DEVICE_FAILED,
                "failed_ticks": guard.failures,
            }

        camera = (
            self.camera_capture.status() if self.camera_capture else synthetic(self.camera_spec)
        )
        microphone = (
            self.microphone_capture.status()
            if self.microphone_capture
            else synthetic(self.microphone_spec)
        )
        return {
            "camera": guarded(camera, self.camera),
            "microphone": guarded(microphone, self.microphone),
            "speaker": self.speaker.status() if self.speaker else synthetic(self.speaker_spec),
        }
