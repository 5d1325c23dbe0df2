"""A room's ICE policy (``all`` or ``relay``): set by the API (and ``room set``), kept in
the room table, pushed by the scheduler with the room's credential record (again when
it changes), and handed to the agent in its ``welcome``, which it then follows."""

from __future__ import annotations

from pathlib import Path

import pytest

from common.schedule import RoomRecord
from orchestrator import centres
from orchestrator.errors import DomainError
from orchestrator.ports import RoomCredential
from signalling.auth import hash_key
from tests.e2e_support import Cli
from tests.signalling_fixtures import signalling_harness
from tests.test_scheduler import Rig, rig  # noqa: F401  (the fixture)
from tests.test_web_api import Service, network, svc  # noqa: F401  (the fixture)


async def test_the_scheduler_pushes_a_room_s_policy_and_its_change(rig: Rig) -> None:  # noqa: F811
    scheduler = rig.scheduler()
    await scheduler.step()
    assert {c.ice_policy for c in rig.control.of(RoomCredential)} == {"all"}
    rig.control.take()
    room = rig.rooms[0]
    rig.db.run_sync(lambda s: centres.set_room_policy(s, room, ice_policy="relay"))
    await rig.clock.advance(0.5)
    await scheduler.step()
    (pushed,) = rig.control.of(RoomCredential)
    assert (pushed.room_id, pushed.ice_policy, pushed.generation) == (room, "relay", 1)
    rig.control.take()
    await rig.clock.advance(0.5)
    await scheduler.step()
    assert rig.control.of(RoomCredential) == []  # unchanged: not sent again
    with pytest.raises(DomainError) as refused:
        rig.db.run_sync(lambda s: centres.set_room_policy(s, room, ice_policy="direct"))
    assert refused.value.code == "invalid-ice-policy"


async def test_the_api_sets_and_shows_a_room_s_policy(svc: Service) -> None:  # noqa: F811
    room_a, _, _, _ = await network(svc)
    answer = await svc.client.patch(
        f"/api/v1/rooms/{room_a}", json={"ice_policy": "relay"}, headers=svc.auth
    )
    assert answer.status == 200 and (await answer.json())["ice_policy"] == "relay"
    bad = await svc.client.patch(
        f"/api/v1/rooms/{room_a}", json={"ice_policy": "direct"}, headers=svc.auth
    )
    assert bad.status == 400 and (await bad.json())["error"]["code"] == "invalid-ice-policy"


@pytest.mark.parametrize("policy", ["all", "relay"])
async def test_the_welcome_hands_the_room_its_policy(policy: str) -> None:
    async with signalling_harness() as h:
        key = "tck_" + "k" * 60
        h.server.set_room(RoomRecord("a", "Room a", "Centre", hash_key(key), 1, policy))
        h.keys["a"] = key
        c = await h.client("a")
        assert c.welcome is not None and c.welcome.ice_policy == policy
        await c.close()
        ticket = h.minter.mint("guest:g1", "s1", role="guest", name="Ada")
        guest = await h.guest(ticket)
        assert guest.welcome is not None and guest.welcome.ice_policy == "all"
        await guest.close()


def test_room_set_gives_a_room_the_relay_policy(tmp_path: Path) -> None:
    cli = Cli(tmp_path)
    centre = cli.run("centre", "add", "Fontainebleau", "--timezone", "Europe/Paris")["id"]
    room = cli.run("room", "add", "--centre", centre, "Salle Bleue")["id"]
    assert cli.run("room", "set", room, "--buffer", "0")["ice_policy"] == "all"
    assert cli.run("room", "set", room, "--ice-policy", "relay")["ice_policy"] == "relay"
