"""Sessions on a real Janus (issue 13): the service drives Janus for the rooms, which
speak docs/protocol.md 20; real aiortc agents, real Janus, stamped frames."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from common.peers import SFU_PEER, room_peer_id, sfu_peer_id
from orchestrator.people import accounts
from signalling import protocol as p
from tests.dashboard_support import ADMIN, logged_in
from tests.sfu_support import PoolSecrets, agents, booked_sites, janus_pool, now, pool_settings
from tests.signalling_fixtures import eventually
from tests.ui_support import PASSWORD

pytestmark = pytest.mark.timeout(120)


def camera_frames(agent: Any, peer: str) -> int:
    totals = agent.screen.totals().get(peer) or {}
    return int(totals.get("camera_frames") or 0)


async def everyone_sees_everyone(
    running: dict[str, Any], rooms: dict[str, str], within: float
) -> None:
    """Each agent decodes fresh camera frames (stamped, camera on) of every other room."""
    marks = {
        (name, other): camera_frames(agent, room_peer_id(rooms[other]))
        for name, agent in running.items()
        for other in running
        if other != name
    }
    for (name, other), before in marks.items():
        peer = room_peer_id(rooms[other])
        await eventually(
            lambda a=running[name], p=peer, b=before: camera_frames(a, p) > b + 5,
            f"{name} decoding {other}'s camera",
            within,
        )


async def test_three_rooms_booked_past_the_mesh_limit_meet_on_janus_and_each_uploads_once(
    tmp_path: Path,
) -> None:
    keys = PoolSecrets()
    names = ["a", "b", "c"]
    with janus_pool(tmp_path, 1, keys) as pool:
        settings = pool_settings(tmp_path / "data", pool, keys, mesh_limit=2)
        start = now() + timedelta(seconds=8)
        async with booked_sites(settings, names, start, start + timedelta(minutes=5)) as sites:
            hub = sites.app.services.signalling.hub
            async with agents(sites, names) as running:
                await eventually(
                    lambda: hub.topology(sites.session_id) == ("sfu", 1), "the move to the SFU", 20
                )
                await eventually(lambda: now() > start + timedelta(seconds=1), "T + 1 s", 20)
                await everyone_sees_everyone(running, sites.rooms, 15)
                # Three rooms booked past a mesh cap of 2: on the SFU from the first join.
                assert sites.app.services.live.sfu[sites.session_id].reason == "planned"
                for name, agent in running.items():
                    calls = agent.sessions[sites.session_id]
                    others = {sfu_peer_id(room_peer_id(sites.rooms[o])) for o in names if o != name}
                    # A mesh call from before the move closes once both ends' subscriptions
                    # deliver (make-before-break, room_agents.sfu.retire_mesh_call).
                    await eventually(
                        lambda c=calls, o=others: set(c.calls) == {SFU_PEER, *o},
                        f"{name}'s connections: the publication and a subscription per site",
                        15,
                    )
                    sent = calls.sent_bytes()
                    # One upload: the publication carries the media; a subscription only
                    # its receiver reports.
                    assert sent[SFU_PEER] > 20_000, sent
                    for peer in others:
                        assert sent[peer] < sent[SFU_PEER] / 10, sent
                # Messages the SFU cannot take get a stable code, and nothing changes.
                member = room_peer_id(sites.rooms["a"])
                sid = sites.session_id
                with pytest.raises(p.ProtocolError) as refused:
                    await hub.subscribe(member, p.Subscribe(session_id=sid, publisher="room:x"))
                assert refused.value.code == p.ErrorCode.PEER_NOT_IN_SESSION
                with pytest.raises(p.ProtocolError) as refused:
                    await hub.relay_to_sfu(
                        member, p.Answer(session_id=sid, sdp="v=0\r\n", conn="c1", to=SFU_PEER)
                    )
                assert refused.value.code == p.ErrorCode.PEER_NOT_IN_SESSION
                with pytest.raises(p.ProtocolError) as refused:
                    await hub.relay_to_sfu(
                        member, p.Offer(session_id=sid, sdp="garbage", conn="c2", to=SFU_PEER)
                    )
                assert refused.value.code == p.ErrorCode.SFU_UNAVAILABLE
                with pytest.raises(p.ProtocolError) as refused:
                    await hub.subscribe(member, p.Subscribe(session_id="other", publisher=member))
                assert refused.value.code == p.ErrorCode.NOT_IN_SESSION
                await everyone_sees_everyone(running, sites.rooms, 15)  # still flowing


async def test_janus_killed_mid_session_every_site_sees_every_other_on_the_second_within_5_s(
    tmp_path: Path,
) -> None:
    keys = PoolSecrets()
    names = ["a", "b", "c"]
    with janus_pool(tmp_path, 2, keys) as pool:
        settings = pool_settings(tmp_path / "data", pool, keys, mesh_limit=2)
        start = now() + timedelta(seconds=8)
        async with booked_sites(settings, names, start, start + timedelta(minutes=5)) as sites:
            app = sites.app

            def admin(s: Any) -> None:
                accounts.create_user(s, ADMIN, "Ada Admin", PASSWORD, "admin")

            await app.services.db.run(admin)
            hub = app.services.signalling.hub
            async with agents(sites, names) as running:
                await eventually(
                    lambda: hub.topology(sites.session_id) == ("sfu", 1), "the move to the SFU", 20
                )
                await eventually(lambda: now() > start + timedelta(seconds=1), "T + 1 s", 20)
                await everyone_sees_everyone(running, sites.rooms, 15)
                bridge = hub.sfu
                assert bridge is not None
                first = bridge.server_of(sites.session_id)
                victim = next(j for j in pool if j.url.removeprefix("ws://").rstrip("/") == first)
                survivor = next(j for j in pool if j is not victim)
                killed = time.monotonic()
                victim.kill9()
                await everyone_sees_everyone(running, sites.rooms, 5.0)
                back = time.monotonic() - killed
                print(f"\nJanus killed: every site decodes every other again after {back:.2f} s")
                assert back < 5.0
                assert hub.topology(sites.session_id) == ("sfu", 2)
                assert bridge.server_of(sites.session_id) == survivor.url.removeprefix(
                    "ws://"
                ).rstrip("/")
                # Staff see the move on the dashboard.
                async with await logged_in(app, ADMIN) as http:
                    async with http.get(f"{app.url}/dashboard/state") as r:
                        state = await r.json()
                session = next(s for s in state["sessions"] if s["id"] == sites.session_id)
                assert session["media_path"].startswith(
                    f"SFU: {bridge.server_of(sites.session_id)} (moved from {first} at "
                ), session["media_path"]
