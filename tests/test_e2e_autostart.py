"""End to end with real processes: a booking made with the CLI while ``serve`` runs
starts by itself; rooms join behind the card, go live at the booked second, and leave.

Each test is a scenario on the wall clock (the product's own deadlines: joined
before T, live within one second of T, media back within 5 s), so the waits are
bounded conditions, never bare sleeps.
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.e2e_support import Network, clock_behind, wait_until

pytestmark = pytest.mark.e2e

CENTRES = {
    "fontainebleau": ("Fontainebleau", "Europe/Paris"),
    "amsterdam": ("Amsterdam", "Europe/Amsterdam"),
    "strasbourg": ("Strasbourg", "Europe/Paris"),
}
ORDER = ["scheduled", "preparing", "live", "ending", "ended"]


def ts(value: str | None) -> float | None:
    return datetime.fromisoformat(value).timestamp() if value else None


@pytest.fixture
def network(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Network]:
    rooms = getattr(request, "param", ["fontainebleau", "amsterdam"])
    net = Network.create(tmp_path, [(r, *CENTRES[r]) for r in rooms])
    net.serve.start()
    try:
        net.serve.wait_ready()
        yield net
    finally:
        net.stop_all()
        _keep_logs(net, request.node.name)


def _keep_logs(net: Network, name: str) -> None:
    out = Path(__file__).resolve().parents[1] / "test-output" / name
    out.mkdir(parents=True, exist_ok=True)
    shutil.copy(net.serve.log_path, out / "serve.log")
    for room, agent in net.agents.items():
        if agent.log_path.exists():
            shutil.copy(agent.log_path, out / f"agent-{room}.log")


def online(net: Network, *rooms: str) -> None:
    for room in rooms:
        wait_until(f"{room} online", lambda r=room: net.agents[r].status().get("connected"), 30)


def receiving(
    net: Network, room: str, sender: str, after: float, camera: bool = True
) -> dict[str, Any]:
    """The receiving room's figures for ``sender``, once frames arrived after ``after``."""
    peer = f"room:{net.rooms[sender]}"

    def check() -> dict[str, Any] | None:
        totals = net.agents[room].status()["peers"].get(peer)
        if not totals or (totals.get("last_frame_at") or 0) < after:
            return None
        if camera and not totals.get("camera_frames"):
            return None
        return dict(totals)

    return wait_until(f"{room} receiving {sender}", check, 15)


def assert_clean_logs(net: Network) -> None:
    """No key, ticket or secret in any log; no candidate outside the allowed addresses."""
    keys = [p.read_text().strip() for p in net.key_files.values()]
    logs = [net.serve.log()] + [a.log() for a in net.agents.values()]
    for text in logs:
        for key in keys:
            assert key not in text
        assert not re.search(r"eyJ[\w-]+\.[\w-]+\.[\w-]+", text), "a JWT ticket appears in a log"
        assert "candidate-not-allowed" not in text
    for agent in net.agents.values():
        assert agent.status()["violations"] == []


def assert_session_record(
    net: Network, session_id: str, start: float, end: float, rooms: list[str]
) -> dict[str, Any]:
    def ended() -> dict[str, Any] | None:
        s = net.session(session_id)
        done = s["state"] == "ended" and all(r["left_at"] for r in s["rooms"])
        return s if done else None

    record = wait_until(
        "session ended with every room left", ended, max(10.0, end - time.time() + 10)
    )
    states = [t["state"] for t in record["transitions"]]
    assert [s for s in ORDER if s in states] == ORDER and states[0] == "scheduled"
    times = [ts(t["at"]) for t in record["transitions"]]
    assert times == sorted(times)
    at = {t["state"]: ts(t["at"]) for t in record["transitions"]}
    assert at["preparing"] == pytest.approx(start - 5, abs=1.0)
    assert at["live"] == pytest.approx(start, abs=1.0)
    assert at["ended"] == pytest.approx(end, abs=1.0)
    assert {r["room_id"] for r in record["rooms"]} == {net.rooms[r] for r in rooms}
    for r in record["rooms"]:
        joined, first, live, left = (
            ts(r[k]) for k in ("joined_at", "first_frame_at", "live_at", "left_at")
        )
        assert joined is not None and joined < start, r
        assert first is not None and first < start, r
        assert live is not None and start <= live <= start + 1.0, r
        assert left is not None and end - 1.0 <= left <= end + 3.0, r
        assert r["media"].get("fps_latest", 0) > 10, r
    return record


def run_scenario(
    net: Network, rooms: list[str], duration: float = 8.0, **agent: Any
) -> dict[str, Any]:
    """``agent``: the agents' options (``width``, ``height``, ``fps``)."""
    for room in rooms:
        net.agent(room, **agent).start()
    online(net, *rooms)
    start = time.time() + 15
    end = start + duration
    session_id = net.book(start, end, rooms, lead=5)
    wait_until("the rooms to go live", lambda: time.time() > start + 2, 30, interval=0.2)
    for room in rooms:
        for sender in rooms:
            if sender != room:
                totals = receiving(net, room, sender, after=start + 1)
                assert totals["audio_frames"] > 0 and (totals.get("audio_level") or 0) > 0
    record = assert_session_record(net, session_id, start, end, rooms)
    for room in rooms:
        # The record says every room left; the agent rewrites its status file every
        # 0.5 s, which under load can come a second or so later.
        status = net.agents[room].status
        wait_until(
            f"{room}'s status without the session", lambda s=status: s()["sessions"] == {}, 10
        )
    assert_clean_logs(net)
    return record


def test_two_rooms_in_two_centres_start_by_themselves(network: Network) -> None:
    run_scenario(network, ["fontainebleau", "amsterdam"])


@pytest.mark.parametrize("network", [["fontainebleau", "amsterdam", "strasbourg"]], indirect=True)
def test_three_rooms_in_full_mesh_each_receive_both_others(network: Network) -> None:
    # Three agents each encoding two 640x360 streams saturate two cores (bench/sfu: from
    # three rooms a mesh on one machine decodes under 10 fps); 320x180 is what they hold.
    run_scenario(network, ["fontainebleau", "amsterdam", "strasbourg"], width=320, height=180)


@pytest.mark.skipif(
    shutil.which("faketime") is None and not __import__("os").environ.get("CI"),
    reason="libfaketime is not installed (scripts/services.sh installs it)",
)
def test_an_agent_whose_clock_is_30_s_late_still_joins_before_t_and_goes_live_at_t(
    network: Network,
) -> None:
    assert shutil.which("faketime"), "faketime is required under CI"
    network.agent("fontainebleau", prefix=clock_behind(30))
    record_rooms = ["fontainebleau", "amsterdam"]
    network.agent("amsterdam").start()
    network.agents["fontainebleau"].start()
    online(network, *record_rooms)
    skewed = network.agents["fontainebleau"].status()
    assert skewed["clock_offset"] == pytest.approx(30, abs=1.0)
    start = time.time() + 15
    end = start + 8
    session_id = network.book(start, end, record_rooms, lead=5)
    assert_session_record(network, session_id, start, end, record_rooms)
    assert_clean_logs(network)
