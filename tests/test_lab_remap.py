"""Issue 12, acceptance 5: centre A's NAT loses its mappings mid-session (its public
address changes, conntrack flushed), and media is back within 5 s of the change, both
ways, on every call A is in.

The product itself across the lab (tests/netlab/remap.py over
tests/netlab/deployment.py): coturn and ``telecentre serve`` in the WAN, real agents.
A (home NAT, policy ``all``) is in one session with B (symmetric NAT behind a 443-only
firewall, policy ``relay``: its media goes through TURN over TLS) and W (a room on a
public address, in the WAN: A reaches it directly). Every access link has 1 % loss and
40 +- 5 ms of delay each way, so the liveness rule that finds a dead path fast must
also leave a healthy lossy call alone: no path is found dead before the change. Then
A's router is re-addressed (``site.readdress``: a Linux home NAT maps a flushed flow to
the same port again, so a plain flush would go unnoticed). Each room reports, per peer,
its latest outage (the last frame before a gap of 0.5 s or more and the first after
it, room_agents/screen.py); media is back when the first frame after the change's
outage was decoded. bench/remap repeats it and prints the figures.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from tests.netlab import Lab
from tests.netlab.remap import peer_totals, remap_session

pytestmark = pytest.mark.e2e

BACK_WITHIN = 5.0  # the bound, from the change
SETTLE = 4.0  # seconds of healthy lossy call after T before the change


async def test_a_centre_whose_nat_readdresses_mid_session_has_media_back_within_5_s(
    deployment_lab: Lab, tmp_path: Path
) -> None:
    session = await remap_session(deployment_lab, tmp_path, seconds=45)
    await asyncio.sleep(SETTLE)
    assert session.found_dead() == [], "a healthy lossy call was torn down"
    frames = {
        session.name(agent, peer): peer_totals(agent, peer)["camera_frames"]
        for agent, peer in session.directions
    }
    try:
        backs = await session.readdress(within=BACK_WITHIN + 10)
    except AssertionError:
        for room, agent in session.dep.agents.items():
            print(f"===== agent {room}\n" + "\n".join(agent.log().splitlines()[-60:]))
        raise
    print(
        json.dumps({"readdress": "a", "media_back_s": {k: round(v, 2) for k, v in backs.items()}})
    )
    assert max(backs.values()) < BACK_WITHIN, backs
    # Stamped camera frames, not only some frames, came after the change.
    await asyncio.sleep(1.0)
    for agent, peer in session.directions:
        now = peer_totals(agent, peer)["camera_frames"]
        assert now > frames[session.name(agent, peer)], session.name(agent, peer)
    session.dep.assert_clean_logs()
