"""Real devices: specs, what the machine has, capture through PyAV (lavfi and files
stand in for cameras and microphones, ALSA's null PCM and WAV files for speakers,
since these machines have no sound card), and two agents in a real session that
send from those devices, play what they receive, and survive a camera that goes
away and comes back."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from aiortc import MediaStreamTrack

from room_agents.capture import AudioCapture, CameraSource, VideoCapture
from room_agents.config import AgentConfig
from room_agents.devices import (
    BAD_SPEC,
    DEVICE_BUSY,
    DEVICE_MISSING,
    FORMAT_MISSING,
    PERMISSION_DENIED,
    DeviceError,
    DeviceSpec,
    alsa_environment,
    check_available,
    format_available,
    inventory,
    open_error,
    parse_spec,
)
from room_agents.media import AUDIO_SAMPLES, UnavailableCard
from room_agents.playback import SampleFifo, Speaker, mix, rms
from room_agents.screen import frame_stamp
from room_agents.stamp import Stamp
from tests.signalling_fixtures import Harness, eventually, signalling_harness

ROOT = Path(__file__).resolve().parents[1]
W, H, FPS = 320, 180, 15


class WallClock:
    def now(self) -> float:
        return time.time()


# --- specs ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "kind", "spec"),
    [
        (
            "v4l2:/dev/video0?video_size=1280x720&framerate=30",
            "camera",
            DeviceSpec("v4l2", "/dev/video0", (("video_size", "1280x720"), ("framerate", "30"))),
        ),
        ("lavfi:testsrc2=size=640x360:rate=30", "camera", DeviceSpec("lavfi", "testsrc2=size=640x360:rate=30")),
        ("avfoundation:0", "camera", DeviceSpec("avfoundation", "0")),
        ("dshow:video=Integrated Camera", "camera", DeviceSpec("dshow", "video=Integrated Camera")),
        ("synthetic", "camera", DeviceSpec("synthetic")),
        ("alsa:hw:1,0", "microphone", DeviceSpec("alsa", "hw:1,0")),
        ("alsa:pulse:DEVICE=echo_cancel_source", "microphone", DeviceSpec("alsa", "pulse:DEVICE=echo_cancel_source")),
        ("file:/tmp/out.wav", "speaker", DeviceSpec("file", "/tmp/out.wav")),
        ("none", "speaker", DeviceSpec("none")),
        ("", "content", DeviceSpec("none")),
        ("x11grab::0.0", "content", DeviceSpec("x11grab", ":0.0")),
    ],
)  # fmt: skip
def test_specs_parse_and_print_back(text: str, kind: Any, spec: DeviceSpec) -> None:
    parsed = parse_spec(text, kind)
    assert parsed == spec
    assert str(parsed) == (text or "none")


@pytest.mark.parametrize(
    ("text", "kind", "message"),
    [
        ("/dev/video0", "camera", "expected format:target"),
        ("v4l2:", "camera", "nothing to open"),
        ("v4l2:/dev/video0?video_size", "camera", "name=value"),
        ("none", "camera", "cannot be none"),
        ("synthetic", "speaker", "cannot be synthetic"),
        ("lavfi:sine", "speaker", "use alsa:<pcm>, file:<path> or none"),
    ],
)
def test_bad_specs_say_what_is_expected(text: str, kind: Any, message: str) -> None:
    with pytest.raises(DeviceError, match=message) as err:
        parse_spec(text, kind)
    assert err.value.code == BAD_SPEC


def test_a_format_missing_from_pyav_names_the_fix() -> None:
    without_v4l2 = lambda name: name != "v4l2"  # noqa: E731
    with pytest.raises(DeviceError) as err:
        check_available(parse_spec("v4l2:/dev/video0", "camera"), without_v4l2, output=False)
    assert err.value.code == FORMAT_MISSING
    assert err.value.message == (
        "v4l2 is not in this PyAV build; install PyAV built against the system FFmpeg: "
        "pip install av --no-binary av"
    )
    with pytest.raises(DeviceError, match="only in Windows builds"):
        check_available(parse_spec("dshow:video=Cam", "camera"), format_available, output=False)
    # This machine's wheel: what the tests rely on.
    for fmt in ("lavfi", "alsa", "x11grab"):
        assert format_available(fmt), fmt
    assert format_available("alsa:out") and not format_available("lavfi:out")


def test_open_errors_become_stable_codes() -> None:
    cam = parse_spec("v4l2:/dev/video0", "camera")
    mic = parse_spec("alsa:default", "microphone")
    assert open_error(cam, "camera", 2, "").code == DEVICE_MISSING
    assert open_error(cam, "camera", 19, "").code == DEVICE_MISSING
    busy = open_error(cam, "camera", 16, "Device or resource busy")
    assert busy.code == DEVICE_BUSY and "another program" in busy.message
    denied = open_error(cam, "camera", 13, "")
    assert denied.code == PERMISSION_DENIED and "'video'" in denied.message
    assert "'audio'" in open_error(mic, "microphone", 13, "").message
    assert "cannot open PCM 'default'" in open_error(mic, "microphone", 5, "").message


# --- what the machine has ---------------------------------------------------------------


@pytest.fixture
def fake_root(tmp_path: Path) -> Path:
    """A room PC as /dev, /sys, /proc, /usr and /tmp show it: a UVC camera (picture and
    metadata nodes), a capture card with no sysfs name, two sound cards, PipeWire's
    ALSA plugin, two X displays."""
    root = tmp_path / "root"
    files = {
        "sys/class/video4linux/video0/name": "HD Webcam C525\n",
        "sys/class/video4linux/video0/index": "0\n",
        "sys/class/video4linux/video1/name": "HD Webcam C525\n",
        "sys/class/video4linux/video1/index": "1\n",
        "proc/asound/cards": (
            " 0 [PCH            ]: HDA-Intel - HDA Intel PCH\n"
            "                      HDA Intel PCH at 0xf7f10000 irq 32\n"
            " 1 [C525           ]: USB-Audio - HD Webcam C525\n"
            "                      HD Webcam C525 at usb-0000:00:14.0-1, high speed\n"
        ),
        "proc/asound/pcm": (
            "00-00: ALC887-VD Analog : ALC887-VD Analog : playback 1 : capture 1\n"
            "00-03: HDMI 0 : HDMI 0 : playback 1\n"
            "01-00: USB Audio : USB Audio : capture 1\n"
        ),
        "usr/share/alsa/alsa.conf": "",
        "usr/share/alsa/alsa.conf.d/50-pipewire.conf": "",
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    for name in ("dev/video0", "dev/video1", "dev/video10", "tmp/.X11-unix/X0", "tmp/.X11-unix/X1"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).touch()
    (root / "usr/lib/x86_64-linux-gnu/alsa-lib").mkdir(parents=True)
    return root


def test_devices_lists_what_a_fake_room_pc_has(fake_root: Path) -> None:
    found = inventory(fake_root, {"DISPLAY": ":1"}, lambda fmt: fmt in ("v4l2", "alsa", "lavfi"))
    data = found.to_json()
    assert data["cameras"] == [
        {"spec": "v4l2:/dev/video0", "name": "HD Webcam C525", "note": ""},
        {
            "spec": "v4l2:/dev/video1",
            "name": "HD Webcam C525",
            "note": "metadata node, probably not a picture",
        },
        {"spec": "v4l2:/dev/video10", "name": "(no name in sysfs)", "note": ""},
    ]
    assert [(d["spec"], d["name"]) for d in data["microphones"]] == [
        ("alsa:default", "default"),
        ("alsa:plughw:CARD=PCH,DEV=0", "HDA Intel PCH: ALC887-VD Analog"),
        ("alsa:plughw:CARD=C525,DEV=0", "HD Webcam C525: USB Audio"),
        ("alsa:pipewire", "pipewire"),
    ]
    assert [d["spec"] for d in data["speakers"]] == [
        "alsa:default",
        "alsa:plughw:CARD=PCH,DEV=0",
        "alsa:plughw:CARD=PCH,DEV=3",
        "alsa:pipewire",
        "alsa:null",
    ]
    assert data["microphones"][1]["note"] == "hw:0,0"
    assert [(d["spec"], d["note"]) for d in data["displays"]] == [
        ("x11grab::0", "socket X0"),
        ("x11grab::1", "socket X1, $DISPLAY"),
    ]
    assert data["formats"]["v4l2"] and not data["formats"]["x11grab"]
    assert not data["formats"]["dshow"] and not data["formats"]["avfoundation"]
    assert any("dshow:video=<name>" in n for n in data["notes"])
    text = found.to_text()
    assert "v4l2:/dev/video0   HD Webcam C525" in text
    assert "(not: x11grab, fbdev, kmsgrab, pulse, avfoundation, dshow)" in text


def test_an_empty_machine_still_offers_default_and_null(tmp_path: Path) -> None:
    found = inventory(tmp_path, {}, lambda fmt: False).to_json()
    assert found["cameras"] == [] and found["displays"] == []
    assert [d["spec"] for d in found["speakers"]] == ["alsa:default", "alsa:null"]
    assert "no sound card" in found["speakers"][0]["note"]
    assert any("v4l2 is not in this PyAV build" in n for n in found["notes"])


def test_the_wheels_alsa_is_pointed_at_the_systems_files(fake_root: Path) -> None:
    assert alsa_environment({}, fake_root) == {
        "ALSA_CONFIG_DIR": str(fake_root / "usr/share/alsa"),
        "ALSA_PLUGIN_DIR": str(fake_root / "usr/lib/x86_64-linux-gnu/alsa-lib"),
    }
    assert alsa_environment({"ALSA_CONFIG_DIR": "/x", "ALSA_PLUGIN_DIR": "/y"}, fake_root) == {}


def test_devices_command_on_this_machine() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "web.cli", "agent", "devices", "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    data = json.loads(proc.stdout)
    nodes = {f"v4l2:{p}" for p in Path("/dev").glob("video*")}
    assert {d["spec"] for d in data["cameras"]} == nodes
    assert "alsa:null" in [d["spec"] for d in data["speakers"]]
    assert data["formats"]["lavfi"] and data["formats"]["alsa"]
    assert data["formats"]["v4l2"] == format_available("v4l2")


# --- audio buffers --------------------------------------------------------------------


def test_sample_fifo_prefills_pads_underruns_and_drops_the_oldest() -> None:
    fifo = SampleFifo(max_samples=10, prefill=4, high_water=10)
    fifo.push(np.arange(1, 4, dtype=np.int16))
    assert fifo.read(0, 2).tolist() == [0, 0]  # 3 < prefill: still banking
    fifo.push(np.arange(4, 6, dtype=np.int16))
    assert fifo.read(0, 2).tolist() == [1, 2]
    assert fifo.read(0, 4).tolist() == [3, 4, 5, 0] and fifo.underruns == 1
    fifo.push(np.arange(1, 15, dtype=np.int16))  # 14 samples into room for 10
    assert len(fifo) == 10 and fifo.dropped == 4
    assert fifo.read(0, 3).tolist() == [5, 6, 7]


def test_sample_fifo_does_not_keep_a_delay_banked_once() -> None:
    fifo = SampleFifo(max_samples=20, prefill=4, high_water=8)
    fifo.push(np.arange(1, 10, dtype=np.int16))  # 9 banked: above the high water
    assert fifo.read(0, 2).tolist() == [6, 7] and fifo.trims == 1  # trimmed back to 4
    fifo.push(np.arange(10, 14, dtype=np.int16))  # 6 banked: below it, kept
    assert fifo.read(0, 6).tolist() == [8, 9, 10, 11, 12, 13] and fifo.trims == 1
    with pytest.raises(ValueError):
        SampleFifo(max_samples=8, prefill=4, high_water=10)


def test_mix_sums_and_clips() -> None:
    a = np.full(AUDIO_SAMPLES, 30000, np.int16)
    b = np.full(AUDIO_SAMPLES, 10000, np.int16)
    assert mix([a, b]).max() == 32767
    assert mix([a, -b]).max() == 20000
    assert mix([]).tolist() == [0] * AUDIO_SAMPLES


# --- capture threads ----------------------------------------------------------------------


def test_a_lavfi_camera_is_paced_scaled_and_stamped_as_camera() -> None:
    clock = WallClock()
    spec = parse_spec("lavfi:testsrc2=size=640x480:rate=30", "camera")
    capture = VideoCapture(spec, clock, W, H)
    source = CameraSource(capture, UnavailableCard(clock, W, H))
    first = frame_stamp(source.next_frame())  # nothing captured yet: the card
    assert first is not None and first.no_camera and not first.camera
    capture.start()
    try:
        deadline = time.monotonic() + 10
        while capture.frames == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        start = capture.frames
        time.sleep(1.0)
        # lavfi decodes hundreds of frames a second; paced, it gives its own 30.
        assert 15 <= capture.frames - start <= 45, capture.frames - start
        frame = source.next_frame()
        assert (frame.width, frame.height) == (W, H)
        stamp = frame_stamp(frame)
        assert stamp is not None and stamp.camera and not stamp.no_camera
        assert abs(stamp.capture_ms / 1000 - time.time()) < 1.0
        assert capture.status()["state"] == "ok" and capture.opened == 1
    finally:
        capture.stop()


def test_a_missing_camera_sends_the_unavailable_card_and_is_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = WallClock()
    capture = VideoCapture(parse_spec("v4l2:/dev/video-absent", "camera"), clock, W, H, retry=0.1)
    source = CameraSource(capture, UnavailableCard(clock, W, H))
    with caplog.at_level(logging.ERROR, "room_agents.capture"):
        capture.start()
        try:
            deadline = time.monotonic() + 5
            while capture.state != "unavailable" and time.monotonic() < deadline:
                time.sleep(0.02)
            time.sleep(0.5)  # several retries
        finally:
            capture.stop()
    assert capture.error is not None and capture.error.code == DEVICE_MISSING
    stamp = frame_stamp(source.next_frame())
    assert stamp is not None and stamp.no_camera and not stamp.camera
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        "camera v4l2:/dev/video-absent: no such device or file (unplugged?); retrying every 0.1 s"
    ]


def test_a_lavfi_microphone_delivers_48k_mono_samples_in_real_time() -> None:
    fifo = SampleFifo(max_samples=48_000 * 2, high_water=48_000 * 2)  # keep it all
    capture = AudioCapture(
        parse_spec("lavfi:sine=frequency=440:sample_rate=44100", "microphone"), fifo
    )
    capture.start()
    try:
        time.sleep(1.0)
    finally:
        capture.stop()
    # About one second of samples at 48 kHz (resampled from 44.1), not a burst.
    assert 48_000 * 0.6 < len(fifo) < 48_000 * 1.4, len(fifo)
    samples = fifo.read(0, 48_000 // 2)
    assert rms(samples) == pytest.approx(0.125 / 2**0.5, rel=0.1)  # lavfi's sine: 1/8 scale
    assert capture.level > 0.05 and capture.status()["last_sound_age"] < 1.0


def _tone(seconds: float, hz: float = 660.0, layout: str = "stereo") -> list[av.AudioFrame]:
    frames = []
    for i in range(int(seconds / 0.02)):
        t = (i * AUDIO_SAMPLES + np.arange(AUDIO_SAMPLES)) / 48_000
        mono = (8000 * np.sin(2 * np.pi * hz * t)).astype(np.int16)
        data = np.stack([mono, mono], axis=1).reshape(1, -1) if layout == "stereo" else mono[None]
        frame = av.AudioFrame.from_ndarray(data, format="s16", layout=layout)
        frame.sample_rate = 48_000
        frame.pts = i * AUDIO_SAMPLES
        frames.append(frame)
    return frames


def read_wav(path: Path) -> np.ndarray[Any, np.dtype[np.int16]]:
    with av.open(str(path)) as container:
        chunks = [f.to_ndarray().reshape(-1) for f in container.decode(audio=0)]
    return np.concatenate(chunks).astype(np.int16) if chunks else np.zeros(0, np.int16)


def test_the_speaker_mixes_peers_into_a_wav_file_in_real_time(tmp_path: Path) -> None:
    out = tmp_path / "speaker.wav"
    speaker = Speaker(parse_spec(f"file:{out}", "speaker"))
    speaker.start()
    try:
        for a, b in zip(_tone(1.0), _tone(1.0, hz=440.0, layout="mono"), strict=True):
            speaker.feed("room:a", a)
            speaker.feed("room:b", b)
            time.sleep(0.02)
        time.sleep(0.2)
    finally:
        speaker.stop()
    samples = read_wav(out)
    assert 0.9 * 48_000 < samples.size < 1.6 * 48_000, samples.size  # real time, mono
    assert rms(samples) > 0.1  # two tones of 8000/32768 each, mixed
    assert speaker.state == "stopped" and speaker.error is None


def test_the_speaker_plays_to_alsa_null_without_a_sound_card() -> None:
    speaker = Speaker(parse_spec("alsa:null", "speaker"))
    from room_agents.devices import use_system_alsa

    use_system_alsa()
    speaker.start()
    try:
        for frame in _tone(0.5):
            speaker.feed("room:a", frame)
        deadline = time.monotonic() + 5
        while speaker.loudest == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert speaker.status()["state"] == "playing" and speaker.loudest > 0.1
    finally:
        speaker.stop()


def test_a_speaker_that_cannot_open_is_retried_not_fatal() -> None:
    speaker = Speaker(parse_spec("alsa:no-such-pcm", "speaker"), retry=0.1)
    speaker.start()
    try:
        deadline = time.monotonic() + 5
        while speaker.state != "unavailable" and time.monotonic() < deadline:
            time.sleep(0.02)
        assert speaker.error is not None and "no-such-pcm" in speaker.error.message
        speaker.feed("room:a", _tone(0.02)[0])  # feeding a missing speaker is harmless
    finally:
        speaker.stop()


# --- two agents in a real session -----------------------------------------------------


class StampProbe(MediaStreamTrack):
    """Passes a received video track through, recording each frame's stamp and the
    mean V (red-difference) chroma below the stamp band."""

    kind = "video"

    def __init__(self, track: MediaStreamTrack, seen: list[tuple[Stamp | None, float]]) -> None:
        super().__init__()
        self.track = track
        self.seen = seen

    async def recv(self) -> Any:
        frame = await self.track.recv()
        assert isinstance(frame, av.VideoFrame)
        yuv = frame.to_ndarray(format="yuv420p")
        h = frame.height
        v = yuv[h + h // 4 :].reshape(-1)
        self.seen.append((frame_stamp(frame), float(v[v.size // 2 :].mean())))
        return frame


def probe_video(agent: Any) -> list[tuple[Stamp | None, float]]:
    seen: list[tuple[Stamp | None, float]] = []
    attach = agent.screen.attach_video
    agent.screen.attach_video = lambda peer_id, track: attach(peer_id, StampProbe(track, seen))
    return seen


@asynccontextmanager
async def device_agent(h: Harness, room_id: str, **devices: Any) -> AsyncIterator[Any]:
    """A real RoomAgent for ``room_id`` with the given device settings."""
    from room_agents.agent import RoomAgent
    from room_agents.ice import unpin_host_addresses

    config = AgentConfig(
        server_url=h.url, key=h.keys[room_id], width=W, height=H, fps=FPS, label=room_id, **devices
    )
    agent = RoomAgent(config)
    task = asyncio.create_task(agent.run())
    try:
        await asyncio.wait_for(agent.connected.wait(), 10)
        yield agent
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        unpin_host_addresses()


def totals(agent: Any, peer_id: str) -> dict[str, Any]:
    return dict(agent.screen.totals().get(peer_id, {}))


async def test_lavfi_camera_and_microphone_reach_the_far_room_which_plays_them(
    tmp_path: Path,
) -> None:
    played = tmp_path / "b-speaker.wav"
    async with signalling_harness() as h:
        h.add_room("a")
        h.add_room("b")
        a_devices = {
            # A red picture: the synthetic camera never is (its chroma stays near grey).
            "camera": f"lavfi:color=c=red:size=640x480:rate={FPS}",
            "microphone": "lavfi:sine=frequency=440",
            "speaker": "alsa:null",
        }
        async with (
            device_agent(h, "a", **a_devices) as a,
            device_agent(h, "b", speaker=f"file:{played}") as b,
        ):
            seen = probe_video(b)
            now = time.time()
            h.push_session("s1", ["a", "b"], start=now - 1, end=now + 120)
            await eventually(
                lambda: (totals(b, "room:a").get("camera_frames") or 0) >= 2 * FPS,
                "b to decode two seconds of a's camera",
                within=20,
            )
            await eventually(lambda: a.devices.speaker.loudest > 0, "a's speaker to play b")
            await asyncio.sleep(1.0)  # a second of b's audio into its speaker file
            got = totals(b, "room:a")
            synthetic = totals(a, "room:b")
            a_status = a.devices.status()
        # Closed: b's speaker file has its final header.

    cameras = [v for stamp, v in seen if stamp is not None and stamp.camera]
    assert len(cameras) >= 2 * FPS
    assert np.median(cameras) > 200, "b decoded a picture that is not the red lavfi camera"
    assert a_status["camera"]["state"] == "ok" and a_status["camera"]["frames"] > 0
    # lavfi's sine is at 1/8 of full scale (RMS 0.088), the synthetic tone at 0.05 (0.035):
    # through the same codec and the same load, a's microphone is heard 2.5 times louder.
    assert got["audio_frames"] > 50, got
    assert got["audio_level"] > 1.8 * synthetic["audio_level"], (got, synthetic)
    assert a_status["microphone"]["state"] == "ok" and a_status["microphone"]["level"] > 0.05
    assert a_status["speaker"]["state"] == "playing"
    samples = read_wav(played)
    assert samples.size > 48_000  # more than a second written
    assert rms(samples[-48_000:]) > 0.05, "b's speaker file holds no sound from a"


async def test_a_camera_that_disappears_sends_the_card_and_comes_back(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    camera_file = tmp_path / "camera.y4m"
    write_y4m(camera_file, seconds=1.0)
    spare = tmp_path / "spare.y4m"
    write_y4m(spare, seconds=1.0)
    async with signalling_harness() as h:
        h.add_room("a")
        h.add_room("b")
        async with (
            device_agent(h, "a", camera=f"file:{camera_file}", device_retry=0.3) as a,
            device_agent(h, "b") as b,
        ):
            now = time.time()
            h.push_session("s1", ["a", "b"], start=now - 1, end=now + 120)

            def seen(key: str) -> int:
                return int(totals(b, "room:a").get(key) or 0)

            await eventually(lambda: seen("camera_frames") >= FPS, "a's file camera", within=20)
            assert seen("no_camera_frames") == 0
            opened = a.devices.camera_capture.opened
            assert opened >= 1  # the 1 s file loops

            camera_file.unlink()  # the camera goes away
            await eventually(
                lambda: seen("no_camera_frames") >= FPS, "b to see a's unavailable card", within=10
            )
            gone_at = seen("camera_frames")
            assert a.devices.status()["camera"]["error_code"] == DEVICE_MISSING
            await asyncio.sleep(0.5)
            assert seen("camera_frames") <= gone_at + 2  # no camera while it is away

            spare.rename(camera_file)  # and comes back
            await eventually(
                lambda: seen("camera_frames") >= gone_at + FPS,
                "b to see a's camera again",
                within=10,
            )
            assert a.devices.status()["camera"]["state"] == "ok"
            assert a.devices.camera_capture.opened > opened
    assert any("no such device or file" in r.getMessage() for r in caplog.records)


def write_y4m(path: Path, seconds: float) -> None:
    """A short YUV4MPEG2 file of FFmpeg's test picture, the camera that can be unplugged."""
    with av.open(f"testsrc2=size={W}x{H}:rate={FPS}", format="lavfi") as src:
        with av.open(str(path), "w", format="yuv4mpegpipe") as out:
            stream = out.add_stream("rawvideo", rate=FPS)
            stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
            for i, frame in enumerate(src.decode(video=0)):
                if i >= seconds * FPS:
                    break
                for packet in stream.encode(frame):
                    out.mux(packet)
            for packet in stream.encode(None):
                out.mux(packet)


@pytest.fixture(autouse=True)
def _no_leaked_threads() -> Iterator[None]:
    import threading

    before = set(threading.enumerate())
    yield
    leaked = [
        t
        for t in threading.enumerate()
        if t not in before and t.name.endswith(("capture", "speaker"))
    ]
    assert not leaked, leaked


# --- echo cancellation through the OS audio stack (deploy/echo-cancellation.md) ---------

PULSE_CONFIG = """
load-module module-native-protocol-unix auth-anonymous=1 socket={socket}
load-module module-null-sink sink_name=room rate=48000 channels=1
load-module module-null-sink sink_name=mic rate=48000 channels=1
load-module module-loopback source=room.monitor sink=mic latency_msec=60 source_dont_move=1 sink_dont_move=1
load-module module-echo-cancel use_master_format=1 aec_method=webrtc aec_args="analog_gain_control=0 digital_gain_control=0" source_master=mic.monitor sink_master=room source_name=echo_cancel_source sink_name=echo_cancel_sink
"""


def _pulse_missing() -> str | None:
    import shutil

    if shutil.which("pulseaudio") is None or shutil.which("pactl") is None:
        return "PulseAudio is not installed (scripts/services.sh installs it)"
    if not list(Path("/usr/lib").glob("*/alsa-lib/libasound_module_pcm_pulse.so")):
        return "ALSA's PulseAudio plugin is not installed (libasound2-plugins)"
    return None


@pytest.fixture
def pulse_room(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A PulseAudio server whose "room" has an acoustic path: what the loudspeaker
    (sink ``room``) plays reaches the microphone (``mic.monitor``) 60 ms later, and
    module-echo-cancel (WebRTC) sits between them as deploy/echo-cancellation.md says."""
    import os
    import shutil

    missing = _pulse_missing()
    if missing:
        if os.environ.get("CI"):
            pytest.fail(missing)
        pytest.skip(missing)
    home = tmp_path / "pulse"
    home.mkdir()
    socket = home / "native"
    config = home / "default.pa"
    config.write_text(PULSE_CONFIG.format(socket=socket))
    env = {**os.environ, "HOME": str(home), "XDG_RUNTIME_DIR": str(home)}
    server = subprocess.Popen(
        [
            *(shutil.which("pulseaudio") or "pulseaudio", "-n", "-F", str(config)),
            *("--daemonize=no", "--exit-idle-time=-1", "--use-pid-file=no"),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    monkeypatch.setenv("PULSE_SERVER", f"unix:{socket}")
    try:
        deadline = time.monotonic() + 20
        while True:
            listed = subprocess.run(
                ["pactl", "list", "short", "sources"], capture_output=True, text=True, timeout=10
            ).stdout
            if "echo_cancel_source" in listed:
                break
            assert time.monotonic() < deadline, "PulseAudio did not load module-echo-cancel"
            time.sleep(0.2)
        yield "alsa:pulse:DEVICE="
    finally:
        server.terminate()
        server.wait(10)


def test_the_speaker_and_microphone_through_pulseaudio_echo_cancel_remove_the_echo(
    pulse_room: str,
) -> None:
    """The far room must not hear itself: what the agent plays into the echo-cancel
    sink comes back on the raw microphone, and much weaker on the cancelled one.
    (Through the wheel's own alsa-lib and the system's PulseAudio ALSA plugin.)"""
    from room_agents.devices import use_system_alsa

    use_system_alsa()
    speaker = Speaker(parse_spec(pulse_room + "echo_cancel_sink", "speaker"))
    captures = {}
    for name in ("mic.monitor", "echo_cancel_source"):
        fifo = SampleFifo(max_samples=48_000 * 20, high_water=48_000 * 20)
        captures[name] = (AudioCapture(parse_spec(pulse_room + name, "microphone"), fifo), fifo)
    speaker.start()
    for capture, _ in captures.values():
        capture.start()
    rng = np.random.default_rng(1)
    try:
        start = time.monotonic()
        for i in range(int(12 / 0.02)):  # far-end talk: noise bursts, 300 ms on, 200 off
            burst = (i * 20) % 500 < 300
            noise = np.convolve(rng.standard_normal(AUDIO_SAMPLES), np.ones(4) / 4, mode="same")
            frame = av.AudioFrame.from_ndarray(
                (noise * 6000 * burst).astype(np.int16)[None], format="s16", layout="mono"
            )
            frame.sample_rate = 48_000
            frame.pts = i * AUDIO_SAMPLES
            speaker.feed("room:far", frame)
            time.sleep(max(0.0, start + (i + 1) * 0.02 - time.monotonic()))
    finally:
        speaker.stop()
        for capture, _ in captures.values():
            capture.stop()
    levels = {}
    for name, (capture, fifo) in captures.items():
        assert capture.error is None and capture.frames > 0, (name, capture.status())
        samples = fifo.read(0, len(fifo))
        levels[name] = rms(samples[-48_000 * 6 :])  # after the canceller converged
    echo_db = 20 * np.log10(levels["mic.monitor"])
    left_db = 20 * np.log10(max(levels["echo_cancel_source"], 1e-9))
    print(f"echo {echo_db:.1f} dBFS, after cancellation {left_db:.1f} dBFS")
    assert speaker.loudest > 0.05, speaker.status()
    assert echo_db > -30, levels  # the echo is there to cancel
    assert echo_db - left_db > 10, f"only {echo_db - left_db:.1f} dB of echo removed"
