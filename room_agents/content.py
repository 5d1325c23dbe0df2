"""Content sharing: the room PC's screen (x11grab) or a capture device, sent to every
other site as a second video track.

Rules:

- The source is the ``content`` device spec of the agent's settings
  (room_agents.devices: ``x11grab::0.0``, ``x11grab::99?video_size=1920x1080``,
  ``v4l2:/dev/video2`` for an HDMI capture card, ``lavfi:...`` in tests); ``none``
  means the room has no content source (``content_available`` false).
- Every peer connection always carries a second video transceiver for content,
  negotiated with the call (docs/architecture.md "Content share"): it sends
  nothing until the room shares, and nothing again after it stops, so starting
  and stopping never renegotiate. A room without a source negotiates it
  ``recvonly``, so it still receives the others' content.
- Content is told apart on the receiving side by its transceiver (the second
  video m-line, the one after the camera and the microphone), and announced in
  the SDP: the track id in its ``a=msid`` starts with ``CONTENT_TRACK_PREFIX``.
  Content frames carry no frame stamp: the shared picture is shown as it is.
- The device is opened only while the room shares (x11grab of a screen costs CPU).
  ``share()`` waits up to ``OPEN_TIMEOUT`` for the first picture and refuses, with
  the device's own reason, when none comes.
- Pictures are scaled to the room's send size (yuv420p) on the capture thread,
  and sent at ``fps`` (at most ``MAX_FPS``: slides and documents, not video).
"""

from __future__ import annotations

import asyncio
import time
import uuid
import weakref
from typing import Any, Final

import av
import numpy as np
from aiortc import MediaStreamTrack
from aiortc.mediastreams import VIDEO_CLOCK_RATE, MediaStreamError

from room_agents.capture import VideoCapture
from room_agents.devices import DeviceSpec, parse_spec
from room_agents.media import VIDEO_TIME_BASE, Clock, Pacer

CONTENT_TRACK_PREFIX: Final = "content-"
OPEN_TIMEOUT: Final = 3.0
MAX_FPS: Final = 15
STALE_AFTER: Final = 2.0


def content_spec(text: str, fps: int) -> DeviceSpec | None:
    """The content source of the settings, or None for ``none``. An x11grab source
    without a frame rate grabs at ``fps``, not at FFmpeg's default 29.97."""
    spec = parse_spec(text, "content")
    if spec.none:
        return None
    if spec.format == "x11grab" and "framerate" not in dict(spec.options):
        spec = DeviceSpec(spec.format, spec.target, (*spec.options, ("framerate", str(fps))))
    return spec


def is_content_track_id(track_id: str) -> bool:
    return track_id.startswith(CONTENT_TRACK_PREFIX)


class ContentCapture(VideoCapture):
    """The content device: pictures scaled to the send size, not stamped."""

    def _take(self, frame: Any) -> None:
        picture = frame.reformat(width=self.width, height=self.height, format="yuv420p")
        yuv = np.ascontiguousarray(picture.to_ndarray(), dtype=np.uint8)
        self._latest = (yuv, time.monotonic())


class ContentTrack(MediaStreamTrack):
    """One peer connection's content track: waits (sends nothing) while the room does
    not share, then the latest picture at the share's rate."""

    kind = "video"

    def __init__(self, share: ContentShare) -> None:
        super().__init__()
        self._id = CONTENT_TRACK_PREFIX + uuid.uuid4().hex
        self._share = share
        self._pacer = Pacer(share.fps, VIDEO_CLOCK_RATE)
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        super().stop()
        self._wake.set()

    async def recv(self) -> av.VideoFrame:
        while True:
            if self.readyState != "live":
                raise MediaStreamError
            if not self._share.sharing:
                self._wake.clear()
                await self._wake.wait()
                continue
            pts = await self._pacer.wait()
            if self.readyState != "live":
                raise MediaStreamError
            yuv = self._share.latest()
            if yuv is None:
                continue  # the source stalled: send nothing rather than a stale picture
            frame = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
            frame.pts = pts
            frame.time_base = VIDEO_TIME_BASE
            return frame


class ContentShare:
    """The room's content source and whether it is shared; makes the per-peer tracks."""

    def __init__(
        self,
        spec: DeviceSpec,
        clock: Clock,
        width: int,
        height: int,
        fps: int = MAX_FPS,
        retry: float = 3.0,
    ) -> None:
        self.spec = spec
        self.fps = max(1, min(fps, MAX_FPS))
        self.capture = ContentCapture(spec, clock, width, height, kind="content", retry=retry)
        self.sharing = False
        self._tracks: weakref.WeakSet[ContentTrack] = weakref.WeakSet()

    def track(self) -> ContentTrack:
        track = ContentTrack(self)
        self._tracks.add(track)
        return track

    def latest(self) -> Any:
        return self.capture.latest(STALE_AFTER)

    async def share(self, timeout: float = OPEN_TIMEOUT) -> str | None:
        """Start sharing; None once the source delivers, else why it cannot."""
        if self.sharing:
            return None
        self.capture.start()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.latest() is None:
            if loop.time() > deadline:
                error = self.capture.error
                await asyncio.to_thread(self.capture.stop)
                return error.message if error else f"content {self.spec}: no picture"
            await asyncio.sleep(0.05)
        self.sharing = True
        for track in list(self._tracks):
            track.wake()
        return None

    async def stop_sharing(self) -> None:
        self.sharing = False
        # Off the loop: the capture thread may be inside a blocking read.
        await asyncio.to_thread(self.capture.stop)

    async def close(self) -> None:
        await self.stop_sharing()
        for track in list(self._tracks):
            track.stop()

    def status(self) -> dict[str, Any]:
        return {"sharing": self.sharing, **self.capture.status()}
