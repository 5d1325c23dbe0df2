"""A VideoRoom on a real Janus (tests/janus_support.py) with real aiortc peers on this machine:
a room is created with its secret and PIN (a wrong PIN is refused), an aiortc publisher
sends camera, microphone and content (three m-lines, in that order), an aiortc
subscriber gets Janus' offer for the feed, answers, starts and decodes both videos.

Facts these tests pin (docs/architecture.md, "Janus"): Janus' SDPs carry its candidates
(half-trickle, with ``a=end-of-candidates``), only on the interface ``ice_enforce_list``
names (never another address of the host); the subscription offer has the publisher's
three sections in the publisher's order, all ``sendonly``, and names their tracks by
the publisher's mids (``a=msid:<feed> <mid>``), which ``restore_msids`` turns back into
the publisher's track ids (the content one starting with ``content-``); aiortc answers
it ``recvonly`` in every section, and Janus takes that answer.
"""

from __future__ import annotations

import asyncio
import fractions
import re
import secrets
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.mediastreams import AudioStreamTrack

from room_agents.ice import pin_host_addresses, pinned_host_addresses, unpin_host_addresses
from room_agents.media import OutgoingAudioTrack
from signalling.janus.client import JanusConnection, JanusError
from signalling.janus.videoroom import AUDIO_LEVEL_AVERAGE, RoomSpec, VideoRoom, restore_msids
from tests.janus_support import JanusProcess, candidate_addresses, running_janus

CONNECT_TIMEOUT = 20.0
CAMERA = (320, 180)
CONTENT = (480, 272)
NO_ICE_SERVERS = RTCConfiguration(iceServers=[])


class SizedVideoTrack(MediaStreamTrack):
    """Grey frames of one size at 15 fps (a size tells camera from content at the far end)."""

    kind = "video"

    def __init__(self, width: int, height: int, track_id: str | None = None) -> None:
        super().__init__()
        if track_id is not None:
            self._id = track_id
        self.width = width
        self.height = height
        self._pts = 0
        self._started: float | None = None

    async def recv(self) -> av.VideoFrame:
        loop = asyncio.get_running_loop()
        if self._started is None:
            self._started = loop.time()
        else:
            self._pts += 6000  # 90 kHz / 15 fps
            wait = self._started + self._pts / 90000 - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)  # pacing of a media source, not a test wait
        shade = (self._pts // 6000 * 7) % 200 + 28
        frame = av.VideoFrame.from_ndarray(
            np.full((self.height, self.width, 3), shade, dtype=np.uint8), format="rgb24"
        )
        frame.pts = self._pts
        frame.time_base = fractions.Fraction(1, 90000)
        return frame


@pytest.fixture
def janus_address_only(janus: JanusProcess) -> Iterator[None]:
    """aiortc offers only the address the test Janus gathers on (tests/janus_support.py)."""
    before = pinned_host_addresses()
    pin_host_addresses([janus.ice_address])
    try:
        yield
    finally:
        if before is None:
            unpin_host_addresses()
        else:
            pin_host_addresses(before)


@pytest.fixture
def janus(tmp_path: Path) -> Iterator[JanusProcess]:
    with running_janus(tmp_path / "janus") as process:
        yield process


@pytest.fixture
async def conn(janus: JanusProcess) -> AsyncIterator[JanusConnection]:
    connection = await JanusConnection.connect(janus.url, api_secret=janus.config.api_secret)
    try:
        yield connection
    finally:
        await connection.close()


def room_spec() -> RoomSpec:
    return RoomSpec(
        room=secrets.randbelow(1 << 40) + 1,
        secret=secrets.token_hex(8),
        pin=secrets.token_hex(4),
        publishers=8,
        description="test session",
    )


def sections(sdp: str) -> list[str]:
    return sdp.split("\r\nm=")[1:]


def msid_tracks(sdp: str) -> list[str | None]:
    """The track id of each m-line's ``a=msid`` (None when it has none)."""
    found: list[str | None] = []
    for section in sections(sdp):
        match = re.search(r"^a=msid:\S+ (\S+)", section, re.MULTILINE)
        found.append(match.group(1) if match else None)
    return found


def directions(sdp: str) -> list[str]:
    return re.findall(r"^a=(recvonly|sendrecv|sendonly|inactive)\r?$", sdp, re.MULTILINE)


def kinds(sdp: str) -> list[str]:
    return [section.split(" ", 1)[0] for section in sections(sdp)]


async def connected(pc: RTCPeerConnection) -> None:
    done = asyncio.Event()

    @pc.on("connectionstatechange")
    def changed() -> None:
        if pc.connectionState in ("connected", "failed", "closed"):
            done.set()

    if pc.connectionState != "connected":
        await asyncio.wait_for(done.wait(), CONNECT_TIMEOUT)
    assert pc.connectionState == "connected"


async def test_a_room_is_created_with_its_pin_and_destroyed(
    conn: JanusConnection, janus: JanusProcess
) -> None:
    spec = room_spec()
    room = await VideoRoom.create(conn, spec, admin_key=janus.config.admin_key)
    assert await room.exists()
    # A wrong PIN is refused (VideoRoom's 433, unauthorized), the right one admitted.
    intruder = await conn.attach()
    with pytest.raises(JanusError) as refused:
        await intruder.message(
            {"request": "join", "ptype": "publisher", "room": spec.room, "pin": "wrong"}
        )
    assert refused.value.code == 433
    await intruder.detach()
    # Destroying needs the secret: a wrong one is refused, the room stays.
    with pytest.raises(JanusError):
        await room.control.request({"request": "destroy", "room": spec.room, "secret": "no"})
    assert await room.exists()
    await room.destroy()
    probe = await conn.attach()
    assert (await probe.request({"request": "exists", "room": spec.room}))["exists"] is False
    await probe.detach()


async def test_creating_a_room_needs_the_admin_key(conn: JanusConnection) -> None:
    with pytest.raises(JanusError):
        await VideoRoom.create(conn, room_spec(), admin_key="wrong")


async def frames_of(track: MediaStreamTrack, count: int) -> list[tuple[int, int]]:
    sizes: list[tuple[int, int]] = []
    while len(sizes) < count:
        frame = await track.recv()
        assert isinstance(frame, av.VideoFrame)
        sizes.append((frame.width, frame.height))
    return sizes


async def test_publish_three_sections_and_subscribe_to_them(
    conn: JanusConnection, janus: JanusProcess, janus_address_only: None
) -> None:
    room = await VideoRoom.create(conn, room_spec(), admin_key=janus.config.admin_key)
    publisher = RTCPeerConnection(NO_ICE_SERVERS)
    subscriber = RTCPeerConnection(NO_ICE_SERVERS)
    content_id = "content-" + uuid.uuid4().hex
    camera_track = SizedVideoTrack(*CAMERA)
    try:
        # aiortc's order, as room_agents/calls.py makes it: camera, microphone, content.
        publisher.addTrack(camera_track)
        publisher.addTrack(AudioStreamTrack())
        publisher.addTransceiver(SizedVideoTrack(*CONTENT, track_id=content_id), "sendrecv")
        await publisher.setLocalDescription(await publisher.createOffer())
        offer = publisher.localDescription.sdp
        publication = await room.publish(7, "room A", offer)
        answer = publication.answer_sdp
        assert candidate_addresses(answer), "Janus' answer carries its candidates"
        assert set(candidate_addresses(answer)) == {janus.ice_address}
        assert "a=end-of-candidates" in answer
        assert kinds(answer) == ["video", "audio", "video"]
        assert directions(answer) == ["recvonly"] * 3
        await publisher.setRemoteDescription(RTCSessionDescription(answer, "answer"))
        await connected(publisher)

        received: dict[str, MediaStreamTrack] = {}
        arrived = asyncio.Event()

        @subscriber.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            received[track.id] = track
            if len(received) == 3:
                arrived.set()

        subscription = await room.subscribe(7)
        offered = subscription.offer_sdp
        assert set(candidate_addresses(offered)) == {janus.ice_address}
        assert kinds(offered) == ["video", "audio", "video"]
        # Janus names the sections' tracks by the publisher's mids, not its track ids...
        assert msid_tracks(offered) == ["0", "1", "2"]
        # ... which restore_msids puts back from the publisher's offer.
        offered = restore_msids(offered, offer, subscription.streams)
        tracks = msid_tracks(offered)
        assert tracks == msid_tracks(offer)
        assert tracks[0] == camera_track.id and tracks[2] == content_id
        await subscriber.setRemoteDescription(RTCSessionDescription(offered, "offer"))
        await subscriber.setLocalDescription(await subscriber.createAnswer())
        answered = subscriber.localDescription.sdp
        assert directions(offered) == ["sendonly"] * 3
        assert directions(answered) == ["recvonly"] * 3
        await subscription.start(answered)
        await connected(subscriber)
        await asyncio.wait_for(arrived.wait(), CONNECT_TIMEOUT)
        assert set(received) == {camera_track.id, tracks[1], content_id}
        camera = await asyncio.wait_for(frames_of(received[camera_track.id], 5), 15)
        content = await asyncio.wait_for(frames_of(received[content_id], 5), 15)
        assert set(camera) == {CAMERA}
        assert set(content) == {CONTENT}
        audio = await asyncio.wait_for(received[tracks[1] or ""].recv(), 15)
        assert isinstance(audio, av.AudioFrame)
        await subscription.leave()
        await publication.leave()
    finally:
        await subscriber.close()
        await publisher.close()
        await room.destroy()


async def test_no_content_source_and_who_speaks(
    conn: JanusConnection, janus: JanusProcess, janus_address_only: None
) -> None:
    """A room without a content source offers its third section recvonly (as
    room_agents/calls.py does): Janus answers it inactive and keeps it, inactive, in
    the subscription, so every subscription has three sections. The synthetic
    microphone's tone (about -29 dBov) is speech for the room's threshold: the
    publisher's own handle gets ``talking``, and ``stopped-talking`` once muted."""
    room = await VideoRoom.create(conn, room_spec(), admin_key=janus.config.admin_key)
    publisher = RTCPeerConnection(NO_ICE_SERVERS)
    subscriber = RTCPeerConnection(NO_ICE_SERVERS)
    microphone = OutgoingAudioTrack()
    speech: asyncio.Queue[tuple[str, float]] = asyncio.Queue()

    def on_event(data: dict[str, Any], jsep: dict[str, Any] | None) -> None:
        if data.get("videoroom") in ("talking", "stopped-talking"):
            assert data["id"] == 9 and jsep is None
            speech.put_nowait((data["videoroom"], data["audio-level-dBov-avg"]))

    try:
        publisher.addTrack(SizedVideoTrack(*CAMERA))
        publisher.addTrack(microphone)
        publisher.addTransceiver("video", direction="recvonly")
        await publisher.setLocalDescription(await publisher.createOffer())
        publication = await room.publish(
            9, "room B", publisher.localDescription.sdp, on_event=on_event
        )
        assert directions(publication.answer_sdp) == ["recvonly", "recvonly", "inactive"]
        await publisher.setRemoteDescription(
            RTCSessionDescription(publication.answer_sdp, "answer")
        )
        await connected(publisher)

        subscription = await room.subscribe(9)
        assert directions(subscription.offer_sdp) == ["sendonly", "sendonly", "inactive"]
        videos: list[MediaStreamTrack] = []
        subscriber.on(
            "track", lambda track: videos.append(track) if track.kind == "video" else None
        )
        await subscriber.setRemoteDescription(
            RTCSessionDescription(subscription.offer_sdp, "offer")
        )
        await subscriber.setLocalDescription(await subscriber.createAnswer())
        answer = subscriber.localDescription.sdp
        assert directions(answer) == ["recvonly", "recvonly", "inactive"]
        await subscription.start(answer)
        await connected(subscriber)
        assert await asyncio.wait_for(frames_of(videos[0], 3), 15) == [CAMERA] * 3

        kind, level = await asyncio.wait_for(speech.get(), 10)
        assert kind == "talking" and level < AUDIO_LEVEL_AVERAGE
        microphone.muted = True
        kind, level = await asyncio.wait_for(speech.get(), 10)
        assert kind == "stopped-talking" and level > AUDIO_LEVEL_AVERAGE
    finally:
        await subscriber.close()
        await publisher.close()
        await room.destroy()


def without_candidates(sdp: str) -> tuple[str, list[dict[str, Any]]]:
    """An SDP with its candidates taken out (as a trickling browser sends it), and
    those candidates as trickle messages (for the first section: bundled)."""
    kept: list[str] = []
    found: list[dict[str, Any]] = []
    section = -1
    for line in sdp.split("\r\n"):
        if line.startswith("m="):
            section += 1
        if line.startswith("a=candidate:"):
            if section == 0:
                found.append({"candidate": line[2:], "sdpMid": "0", "sdpMLineIndex": 0})
            continue
        if line == "a=end-of-candidates":
            continue
        kept.append(line)
    return "\r\n".join(kept), found


async def test_a_trickling_publisher_connects(
    conn: JanusConnection, janus: JanusProcess, janus_address_only: None
) -> None:
    """A publisher whose offer has no candidate (a browser that trickles) sends them
    with ``trickle``, then ``trickle(None)``: Janus connects to it."""
    room = await VideoRoom.create(conn, room_spec(), admin_key=janus.config.admin_key)
    publisher = RTCPeerConnection(NO_ICE_SERVERS)
    try:
        publisher.addTrack(SizedVideoTrack(*CAMERA))
        publisher.addTrack(AudioStreamTrack())
        await publisher.setLocalDescription(await publisher.createOffer())
        offer, candidates = without_candidates(publisher.localDescription.sdp)
        assert candidates and not candidate_addresses(offer)
        publication = await room.publish(3, "guest", offer)
        await publisher.setRemoteDescription(
            RTCSessionDescription(publication.answer_sdp, "answer")
        )
        for candidate in candidates:
            await publication.handle.trickle(candidate)
        await publication.handle.trickle(None)
        await connected(publisher)
    finally:
        await publisher.close()
        await room.destroy()


PUBLISHED = (
    "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"
    "m=video 9 UDP/TLS/RTP/SAVPF 97\r\na=mid:0\r\na=msid:cam-stream cam-track\r\n"
    "m=audio 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\na=msid:cam-stream mic-track\r\n"
    "m=video 9 UDP/TLS/RTP/SAVPF 97\r\na=mid:2\r\na=msid:content-stream content-abc\r\n"
)
# Janus' subscription offer for a subscriber that only took the content and the
# microphone, in its own mids: the publisher's mids say which is which.
OFFERED = (
    "v=0\r\no=- 2 1 IN IP4 127.0.0.1\r\ns=VideoRoom 1\r\nt=0 0\r\n"
    "m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=sendonly\r\na=mid:0\r\na=msid:7 2\r\n"
    "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=sendonly\r\na=mid:1\r\na=msid:7 1\r\n"
)


def test_restore_msids_maps_sections_through_the_publishers_mids() -> None:
    streams = [{"mid": "0", "feed_mid": "2"}, {"mid": "1", "feed_mid": "1"}]
    restored = restore_msids(OFFERED, PUBLISHED, streams)
    assert msid_tracks(restored) == ["content-abc", "mic-track"]
    assert "a=msid:content-stream content-abc\r\n" in restored
    # Everything else is as Janus wrote it.
    assert (
        restored.replace("content-stream content-abc", "7 2").replace("cam-stream mic-track", "7 1")
        == OFFERED
    )
    # A section the streams do not name, or a publisher without msid, keeps Janus' line.
    assert restore_msids(OFFERED, PUBLISHED, []) == OFFERED
    assert restore_msids(OFFERED, PUBLISHED.replace("a=msid", "a=x-msid"), streams) == OFFERED
