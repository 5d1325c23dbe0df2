"""Guests: a browser participant says hello with its guest ticket instead of a room key.

A Python aiortc peer stands in for the browser here (the Chromium test is the web
pages' business); the server and the room agent are the real ones, on loopback.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp
import pytest
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription

from common.peers import guest_peer_id
from orchestrator.sessions.tickets import TicketSigner
from room_agents.ice import filter_sdp, rtc_configuration
from room_agents.media import (
    OutgoingVideoTrack,
    StartingCard,
    SyntheticAudioTrack,
    SyntheticCamera,
)
from room_agents.screen import HeadlessScreen
from signalling import protocol as p
from signalling.auth import TicketVerifier
from signalling.candidates import parse_networks
from signalling.client import SignallingClient, SignallingError
from signalling.ports import PeerLeftSession
from tests.signalling_fixtures import (
    Harness,
    eventually,
    running_agent,
    signalling_harness,
)
from tests.test_signalling import next_of, recv_type

T0 = 1773305640.0  # 2026-03-12 08:54 UTC: tickets in these tests are on a fake clock


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class WallClock:
    def now(self) -> float:
        return time.time()


def signer_for(h: Harness) -> TicketSigner:
    """The orchestrator's real signer, trusted by the harness's server."""
    signer = TicketSigner.generate()
    h.server.tickets.add_public_key(signer.kid, signer.public_key_pem())
    return signer


def guest_ticket(
    signer: TicketSigner,
    session_id: str = "s1",
    guest_id: str = "g1",
    name: str | None = "Ada Lovelace",
    nbf: float | None = None,
    exp: float | None = None,
) -> tuple[str, str]:
    now = time.time()
    return signer.mint(
        guest_peer_id(guest_id),
        session_id,
        "guest",
        now - 60 if nbf is None else nbf,
        now + 600 if exp is None else exp,
        name=name,
    )


async def raw_guest_hello(h: Harness, ticket: str) -> tuple[dict[str, Any], int | None]:
    """Say hello with ``ticket``; the server's answer and, if it closed, the close code."""
    ws = await h.http.ws_connect(h.url)
    try:
        await ws.send_str(json.dumps({"type": "hello", "protocol": 1, "ticket": ticket, "id": "h"}))
        answer: dict[str, Any] = json.loads((await ws.receive(timeout=5)).data)
        if answer["type"] == "error":
            closing = await ws.receive(timeout=5)
            assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
            return answer, ws.close_code
        return answer, None
    finally:
        await ws.close()


# --- hello --------------------------------------------------------------------------------


async def test_a_guest_hello_with_its_ticket_is_welcomed_as_the_ticket_s_subject() -> None:
    async with signalling_harness() as h:
        ticket, _ = guest_ticket(signer_for(h))
        guest = await h.guest(ticket)
        w = guest.welcome
        assert w is not None
        assert w.peer_id == "guest:g1" and w.name == "Ada Lovelace"
        assert w.ice_servers == [] and w.candidate_filter.allow == ["127.0.0.1/32"]
        await guest.ping()  # a barrier: a schedule would have come before the pong
        assert guest._inbox.empty(), "a guest gets no schedule"
        assert h.server.hub.online_rooms() == set()
        await guest.close()


async def test_a_guest_without_a_name_claim_is_called_guest() -> None:
    async with signalling_harness() as h:
        ticket, _ = guest_ticket(signer_for(h), name=None)
        guest = await h.guest(ticket)
        assert guest.welcome is not None and guest.welcome.name == "Guest"
        await guest.close()


async def test_guest_hello_refusals_have_their_codes_and_close_like_auth_failures() -> None:
    clock = FakeClock(T0 + 100)
    async with signalling_harness(clock=clock) as h:
        signer = signer_for(h)
        valid, _ = guest_ticket(signer, nbf=T0, exp=T0 + 600)
        revoked, revoked_jti = guest_ticket(signer, nbf=T0, exp=T0 + 600)
        h.server.tickets.revoke((revoked_jti,), T0 + 900)
        cases = {
            "revoked": (revoked, p.ErrorCode.TICKET_REVOKED),
            "forged": (guest_ticket(TicketSigner.generate())[0], p.ErrorCode.TICKET_INVALID),
            "room ticket": (
                signer.mint("room:a", "s1", "room", T0, T0 + 600)[0],
                p.ErrorCode.AUTH_FAILED,
            ),
            "guest role, room subject": (
                signer.mint("room:a", "s1", "guest", T0, T0 + 600)[0],
                p.ErrorCode.AUTH_FAILED,
            ),
            "garbage": ("not.a.jwt", p.ErrorCode.TICKET_INVALID),
        }
        for what, (ticket, code) in cases.items():
            answer, close_code = await raw_guest_hello(h, ticket)
            assert (answer["type"], answer.get("code"), close_code) == ("error", code, 4401), what
            assert answer["ref"] == "h"
        # The window is judged on the server's injected clock, not the wall clock.
        assert (await raw_guest_hello(h, valid))[0]["type"] == "welcome"
        clock.now = T0 + 600 + 6
        answer, close_code = await raw_guest_hello(h, valid)
        assert (answer["code"], close_code) == (p.ErrorCode.TICKET_EXPIRED, 4401)
        clock.now = T0 - 6
        answer, close_code = await raw_guest_hello(h, valid)
        assert (answer["code"], close_code) == (p.ErrorCode.TICKET_NOT_YET_VALID, 4401)


async def test_a_hello_with_neither_key_nor_ticket_is_auth_failed() -> None:
    async with signalling_harness() as h:
        ws = await h.http.ws_connect(h.url)
        await ws.send_str(json.dumps({"type": "hello", "protocol": 1, "id": "h"}))
        err = await next_of(ws, "error")
        assert err["code"] == p.ErrorCode.AUTH_FAILED
        await ws.receive(timeout=5)
        assert ws.close_code == 4401
        await ws.close()


# --- join -----------------------------------------------------------------------------------


async def test_a_guest_joins_only_its_ticket_s_session_and_only_with_that_ticket() -> None:
    async with signalling_harness() as h:
        signer = signer_for(h)
        h.add_room("a")
        room = await h.client("a")
        await room.join("s1", h.minter.mint("room:a", "s1"))
        ticket, _ = guest_ticket(signer)
        guest = await h.guest(ticket)
        refusals = {
            p.ErrorCode.TICKET_WRONG_SESSION: ("s2", ticket),
            # Another valid ticket for the same guest and session is not the hello's.
            p.ErrorCode.TICKET_INVALID: ("s1", guest_ticket(signer)[0]),
            p.ErrorCode.TICKET_WRONG_PEER: ("s1", h.minter.mint("room:a", "s1")),
        }
        for code, (session_id, other) in refusals.items():
            with pytest.raises(SignallingError) as err:
                await guest.join(session_id, other)
            assert err.value.code == code
        joined = await guest.join("s1", ticket)
        assert [peer.peer_id for peer in joined.peers] == ["room:a"]
        announced = await recv_type(room, p.PeerJoined)
        assert announced.peer == p.PeerInfo(peer_id="guest:g1", name="Ada Lovelace")
        assert h.server.hub.members("s1") == ["room:a", "guest:g1"]
        await asyncio.gather(room.close(), guest.close())


async def test_a_guest_ticket_revoked_after_hello_cannot_join() -> None:
    async with signalling_harness() as h:
        ticket, jti = guest_ticket(signer_for(h))
        guest = await h.guest(ticket)
        h.server.tickets.revoke((jti,), time.time() + 900)
        with pytest.raises(SignallingError) as err:
            await guest.join("s1", ticket)
        assert err.value.code == p.ErrorCode.TICKET_REVOKED
        await guest.close()


async def test_a_withdrawn_guest_is_ejected_at_once_and_none_of_its_tickets_open_again() -> None:
    async with signalling_harness() as h:
        h.add_room("a")
        room = await h.client("a")
        await room.join("s1", h.minter.mint("room:a", "s1"))
        signer = signer_for(h)
        ticket, _ = guest_ticket(signer)
        guest = await h.guest(ticket)
        await guest.join("s1", ticket)
        assert await recv_type(room, p.PeerJoined)

        await h.server.revoke_peer("guest:g1", time.time() + 900)

        left = await recv_type(room, p.PeerLeft)
        assert (left.peer_id, left.reason) == ("guest:g1", "revoked")
        assert h.server.hub.members("s1") == ["room:a"]
        assert not h.server.hub.connected("guest:g1")
        # Neither the ticket it held nor a fresh one (another jti) opens again.
        fresh, _ = guest_ticket(signer)
        for held in (ticket, fresh):
            answer, code = await raw_guest_hello(h, held)
            assert answer["code"] == p.ErrorCode.TICKET_REVOKED and code == 4401
        # Another guest of the same session is unaffected.
        other, _ = guest_ticket(signer, guest_id="g2")
        second = await h.guest(other)
        await second.join("s1", other)
        await asyncio.gather(room.close(), guest.close(), second.close())


async def test_session_full_applies_to_guests() -> None:
    async with signalling_harness(mesh_cap=2) as h:
        h.add_room("a")
        h.add_room("b")
        a, b = await h.client("a"), await h.client("b")
        await a.join("s1", h.minter.mint("room:a", "s1"))
        await b.join("s1", h.minter.mint("room:b", "s1"))
        ticket, _ = guest_ticket(signer_for(h))
        guest = await h.guest(ticket)
        with pytest.raises(SignallingError) as err:
            await guest.join("s1", ticket)
        assert err.value.code == p.ErrorCode.SESSION_FULL
        await asyncio.gather(a.close(), b.close(), guest.close())


async def test_a_terminal_session_state_reaches_guests_and_removes_them() -> None:
    async with signalling_harness() as h:
        h.add_room("a")
        room = await h.client("a")
        await room.join("s1", h.minter.mint("room:a", "s1"))
        ticket, _ = guest_ticket(signer_for(h))
        guest = await h.guest(ticket)
        await guest.join("s1", ticket)
        now = time.time()
        ended = p.SessionState(session_id="s1", state="ended", at=now, start=now - 60, end=now)
        await h.server.hub.session_transition(ended, ("a",))
        assert await recv_type(guest, p.SessionState) == ended
        assert h.server.hub.members("s1") == []
        left = {e.peer_id: e.reason for e in h.events.events if isinstance(e, PeerLeftSession)}
        assert left == {"room:a": "session-ended", "guest:g1": "session-ended"}
        with pytest.raises(SignallingError) as err:
            await guest.join("s1", ticket)
        assert err.value.code == p.ErrorCode.NOT_IN_SESSION
        await asyncio.gather(room.close(), guest.close())


async def test_only_rooms_send_control_results_and_room_states() -> None:
    async with signalling_harness() as h:
        ticket, _ = guest_ticket(signer_for(h))
        guest = await h.guest(ticket)
        state = p.RoomControlState(privacy=True, content_share=False, content_available=False)
        await guest.send(p.ControlResult(request_id="rc1", ok=True, state=state, id="x1"))
        err = await recv_type(guest, p.Error)
        assert (err.code, err.ref) == (p.ErrorCode.BAD_MESSAGE, "x1")
        await guest.send(p.RoomState(state=state, id="x2"))
        err = await recv_type(guest, p.Error)
        assert (err.code, err.ref) == (p.ErrorCode.BAD_MESSAGE, "x2")
        await guest.close()


def test_the_minted_name_claim_is_what_signalling_reads() -> None:
    signer = TicketSigner.generate()
    now = time.time()
    token, jti = signer.mint("guest:g1", "s1", "guest", now - 5, now + 60, name="Zoé Ö.")
    verifier = TicketVerifier(time.time)
    verifier.add_public_key(signer.kid, signer.public_key_pem())
    claims = verifier.verify_guest(token)
    assert (claims.peer_id, claims.name, claims.role, claims.ticket_id) == (
        "guest:g1",
        "Zoé Ö.",
        "guest",
        jti,
    )


# --- media: a guest and a room agent ------------------------------------------------------


def first_mline_candidates(sdp: str) -> list[tuple[str | None, str]]:
    """(mid, "candidate:...") for each candidate of the first m-line of ``sdp``."""
    found: list[tuple[str | None, str]] = []
    mid: str | None = None
    mlines = 0
    for line in sdp.splitlines():
        if line.startswith("m="):
            mlines += 1
        elif line.startswith("a=mid:"):
            mid = line[len("a=mid:") :]
        elif line.startswith("a=candidate:") and mlines == 1:
            found.append((mid, line[len("a=") :]))
    return found


class PythonGuest:
    """What the browser page does: join, offer to every peer already there, show what
    arrives. Its camera is the synthetic one, so the room's screen can read its stamps."""

    def __init__(self, client: SignallingClient) -> None:
        self.client = client
        clock = WallClock()
        self.video = OutgoingVideoTrack(
            SyntheticCamera(clock, 320, 180, 15, label="guest"),
            StartingCard(clock, 320, 180, 15),
            fps=15,
        )
        self.video.set_live(True)
        self.audio = SyntheticAudioTrack()
        self.screen = HeadlessScreen(clock)
        self.pcs: dict[str, RTCPeerConnection] = {}

    async def call(self, session_id: str, peer_id: str, trickle: bool = False) -> None:
        """Offer to ``peer_id``; with ``trickle``, as Chromium does: the SDP without its
        candidates, then each candidate of the first m-line, then the end marker."""
        assert self.client.welcome is not None
        networks = parse_networks(self.client.welcome.candidate_filter.allow)
        pc = RTCPeerConnection(rtc_configuration(self.client.welcome.ice_servers))
        self.pcs[peer_id] = pc
        pc.addTrack(self.video)
        pc.addTrack(self.audio)

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            if track.kind == "video":
                self.screen.attach_video(peer_id, track)
            else:
                self.screen.attach_audio(peer_id, track)

        await pc.setLocalDescription(await pc.createOffer())
        sdp, removed = filter_sdp(pc.localDescription.sdp, networks)
        assert removed == []
        candidates = first_mline_candidates(sdp)
        assert candidates
        if trickle:
            sdp = "".join(
                line + "\r\n"
                for line in sdp.splitlines()
                if not line.startswith(("a=candidate:", "a=end-of-candidates"))
            )
        await self.client.send(p.Offer(session_id=session_id, to=peer_id, sdp=sdp, conn="guest1"))
        if trickle:
            for mid, line in candidates:
                await self.client.send(
                    p.Candidate(
                        session_id=session_id,
                        to=peer_id,
                        conn="guest1",
                        candidate=line,
                        sdp_mid=mid,
                        sdp_mline_index=0,
                    )
                )
            await self.client.send(p.Candidate(session_id=session_id, to=peer_id, conn="guest1"))
        answer = await recv_type(self.client, p.Answer)
        assert answer.from_ == peer_id and answer.conn == "guest1"
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer.sdp, type="answer"))

    async def close(self) -> None:
        await self.screen.close()
        for pc in self.pcs.values():
            await pc.close()
        self.video.stop()
        self.audio.stop()
        await self.client.close()


@pytest.mark.parametrize("trickle", [False, True], ids=["full-sdp", "trickled"])
async def test_a_guest_and_a_room_agent_decode_each_other_s_video_and_audio(trickle: bool) -> None:
    async with signalling_harness() as h:
        h.add_room("a")
        async with running_agent(h, "a") as agent:
            await _guest_and_room(h, agent, trickle)


async def _guest_and_room(h: Harness, agent: Any, trickle: bool) -> None:
    now = time.time()
    h.push_session("s1", ["a"], start=now - 1, end=now + 120)
    await eventually(lambda: h.server.hub.members("s1") == ["room:a"], "the room to join")
    ticket, _ = guest_ticket(signer_for(h))
    guest = PythonGuest(await h.guest(ticket))
    try:
        joined = await guest.client.join("s1", ticket)
        assert [peer.peer_id for peer in joined.peers] == ["room:a"]
        await guest.call("s1", "room:a", trickle)  # the later joiner offers; the agent answers

        def camera_frames(screen: HeadlessScreen, peer_id: str) -> int:
            return int(screen.totals().get(peer_id, {}).get("camera_frames") or 0)

        await eventually(
            lambda: camera_frames(agent.screen, "guest:g1") >= 10,
            "the room's screen to decode the guest's camera",
        )
        await eventually(
            lambda: camera_frames(guest.screen, "room:a") >= 10,
            "the guest to decode the room's camera",
        )
        at_room = agent.screen.totals()["guest:g1"]
        assert at_room["stamped_frames"] == at_room["frames"]
        await eventually(
            lambda: (agent.screen.totals()["guest:g1"]["audio_frames"] or 0) > 0,
            "the room to hear the guest",
        )
        assert agent.status()["sessions"] == {"s1": ["guest:g1"]}
        # The agent knows the guest's candidates, from the SDP or trickled.
        call = agent.sessions["s1"].calls["guest:g1"]
        ice = call.pc.getTransceivers()[0].receiver.transport.transport
        assert ("127.0.0.1", "host") in {(c.ip, c.type) for c in ice.getRemoteCandidates()}
        assert agent.violations == [] and h.server.counters.candidate_violations == 0
    finally:
        await guest.close()
