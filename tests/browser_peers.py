"""aiortc peers for the guest page's browser tests: a site that sends a small stamped
camera and a tone (or silence), answering or offering on loopback with no ICE server,
and a receiver that counts the frames it gets (a Janus stand-in taking the page's
publication). Candidates are only 127.0.0.1 (``loopback_only``)."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError
from aiortc.sdp import candidate_from_sdp

from common.tasks import TaskSet
from room_agents.content import CONTENT_TRACK_PREFIX
from room_agents.ice import (
    pin_host_addresses,
    pinned_host_addresses,
    rtc_configuration,
    unpin_host_addresses,
)
from room_agents.media import (
    OutgoingAudioTrack,
    OutgoingVideoTrack,
    SineSource,
    StartingCard,
    SyntheticCamera,
)

LOUD = 0.5  # a sine at half of full scale: about -9 dBFS RMS
WIDTH, HEIGHT, FPS = 320, 180, 10


class WallClock:
    def now(self) -> float:
        return time.time()


@pytest.fixture
def loopback_only() -> Iterator[None]:
    """aioice gathers on 127.0.0.1 only, for the whole test."""
    before = pinned_host_addresses()
    pin_host_addresses(["127.0.0.1"])
    try:
        yield
    finally:
        if before is None:
            unpin_host_addresses()
        else:
            pin_host_addresses(before)


@dataclass
class Site:
    """What one site sends: its camera, a tone while ``loud`` (else silence), and with
    ``sharing`` a content track (its track id starts with ``content-``, as the agents')."""

    label: str
    loud: bool = False
    sharing: bool = False
    video: OutgoingVideoTrack = field(init=False)
    audio: OutgoingAudioTrack = field(init=False)
    content: OutgoingVideoTrack | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        clock = WallClock()
        self.video = OutgoingVideoTrack(
            SyntheticCamera(clock, WIDTH, HEIGHT, FPS, label=self.label),
            StartingCard(clock, WIDTH, HEIGHT, FPS),
            fps=FPS,
        )
        self.video.set_live(True)
        self.audio = OutgoingAudioTrack(SineSource(440.0, LOUD))
        self.set_loud(self.loud)
        if self.sharing:
            self.content = OutgoingVideoTrack(
                SyntheticCamera(clock, WIDTH, HEIGHT, FPS, label="content"),
                StartingCard(clock, WIDTH, HEIGHT, FPS),
                fps=FPS,
            )
            self.content.set_live(True)
            self.content._id = CONTENT_TRACK_PREFIX + uuid.uuid4().hex

    def set_loud(self, loud: bool) -> None:
        self.loud = loud
        self.audio.muted = not loud  # digital silence

    def stop(self) -> None:
        for track in (self.video, self.audio, self.content):
            if track is not None:
                track.stop()

    async def stop_soon(self) -> None:
        self.stop()


async def answer_as(site: Site, offer_sdp: str) -> tuple[RTCPeerConnection, str]:
    """Answer the page's offer with the site's camera and sound (a mesh call)."""
    pc = RTCPeerConnection(rtc_configuration())
    await pc.setRemoteDescription(RTCSessionDescription(offer_sdp, "offer"))
    pc.addTrack(site.video)
    pc.addTrack(site.audio)
    await pc.setLocalDescription(await pc.createAnswer())
    return pc, pc.localDescription.sdp


async def offer_as(site: Site) -> tuple[RTCPeerConnection, str]:
    """An offer that sends the site's camera, sound and content if it shares, and
    receives nothing (what the SFU offers for a member's publication)."""
    pc = RTCPeerConnection(rtc_configuration())
    pc.addTransceiver(site.video, direction="sendonly")
    pc.addTransceiver(site.audio, direction="sendonly")
    if site.content is not None:
        pc.addTransceiver(site.content, direction="sendonly")
    await pc.setLocalDescription(await pc.createOffer())
    return pc, pc.localDescription.sdp


@dataclass
class Receiver:
    """A peer connection that takes what the page sends, counting video frames."""

    pc: RTCPeerConnection
    frames: dict[str, int] = field(default_factory=dict)  # kind -> frames received
    _tasks: TaskSet = field(default_factory=TaskSet)

    @classmethod
    def new(cls) -> Receiver:
        receiver = cls(RTCPeerConnection(rtc_configuration()))

        @receiver.pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            receiver._tasks.spawn(receiver._count(track))

        return receiver

    async def _count(self, track: MediaStreamTrack) -> None:
        self.frames.setdefault(track.kind, 0)
        with contextlib.suppress(MediaStreamError):
            while True:
                await track.recv()
                self.frames[track.kind] += 1

    async def answer(self, offer_sdp: str) -> str:
        await self.pc.setRemoteDescription(RTCSessionDescription(offer_sdp, "offer"))
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        return self.pc.localDescription.sdp

    async def close(self) -> None:
        await self.pc.close()
        await self._tasks.close()


async def add_trickled(pc: RTCPeerConnection, message: dict[str, Any]) -> None:
    """A ``candidate`` message the page trickled, added to ``pc`` (absent: the end)."""
    line = message.get("candidate")
    if not line:
        await pc.addIceCandidate(None)
        return
    candidate = candidate_from_sdp(str(line).removeprefix("a=").removeprefix("candidate:"))
    candidate.sdpMid = message.get("sdp_mid")
    candidate.sdpMLineIndex = message.get("sdp_mline_index")
    await pc.addIceCandidate(candidate)
