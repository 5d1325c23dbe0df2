"""Outgoing tracks, the headless screen, and a real aiortc loopback call between them."""

from __future__ import annotations

import asyncio
import fractions
import time
from collections.abc import Callable, Iterator

import av
import numpy as np
import numpy.typing as npt
import pytest
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription
from aiortc.contrib.media import MediaRelay
from aiortc.mediastreams import MediaStreamError

from room_agents.ice import (
    check_sdp,
    parse_networks,
    pin_host_addresses,
    rtc_configuration,
    unpin_host_addresses,
)
from room_agents.media import (
    AUDIO_SAMPLES,
    OutgoingVideoTrack,
    Pacer,
    StartingCard,
    SyntheticAudioTrack,
    SyntheticCamera,
)
from room_agents.screen import (
    HeadlessScreen,
    PeerMedia,
    audio_energy,
    histogram_percentile,
    is_freeze,
    percentile,
)
from room_agents.stamp import Stamp, read_stamp

T0 = 1_767_225_600.0


class SystemClock:
    def now(self) -> float:
        return time.time()


class FakeClock:
    def __init__(self, t: float = T0) -> None:
        self.t = t

    def now(self) -> float:
        return self.t


class FakeTrack(MediaStreamTrack):
    """A remote track fed by the test; ``None`` ends it like aiortc's RemoteStreamTrack."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self.queue: asyncio.Queue[av.VideoFrame | av.AudioFrame | None] = asyncio.Queue()
        self.idle = asyncio.Event()  # set when a reader waits on an empty queue

    async def recv(self) -> av.VideoFrame | av.AudioFrame:
        if self.queue.empty():
            self.idle.set()
        frame = await self.queue.get()
        self.idle.clear()
        if frame is None:
            self.stop()
            self.idle.set()  # nothing more will be read
            raise MediaStreamError
        return frame

    async def feed(self, *frames: av.VideoFrame | av.AudioFrame | None) -> None:
        """Queue frames and wait until the reader has taken them all and waits again."""
        if frames:
            self.idle.clear()
        for frame in frames:
            self.queue.put_nowait(frame)
        await asyncio.wait_for(self.idle.wait(), 5)


def luma_of(frame: av.VideoFrame) -> npt.NDArray[np.uint8]:
    return np.asarray(frame.to_ndarray(format="yuv420p"), dtype=np.uint8)[: frame.height]


def stamp_of(frame: av.VideoFrame) -> Stamp | None:
    return read_stamp(luma_of(frame))


async def eventually(predicate: Callable[[], bool], within: float = 10.0) -> None:
    """Wait, bounded, until a condition on state we cannot subscribe to holds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not predicate():
        if loop.time() > deadline:
            raise TimeoutError(f"condition not met within {within} s")
        await asyncio.sleep(0.02)


@pytest.fixture
def pinned_loopback() -> Iterator[None]:
    pin_host_addresses(["127.0.0.1"])
    try:
        yield
    finally:
        unpin_host_addresses()


# --- sources and tracks ------------------------------------------------------------------


def test_camera_frames_move_and_carry_a_camera_stamp() -> None:
    clock = FakeClock()
    camera = SyntheticCamera(clock, label="Centre A / Room 1")
    first = camera.next_frame()
    clock.t += 1 / 30
    second = camera.next_frame()
    assert (first.format.name, first.width, first.height) == ("yuv420p", 640, 360)
    assert stamp_of(first) == Stamp(int(T0 * 1000), camera=True)
    assert stamp_of(second) == Stamp(int(T0 * 1000) + 33, camera=True)
    luma_a = first.to_ndarray(format="yuv420p")[32:360]
    luma_b = second.to_ndarray(format="yuv420p")[32:360]
    assert np.count_nonzero(luma_a != luma_b) > luma_a.size // 4  # visibly moving


def test_card_is_static_but_its_stamp_updates() -> None:
    clock = FakeClock()
    card = StartingCard(clock, label="Centre A / Room 1", title="Weekly meeting")
    first = card.next_frame()
    clock.t += 0.5
    second = card.next_frame()
    assert stamp_of(first) == Stamp(int(T0 * 1000), camera=False)
    assert stamp_of(second) == Stamp(int(T0 * 1000) + 500, camera=False)
    below_stamp = slice(48, 360)
    a, b = (f.to_ndarray(format="yuv420p")[below_stamp] for f in (first, second))
    assert (a == b).all()
    card.set_title("Another meeting")
    c = card.next_frame().to_ndarray(format="yuv420p")[below_stamp]
    assert card.title == "Another meeting" and not (a == c).all()


def test_sources_reject_sizes_that_cannot_carry_a_stamp() -> None:
    with pytest.raises(ValueError):
        SyntheticCamera(FakeClock(), width=641, height=360)
    with pytest.raises(ValueError):
        StartingCard(FakeClock(), width=64, height=32)  # 66 blocks need 5 rows of 4


async def test_pacer_keeps_real_time_and_skips_when_late() -> None:
    pacer = Pacer(50, 90_000)  # 20 ms ticks
    loop = asyncio.get_running_loop()
    start = loop.time()
    stamps = [await pacer.wait() for _ in range(6)]
    assert stamps == [0, 1800, 3600, 5400, 7200, 9000]
    assert 0.09 <= loop.time() - start < 0.25
    time.sleep(0.1)  # noqa: ASYNC251 - a blocked loop (5 ticks late) is the point
    late = await pacer.wait()
    assert late >= 9000 + 4 * 1800  # skipped ahead instead of bursting


async def test_switch_to_camera_lands_on_the_next_frame() -> None:
    clock = SystemClock()
    track = OutgoingVideoTrack(SyntheticCamera(clock), StartingCard(clock, title="T"), fps=30)
    try:
        frames = [await track.recv() for _ in range(3)]
        assert [f.pts for f in frames] == [0, 3000, 6000]
        assert all(f.time_base == fractions.Fraction(1, 90_000) for f in frames)
        assert [s.camera for s in map(stamp_of, frames) if s] == [False, False, False]
        was_live = track.live
        track.set_live(True)
        assert (was_live, track.live) == (False, True)
        after = stamp_of(await track.recv())
        assert after is not None and after.camera
        track.set_live(False)
        again = stamp_of(await track.recv())
        assert again is not None and not again.camera
        track.set_card_title("Now the title")
        assert isinstance(track.card, StartingCard) and track.card.title == "Now the title"
    finally:
        track.stop()
    with pytest.raises(MediaStreamError):
        await track.recv()


async def test_audio_is_20ms_of_quiet_non_zero_s16_mono_48k() -> None:
    track = SyntheticAudioTrack()
    try:
        frames = [await track.recv() for _ in range(3)]
    finally:
        track.stop()
    for i, frame in enumerate(frames):
        assert (frame.format.name, frame.layout.name) == ("s16", "mono")
        assert (frame.sample_rate, frame.samples, frame.pts) == (48_000, AUDIO_SAMPLES, i * 960)
        samples = frame.to_ndarray()
        assert 0 < np.abs(samples).max() < 32767 * 0.1
    energy, count = audio_energy(frames[0])
    assert count == 960 and 0.03 < (energy / count) ** 0.5 < 0.04  # 0.05 / sqrt(2)
    # The tone is continuous across frames.
    joined = np.concatenate([f.to_ndarray()[0] for f in frames]).astype(np.int32)
    assert np.abs(np.diff(joined)).max() < 32767 * 0.05 * 0.1


def test_audio_energy_reads_packed_stereo_in_place_as_the_general_path_does() -> None:
    rng = np.random.default_rng(7)
    pcm = rng.integers(-20_000, 20_000, size=(1, 1920), dtype=np.int16)
    packed = av.AudioFrame.from_ndarray(pcm, format="s16", layout="stereo")
    planar = av.AudioFrame.from_ndarray(pcm.reshape(2, 960), format="s16p", layout="stereo")
    expected = float(np.square(pcm.astype(np.float64) / 32768.0).sum())
    for frame in (packed, planar):
        energy, count = audio_energy(frame)
        assert count == 1920
        assert energy == pytest.approx(expected, rel=1e-5)


async def test_one_track_feeds_two_unbuffered_relay_subscribers() -> None:
    clock = SystemClock()
    track = OutgoingVideoTrack(SyntheticCamera(clock), StartingCard(clock))
    relay = MediaRelay()
    first, second = relay.subscribe(track, buffered=False), relay.subscribe(track, buffered=False)
    try:
        for _ in range(5):
            a, b = await asyncio.wait_for(asyncio.gather(first.recv(), second.recv()), 2)
            assert a is b  # one source frame per tick, shared
    finally:
        first.stop()
        second.stop()
        track.stop()


# --- the screen's figures, without IO ------------------------------------------------------


def test_freeze_rule_is_webrtc_stats_freeze_count() -> None:
    assert not is_freeze(0.099, 0.033)
    assert not is_freeze(0.180, 0.033)  # 3 x 33 ms < 180 ms, but under 33 + 150 ms
    assert is_freeze(0.190, 0.033)
    assert is_freeze(0.400, 0.100) and not is_freeze(0.290, 0.100)  # 3 x mean wins


def test_percentiles_are_nearest_rank() -> None:
    assert percentile([], 50) is None
    assert percentile([5.0, 1.0, 3.0, 2.0, 4.0], 50) == 3.0
    assert percentile(range(1, 101), 95) == 95.0
    assert histogram_percentile({}, 50) is None
    assert histogram_percentile({10: 50, 20: 45, 300: 5}, 50) == 10.0
    assert histogram_percentile({10: 50, 20: 45, 300: 5}, 95) == 20.0
    assert histogram_percentile({10: 50, 20: 45, 300: 5}, 96) == 300.0


def test_peer_media_periods_freezes_latency_and_live() -> None:
    media = PeerMedia("b", mono_now=100.0)
    mono, wall = 100.0, T0
    for i in range(10):
        camera = i >= 8
        media.add_video_frame(mono, wall, Stamp(int(wall * 1000) - 80, camera=camera))
        mono, wall = mono + 0.05, wall + 0.05
    media.add_video_frame(mono + 0.5, wall + 0.5, None)  # a 550 ms gap: one freeze
    media.add_audio_frame(energy=0.25 * 960, samples=960)
    stats = media.period(mono_now=101.0, reset=True)
    assert (stats.peer_id, stats.frames, stats.freezes, stats.live) == ("b", 11, 1, True)
    assert stats.fps == pytest.approx(11.0)
    assert stats.latency_p50_ms == pytest.approx(80, abs=1)
    assert stats.latency_p95_ms == pytest.approx(80, abs=1)
    assert stats.audio_frames == 1
    assert stats.audio_level == pytest.approx(0.5)
    empty = media.period(mono_now=102.0, reset=False)
    assert (empty.frames, empty.fps, empty.latency_p50_ms, empty.freezes) == (0, 0.0, None, 0)
    assert (empty.audio_frames, empty.audio_level, empty.live) == (0, 0.0, True)
    totals = media.totals()
    assert (totals["frames"], totals["stamped_frames"], totals["camera_frames"]) == (11, 10, 2)
    assert totals["freezes"] == 1
    assert totals["first_frame_at"] == T0
    assert totals["first_camera_at"] == pytest.approx(T0 + 0.4)
    assert totals["latency_p50_ms"] == pytest.approx(80, abs=1)


def test_a_freeze_does_not_hide_the_next_one() -> None:
    media = PeerMedia("b", mono_now=0.0)
    mono = 0.0
    for _ in range(8):
        media.add_video_frame(mono, T0, None)
        mono += 0.033
    for _ in range(3):
        mono += 0.5
        media.add_video_frame(mono, T0, None)
    assert media.freezes == 3


# --- the screen draining tracks -------------------------------------------------------------


def stamped_frame(clock: FakeClock, camera: bool) -> av.VideoFrame:
    source = SyntheticCamera(clock) if camera else StartingCard(clock)
    return source.next_frame()


async def test_screen_drains_counts_and_ends_quietly(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    screen = HeadlessScreen(clock)
    events: list[tuple[str, str, float]] = []
    screen.on_first_frame = lambda peer, at: events.append(("frame", peer, at))
    screen.on_first_camera_frame = lambda peer, at: events.append(("camera", peer, at))
    video, audio = FakeTrack("video"), FakeTrack("audio")
    screen.attach_video("b", video)
    screen.attach_audio("b", audio)
    card_frame = stamped_frame(clock, camera=False)
    clock.t += 0.1
    await video.feed(card_frame, card_frame)
    camera_frame = stamped_frame(clock, camera=True)
    clock.t += 0.05
    await video.feed(camera_frame)
    await audio.feed(await SyntheticAudioTrack().recv())
    assert [(kind, peer) for kind, peer, _ in events] == [("frame", "b"), ("camera", "b")]
    assert [at for _, _, at in events] == pytest.approx([T0 + 0.1, T0 + 0.15])
    (stats,) = screen.snapshot()
    assert (stats.frames, stats.live, stats.audio_frames) == (3, True, 1)
    assert stats.latency_p50_ms == pytest.approx(100, abs=1)
    assert stats.latency_p95_ms == pytest.approx(100, abs=1)
    assert stats.audio_level > 0
    await video.feed(None)  # the track ends: its task ends without an error
    await audio.feed(None)
    await eventually(lambda: not screen._tasks, 2)
    assert screen.totals()["b"]["frames"] == 3
    assert not [r for r in caplog.records if r.levelname in ("WARNING", "ERROR")]
    await screen.close()


async def test_detach_and_close_cancel_draining_tasks() -> None:
    screen = HeadlessScreen(FakeClock())
    b, c = FakeTrack("video"), FakeTrack("video")
    screen.attach_video("b", b)
    screen.attach_video("c", c)
    await b.feed()
    await c.feed()
    assert screen.peers == ["b", "c"] and len(screen._tasks) == 2
    await screen.detach("b")
    assert screen.peers == ["c"] and len(screen._tasks) == 1
    assert [s.peer_id for s in screen.snapshot()] == ["c"]
    await screen.close()
    assert not screen._tasks and screen.peers == []
    assert set(screen.totals()) == {"b", "c"}  # figures outlive the connections


async def test_a_newer_track_takes_over_at_its_first_frame_and_the_older_is_still_drained() -> None:
    """Make-before-break (a member's SFU subscription beside its mesh call): the older
    track counts until the newer one delivers a frame, then only the newer counts,
    and the older keeps being drained."""
    clock = FakeClock()
    screen = HeadlessScreen(clock)
    old, new = FakeTrack("video"), FakeTrack("video")
    screen.attach_video("b", old)
    old_first = asyncio.ensure_future(screen.first_frame(old))
    await old.feed()  # the drain waits for frames
    assert not old_first.done()
    screen.attach_video("b", new)  # the subscription, before it delivers
    frame = stamped_frame(clock, camera=False)
    await old.feed(frame, frame)
    assert screen.totals()["b"]["frames"] == 2  # the older still shows
    assert await asyncio.wait_for(old_first, 1) and await screen.first_frame(old)
    waiting = asyncio.ensure_future(screen.first_frame(new))
    await new.feed(frame)  # the newer delivers: it takes over
    assert await asyncio.wait_for(waiting, 1)
    await old.feed(frame, frame, frame)
    assert old.queue.empty()  # drained, uncounted
    assert screen.totals()["b"]["frames"] == 3
    await new.feed(frame)
    assert screen.totals()["b"]["frames"] == 4
    assert [s.peer_id for s in screen.snapshot()] == ["b"]
    await screen.close()


async def test_first_frame_is_false_for_a_track_that_ends_or_is_detached_before_one() -> None:
    screen = HeadlessScreen(FakeClock())
    ended, detached = FakeTrack("video"), FakeTrack("audio")
    assert not await screen.first_frame(ended)  # not attached
    screen.attach_video("b", ended)
    screen.attach_audio("c", detached)
    waiting = asyncio.ensure_future(screen.first_frame(ended))
    await ended.feed(None)
    assert not await asyncio.wait_for(waiting, 1)
    waiting = asyncio.ensure_future(screen.first_frame(detached))
    await detached.feed()
    await screen.detach("c")
    assert not await asyncio.wait_for(waiting, 1)
    assert not screen._first
    await screen.close()


# --- a real call ------------------------------------------------------------------------------


async def connect(sender: RTCPeerConnection, receiver: RTCPeerConnection) -> None:
    loopback = parse_networks(["127.0.0.1/32"])
    await sender.setLocalDescription(await sender.createOffer())
    offer = sender.localDescription
    check_sdp(offer.sdp, loopback)
    await receiver.setRemoteDescription(RTCSessionDescription(offer.sdp, offer.type))
    await receiver.setLocalDescription(await receiver.createAnswer())
    answer = receiver.localDescription
    check_sdp(answer.sdp, loopback)
    await sender.setRemoteDescription(RTCSessionDescription(answer.sdp, answer.type))


async def test_loopback_call_to_two_peers_through_an_unbuffered_relay(
    pinned_loopback: None,
) -> None:
    clock = SystemClock()
    camera = SyntheticCamera(clock, label="Centre A / Room 1")
    card = StartingCard(clock, label="Centre A / Room 1", title="Weekly meeting")
    video = OutgoingVideoTrack(camera, card)
    audio = SyntheticAudioTrack()
    relay = MediaRelay()
    screen = HeadlessScreen(clock)
    peers = ("b", "c")
    first_frame = {p: asyncio.Event() for p in peers}
    first_camera = {p: asyncio.Event() for p in peers}
    camera_at: dict[str, float] = {}
    screen.on_first_frame = lambda peer, at: first_frame[peer].set()

    def on_camera(peer: str, at: float) -> None:
        camera_at[peer] = at
        first_camera[peer].set()

    screen.on_first_camera_frame = on_camera
    pcs: list[RTCPeerConnection] = []
    try:
        for peer in peers:
            sender = RTCPeerConnection(rtc_configuration([]))
            receiver = RTCPeerConnection(rtc_configuration([]))
            pcs += [sender, receiver]
            sender.addTrack(relay.subscribe(video, buffered=False))
            sender.addTrack(relay.subscribe(audio, buffered=False))

            def on_track(track: MediaStreamTrack, peer: str = peer) -> None:
                if track.kind == "video":
                    screen.attach_video(peer, track)
                else:
                    screen.attach_audio(peer, track)

            receiver.on("track", on_track)
            await connect(sender, receiver)

        async with asyncio.timeout(10):
            await asyncio.gather(*(e.wait() for e in first_frame.values()))
        screen.snapshot()  # start a clean period now that media flows
        await eventually(
            lambda: all(
                (t["frames"] or 0) >= 20 and t["latency_p50_ms"] is not None
                for t in screen.totals().values()
            )
        )
        await eventually(lambda: all(s.audio_level > 0 for s in screen.snapshot(reset=False)))
        for stats in screen.snapshot():
            assert stats.frames > 0 and stats.fps > 15
            assert stats.latency_p50_ms is not None and 0 < stats.latency_p50_ms < 500
            assert stats.latency_p95_ms is not None
            assert stats.audio_frames > 0 and 0.005 < stats.audio_level < 0.2
            assert not stats.live
        for totals in screen.totals().values():
            assert totals["camera_frames"] == 0
            assert totals["stamped_frames"] == totals["frames"]  # every stamp read back

        switched_at = clock.now()
        video.set_live(True)
        async with asyncio.timeout(5):
            await asyncio.gather(*(e.wait() for e in first_camera.values()))
        assert all(0 < camera_at[p] - switched_at < 1.0 for p in peers)
        assert all(s.live for s in screen.snapshot())
        assert all(t["stamped_frames"] == t["frames"] for t in screen.totals().values())
    finally:
        await screen.close()
        for pc in pcs:
            await pc.close()
        video.stop()
        audio.stop()
