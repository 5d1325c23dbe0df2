"""A real room agent (room_agents/agent.py, room_control.py) in an SFU session, through
its message handlers, without the server's Janus bridge: the signalling link is a fake
client that admits the room with ``topology: "sfu"``, and a test-side aiortc peer plays
the SFU (tests/test_calls_sfu.py). The agent publishes to ``sfu`` and never offers to a
member, whoever joins; another member's publication offered as ``sfu:<P>`` is shown and
reported as P's (first frame, ``stats`` media); a higher epoch re-publishes, an older
one changes nothing; the status file counts each connection's sent bytes."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from common.schedule import ScheduleEntry
from room_agents.agent import RoomAgent
from room_agents.config import AgentConfig
from room_agents.connection import LinkState
from room_agents.screen import HeadlessScreen
from signalling import protocol as p
from tests.signalling_fixtures import eventually
from tests.test_call_recovery import WallClock, Wire, room_calls
from tests.test_calls_sfu import FakeSfu
from tests.test_liveness import loopback  # noqa: F401 (the fixture)

ENTRY = ScheduleEntry(
    session_id="s1",
    booking_id="b1",
    title="SFU session",
    start=0.0,
    end=4_000_000_000.0,
    lead=60.0,
    state="live",
    ticket="ticket",
    rooms=[],
)


class FakeClient:
    """The welcomed link: ``join`` admits the room into an SFU session (epoch 1) with
    the members given; everything sent is recorded on ``wire``."""

    def __init__(self, members: list[str]) -> None:
        self.wire = Wire()
        self.members = members

    async def join(self, session_id: str, ticket: str, timeout: float = 10.0) -> p.Joined:
        peers = [p.PeerInfo(peer_id=m, name=f"Site {m}") for m in self.members]
        return p.Joined(
            session_id=session_id, peer_id="room:a", peers=peers, topology="sfu", epoch=1
        )

    async def send(self, message: object) -> None:
        await self.wire(message)


@asynccontextmanager
async def agent_in_sfu(members: list[str]) -> AsyncIterator[tuple[RoomAgent, FakeClient]]:
    config = AgentConfig(
        server_url="ws://127.0.0.1:9/unused", key="k", width=320, height=180, fps=15, label="a"
    )
    agent = RoomAgent(config, screen=HeadlessScreen(WallClock()))
    client = FakeClient(members)
    link = agent.connection
    link._client = client  # type: ignore[assignment]
    link.state = LinkState.CONNECTED
    link.self_id = "room:a"
    try:
        yield agent, client
    finally:
        await agent.shutdown()


def offers(wire: Wire) -> list[str]:
    return [o.to or "" for o in wire.offers()]


@pytest.mark.usefixtures("loopback")
async def test_the_agent_publishes_subscribes_and_never_offers_to_members_on_an_sfu() -> None:
    sfu = FakeSfu()
    async with (
        room_calls("room:b", 10.0) as (b, wire_b),
        agent_in_sfu(["room:b", "room:c"]) as (
            agent,
            client,
        ),
    ):
        try:
            sfu.add(b, wire_b)
            assert await b.move("sfu", 1, joined=True, before=b.serial)
            assert await agent.control.ensure_joined(ENTRY) is None
            calls = agent.sessions["s1"]
            sfu.add(calls, client.wire)
            assert calls.topology == "sfu" and calls.members == {"room:b", "room:c"}
            assert offers(client.wire) == ["sfu"]
            await eventually(lambda: len(sfu.published.get("room:b", [])) == 2, "b's tracks", 10)

            await agent.handle(
                p.PeerJoined(session_id="s1", peer=p.PeerInfo(peer_id="room:d", name="Site d"))
            )
            assert offers(client.wire) == ["sfu"] and "room:d" in calls.members

            await sfu.offer("room:a", "room:b")
            (answer,) = await client.wire.wait_for(1, p.Answer, 5)
            assert answer.to == "sfu:room:b"
            screen = agent.screen
            await eventually(
                lambda: (screen.totals().get("room:b") or {}).get("frames", 0) >= 10,  # type: ignore[operator]
                "room:b's frames",
                15,
            )
            # The milestone is reported for the session (first frame from room:b).
            milestones = [m for m in client.wire.messages if isinstance(m, p.Stats) and m.event]
            assert [m.event for m in milestones] == ["first-frame"]

            # The media figures name the member, not the SFU's addressee.
            stats_task = asyncio.create_task(agent.control.stats_loop())
            try:

                def media_reports() -> list[p.Stats]:
                    return [m for m in client.wire.messages if isinstance(m, p.Stats) and m.media]

                # Two reports: the second has the connection's figures over a period.
                await eventually(lambda: len(media_reports()) >= 2, "two stats reports", 15)
                first, second = media_reports()[:2]
                assert [m.peer_id for m in first.media] == ["room:b"]
                assert [m.peer_id for m in second.media] == ["room:b"]
                assert second.media[0].frames > 0
                assert (second.media[0].bitrate_in_kbps or 0) > 10
            finally:
                stats_task.cancel()
                await asyncio.gather(stats_task, return_exceptions=True)

            status: dict[str, Any] = agent.status()
            assert set(status["sent_bytes"]["s1"]) == {"sfu", "sfu:room:b"}
            assert status["sessions"]["s1"] == ["sfu", "sfu:room:b"]

            # An old or repeated move changes nothing; a higher epoch re-publishes.
            await agent.handle(p.TopologyChange(session_id="s1", topology="sfu", epoch=1))
            assert offers(client.wire) == ["sfu"]
            old = dict(calls.calls)
            await agent.handle(p.TopologyChange(session_id="s1", topology="sfu", epoch=2))
            assert offers(client.wire) == ["sfu", "sfu"] and calls.epoch == 2
            assert set(calls.calls) == {"sfu"} and calls.calls["sfu"] is not old["sfu"]
            await eventually(
                lambda: all(c.pc.connectionState == "closed" for c in old.values()),
                "the old SFU's connections closed",
                5,
            )

            # The publisher leaves: its subscription (made again) closes.
            await sfu.offer("room:a", "room:b")
            assert "sfu:room:b" in calls.calls
            await agent.handle(p.PeerLeft(session_id="s1", peer_id="room:b", reason="left"))
            assert set(calls.calls) == {"sfu"}
            assert offers(client.wire) == ["sfu", "sfu"]
        finally:
            await sfu.close()


@pytest.mark.usefixtures("loopback")
async def test_a_rejoin_at_the_same_epoch_keeps_a_working_publication() -> None:
    """The link drops and comes back: the publication outlived it and stays; a rejoin
    that finds a higher epoch (a move missed while away) publishes again."""
    sfu = FakeSfu()
    async with agent_in_sfu(["room:b"]) as (agent, client):
        try:
            assert await agent.control.ensure_joined(ENTRY) is None
            calls = agent.sessions["s1"]
            sfu.add(calls, client.wire)
            publication = calls.calls["sfu"]
            await eventually(lambda: publication.pc.connectionState == "connected", "published", 10)
            again = FakeClient(["room:b"])
            agent.connection._client = again  # type: ignore[assignment]
            assert await agent.control.ensure_joined(ENTRY) is None
            assert calls.calls["sfu"] is publication and again.wire.messages == []

            moved = FakeClient(["room:b"])
            agent.connection._client = moved  # type: ignore[assignment]

            async def join_at_epoch_3(
                session_id: str, ticket: str, timeout: float = 10.0
            ) -> p.Joined:
                joined = await FakeClient.join(moved, session_id, ticket)
                return dataclasses.replace(joined, epoch=3)

            moved.join = join_at_epoch_3  # type: ignore[method-assign]
            assert await agent.control.ensure_joined(ENTRY) is None
            assert calls.epoch == 3 and offers(moved.wire) == ["sfu"]
            assert calls.calls["sfu"] is not publication
        finally:
            await sfu.close()


@pytest.mark.usefixtures("loopback")
async def test_a_move_told_while_the_join_is_answered_is_not_undone_by_the_answer() -> None:
    """The server answers the join with the session still a mesh (epoch 0), then moves
    it to the SFU; the agent reads the ``topology`` message before the answer (the
    answer resumes the joining task later). The room stays on the SFU with its
    publication; the stale answer moves nothing back."""
    async with agent_in_sfu(["room:b"]) as (agent, client):

        async def answered_then_moved(
            session_id: str, ticket: str, timeout: float = 10.0
        ) -> p.Joined:
            joined = await FakeClient.join(client, session_id, ticket)
            await agent.handle(p.TopologyChange(session_id=session_id, topology="sfu", epoch=1))
            return dataclasses.replace(joined, topology="mesh", epoch=0)

        client.join = answered_then_moved  # type: ignore[method-assign]
        assert await agent.control.ensure_joined(ENTRY) is None
        calls = agent.sessions["s1"]
        assert (calls.topology, calls.epoch) == ("sfu", 1)
        assert offers(client.wire) == ["sfu"] and set(calls.calls) == {"sfu"}
