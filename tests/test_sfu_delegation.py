"""Issue 13, acceptance 1: a delegation of six centres and two guests on Janus.

Six ``telecentre agent`` processes, one room per centre, and two Chromium guests (on
``guest_machine_browser``: a guest's browser is on the guest's own machine, not a
room's PC) in one automatic session on a real Janus, the service in this process. The
session is booked past the mesh limit, so it is on the SFU from the first join.

The size is what these two cores hold for eight sites at once (the issue's "at a size
these 2 cores hold"): 320x180 at ``FPS``. At T every picture turns from a static card
into a moving camera, and encoding and decoding on the whole machine jump at once;
docs/architecture.md, "Six sites on one test machine", has the measurements; 640x360
belongs to bench/sfu.

Shown, each from what the product records:
- every room joined before T and saw a live camera by T + 1 s (the session's record:
  ``joined_at``, ``live_at``);
- every room decodes every other room's stamped camera and both guests (its status
  file), and each guest page decodes the six rooms and the other guest (getStats) and
  shows each room's camera, its stamp read off the picture;
- each room uploads one stream: its connections are its publication (``sfu``) and one
  subscription per other site, and each subscription sent under a tenth of what the
  publication did (receiver reports only);
- no candidate of a room outside the deployment's networks (the agents' violations).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from common.peers import SFU_PEER, guest_peer_id, room_peer_id, sfu_peer_id
from orchestrator.sessions import guests, readiness
from orchestrator.sessions.detail import session_detail
from room_agents.stamp import read_stamp
from tests.browser_support import guest_machine_browser, new_page  # noqa: F401
from tests.e2e_support import Agent
from tests.sfu_support import PoolSecrets, booked_sites, janus_pool, now, pool_settings
from tests.signalling_fixtures import eventually
from tests.test_browser_guest import READ_FRAME
from tests.test_sfu_move import until_page
from web.api_json import session_detail_json

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

NAMES = ["a", "b", "c", "d", "e", "f"]
GUESTS = ["Grace", "Alan"]
WIDTH, HEIGHT, FPS = 320, 180, 15
LEAD = 15  # seconds of pre-roll (the product's default is 60)
AHEAD = 30  # the booking's T - lead, from the booking: six agent processes start meanwhile
LIVE_WITHIN_S = 1.0
FRAMES = 5


def ts(value: str | None) -> float | None:
    return datetime.fromisoformat(value).timestamp() if value else None


def from_t(at: float | None, t: float) -> float | None:
    return None if at is None else round(at - t, 3)


async def page_state(page: Any) -> dict[str, Any]:
    state: dict[str, Any] = await page.evaluate("() => window.telecentreGuest")
    return state


def status_of(agent: Agent) -> dict[str, Any]:
    try:
        return agent.status()
    except (OSError, ValueError):  # not written yet, or being replaced
        return {}


async def test_six_centres_and_two_guests_go_live_on_janus_on_time(
    tmp_path: Path,
    guest_machine_browser: Any,  # noqa: F811
) -> None:
    keys = PoolSecrets()
    with janus_pool(tmp_path / "janus", 1, keys) as pool:
        settings = pool_settings(
            tmp_path / "data", pool, keys, guest_video=f"{WIDTH}x{HEIGHT}@{FPS}"
        )
        start = now() + timedelta(seconds=LEAD + AHEAD)
        end = start + timedelta(minutes=5)
        async with booked_sites(settings, NAMES, start, end, lead=LEAD) as sites:
            app = sites.app
            session_id = sites.session_id
            rooms = {n: room_peer_id(sites.rooms[n]) for n in NAMES}
            agents: dict[str, Agent] = {}
            for name in NAMES:
                key_file = tmp_path / f"{name}.key"
                key_file.write_text(sites.keys[name] + "\n")
                key_file.chmod(0o600)
                agents[name] = Agent.make(
                    tmp_path / "agents", name, app.url, key_file, width=WIDTH, height=HEIGHT,
                    fps=FPS,
                )  # fmt: skip
            pages: dict[str, tuple[str, Any]] = {}
            try:
                for agent in agents.values():
                    agent.start()
                for name, agent in agents.items():
                    await eventually(
                        lambda a=agent: bool(status_of(a).get("connected")),
                        f"agent {name} online",
                        60,
                    )
                # The guests open their links during the pre-roll, as invited guests do.
                for guest in GUESTS:
                    at = datetime.fromtimestamp(app.services.clock.now(), UTC)
                    added, token = await app.services.db.run(
                        lambda s, g=guest, t=at: guests.add_guest(s, sites.booking_id, g, now=t)
                    )
                    page = await new_page(guest_machine_browser)
                    await page.goto(f"{app.url}/join/{token}")
                    await page.click("#join")
                    pages[guest] = (guest_peer_id(added.id), page)
                guest_ids = [peer for peer, _page in pages.values()]
                await eventually(
                    lambda: now() > start + timedelta(seconds=LIVE_WITHIN_S + 2), "T + 3 s", 90
                )

                # Joined before T, a live camera by T + 1 s: the session's record.
                record = await app.services.db.run(
                    lambda s: session_detail_json(
                        session_detail(s, session_id), readiness.for_session(s, session_id)
                    )
                )
                t = start.timestamp()
                timing = {
                    r["room_id"]: (ts(r["joined_at"]), ts(r["live_at"])) for r in record["rooms"]
                }
                report = {
                    name: {
                        "joined_from_T_s": from_t(timing[sites.rooms[name]][0], t),
                        "live_from_T_s": from_t(timing[sites.rooms[name]][1], t),
                    }
                    for name in NAMES
                }
                print(f"\ndelegation timing (s): {report}")
                for name in NAMES:
                    joined, live = timing[sites.rooms[name]]
                    assert joined is not None and joined < t, (name, report)
                    assert live is not None and live <= t + LIVE_WITHIN_S, (name, report)

                # Every room decodes every other room's stamped camera and both guests.
                for name, agent in agents.items():
                    wanted = [rooms[o] for o in NAMES if o != name]

                    def decodes(a: Agent = agent, w: list[str] = wanted) -> bool:
                        peers = status_of(a).get("peers") or {}
                        return all(
                            (peers.get(p) or {}).get("camera_frames", 0) > FRAMES
                            and (peers.get(p) or {}).get("stamped_frames", 0) > FRAMES
                            for p in w
                        ) and all((peers.get(g) or {}).get("frames", 0) > FRAMES for g in guest_ids)

                    await eventually(decodes, f"{name} decoding every other site", 30)

                # Each guest page decodes the six rooms and the other guest.
                for guest, (own, page) in pages.items():
                    others = [*rooms.values(), *(g for g in guest_ids if g != own)]

                    await until_page(page, others, f"{guest} decoding every site", 30)
                    assert (await page_state(page))["topology"] == "sfu"
                    # What the page shows of each room is that room's camera, stamped
                    # within the last seconds.
                    for name in NAMES:
                        frame = await page.evaluate(READ_FRAME, rooms[name])
                        luma = np.array(frame["luma"], dtype=np.uint8).reshape(
                            frame["height"], frame["width"]
                        )
                        stamp = read_stamp(luma)
                        assert stamp is not None and stamp.camera, (guest, name)
                        assert -1_000 < frame["at"] - stamp.capture_ms < 5_000, (guest, name)

                # One upload per room: the publication, and a subscription per site.
                for name, agent in agents.items():
                    status = status_of(agent)
                    sent = status["sent_bytes"][session_id]
                    subscriptions = {
                        sfu_peer_id(p) for p in [*rooms.values(), *guest_ids] if p != rooms[name]
                    }
                    assert set(sent) == {SFU_PEER, *subscriptions}, (name, sent)
                    for peer in subscriptions:
                        assert sent[peer] < sent[SFU_PEER] / 10, (name, sent)
                    assert status["violations"] == [], (name, status["violations"])
            finally:
                for _own, page in pages.values():
                    await page.context.close()
                for agent in agents.values():
                    agent.stop()
                    agent.kill()
