"""Room control: the touch panel's commands reach the room agent through the server.

The hub's API (``Hub.control``, ``Hub.room_state``) is what the web layer calls; here
it is driven directly against a real server on loopback, with raw protocol clients
where a test needs a room that misbehaves and real aiortc agents where it needs one
that obeys.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import numpy as np
import pytest

from room_agents.media import (
    OutgoingVideoTrack,
    PrivacyCard,
    StartingCard,
    SyntheticAudioTrack,
    SyntheticCamera,
)
from room_agents.schedule import join_refusal, plan_at
from room_agents.screen import HeadlessScreen, frame_stamp
from room_agents.stamp import Stamp, read_stamp, write_stamp
from signalling import protocol as p
from tests.signalling_fixtures import eventually, running_agent, signalling_harness
from tests.test_signalling import recv_type

STATE = p.RoomControlState(privacy=False, content_share=False, content_available=False)


class WallClock:
    def now(self) -> float:
        return time.time()


def entry(connect_mode: str, start: float, end: float, lead: float = 5.0) -> p.ScheduleEntry:
    return p.ScheduleEntry(
        session_id="s1",
        booking_id="b1",
        title="t",
        start=start,
        end=end,
        lead=lead,
        state="scheduled",
        ticket="x",
        rooms=[],
        connect_mode=connect_mode,
    )


# --- the pure rules ------------------------------------------------------------------------


def test_commands_and_their_arguments_are_validated() -> None:
    p.check_control("privacy", {"on": True})
    p.check_control("join", {"session_id": "s1", "extra": 1})  # further arguments are ignored
    for command, args in [
        ("reboot", {}),
        ("privacy", {}),
        ("privacy", {"on": 1}),
        ("content-share", {"on": "yes"}),
        ("join", {"session_id": ""}),
        ("leave", {"session_id": 7}),
    ]:
        with pytest.raises(p.ProtocolError) as err:
            p.check_control(command, args)
        assert err.value.code == p.ErrorCode.BAD_MESSAGE, (command, args)


def test_a_one_button_session_is_joined_only_on_command_and_left_on_command() -> None:
    one_button = entry("one-button", start=1000, end=2000)
    automatic = entry("automatic", start=1000, end=2000)
    assert not plan_at(one_button, 996).in_call
    assert plan_at(one_button, 996, "join").in_call
    assert not plan_at(one_button, 994, "join").in_call  # before start - lead
    assert not plan_at(one_button, 2000, "join").in_call
    assert plan_at(automatic, 996).in_call
    assert not plan_at(automatic, 996, "leave").in_call


def test_join_refusals_say_why() -> None:
    one_button = entry("one-button", start=1000, end=2000)
    assert join_refusal(one_button, 995) is None
    assert join_refusal(one_button, 1999.9) is None
    assert "too early" in (join_refusal(one_button, 994) or "")
    assert "over" in (join_refusal(one_button, 2000) or "")
    assert "schedule" in (join_refusal(None, 1500) or "")
    assert "reserve-only" in (join_refusal(entry("reserve-only", 1000, 2000), 1500) or "")


def test_the_privacy_flag_is_read_back_and_never_set_with_the_camera_flag() -> None:
    width, height = 320, 180
    yuv = np.zeros((height * 3 // 2, width), np.uint8)
    write_stamp(yuv, width, height, 1234, camera=False, privacy=True)
    assert read_stamp(yuv[:height]) == Stamp(capture_ms=1234, camera=False, privacy=True)
    write_stamp(yuv, width, height, 1234, camera=True)
    assert read_stamp(yuv[:height]) == Stamp(capture_ms=1234, camera=True, privacy=False)
    with pytest.raises(ValueError):
        write_stamp(yuv, width, height, 1234, camera=True, privacy=True)


async def test_privacy_switches_the_outgoing_video_to_the_privacy_card_on_the_next_frame() -> None:
    clock = WallClock()
    video = OutgoingVideoTrack(
        SyntheticCamera(clock, 320, 180),
        StartingCard(clock, 320, 180),
        privacy_card=PrivacyCard(clock, 320, 180),
    )
    try:
        video.set_live(True)
        stamp = frame_stamp(await video.recv())
        assert stamp is not None and stamp.camera and not stamp.privacy
        video.set_privacy(True)
        stamp = frame_stamp(await video.recv())
        assert stamp is not None and stamp.privacy and not stamp.camera
        video.set_live(False)  # the card's time comes, privacy still wins
        stamp = frame_stamp(await video.recv())
        assert stamp is not None and stamp.privacy
        video.set_privacy(False)
        stamp = frame_stamp(await video.recv())
        assert stamp is not None and not stamp.privacy and not stamp.camera  # the card
    finally:
        video.stop()


async def test_a_muted_audio_track_sends_digital_silence() -> None:
    track = SyntheticAudioTrack()
    try:
        assert np.abs((await track.recv()).to_ndarray()).max() > 0
        track.muted = True
        assert np.abs((await track.recv()).to_ndarray()).max() == 0
    finally:
        track.stop()


# --- the hub's API against rooms that misbehave ---------------------------------------------


async def test_control_to_an_offline_room_is_room_offline_and_bad_commands_bad_message() -> None:
    async with signalling_harness() as h:
        h.add_room("a")
        with pytest.raises(p.ProtocolError) as err:
            await h.server.hub.control("a", "privacy", {"on": True})
        assert err.value.code == p.ErrorCode.ROOM_OFFLINE
        assert h.server.hub.room_state("a") is None
        room = await h.client("a")
        for command, args in [("reboot", {}), ("privacy", {"on": "yes"})]:
            with pytest.raises(p.ProtocolError) as err:
                await h.server.hub.control("a", command, args)
            assert err.value.code == p.ErrorCode.BAD_MESSAGE
        await room.close()


async def test_a_room_that_does_not_answer_is_control_timeout() -> None:
    async with signalling_harness() as h:
        h.add_room("a")
        room = await h.client("a")
        with pytest.raises(p.ProtocolError) as err:
            await h.server.hub.control("a", "privacy", {"on": True}, timeout=0.3)
        assert err.value.code == p.ErrorCode.CONTROL_TIMEOUT
        sent = await recv_type(room, p.Control)
        assert (sent.command, sent.args) == ("privacy", {"on": True}) and sent.request_id
        await room.close()


async def test_a_result_from_another_room_is_ignored_and_the_addressee_s_counts() -> None:
    async with signalling_harness() as h:
        h.add_room("a")
        h.add_room("b")
        a, b = await h.client("a"), await h.client("b")
        pending = asyncio.create_task(h.server.hub.control("a", "privacy", {"on": True}))
        sent = await recv_type(a, p.Control)
        forged = p.ControlResult(
            request_id=sent.request_id, ok=False, state=STATE, error_code="x", message="forged"
        )
        await b.send(forged)
        await b.ping()  # the server has read b's result before a answers
        assert not pending.done()
        mine = p.RoomControlState(privacy=True, content_share=False, content_available=False)
        await a.send(p.ControlResult(request_id=sent.request_id, ok=True, state=mine))
        result = await asyncio.wait_for(pending, 5)
        assert result.ok and result.state == mine
        assert h.server.hub.room_state("a") == mine
        assert h.server.hub.room_state("b") is None  # the ignored result taught nothing
        # A late or unknown request id is ignored too: the connection carries on.
        await a.send(p.ControlResult(request_id="rc999", ok=True, state=STATE))
        assert await a.ping() < 1.0
        assert h.server.hub.room_state("a") == mine
        await asyncio.gather(a.close(), b.close())


async def test_a_room_that_goes_offline_before_answering_is_room_offline() -> None:
    async with signalling_harness() as h:
        h.add_room("a")
        a = await h.client("a")
        await a.send(p.RoomState(state=STATE))
        await a.ping()
        assert h.server.hub.room_state("a") == STATE
        changes: list[tuple[str, p.RoomControlState | None]] = []
        remove = h.server.hub.add_room_state_listener(lambda r, s: changes.append((r, s)))
        pending = asyncio.create_task(h.server.hub.control("a", "leave", {"session_id": "s1"}))
        await recv_type(a, p.Control)
        await a.close()
        with pytest.raises(p.ProtocolError) as err:
            await asyncio.wait_for(pending, 5)
        assert err.value.code == p.ErrorCode.ROOM_OFFLINE
        assert h.server.hub.room_state("a") is None
        assert changes == [("a", None)]
        remove()


# --- real agents ----------------------------------------------------------------------------


def totals(screen: HeadlessScreen, peer_id: str) -> dict[str, Any]:
    return dict(screen.totals().get(peer_id, {}))


async def test_privacy_on_sends_the_card_the_far_room_recognises_and_off_the_camera_again() -> None:
    async with signalling_harness() as h:
        h.add_room("a")
        h.add_room("b")
        async with running_agent(h, "a") as a, running_agent(h, "b") as b:
            await eventually(
                lambda: h.server.hub.room_state("a") == STATE, "a's room-state after connecting"
            )
            now = time.time()
            h.push_session("s1", ["a", "b"], start=now - 1, end=now + 120)
            await eventually(
                lambda: (totals(b.screen, "room:a").get("camera_frames") or 0) >= 5,
                "b to see a's camera",
            )
            assert not b.screen.in_privacy("room:a")

            result = await h.server.hub.control("a", "privacy", {"on": True})
            assert result.ok and result.error_code is None
            assert result.state == p.RoomControlState(
                privacy=True, content_share=False, content_available=False, session_id="s1"
            )
            assert h.server.hub.room_state("a") == result.state
            assert a.outgoing.audio.muted
            await eventually(
                lambda: (totals(b.screen, "room:a").get("privacy_frames") or 0) >= 5,
                "b's screen to decode a's privacy card",
            )
            assert b.screen.in_privacy("room:a") and totals(b.screen, "room:a")["privacy"]
            cameras_in_privacy = totals(b.screen, "room:a")["camera_frames"]
            assert not a.screen.in_privacy("room:b")  # b never went into privacy

            result = await h.server.hub.control("a", "privacy", {"on": False})
            assert result.ok and not result.state.privacy
            await eventually(
                lambda: totals(b.screen, "room:a")["camera_frames"] >= cameras_in_privacy + 5,
                "b to see a's camera again",
            )
            assert not b.screen.in_privacy("room:a")
            assert not a.outgoing.audio.muted
            # Camera frames stopped while the card was up (a frame or two in flight at most).
            privacy = totals(b.screen, "room:a")["privacy_frames"]
            assert privacy >= 5


async def test_a_one_button_session_starts_on_the_join_command() -> None:
    async with signalling_harness() as h:
        h.add_room("a")
        h.add_room("b")
        async with running_agent(h, "a") as a, running_agent(h, "b") as b:
            now = time.time()
            h.push_session(
                "s1", ["a", "b"], start=now + 2, end=now + 120, lead=5, connect_mode="one-button"
            )
            await eventually(lambda: a.entries and b.entries, "the agents to hold the schedule")
            for agent in (a, b):  # a timeline pass with the session in its window
                async with agent.timeline.act:
                    await agent.timeline.reconcile(agent.clock.now())
            assert h.server.hub.members("s1") == []  # one-button: nobody joins by itself

            result = await h.server.hub.control("a", "join", {"session_id": "s1"})
            assert result.ok and result.state.session_id == "s1"
            assert h.server.hub.members("s1") == ["room:a"]
            result = await h.server.hub.control("b", "join", {"session_id": "s1"})
            assert result.ok and h.server.hub.members("s1") == ["room:a", "room:b"]
            # The camera goes live at the start, as in an automatic session.
            for viewer, sender in ((a, "room:b"), (b, "room:a")):
                await eventually(
                    lambda v=viewer, s=sender: (totals(v.screen, s).get("camera_frames") or 0) > 0,
                    f"{viewer.self_id} to see {sender}'s camera",
                )
            again = await h.server.hub.control("a", "join", {"session_id": "s1"})
            assert again.ok  # idempotent

            left = await h.server.hub.control("a", "leave", {"session_id": "s1"})
            assert left.ok and left.state.session_id is None
            assert h.server.hub.members("s1") == ["room:b"]
            gone = await h.server.hub.control("a", "leave", {"session_id": "s1"})
            assert (gone.ok, gone.error_code) == (False, p.ErrorCode.NOT_IN_SESSION)
            async with a.timeline.act:  # the timeline does not undo the leave
                await a.timeline.reconcile(a.clock.now())
            assert h.server.hub.members("s1") == ["room:b"]
            await eventually(
                lambda: h.server.hub.room_state("a") == left.state, "a's room-state to follow"
            )


async def test_joins_outside_the_rules_are_not_joinable_and_content_has_no_source() -> None:
    async with signalling_harness() as h:
        h.add_room("a")
        async with running_agent(h, "a") as a:
            now = time.time()
            h.push_session(
                "later", ["a"], start=now + 600, end=now + 900, lead=5, connect_mode="one-button"
            )
            await eventually(lambda: a.entries, "the agent to hold the schedule")
            for session_id in ("later", "unknown"):
                result = await h.server.hub.control("a", "join", {"session_id": session_id})
                assert (result.ok, result.error_code) == (False, p.ErrorCode.NOT_JOINABLE)
                assert result.message and result.state.session_id is None
            assert h.server.hub.members("later") == []

            share = await h.server.hub.control("a", "content-share", {"on": True})
            assert (share.ok, share.error_code) == (False, p.ErrorCode.NO_CONTENT_SOURCE)
            assert not share.state.content_share and not share.state.content_available
            stop = await h.server.hub.control("a", "content-share", {"on": False})
            assert stop.ok and not stop.state.content_share


async def test_an_unknown_command_reaching_an_agent_is_answered_bad_message() -> None:
    """A newer server may send a command this agent does not know: it says so."""
    async with signalling_harness() as h:
        h.add_room("a")
        async with running_agent(h, "a"):
            await eventually(lambda: h.server.hub.room_state("a") is not None, "a's room-state")
            link = h.server.hub.link("room:a")
            assert link is not None
            request_id, future = h.server.hub._controls.open("a")
            link.send(p.Control(command="reboot", args={}, request_id=request_id))
            result = await asyncio.wait_for(future, 5)
            assert (result.ok, result.error_code) == (False, p.ErrorCode.BAD_MESSAGE)


async def test_a_control_message_survives_the_round_trip_through_the_codec() -> None:
    message = p.Control(command="join", args={"session_id": "s1"}, request_id="rc1")
    assert p.decode_server(p.encode(message)) == message
    result = p.ControlResult(request_id="rc1", ok=False, state=STATE, error_code="not-joinable")
    assert p.decode_client(p.encode(result)) == result
    with pytest.raises(p.ProtocolError):
        p.decode_server('{"type": "control", "command": "join", "args": [], "request_id": "r"}')
