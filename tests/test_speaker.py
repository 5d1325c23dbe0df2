"""Who speaks, and the room screen for up to 8 sites (issue 13): the pure rule
(room_agents/speaker.py), the 8-site layouts (room_agents/layout.py), the levels the
screen computes from decoded audio and its speaker, with real aiortc audio on loopback
(one site sends a tone, the others silence: the tone's sender speaks), and the drawn
screen under Xvfb: a highlight border on that tile and ``speaking`` in its report."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from aiortc import RTCPeerConnection

from room_agents.ice import rtc_configuration
from room_agents.layout import Rect, RoomView, Source, arrange, plan_screen
from room_agents.media import (
    OutgoingAudioTrack,
    OutgoingVideoTrack,
    SineSource,
    StartingCard,
    SyntheticCamera,
)
from room_agents.room_screen import SPEAKING, RoomScreen
from room_agents.screen import HeadlessScreen, PeerMedia
from room_agents.speaker import HOLD, KEEP_LEVEL, START_LEVEL, Speaking, speaker
from tests.signalling_fixtures import eventually
from tests.test_liveness import connect, loopback  # noqa: F401 (the fixture)
from tests.xvfb_support import SCREENSHOTS, until, xvfb

SITES = [f"room:{c}" for c in "abcdefgh"]

# --- the pure rule ----------------------------------------------------------------------


def test_nobody_speaks_in_a_quiet_session() -> None:
    assert speaker({}, None, 0.0) is None
    assert speaker({"room:a": START_LEVEL / 2, "room:b": 0.0}, None, 0.0) is None


def test_the_loudest_site_above_the_start_level_speaks() -> None:
    levels = {"room:a": 0.05, "room:b": 0.2, "room:c": 0.0}
    assert speaker(levels, None, 5.0) == Speaking("room:b", 5.0)


def test_the_speaker_keeps_the_highlight_between_words_and_loses_it_after_the_hold() -> None:
    talking = speaker({"room:a": 0.1}, None, 0.0)
    assert talking is not None
    # Between words: below the start level but above the keep level, it stays.
    held = speaker({"room:a": KEEP_LEVEL * 1.5}, talking, 0.2)
    assert held == Speaking("room:a", 0.2)
    # Silent: held for HOLD seconds after it was last heard, then nobody.
    silent = speaker({"room:a": 0.0}, held, 0.2 + HOLD / 2)
    assert silent == held
    assert speaker({"room:a": 0.0}, silent, 0.2 + HOLD + 0.01) is None


def test_another_site_takes_over_only_when_clearly_louder_or_once_the_speaker_is_silent() -> None:
    previous = Speaking("room:a", 0.0)
    assert speaker({"room:a": 0.1, "room:b": 0.15}, previous, 0.1) == Speaking("room:a", 0.1)
    assert speaker({"room:a": 0.1, "room:b": 0.25}, previous, 0.1) == Speaking("room:b", 0.1)
    # The speaker fell silent (within its hold): a site at the start level takes it.
    assert speaker({"room:a": 0.0, "room:b": START_LEVEL}, previous, 0.1) == Speaking("room:b", 0.1)


def test_a_speaker_that_left_loses_the_highlight_at_once() -> None:
    assert speaker({"room:b": 0.0}, Speaking("room:a", 0.0), 0.1) is None


# --- up to 8 sites on the screen ----------------------------------------------------------


def no_overlap(rects: list[Rect]) -> bool:
    for i, a in enumerate(rects):
        for b in rects[i + 1 :]:
            if a.x < b.x + b.w and b.x < a.x + a.w and a.y < b.y + b.h and b.y < a.y + a.h:
                return False
    return True


@pytest.mark.parametrize(
    ("size", "min_width"), [((1920, 1080), 560), ((1280, 720), 370)], ids=["1080p", "720p"]
)
def test_eight_sites_fill_a_grid_of_large_tiles(size: tuple[int, int], min_width: int) -> None:
    view = RoomView(session_id="s1", names={s: f"Site {s[-1]}" for s in SITES})
    plan = plan_screen(view, [Source(s) for s in SITES], 0.0, size, speaker="room:c")
    rects = [t.rect for t in plan.tiles]
    assert len(rects) == 8 and no_overlap(rects)
    # A 3x3 grid, the last row of two centred: each picture about a third of the width.
    assert len({r.y for r in rects}) == 3 and len({r.w for r in rects}) == 1
    assert rects[0].w >= min_width and abs(rects[0].w / rects[0].h - 16 / 9) < 0.02
    body = plan.body
    for r in rects:
        assert body.x <= r.x and r.x + r.w <= body.x + body.w
        assert body.y <= r.y and r.y + r.h <= body.y + body.h
    last_row = [r for r in rects if r.y == max(r.y for r in rects)]
    centre = (min(r.x for r in last_row) + max(r.x + r.w for r in last_row)) / 2
    assert abs(centre - size[0] / 2) <= 2
    assert [t.peer_id for t in plan.tiles if t.speaking] == ["room:c"]


@pytest.mark.parametrize("size", [(1920, 1080), (1280, 720)], ids=["1080p", "720p"])
def test_content_sits_large_above_a_strip_of_eight_sites(size: tuple[int, int]) -> None:
    view = RoomView(session_id="s1")
    sources = [Source(s) for s in SITES] + [Source("room:b", content=True)]
    plan = plan_screen(view, sources, 0.0, size, speaker="room:b")
    (content,) = [t for t in plan.tiles if t.role == "content"]
    strip = [t for t in plan.tiles if t.role == "strip"]
    assert len(strip) == 8 and no_overlap([t.rect for t in plan.tiles])
    assert content.rect.w * content.rect.h > 4 * sum(t.rect.w * t.rect.h for t in strip) / 8
    assert (
        len({t.rect.y for t in strip}) == 1 and content.rect.y + content.rect.h <= strip[0].rect.y
    )
    assert strip[0].rect.w >= size[0] // 10
    # The speaker's camera tile is marked, never its content.
    assert [(t.peer_id, t.content) for t in plan.tiles if t.speaking] == [("room:b", False)]


def test_no_speaker_marks_no_tile() -> None:
    tiles = arrange([Source(s) for s in SITES[:3]], {}, Rect(0, 0, 1280, 720))
    assert not any(t.speaking for t in tiles)


# --- levels from decoded audio ------------------------------------------------------------


def test_a_peer_s_level_is_the_rms_of_its_last_300_ms() -> None:
    media = PeerMedia("room:a", 0.0)
    for i in range(20):  # 0.4 s of 20 ms frames at RMS 0.5, then 0.2 s of silence
        media.add_audio_frame(0.25 * 960, 960, i * 0.02)
    for i in range(20, 30):
        media.add_audio_frame(0.0, 960, i * 0.02)
    # The window (0.29 - 0.59 s) holds the frames of 0.30 to 0.58 s: 5 loud of 15.
    assert media.level(0.59) == pytest.approx((0.25 * 5 / 15) ** 0.5, rel=0.01)
    assert media.level(10.0) == 0.0


class WallClock:
    def now(self) -> float:
        return time.time()


class Silence:
    def read(self, start_sample: int, samples: int) -> npt.NDArray[np.int16]:
        return np.zeros(samples, np.int16)


@asynccontextmanager
async def sites_sending(
    screen: HeadlessScreen, tones: dict[str, bool]
) -> AsyncIterator[dict[str, RTCPeerConnection]]:
    """One loopback connection per site into ``screen``: a synthetic camera and, for
    the sites marked True, a loud tone, for the others digital silence."""
    clock = WallClock()
    async with AsyncExitStack() as stack:
        receivers: dict[str, RTCPeerConnection] = {}
        for site, tone in tones.items():
            sender = RTCPeerConnection(rtc_configuration([]))
            receiver = RTCPeerConnection(rtc_configuration([]))
            stack.push_async_callback(sender.close)
            stack.push_async_callback(receiver.close)
            video = OutgoingVideoTrack(
                SyntheticCamera(clock, 320, 180), StartingCard(clock, 320, 180), fps=15
            )
            video.set_live(True)
            audio = OutgoingAudioTrack(SineSource(amplitude=0.3) if tone else Silence())
            stack.callback(video.stop)
            stack.callback(audio.stop)
            sender.addTrack(video)
            sender.addTrack(audio)

            def on_track(track: Any, site: str = site) -> None:
                if track.kind == "video":
                    screen.attach_video(site, track)
                else:
                    screen.attach_audio(site, track)

            receiver.on("track", on_track)
            await connect(sender, receiver)
            receivers[site] = receiver
        yield receivers


@pytest.mark.usefixtures("loopback")
async def test_the_site_that_sends_a_tone_is_the_speaker() -> None:
    screen = HeadlessScreen(WallClock())
    try:
        tones = {"room:a": False, "room:b": True, "room:c": False}
        async with sites_sending(screen, tones):
            await eventually(lambda: screen.speaking == "room:b", "room:b to speak", 15)
            levels = screen.levels()
            assert levels["room:b"] > START_LEVEL
            assert levels["room:a"] < KEEP_LEVEL and levels["room:c"] < KEEP_LEVEL
            totals = screen.totals()
            assert all(totals[s]["audio_frames"] for s in tones)
        await screen.detach("room:b")
        assert screen.speaking is None  # left: at once
    finally:
        await screen.close()


def read_report(path: Path) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data


def speaking_report(path: Path, sites: set[str]) -> dict[str, Any] | None:
    report = read_report(path)
    if report is None or {t["peer_id"] for t in report.get("tiles", ())} != sites:
        return None
    if not all(t["frames_shown"] > 0 for t in report["tiles"]):
        return None
    return report if any(t["speaking"] for t in report["tiles"]) else None


@pytest.mark.usefixtures("loopback")
async def test_the_room_screen_draws_a_border_round_the_speaker_and_reports_it(
    tmp_path: Path,
) -> None:
    report_path = tmp_path / "screen.json"
    tones = {"room:a": False, "room:b": True, "room:c": False}
    with xvfb(1280, 720) as display:
        screen = RoomScreen(WallClock(), fps=15, report_path=report_path, display=display.name)
        screen.show(lambda: RoomView(room_name="Room x", session_id="s1"))
        await screen.start()
        try:
            async with sites_sending(screen, tones):
                report = await until(
                    lambda: speaking_report(report_path, set(tones)), "a speaker in the report"
                )
                speaking = {t["peer_id"]: t["speaking"] for t in report["tiles"]}
                assert speaking == {"room:a": False, "room:b": True, "room:c": False}
                shot = display.screenshot(SCREENSHOTS / "room-screen-speaker.png")
                for tile in report["tiles"]:
                    x, y, w, h = tile["rect"]
                    # Just inside the left and the right edges, half-way down.
                    for edge in (shot[y + h // 2, x + 1], shot[y + h // 2, x + w - 2]):
                        is_border = np.abs(edge.astype(int) - np.array(SPEAKING)).max() < 40
                        assert is_border == tile["speaking"], (tile["peer_id"], edge)
        finally:
            await screen.close()
