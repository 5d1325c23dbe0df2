"""Issue 13, acceptance 2: a mesh of three rooms becomes an SFU session when two guests
join; the rooms stay in the session and media flows both ways after the move.

The service in-process with a real Janus, three real agents (320x180, 15 fps), two
guests in headless Chromium. The mesh cap is the default (4): the first guest makes
four, the second passes it and the session moves. Shown: before the second guest the
session is a mesh (the rooms' calls are with each other); after, it is on Janus (epoch
1), every room still a member that never left; every room decodes the others and both
guests, and each guest decodes the three rooms. The gap each room saw in each other
room's camera across the move (from the second guest's join on) is measured and reported
(printed, and written to test-output/sfu-move-gaps.json): the rooms keep their mesh calls
until the SFU delivers (make-before-break), so it stays well under a second.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from common.peers import SFU_PEER, guest_peer_id, room_peer_id
from orchestrator.sessions import guests
from tests.browser_support import browser, new_page  # noqa: F401
from tests.sfu_support import PoolSecrets, agents, booked_sites, janus_pool, now, pool_settings
from tests.signalling_fixtures import eventually
from tests.test_sfu_session import camera_frames

pytestmark = pytest.mark.timeout(180)

OUTPUT = Path(__file__).resolve().parents[1] / "test-output"


def record_arrivals(screen: Any) -> dict[str, list[float]]:
    """When each camera frame reached ``screen``, per peer (wall clock): a spy on the
    screen's per-frame hook."""
    arrivals: dict[str, list[float]] = {}
    on_frame = screen._on_video_frame

    def spy(peer_id: str, frame: Any) -> None:
        arrivals.setdefault(peer_id, []).append(time.time())
        on_frame(peer_id, frame)

    screen._on_video_frame = spy
    return arrivals


def longest_gap_since(times: list[float], since: float) -> float:
    """The longest gap between frames, counting from the last frame before ``since``."""
    before = [t for t in times if t < since]
    kept = before[-1:] + [t for t in times if t >= since]
    return max((b - a for a, b in itertools.pairwise(kept)), default=float("inf"))


async def page_decodes(page: Any, peers: list[str], more_than: dict[str, int]) -> bool:
    state = await page.evaluate("() => window.telecentreGuest")
    figures = state.get("peers") or {}
    return all(
        ((figures.get(p) or {}).get("framesDecoded") or 0) > more_than.get(p, 0) + 5 for p in peers
    )


async def until_page(page: Any, peers: list[str], what: str, within: float) -> dict[str, int]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not await page_decodes(page, peers, {}):
        if loop.time() > deadline:
            state = await page.evaluate("() => window.telecentreGuest")
            raise AssertionError(f"timed out waiting for {what}: {state.get('peers')}")
        await asyncio.sleep(0.2)
    state = await page.evaluate("() => window.telecentreGuest")
    return {p: int(state["peers"][p]["framesDecoded"]) for p in peers}


async def test_a_mesh_of_three_rooms_moves_onto_janus_when_two_guests_join(
    tmp_path: Path,
    browser: Any,  # noqa: F811
) -> None:
    keys = PoolSecrets()
    names = ["a", "b", "c"]
    with janus_pool(tmp_path / "janus", 1, keys) as pool:
        # A deployment that keeps meshes of up to four (the default is two).
        settings = pool_settings(
            tmp_path / "data", pool, keys, mesh_limit=4, guest_video="320x180@15"
        )
        start = now() + timedelta(seconds=6)
        async with booked_sites(settings, names, start, start + timedelta(minutes=5)) as sites:
            app = sites.app
            hub = app.services.signalling.hub
            rooms = {n: room_peer_id(sites.rooms[n]) for n in names}
            async with agents(sites, names) as running:
                arrivals = {name: record_arrivals(agent.screen) for name, agent in running.items()}
                await eventually(lambda: now() > start + timedelta(seconds=1), "T + 1 s", 20)
                for name, agent in running.items():
                    for other in names:
                        if other != name:
                            await eventually(
                                lambda a=agent, p=rooms[other]: camera_frames(a, p) > 5,
                                f"{name} decoding {other} in the mesh",
                                15,
                            )
                assert hub.topology(sites.session_id) == ("mesh", 0)
                for name, agent in running.items():  # peer to peer
                    assert set(agent.sessions[sites.session_id].calls) == {
                        rooms[o] for o in names if o != name
                    }

                pages: dict[str, tuple[str, Any]] = {}
                for guest in ("Grace", "Alan"):
                    at = datetime.fromtimestamp(app.services.clock.now(), UTC)
                    added, token = await app.services.db.run(
                        lambda s, g=guest, t=at: guests.add_guest(s, sites.booking_id, g, now=t)
                    )
                    page = await new_page(browser)
                    await page.goto(f"{app.url}/join/{token}")
                    await page.click("#join")
                    pages[guest] = (guest_peer_id(added.id), page)
                    if guest == "Grace":
                        await eventually(
                            lambda p=pages[guest][0]: p in hub.members(sites.session_id),
                            "the first guest joining the mesh",
                            20,
                        )
                        assert hub.topology(sites.session_id) == ("mesh", 0)  # four: still a mesh
                moved_at = time.time()
                await eventually(
                    lambda: hub.topology(sites.session_id) == ("sfu", 1), "the move to Janus", 20
                )
                guest_ids = [peer for peer, _page in pages.values()]

                # The rooms stayed members; each now publishes once and receives everyone.
                members = hub.members(sites.session_id)
                assert set(rooms.values()) | set(guest_ids) == set(members)
                for name, agent in running.items():
                    # Make-before-break: each mesh call closes once the member's
                    # subscription delivers (well before the agent's 10 s bound).
                    session = agent.sessions[sites.session_id]
                    await eventually(
                        lambda s=session: not any(c in s.calls for c in rooms.values()),
                        f"{name}'s mesh calls retired",
                        20,
                    )
                    for other in names:
                        if other != name:
                            sub = session.calls.get(f"sfu:{rooms[other]}")
                            assert sub is not None and sub.decoded, (name, other)
                    marks = {p: camera_frames(agent, p) for p in rooms.values() if p != rooms[name]}
                    for peer, before in marks.items():
                        await eventually(
                            lambda a=agent, p=peer, b=before: camera_frames(a, p) > b + 5,
                            f"{name} decoding {peer} on Janus",
                            20,
                        )
                    for peer in guest_ids:
                        await eventually(
                            lambda a=agent, p=peer: (
                                (a.screen.totals().get(p) or {}).get("frames", 0) > 5
                            ),
                            f"{name} decoding guest {peer}",
                            20,
                        )
                    calls = agent.sessions[sites.session_id].calls
                    assert SFU_PEER in calls and not any(c in calls for c in rooms.values())
                for guest, (own, page) in pages.items():
                    others = [*rooms.values(), *(p for p in guest_ids if p != own)]
                    await until_page(page, others, f"{guest} decoding every site on Janus", 30)
                    assert (await page.evaluate("() => window.telecentreGuest"))[
                        "topology"
                    ] == "sfu"

                # The gap each room saw in each other room's camera across the move.
                gaps: dict[str, dict[str, float]] = {}
                # The latest outage (a gap of 0.5 s or more), from and to, in seconds
                # from the move: where the longest gap fell.
                outages: dict[str, dict[str, list[float] | None]] = {}
                for name, agent in running.items():
                    totals = agent.screen.totals()
                    gaps[name] = {
                        other: round(float(totals[rooms[other]]["longest_gap_s"]), 3)
                        for other in names
                        if other != name
                    }
                    outages[name] = {
                        other: (
                            None
                            if totals[rooms[other]]["outage_from"] is None
                            else [
                                round(float(totals[rooms[other]][k] or 0.0) - moved_at, 3)
                                for k in ("outage_from", "outage_to")
                            ]
                        )
                        for other in names
                        if other != name
                    }
                # The gap across the move: the longest wait between two camera frames
                # of a pair from the second guest's join on.
                across = {
                    name: {
                        other: round(
                            longest_gap_since(arrivals[name].get(rooms[other], []), moved_at), 3
                        )
                        for other in names
                        if other != name
                    }
                    for name in names
                }
                worst = max(g for per in across.values() for g in per.values())
                report = {
                    "moved_at": moved_at,
                    "gap_across_move_s": across,
                    "worst_gap_s": worst,
                    "longest_gap_in_session_s": gaps,
                    "last_outage_from_move_s": outages,
                }
                OUTPUT.mkdir(exist_ok=True)
                (OUTPUT / "sfu-move-gaps.json").write_text(json.dumps(report, indent=2))
                print(f"\nmesh -> SFU: longest camera gap per room pair across the move {across}")
                print(f"mesh -> SFU: longest camera gap per room pair in the session {gaps}")
                print(f"mesh -> SFU: last outage per room pair, from the move {outages}")
                # 0.36-0.42 s here with make-before-break (3 rooms and Chromium on 2 shared
                # cores); a move that broke first waited for the SFU to deliver (seconds).
                assert worst < 2.0, report
                for _own, page in pages.values():
                    await page.context.close()
