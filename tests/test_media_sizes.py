"""Every size the agent's settings accept gives stamped frames (camera and every
card) that read back, through VP8 too; every size they refuse is refused at
startup with an error that says why.

Regression: at 160x120 the synthetic camera raised "could not broadcast input array
from shape (6,40) into shape (0,40)" on every frame (its label was pasted below the
stamp, past the bottom of the frame); the exception killed the track's relay and the
room never went live, silently. 160x120 is now refused by the settings (the stamp
would cover 112 of its 120 rows), and the sources no longer raise there.
"""

from __future__ import annotations

import asyncio
import dataclasses
import fractions
import time
from collections.abc import Iterator

import av
import numpy as np
import numpy.typing as npt
import pytest
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription
from aiortc.codecs.vpx import Vp8Decoder, Vp8Encoder, vp8_depayload
from aiortc.contrib.media import MediaRelay
from aiortc.jitterbuffer import JitterFrame

from room_agents import cli
from room_agents.agent import RoomAgent
from room_agents.config import (
    MAX_HEIGHT,
    MAX_WIDTH,
    MIN_HEIGHT,
    MIN_WIDTH,
    AgentConfig,
    ConfigError,
    merge,
)
from room_agents.ice import (
    check_sdp,
    parse_networks,
    pin_host_addresses,
    rtc_configuration,
    unpin_host_addresses,
)
from room_agents.media import (
    OutgoingVideoTrack,
    PrivacyCard,
    StartingCard,
    SyntheticCamera,
    UnavailableCard,
)
from room_agents.screen import HeadlessScreen
from room_agents.stamp import BLOCK, Stamp, read_stamp, stamp_rows

T0 = 1_767_225_600.0
LABEL = "Centre Amsterdam-Zuidoost / Vergaderzaal 12 (the long one by the lifts)"
TITLE = "Quarterly planning review with the regional offices, partners and the board " * 2
SERVER = "http://127.0.0.1:1"

# (width, height, refused): the issue's table, and the settings' own limits.
SIZES = [
    (160, 120, "below the minimum"),
    (176, 144, "below the minimum"),
    (MIN_WIDTH, MIN_HEIGHT, None),
    (320, 180, None),
    (322, 242, None),
    (640, 360, None),
    (1280, 720, None),
    (MAX_WIDTH, MAX_HEIGHT, None),
    (MAX_WIDTH + 2, MAX_HEIGHT, "above the maximum"),
    (MIN_WIDTH, MIN_HEIGHT - 2, "below the minimum"),
    (641, 360, "must be even"),
    (640, 361, "must be even"),
]
ACCEPTED = [(w, h) for w, h, refused in SIZES if refused is None]


class FakeClock:
    def __init__(self, t: float = T0) -> None:
        self.t = t

    def now(self) -> float:
        return self.t


class SystemClock:
    def now(self) -> float:
        return time.time()


def luma_of(frame: av.VideoFrame) -> npt.NDArray[np.uint8]:
    return np.asarray(frame.to_ndarray(format="yuv420p"), dtype=np.uint8)[: frame.height]


# --- the settings -------------------------------------------------------------------------


@pytest.mark.parametrize(("width", "height", "refused"), SIZES)
def test_the_settings_accept_a_size_or_refuse_it_saying_why(
    width: int, height: int, refused: str | None
) -> None:
    flags = {"server": SERVER, "width": str(width), "height": str(height)}
    if refused is None:
        config = merge(flags, {}).config
        assert (config.width, config.height) == (width, height)
        return
    with pytest.raises(ConfigError, match=refused) as err:
        merge(flags, {})
    if "minimum" in refused:
        assert "capture-time stamp" in str(err.value), err.value
    # A configuration built by hand (tests, benchmarks) meets the same rule.
    with pytest.raises(ConfigError):
        AgentConfig(server_url="ws://a/ws", width=width, height=height)


def test_the_minimum_leaves_most_of_the_picture_to_the_room() -> None:
    """The reason for the minimum, checked against the stamp's real geometry: at the
    smallest size accepted the stamp takes 4 rows of blocks (36 % of the height); at
    160x120 it would take 93 %."""
    assert stamp_rows(MIN_WIDTH) * BLOCK / MIN_HEIGHT <= 0.36
    assert stamp_rows(160) * BLOCK / 120 > 0.9


def test_a_room_pc_configured_at_160x120_is_told_at_startup(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``telecentre agent run`` stops before connecting, with exit status 2 and the
    reason, instead of running a room whose camera never goes live."""
    started: list[object] = []
    monkeypatch.setattr(cli, "run_until_signalled", started.append)
    monkeypatch.setenv("TELECENTRE_ROOM_KEY", "tck_test")
    status = cli.main(["run", "--server", SERVER, "--width", "160", "--height", "120"])
    err = capsys.readouterr().err
    assert status == 2 and not started
    assert "--width: 160 is below the minimum, 320" in err
    assert "capture-time stamp" in err
    # The environment and the file get the same answer, naming their source.
    monkeypatch.setenv("TELECENTRE_AGENT_HEIGHT", "120")
    assert cli.main(["config", "--server", SERVER]) == 2
    assert "TELECENTRE_AGENT_HEIGHT: 120 is below the minimum, 180" in capsys.readouterr().err


# --- the sources at every accepted size -----------------------------------------------------


@pytest.mark.parametrize(("width", "height"), ACCEPTED)
def test_every_source_of_an_agent_stamps_its_frames_at_every_accepted_size(
    width: int, height: int
) -> None:
    """The agent's own camera, starting card, privacy card and unavailable card, with a
    label and a title too long for the frame: right size, stamp read back, right flags."""
    config = merge({"server": SERVER, "width": str(width), "height": str(height)}, {}).config
    agent = RoomAgent(dataclasses.replace(config, label=LABEL))
    agent.outgoing.video.set_card_title(TITLE)
    sources = {
        "camera": agent.devices.camera,
        "starting": agent.outgoing.video.card,
        "privacy": agent.outgoing.video.privacy_card,
        "unavailable": agent.devices.camera.unavailable,
    }
    flags = {
        "camera": Stamp(0, camera=True),
        "starting": Stamp(0, camera=False),
        "privacy": Stamp(0, camera=False, privacy=True),
        "unavailable": Stamp(0, camera=False, no_camera=True),
    }
    for name, source in sources.items():
        assert source is not None
        for _ in range(2):
            before = int(agent.clock.now() * 1000)
            frame = source.next_frame()
            after = int(agent.clock.now() * 1000)
            assert (frame.width, frame.height, frame.format.name) == (width, height, "yuv420p")
            stamp = read_stamp(luma_of(frame))
            assert stamp is not None, name
            assert before <= stamp.capture_ms <= after, name
            assert dataclasses.replace(stamp, capture_ms=0) == flags[name], name
    assert agent.devices.status()["camera"]["state"] == "ok"


@pytest.mark.parametrize(("width", "height"), [(160, 120), (176, 144), (MIN_WIDTH, MIN_HEIGHT)])
def test_the_sources_work_wherever_the_stamp_fits_even_below_the_minimum(
    width: int, height: int
) -> None:
    """Benchmarks and tests build sources directly: the synthetic camera with a label
    must not raise at 160x120 (the regression), and every card still reads back."""
    clock = FakeClock()
    for source in (
        SyntheticCamera(clock, width, height, label=LABEL),
        StartingCard(clock, width, height, label=LABEL, title=TITLE),
        PrivacyCard(clock, width, height, label=LABEL),
        UnavailableCard(clock, width, height, label=LABEL),
    ):
        for _ in range(3):
            stamp = read_stamp(luma_of(source.next_frame()))
            assert stamp is not None and stamp.capture_ms == int(T0 * 1000), type(source)


def test_card_text_stays_inside_the_frame_and_below_the_stamp() -> None:
    """A title wider than the frame shrinks and is cut short with an ellipsis instead of
    running off both edges; nothing is drawn over the stamp."""
    width, height = MIN_WIDTH, MIN_HEIGHT
    card = StartingCard(FakeClock(), width, height, label=LABEL, title=TITLE)
    luma = luma_of(card.next_frame())
    band = stamp_rows(width) * BLOCK
    text = luma[band:] > StartingCard.BACKGROUND + 60
    columns = np.flatnonzero(text.any(axis=0))
    assert columns.size and columns[0] > 0 and columns[-1] < width - 1
    blank = StartingCard(FakeClock(), width, height, label="", title="")
    assert (luma_of(blank.next_frame())[:band] == luma[:band]).all()


# --- through VP8 --------------------------------------------------------------------------


@pytest.mark.parametrize(("width", "height"), [(MIN_WIDTH, MIN_HEIGHT), (322, 242)])
def test_the_synthetic_camera_s_stamp_survives_vp8_at_its_lowest_bitrate(
    width: int, height: int
) -> None:
    """aiortc's encoder clamped to its minimum bitrate, at the smallest accepted size
    and at a size that is no multiple of 16 (its chroma planes are 161 px wide)."""
    clock = FakeClock()
    camera = SyntheticCamera(clock, width, height, label=LABEL)
    encoder, decoder = Vp8Encoder(), Vp8Decoder()
    encoder.target_bitrate = 0  # clamped to aiortc's MIN_BITRATE
    sent: list[Stamp] = []
    read: list[Stamp | None] = []
    for index in range(30):
        clock.t = T0 + index / 30 + index * 0.0007
        frame = camera.next_frame()
        frame.pts, frame.time_base = index * 3000, fractions.Fraction(1, 90_000)
        sent.append(Stamp(int(clock.t * 1000), camera=True))
        payloads, timestamp = encoder.encode(frame, force_keyframe=index == 0)
        data = b"".join(vp8_depayload(p) for p in payloads)
        for decoded in decoder.decode(JitterFrame(data=data, timestamp=timestamp)):
            assert isinstance(decoded, av.VideoFrame)
            assert (decoded.width, decoded.height) == (width, height)
            read.append(read_stamp(luma_of(decoded)))
    assert read == sent


@pytest.fixture
def pinned_loopback() -> Iterator[None]:
    pin_host_addresses(["127.0.0.1"])
    try:
        yield
    finally:
        unpin_host_addresses()


async def test_the_smallest_accepted_size_goes_live_over_a_real_aiortc_call(
    pinned_loopback: None,
) -> None:
    """A room at the minimum size, on loopback through aiortc's VP8: the card, then the
    camera once live, every decoded frame's stamp read by the screen."""
    clock = SystemClock()  # the screen compares stamps with the wall clock
    width, height = MIN_WIDTH, MIN_HEIGHT
    video = OutgoingVideoTrack(
        SyntheticCamera(clock, width, height, label=LABEL),
        StartingCard(clock, width, height, label=LABEL, title=TITLE),
        fps=15,
    )
    relay = MediaRelay()
    screen = HeadlessScreen(clock)
    first_frame, first_camera = asyncio.Event(), asyncio.Event()
    screen.on_first_frame = lambda peer, at: first_frame.set()
    screen.on_first_camera_frame = lambda peer, at: first_camera.set()
    sender = RTCPeerConnection(rtc_configuration([]))
    receiver = RTCPeerConnection(rtc_configuration([]))
    sizes: set[tuple[int, int]] = set()

    def on_track(track: MediaStreamTrack) -> None:
        screen.attach_video("b", SizeProbe(track, sizes))

    receiver.on("track", on_track)
    try:
        sender.addTrack(relay.subscribe(video, buffered=False))
        loopback = parse_networks(["127.0.0.1/32"])
        await sender.setLocalDescription(await sender.createOffer())
        check_sdp(sender.localDescription.sdp, loopback)
        await receiver.setRemoteDescription(
            RTCSessionDescription(sender.localDescription.sdp, "offer")
        )
        await receiver.setLocalDescription(await receiver.createAnswer())
        await sender.setRemoteDescription(
            RTCSessionDescription(receiver.localDescription.sdp, "answer")
        )
        await asyncio.wait_for(first_frame.wait(), 10)
        video.set_live(True)
        await asyncio.wait_for(first_camera.wait(), 5)
        totals = screen.totals()["b"]
        assert (totals["camera_frames"] or 0) >= 1
        assert totals["stamped_frames"] == totals["frames"]  # every frame's stamp read
        assert sizes == {(width, height)}
    finally:
        await screen.close()
        await sender.close()
        await receiver.close()
        video.stop()


class SizeProbe(MediaStreamTrack):
    """Passes a received track on, noting the decoded sizes."""

    kind = "video"

    def __init__(self, track: MediaStreamTrack, sizes: set[tuple[int, int]]) -> None:
        super().__init__()
        self.track = track
        self.sizes = sizes

    async def recv(self) -> av.VideoFrame:
        frame = await self.track.recv()
        assert isinstance(frame, av.VideoFrame)
        self.sizes.add((frame.width, frame.height))
        return frame
