"""Issue 12, acceptance 1 and 2: the product itself across the network lab.

Centre A sits behind a home NAT, centre B behind a symmetric NAT whose firewall lets
out only TCP 443 to the TURN server (its room has ICE policy ``relay``, set with the
product's CLI); coturn and ``telecentre serve`` run in the lab's WAN, real agents in
the sites' LANs (tests/netlab/deployment.py). A session booked a few seconds ahead,
with a real pre-roll, must start by itself on the product's own deadlines: every room
joined and its first frame before T, cameras live by T + 1 s (the session record the
service keeps, as tests/test_e2e_autostart.py reads it), stamped frames both ways, B's
media through a relay, and no address outside the lab in any SDP (the service refuses
such SDPs, the agents drop and count such candidates: both must stay silent) nor in
any log.

The booking is in UTC instants through the one booking door, with centres in zones on
both sides of UTC; the product has no opening hours or notice period that could refuse
a booking a few seconds ahead at some hour or on a DST day (a room's only limits are
its buffer, longest booking and furthest advance, left at their defaults here).
``test_the_lab_s_booking_is_accepted_at_any_hour`` makes the same booking without the
lab, and tests/test_any_hour.py runs it at the hours and DST days that once broke such
tests (``wall_clock``); the lab tests themselves stay out of it (they passed under
faketime at Europe's spring change, but six of them would push that test past its
budget on a loaded machine).
"""

from __future__ import annotations

import ipaddress
import json
import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from common.peers import guest_peer_id
from tests.browser_support import CHROMIUM, CHROMIUM_ARGS, chromium_available, new_page
from tests.netlab import Lab
from tests.netlab.deployment import Deployment, LabAgent, wait_for
from tests.requirements import missing
from tests.test_browser_guest import FRAMES_DECODED, sent_addresses, until
from web.cli import main

pytestmark = pytest.mark.e2e

LEAD = 6  # seconds of pre-roll: the rooms join and negotiate behind the card
AHEAD = 9  # the booking starts this long after it is made
DURATION = 8
GUEST_DURATION = 45  # the guest joins once both rooms are live, and everyone decodes
LIVE_WITHIN = 1.0  # cameras live by T + 1 s
IPV4 = re.compile(r"(?<![\d.])(\d{1,3}(?:\.\d{1,3}){3})(?![\d.])")


def ts(value: str | None) -> float | None:
    return datetime.fromisoformat(value).timestamp() if value else None


def outside_lab(text: str, lab: Lab) -> set[str]:
    """IPv4 addresses in ``text`` outside the lab's block (loopback and the wildcard
    aside: a process's own listening lines)."""
    block = ipaddress.IPv4Network(lab.networks)
    found = set()
    for literal in IPV4.findall(text):
        try:
            address = ipaddress.IPv4Address(literal)
        except ValueError:
            continue
        if address not in block and not address.is_loopback and not address.is_unspecified:
            found.add(literal)
    return found


def receiving(agent: LabAgent, peer: str, after: float) -> dict[str, Any] | None:
    """``agent``'s totals for ``peer`` once stamped camera frames arrived after ``after``."""
    totals = agent.status()["peers"].get(peer)
    if not totals or (totals.get("last_frame_at") or 0) < after:
        return None
    if not totals.get("camera_frames") or not totals.get("stamped_frames"):
        return None
    return dict(totals)


async def two_centres(lab: Lab, work: Path) -> Deployment:
    dep = await Deployment.start(lab, work)
    await dep.add_room("a", site="a", centre="Centre A", zone="Europe/Paris")
    await dep.add_room(
        "b", site="b", centre="Centre B", zone="America/New_York", ice_policy="relay"
    )
    await dep.start_agents("a", "b")
    return dep


@pytest.mark.wall_clock
def test_the_lab_s_booking_is_accepted_at_any_hour(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The lab tests' booking (centres either side of UTC, B on relay, a few seconds
    ahead with the pre-roll) through the same CLI, in-process: accepted, scheduled."""

    def cli(*args: str) -> dict[str, Any]:
        assert main([*args, "--data-dir", str(tmp_path), "--json"]) in (0, None)
        out: dict[str, Any] = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        return out

    rooms = []
    for name, zone in (("Centre A", "Europe/Paris"), ("Centre B", "America/New_York")):
        centre = cli("centre", "add", name, "--timezone", zone)["id"]
        rooms.append(cli("room", "add", "--centre", centre, name)["id"])
    cli("room", "set", rooms[1], "--ice-policy", "relay")
    start = datetime.fromtimestamp(time.time() + AHEAD, UTC)
    end = start + timedelta(seconds=DURATION)
    args = ["book", "--title", "lab", "--lead", str(LEAD)]
    args += ["--start", start.isoformat(), "--end", end.isoformat()]
    made = cli(*args, "--room", rooms[0], "--room", rooms[1])
    record = cli("session", "show", made["session_id"])
    assert record["state"] in ("scheduled", "preparing"), record
    assert {r["room_id"] for r in record["rooms"]} == set(rooms)


async def test_centres_behind_nat_and_a_443_firewall_start_on_time_b_through_turn(
    deployment_lab: Lab, tmp_path: Path
) -> None:
    dep = await two_centres(deployment_lab, tmp_path)
    a, b = dep.agents["a"], dep.agents["b"]
    peer_a, peer_b = f"room:{dep.rooms['a']}", f"room:{dep.rooms['b']}"
    start = time.time() + AHEAD
    end = start + DURATION
    session_id = await dep.book(start, end, ["a", "b"], lead=LEAD)

    # Stamped camera frames both ways, after T.
    for receiver, sender in ((a, peer_b), (b, peer_a)):
        totals = await wait_for(
            f"{receiver.room} receiving stamped camera frames",
            lambda r=receiver, s=sender: _async(receiving(r, s, start + LIVE_WITHIN)),
            AHEAD + 15,
        )
        assert totals["latency_p50_ms"] is not None, totals  # the stamps were read
    # B's media flows through the TURN relay (B can reach nothing else).
    pair_b = b.status()["pairs"][session_id][peer_a]
    assert pair_b is not None and pair_b["local"] == "relay", pair_b
    pair_a = a.status()["pairs"][session_id][peer_b]
    assert pair_a is not None and pair_a["remote"] == "relay", pair_a
    # The service's live figures say so too (the agents' media reports, as staff see them).
    token = (await dep.run_cli("token", "create", "--name", "lab"))["token"]

    async def relayed_in_api() -> dict[str, Any] | None:
        health = await dep.get(f"/api/v1/rooms/{dep.rooms['b']}/health", token)
        peers = (health.get("media") or {}).get("peers") or []
        found = [p for p in peers if p["peer_id"] == peer_a and p.get("local_candidate")]
        return found[0] if found else None

    reported = await wait_for("B's media report with its pair", relayed_in_api, 10)
    assert reported["local_candidate"] == "relay", reported

    async def recorded() -> dict[str, Any] | None:
        record = await dep.session(session_id)
        done = bool(record["rooms"]) and all(r["live_at"] for r in record["rooms"])
        return record if done else None

    # The service's record of the milestones (as the agents reported them).
    record = await wait_for("every room's live_at in the record", recorded, end - time.time() + 5)
    at = {t["state"]: ts(t["at"]) for t in record["transitions"]}
    assert at["preparing"] == pytest.approx(start - LEAD, abs=1.0)
    assert at["live"] == pytest.approx(start, abs=1.0)
    assert {r["room_id"] for r in record["rooms"]} == {dep.rooms["a"], dep.rooms["b"]}
    for room in record["rooms"]:
        joined, first, live = (ts(room[k]) for k in ("joined_at", "first_frame_at", "live_at"))
        assert joined is not None and joined < start, room
        assert first is not None and first < start, room
        assert live is not None and start <= live <= start + LIVE_WITHIN, room

    dep.assert_clean_logs()
    for name, text in dep.logs().items():
        assert not outside_lab(text, deployment_lab), f"{name} names addresses outside the lab"


async def _async(value: Any) -> Any:
    return value


async def test_a_chromium_guest_behind_a_third_nat_joins_through_turn_and_both_ways_decode(
    deployment_lab: Lab, tmp_path: Path
) -> None:
    """Acceptance 2: the guest's link (the CLI, as the booking page makes it) opened in
    Chromium behind the ``guest`` NAT; the page gets TURN from the service (``joined``'s
    ICE servers), decodes both rooms (its own getStats figures), both rooms decode the
    guest (their screens' totals), and every address the page offered is a lab one."""
    if not chromium_available():
        missing("Chromium is not installed (Debian package chromium)")
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        missing("the playwright Python package is not installed")
    dep = await two_centres(deployment_lab, tmp_path)
    start = time.time() + AHEAD
    session_id = await dep.book(start, start + GUEST_DURATION, ["a", "b"], lead=LEAD)
    guest_id, url = await dep.guest_link(session_id, "Ada Lovelace")
    guest_peer = guest_peer_id(guest_id)
    rooms = {name: f"room:{room_id}" for name, room_id in dep.rooms.items()}
    chromium = deployment_lab.site("guest").lan.wrapper(str(CHROMIUM), tmp_path)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=str(chromium), args=CHROMIUM_ARGS, headless=True
        )
        try:
            page = await new_page(browser)
            sent: list[str] = []
            received: list[str] = []

            def on_websocket(ws: Any) -> None:
                ws.on("framesent", lambda payload: sent.append(payload))
                ws.on("framereceived", lambda payload: received.append(payload))

            page.on("websocket", on_websocket)
            await page.goto(url)
            await until(
                page, "() => document.getElementById('preview').videoWidth > 0", "the preview"
            )
            await wait_for(
                "both rooms live",
                lambda: _async(
                    all(
                        receiving(dep.agents[r], rooms[o], start)
                        for r, o in (("a", "b"), ("b", "a"))
                    )
                ),
                AHEAD + 15,
            )
            await page.click("#join")
            for room in ("a", "b"):
                await until(page, FRAMES_DECODED, f"room {room} on the page", [rooms[room], 10], 30)
            for room in ("a", "b"):
                await wait_for(
                    f"room {room} decoding the guest",
                    lambda r=room: _async(
                        (dep.agents[r].status()["peers"].get(guest_peer) or {}).get("frames", 0)
                        > 10
                    ),
                    20,
                )
            status = await page.evaluate("() => window.telecentreGuest")
            assert status["state"] == "joined" and status["peerId"] == guest_peer
            # Two home NATs (a, guest) never meet directly in the lab, and b only
            # relays: each room's call with the guest goes through TURN.
            for room in ("a", "b"):
                pair = dep.agents[room].status()["pairs"][session_id][guest_peer]
                assert pair is not None and "relay" in (pair["local"], pair["remote"]), pair
        finally:
            await browser.close()

    joined = [json.loads(f) for f in received if json.loads(f).get("type") == "joined"]
    assert joined, "the page never joined"
    urls = [u for server in joined[0]["ice_servers"] for u in server["urls"]]
    assert any(u.startswith("turn:") for u in urls) and any(u.startswith("turns:") for u in urls)
    assert all(s.get("username") for s in joined[0]["ice_servers"] if "turn" in s["urls"][0])
    candidates, connections = sent_addresses(sent)
    block = ipaddress.IPv4Network(deployment_lab.networks)
    assert candidates, "the page's SDPs carried no candidate"
    assert all(ipaddress.ip_address(c) in block for c in candidates), candidates
    assert all(ipaddress.ip_address(c) in block or c in ("0.0.0.0", "::") for c in connections), (
        connections
    )
    assert all('"candidate-not-allowed"' not in f for f in received)
    dep.assert_clean_logs()
