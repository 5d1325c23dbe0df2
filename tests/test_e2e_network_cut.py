"""Acceptance 5: a room's network is cut for 3 s mid-session; media is back within 5 s.

One agent runs in a network namespace of its own, joined to the host by a veth pair
(tests/netns_support.py); the service and the other agent run on the host. Both
agents may offer only their end of the pair (the candidate networks allow exactly
the two addresses, and the agents pin aioice to them), so the media really crosses
the veth. All the namespace's traffic (media, and its signalling link) is dropped
for 3 s, then let through again; the stamped frames each room decodes from the
other tell when media flows again.

The figures come from the agents' status files, written every 0.5 s: the reported
gap (the newest frame's time in the first status that shows one after the restore,
minus the restore) is at most 0.5 s longer than the true one.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests import netns_support
from tests.e2e_support import Network, Serve, base_env, wait_until
from tests.netns_support import Veth, veth_namespace
from tests.requirements import missing
from tests.test_e2e_autostart import CENTRES, _keep_logs, assert_clean_logs, online
from tests.test_e2e_resilience import frames_after, peer_totals

pytestmark = pytest.mark.e2e

CUT = 3.0
BACK_WITHIN = 5.0
INSIDE, OUTSIDE = "amsterdam", "fontainebleau"


@dataclass
class VethServe(Serve):
    """``telecentre serve`` listening on the host end of the pair."""

    host: str = "127.0.0.1"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


@pytest.fixture
def veth() -> Iterator[Veth]:
    reason = netns_support.available()
    if reason is not None:
        missing(reason)
    with veth_namespace("cut") as pair:
        yield pair


def last_frame(net: Network, room: str, sender: str) -> float:
    at = peer_totals(net, room, sender).get("last_frame_at")
    return float(at) if at is not None else 0.0


def test_media_is_back_within_5_s_of_a_3_s_network_cut(
    tmp_path: Path, veth: Veth, request: pytest.FixtureRequest
) -> None:
    net = Network.create(tmp_path, [(room, *CENTRES[room]) for room in (OUTSIDE, INSIDE)])
    net.serve = VethServe(
        argv=[*net.serve.argv, "--host", veth.host_address],
        log_path=net.serve.log_path,
        env=base_env(TELECENTRE_CANDIDATE_NETWORKS=veth.networks),
        port=net.serve.port,
        host=veth.host_address,
    )
    try:
        net.serve.start()
        net.serve.wait_ready()
        net.agent(INSIDE, prefix=veth.exec_prefix).start()
        net.agent(OUTSIDE).start()
        online(net, INSIDE, OUTSIDE)
        start = time.time() + 12
        net.book(start, start + 60, [OUTSIDE, INSIDE], lead=5)
        frames_after(net, OUTSIDE, INSIDE, start + 1, 30)
        frames_after(net, INSIDE, OUTSIDE, start + 1, 10)
        before = {r: peer_totals(net, r, s) for r, s in ((OUTSIDE, INSIDE), (INSIDE, OUTSIDE))}
        assert all(t["camera_frames"] and t["stamped_frames"] for t in before.values()), before

        veth.cut()
        cut_at = time.time()
        # Nothing gets through any more, either way.
        wait_until(
            "media to stop both ways",
            lambda: all(
                time.time() - last_frame(net, room, sender) > 1.0
                for room, sender in ((OUTSIDE, INSIDE), (INSIDE, OUTSIDE))
            ),
            CUT,
        )
        wait_until("3 s of cut", lambda: time.time() >= cut_at + CUT, CUT + 1, interval=0.01)
        dropped = veth.dropped()
        pairs = ((OUTSIDE, INSIDE), (INSIDE, OUTSIDE))
        stalled = {room: peer_totals(net, room, sender) for room, sender in pairs}
        veth.restore()
        restored_at = time.time()

        back = {
            OUTSIDE: frames_after(net, OUTSIDE, INSIDE, restored_at, BACK_WITHIN + 10),
            INSIDE: frames_after(net, INSIDE, OUTSIDE, restored_at, BACK_WITHIN + 10),
        }
        gaps = {room: at - restored_at for room, at in back.items()}
        stalls = {room: back[room] - stalled[room]["last_frame_at"] for room in back}
        rebuilt = {room: "the path is dead" in net.agents[room].log() for room in back}
        print(
            f"\nnetwork cut {restored_at - cut_at:.2f} s ({dropped} packets dropped); "
            f"media back after the restore: {INSIDE} -> {OUTSIDE} {gaps[OUTSIDE]:.2f} s, "
            f"{OUTSIDE} -> {INSIDE} {gaps[INSIDE]:.2f} s (status resolution 0.5 s); "
            f"frozen for {stalls[OUTSIDE]:.2f} s and {stalls[INSIDE]:.2f} s; "
            f"path found dead by {sorted(r for r, dead in rebuilt.items() if dead) or 'nobody'}"
        )
        assert dropped > 0
        assert max(gaps.values()) < BACK_WITHIN, gaps
        # Stamped camera frames, not just any frames: the call is live again.
        after = {room: peer_totals(net, room, sender) for room, sender in pairs}
        for room in after:
            assert after[room]["stamped_frames"] > stalled[room]["stamped_frames"]
            assert after[room]["camera_frames"] > stalled[room]["camera_frames"]
        assert_clean_logs(net)
    finally:
        net.stop_all()
        _keep_logs(net, request.node.name)
