"""Issue 13: the orchestrator plans each session's topology. A mesh up to ``mesh_limit``
peers (rooms and guests not revoked), the SFU beyond it or when one of its rooms
declares a small uplink, and a mesh always without an SFU pool. The rule is pure
(``planned_topology``); the scheduler reads each due session's members in one query
and sends the plan with every open transition; the room policy is set by the API,
``room set`` and the admin page (tests/test_admin_pages.py)."""

from __future__ import annotations

import typing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from common import sessions as names
from orchestrator import centres
from orchestrator.booking import one_off
from orchestrator.db import DbSession
from orchestrator.ports import SessionTransition
from orchestrator.sessions import actions, guests
from orchestrator.sessions.scheduler import Scheduler
from orchestrator.sessions.topology import planned_topology
from signalling import protocol
from tests.e2e_support import Cli
from tests.test_scheduler import Rig, rig  # noqa: F401  (the fixture)
from tests.test_web_api import Service, network, svc  # noqa: F401  (the fixture)

START_IN = 15.0
LEAD = 5
LENGTH = 600.0


# --- the rule -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rooms", "guests_", "small_uplink", "expected"),
    [
        (2, 0, False, "mesh"),
        (4, 0, False, "mesh"),  # at the limit: still a mesh
        (5, 0, False, "sfu"),
        (3, 1, False, "mesh"),
        (3, 2, False, "sfu"),  # guests count as peers
        (2, 0, True, "sfu"),  # a small uplink: the SFU whatever the size
        (1, 0, True, "sfu"),
    ],
)
def test_the_rule_with_an_sfu_pool(
    rooms: int, guests_: int, small_uplink: bool, expected: str
) -> None:
    assert planned_topology(rooms, guests_, small_uplink, 4, sfu_available=True) == expected


@pytest.mark.parametrize(("rooms", "guests_", "small_uplink"), [(2, 0, False), (9, 3, True)])
def test_without_an_sfu_pool_every_session_is_a_mesh(
    rooms: int, guests_: int, small_uplink: bool
) -> None:
    assert planned_topology(rooms, guests_, small_uplink, 4, sfu_available=False) == "mesh"


def test_the_limit_is_the_configured_one() -> None:
    assert planned_topology(3, 0, False, 2, sfu_available=True) == "sfu"
    assert planned_topology(6, 0, False, 6, sfu_available=True) == "mesh"


def test_both_planes_name_the_same_topologies() -> None:
    """The orchestrator's words (common/sessions.py) are the protocol's."""
    assert typing.get_args(names.Topology) == typing.get_args(protocol.Topology)
    assert {names.MESH, names.SFU} == set(typing.get_args(protocol.Topology))


# --- the scheduler carries it ---------------------------------------------------------------


def _add_rooms(rig: Rig, count: int, small_uplink: int = 0) -> list[str]:  # noqa: F811
    """``count`` new rooms in a centre of their own; the last ``small_uplink`` of them
    declare a small uplink."""

    def add(s: DbSession) -> list[str]:
        centre = centres.add_centre(s, f"Centre {len(centres.list_centres(s))}", "Europe/Paris")
        made = [centres.add_room(s, centre.id, f"Room {i}")[0].id for i in range(count)]
        for room_id in made[count - small_uplink :] if small_uplink else ():
            centres.set_room_policy(s, room_id, small_uplink=True)
        return made

    return rig.db.run_sync(add)


def _book(rig: Rig, rooms: list[str], start_in: float = START_IN) -> tuple[str, str]:  # noqa: F811
    """A booking of ``rooms`` starting in ``start_in`` seconds: (booking id, session id)."""
    start = datetime.fromtimestamp(rig.clock.now() + start_in, UTC)
    booking, session = rig.db.run_sync(
        lambda s: one_off.book(
            s, "Topology", start, start + timedelta(seconds=LENGTH), rooms, lead_seconds=LEAD
        )
    )
    return booking.id, session.id


def _invite(rig: Rig, booking_id: str, count: int) -> list[str]:  # noqa: F811
    now = datetime.fromtimestamp(rig.clock.now(), UTC)
    return rig.db.run_sync(
        lambda s: [
            guests.add_guest(s, booking_id, f"Guest {i}", now=now)[0].id for i in range(count)
        ]
    )


def _scheduler(rig: Rig, sfu_available: bool = True) -> Scheduler:  # noqa: F811
    return Scheduler(
        rig.db, rig.control, rig.signer, rig.clock, 0.5, mesh_limit=4, sfu_available=sfu_available
    )


async def _planned(rig: Rig, scheduler: Scheduler, session_id: str) -> dict[str, str | None]:  # noqa: F811
    """Step at the session's preparation and at its start: state -> topology sent."""
    await scheduler.step()
    await rig.clock.advance(START_IN - LEAD)
    await scheduler.step()
    await rig.clock.advance(LEAD)
    await scheduler.step()
    sent = [t for t in rig.control.of(SessionTransition) if t.session_id == session_id]
    assert [t.state for t in sent] == ["preparing", "live"]
    return {t.state: t.topology for t in sent}


async def test_five_rooms_past_a_mesh_limit_of_four_are_planned_on_the_sfu(rig: Rig) -> None:  # noqa: F811
    rooms = [*rig.rooms, *_add_rooms(rig, 3)]
    _, session_id = _book(rig, rooms)
    planned = await _planned(rig, _scheduler(rig), session_id)
    assert planned == {"preparing": "sfu", "live": "sfu"}


async def test_four_rooms_at_the_mesh_limit_stay_a_mesh(rig: Rig) -> None:  # noqa: F811
    rooms = [*rig.rooms, *_add_rooms(rig, 2)]
    _, session_id = _book(rig, rooms)
    planned = await _planned(rig, _scheduler(rig), session_id)
    assert planned == {"preparing": "mesh", "live": "mesh"}


async def test_a_room_with_a_small_uplink_puts_a_small_session_on_the_sfu(rig: Rig) -> None:  # noqa: F811
    rooms = [*rig.rooms, *_add_rooms(rig, 1, small_uplink=1)]
    _, session_id = _book(rig, rooms)
    planned = await _planned(rig, _scheduler(rig), session_id)
    assert planned == {"preparing": "sfu", "live": "sfu"}


async def test_three_rooms_and_one_guest_are_a_mesh(rig: Rig) -> None:  # noqa: F811
    rooms = [*rig.rooms, *_add_rooms(rig, 1)]
    booking_id, session_id = _book(rig, rooms)
    _invite(rig, booking_id, 1)
    planned = await _planned(rig, _scheduler(rig), session_id)
    assert planned == {"preparing": "mesh", "live": "mesh"}


async def test_three_rooms_and_two_guests_go_on_the_sfu(rig: Rig) -> None:  # noqa: F811
    rooms = [*rig.rooms, *_add_rooms(rig, 1)]
    booking_id, session_id = _book(rig, rooms)
    _invite(rig, booking_id, 2)
    planned = await _planned(rig, _scheduler(rig), session_id)
    assert planned == {"preparing": "sfu", "live": "sfu"}


async def test_a_revoked_guest_does_not_count(rig: Rig) -> None:  # noqa: F811
    rooms = [*rig.rooms, *_add_rooms(rig, 1)]
    booking_id, session_id = _book(rig, rooms)
    _, revoked = _invite(rig, booking_id, 2)
    now = datetime.fromtimestamp(rig.clock.now(), UTC)
    rig.db.run_sync(lambda s: guests.revoke_guest(s, revoked, now))
    planned = await _planned(rig, _scheduler(rig), session_id)
    assert planned == {"preparing": "mesh", "live": "mesh"}


async def test_without_an_sfu_pool_the_scheduler_plans_a_mesh_always(rig: Rig) -> None:  # noqa: F811
    rooms = [*rig.rooms, *_add_rooms(rig, 4, small_uplink=1)]
    booking_id, session_id = _book(rig, rooms)
    _invite(rig, booking_id, 2)
    planned = await _planned(rig, _scheduler(rig, sfu_available=False), session_id)
    assert planned == {"preparing": "mesh", "live": "mesh"}


async def test_a_policy_changed_before_the_preparation_is_the_one_planned(rig: Rig) -> None:  # noqa: F811
    _, session_id = _book(rig, rig.rooms)
    scheduler = _scheduler(rig)
    await scheduler.step()  # the session is known as a small mesh
    rig.db.run_sync(lambda s: centres.set_room_policy(s, rig.rooms[1], small_uplink=True))
    planned = await _planned(rig, scheduler, session_id)
    assert planned == {"preparing": "sfu", "live": "sfu"}


async def test_terminal_transitions_carry_no_topology(rig: Rig) -> None:  # noqa: F811
    ended_rooms = [*rig.rooms, *_add_rooms(rig, 3)]
    _, ended = _book(rig, ended_rooms)
    _, cancelled = _book(rig, _add_rooms(rig, 5), start_in=3600)
    scheduler = _scheduler(rig)
    await scheduler.step()
    now = datetime.fromtimestamp(rig.clock.now(), UTC)
    rig.db.run_sync(lambda s: actions.cancel_occurrence(s, cancelled, now))
    for step in (START_IN - LEAD, LEAD + LENGTH - 300, 300):  # preparing, ending, ended
        await rig.clock.advance(step)
        await scheduler.step()
    sent = {(t.session_id, t.state): t.topology for t in rig.control.of(SessionTransition)}
    assert sent[(ended, "preparing")] == sent[(ended, "ending")] == "sfu"
    assert sent[(ended, "ended")] is None
    assert sent[(cancelled, "cancelled")] is None


async def test_the_members_of_every_due_session_are_read_in_one_query(rig: Rig) -> None:  # noqa: F811
    """Three sessions prepared in one step read the guest table as often as one does."""
    for _ in range(3):
        _book(rig, _add_rooms(rig, 5))
    _book(rig, _add_rooms(rig, 5), start_in=START_IN + 3)  # prepared 3 s later, alone
    scheduler = _scheduler(rig)
    await scheduler.step()
    statements: list[str] = []

    def seen(conn: object, cursor: object, statement: str, *rest: object) -> None:
        statements.append(statement)

    sa.event.listen(rig.db.engine, "before_cursor_execute", seen)
    try:
        await rig.clock.advance(START_IN - LEAD)
        await scheduler.step()
        three = sum("guest" in s for s in statements)
        statements.clear()
        await rig.clock.advance(3)
        await scheduler.step()
        one = sum("guest" in s for s in statements)
    finally:
        sa.event.remove(rig.db.engine, "before_cursor_execute", seen)
    preparing = [t for t in rig.control.of(SessionTransition) if t.state == "preparing"]
    assert len(preparing) == 4 and {t.topology for t in preparing} == {"sfu"}
    assert three == one == 1


# --- the room policy ------------------------------------------------------------------------


def test_the_policy_is_kept_and_changed_only_when_given(rig: Rig) -> None:  # noqa: F811
    room = rig.rooms[0]
    assert rig.db.run_sync(lambda s: centres.get_room(s, room).small_uplink) is False
    rig.db.run_sync(lambda s: centres.set_room_policy(s, room, small_uplink=True))
    kept = rig.db.run_sync(lambda s: centres.set_room_policy(s, room, buffer_seconds=60))
    assert kept.small_uplink is True
    off = rig.db.run_sync(lambda s: centres.set_room_policy(s, room, small_uplink=False))
    assert off.small_uplink is False


async def test_the_api_sets_and_shows_a_room_s_small_uplink(svc: Service) -> None:  # noqa: F811
    room_a, _, room_b, _ = await network(svc)
    answer = await svc.client.patch(
        f"/api/v1/rooms/{room_a}", json={"small_uplink": True}, headers=svc.auth
    )
    assert answer.status == 200 and (await answer.json())["small_uplink"] is True
    rooms = {r["id"]: r["small_uplink"] for r in (await svc.get("/rooms"))["rooms"]}
    assert rooms == {room_a: True, room_b: False}
    for wrong in ("yes", 1):
        bad = await svc.client.patch(
            f"/api/v1/rooms/{room_a}", json={"small_uplink": wrong}, headers=svc.auth
        )
        assert bad.status == 400 and (await bad.json())["error"]["code"] == "bad-request"
    rooms = {r["id"]: r["small_uplink"] for r in (await svc.get("/rooms"))["rooms"]}
    assert rooms == {room_a: True, room_b: False}  # refused: unchanged


def test_room_set_declares_and_withdraws_a_small_uplink(tmp_path: Path) -> None:
    cli = Cli(tmp_path)
    centre = cli.run("centre", "add", "Fontainebleau", "--timezone", "Europe/Paris")["id"]
    room = cli.run("room", "add", "--centre", centre, "Salle Bleue")["id"]
    assert cli.run("room", "set", room, "--buffer", "0")["small_uplink"] is False
    assert cli.run("room", "set", room, "--small-uplink")["small_uplink"] is True
    assert cli.run("room", "set", room, "--buffer", "60")["small_uplink"] is True
    assert cli.run("room", "set", room, "--no-small-uplink")["small_uplink"] is False
