"""Content sharing (issue 5, acceptance 3): a room's screen, or any capture device,
reaches the other rooms as a second video track, started and stopped by the touch
panel's ``content-share`` command; receivers show it large.

The negotiation and the command are tested with FFmpeg's lavfi source (no X
needed); the acceptance test shares an Xvfb display with something moving on it and
looks at the receiving room's screen on a second Xvfb display.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest

from room_agents.content import (
    CONTENT_TRACK_PREFIX,
    ContentShare,
    content_spec,
    is_content_track_id,
)
from room_agents.layout import Source
from room_agents.room_screen import RoomScreen
from signalling import protocol as p
from tests.signalling_fixtures import signalling_harness
from tests.xvfb_support import SCREENSHOTS, agent, changed, moving_content, region, until, xvfb

LAVFI = "lavfi:testsrc2=size=320x180:rate=10"


class WallClock:
    def now(self) -> float:
        return time.time()


def totals(room: Any, peer_id: str) -> dict[str, Any]:
    return dict(room.screen.totals().get(peer_id, {}))


def test_content_specs_default_x11grab_to_the_share_rate() -> None:
    assert content_spec("none", 30) is None
    spec = content_spec("x11grab::99", 30)
    assert spec is not None and (spec.format, spec.target) == ("x11grab", ":99")
    assert dict(spec.options)["framerate"] == "30"
    kept = content_spec("x11grab::0.0?framerate=5&video_size=1920x1080", 30)
    assert kept is not None and dict(kept.options)["framerate"] == "5"
    assert is_content_track_id(CONTENT_TRACK_PREFIX + "abc") and not is_content_track_id("abc")


async def test_a_content_track_sends_nothing_until_the_room_shares() -> None:
    spec = content_spec(LAVFI, 10)
    assert spec is not None
    share = ContentShare(spec, WallClock(), 320, 180, fps=10)
    track = share.track()
    assert track.id.startswith(CONTENT_TRACK_PREFIX)
    try:
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(
                asyncio.shield(pending := asyncio.ensure_future(track.recv())), 0.3
            )
        assert await share.share() is None and share.sharing
        frame = await asyncio.wait_for(pending, 5)
        assert (frame.width, frame.height) == (320, 180)
        await share.stop_sharing()
        assert not share.sharing and share.capture.state == "stopped"
    finally:
        await share.close()


async def test_a_source_that_cannot_open_is_refused_with_its_reason() -> None:
    spec = content_spec("x11grab::4242", 10)
    assert spec is not None
    share = ContentShare(spec, WallClock(), 320, 180, fps=10, retry=0.2)
    try:
        error = await share.share(timeout=1.0)
        assert error is not None and ":4242" in error and not share.sharing
    finally:
        await share.close()


async def test_content_share_on_reaches_the_other_room_as_a_second_track_and_off_stops_it() -> None:
    async with signalling_harness() as h:
        h.add_room("a")
        h.add_room("b")
        async with (
            agent(h, "a", width=320, height=180, content=LAVFI) as a,
            agent(h, "b", width=320, height=180) as b,
        ):
            await until(
                lambda: (s := h.server.hub.room_state("a")) and s.content_available,
                "a to say it has a content source",
            )
            nothing = p.RoomControlState(
                privacy=False, content_share=False, content_available=False
            )
            await until(lambda: h.server.hub.room_state("b") == nothing, "b's room-state")
            now = time.time()
            h.push_session("s1", ["a", "b"], start=now - 1, end=now + 120)
            await until(lambda: totals(b, "room:a").get("camera_frames"), "b to see a's camera")
            assert totals(b, "room:a")["content_frames"] == 0  # negotiated, nothing sent
            # The second video section is announced as content in the SDP a sent.
            call = a.sessions["s1"].calls["room:b"]
            sdp = call.pc.localDescription.sdp
            msids = [line for line in sdp.splitlines() if line.startswith("a=msid:")]
            assert sdp.count("m=video") == 2 and len(msids) == 3
            assert CONTENT_TRACK_PREFIX in msids[2] and CONTENT_TRACK_PREFIX not in msids[0]

            result = await h.server.hub.control("a", "content-share", {"on": True})
            assert result.ok, result.message
            assert result.state.content_share and result.state.content_available
            await until(
                lambda: totals(b, "room:a")["content_frames"] >= 10, "b to receive a's content"
            )
            assert Source("room:a", content=True) in b.screen.sources()
            cameras = totals(b, "room:a")["camera_frames"]
            await until(
                lambda: totals(b, "room:a")["camera_frames"] > cameras + 5,
                "a's camera to keep coming beside its content",
            )
            assert totals(a, "room:b")["content_frames"] == 0  # b has no source: nothing back
            await until(
                lambda: (s := h.server.hub.room_state("a")) and s.content_share,
                "a's room-state to say it shares",
            )

            result = await h.server.hub.control("a", "content-share", {"on": False})
            assert result.ok and not result.state.content_share
            await until(
                lambda: Source("room:a", content=True) not in b.screen.sources(),
                "b to stop showing a's content",
            )
            stopped = totals(b, "room:a")["content_frames"]
            await until(
                lambda: totals(b, "room:a")["camera_frames"] > cameras + 40,
                "more camera frames",
            )
            assert totals(b, "room:a")["content_frames"] <= stopped + 2


async def test_an_offer_without_a_content_section_is_answered_without_one() -> None:
    """Regression: a browser guest offers one audio and one video section; the agent's
    answer crashed in aiortc ("None is not in list") while it held a content
    transceiver the offer had not asked for."""
    from aiortc import RTCPeerConnection

    from room_agents.calls import Outgoing, SessionCalls, video_sections
    from room_agents.media import (
        OutgoingVideoTrack,
        PrivacyCard,
        StartingCard,
        SyntheticAudioTrack,
        SyntheticCamera,
    )
    from room_agents.screen import HeadlessScreen
    from signalling.candidates import parse_networks

    clock = WallClock()
    spec = content_spec(LAVFI, 10)
    assert spec is not None
    share = ContentShare(spec, clock, 320, 180, fps=10)
    video = OutgoingVideoTrack(
        SyntheticCamera(clock, 320, 180),
        StartingCard(clock, 320, 180),
        privacy_card=PrivacyCard(clock, 320, 180),
    )
    outgoing = Outgoing(video=video, audio=SyntheticAudioTrack(), content=share)
    sent: list[object] = []

    async def send(message: object) -> None:
        sent.append(message)

    screen = HeadlessScreen(clock)
    calls = SessionCalls(
        "s1", "room:a", send, outgoing, screen, [], parse_networks(["127.0.0.1/32"]), print
    )
    guest = RTCPeerConnection()
    try:
        guest.addTransceiver("audio", direction="recvonly")
        guest.addTransceiver("video", direction="recvonly")
        await guest.setLocalDescription(await guest.createOffer())
        offer = guest.localDescription.sdp
        assert video_sections(offer) == 1
        await calls.on_offer(p.Offer(session_id="s1", sdp=offer, conn="c1", from_="guest:g"))
        (answer,) = sent
        assert isinstance(answer, p.Answer) and video_sections(answer.sdp) == 1
        assert calls.calls["guest:g"].content is None
    finally:
        await calls.close()
        await guest.close()
        await screen.close()
        video.stop()
        outgoing.audio.stop()
        await share.close()


def read_report(path: Path) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data


def content_tile(path: Path, at_least: int) -> dict[str, Any] | None:
    report = read_report(path)
    if report is None:
        return None
    for tile in report["tiles"]:
        if tile["role"] == "content" and tile["frames_shown"] >= at_least:
            return {**tile, "time": report["time"]}
    return None


async def test_an_xvfb_display_shared_by_one_room_is_shown_large_on_the_other_room_s_screen(
    tmp_path: Path,
) -> None:
    report_path = tmp_path / "screen.json"
    with xvfb(640, 360) as source, moving_content(source), xvfb(1280, 720) as display:
        screen = RoomScreen(WallClock(), fps=15, report_path=report_path, display=display.name)
        async with signalling_harness() as h:
            h.add_room("a")
            h.add_room("b")
            async with (
                agent(h, "a", content=f"x11grab:{source.name}") as a,
                agent(h, "b", screen=screen) as b,
            ):
                now = time.time()
                h.push_session("s1", ["a", "b"], start=now - 1, end=now + 600)
                await until(lambda: totals(b, "room:a").get("camera_frames"), "b to see a's camera")
                result = await h.server.hub.control("a", "content-share", {"on": True})
                assert result.ok, result.message
                first = await until(
                    lambda: content_tile(report_path, 10), "a's content on b's screen", 30
                )
                shot1 = await asyncio.to_thread(
                    display.screenshot, SCREENSHOTS / "room-screen-content-1.png"
                )
                second = await until(
                    lambda: (
                        (t := content_tile(report_path, first["frames_shown"] + 5))
                        and t["time"] >= first["time"] + 1.0
                        and t
                    ),
                    "a second more of a's content",
                )
                shot2 = await asyncio.to_thread(
                    display.screenshot, SCREENSHOTS / "room-screen-content-2.png"
                )
                report = read_report(report_path)
                assert a.control_state().content_share

    assert report is not None
    assert second["site"] == "Room a" and second["content"] and second["peer_id"] == "room:a"
    assert report["header"]["sharing"] is False  # b itself does not share
    roles = sorted((t["role"], t["content"]) for t in report["tiles"])
    assert roles == [("content", True), ("strip", False)]  # a's camera goes to the strip
    content_rect = second["rect"]
    assert content_rect[2] == 1280 and content_rect[3] > 400  # large: the body's full width
    picture1, picture2 = region(shot1, content_rect), region(shot2, content_rect)
    assert picture1.std() > 10 and changed(picture1, picture2) > 0.5
