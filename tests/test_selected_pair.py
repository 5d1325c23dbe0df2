"""room_agents/selected_pair.py: which candidate types a call's media flows on, in the
agent's status, its log and its media reports (the end-to-end proof through TURN is
tests/test_lab_session.py's: B's pair is a relay in its status and in the API)."""

from __future__ import annotations

from dataclasses import dataclass

from room_agents.selected_pair import pair_report, selected_pair, with_pair
from signalling.protocol import MediaStats


@dataclass
class Candidate:
    type: str
    transport: str = "udp"


@dataclass
class Pair:
    local_candidate: Candidate
    remote_candidate: Candidate


def test_the_selected_pair_says_its_candidate_types() -> None:
    report = pair_report(Pair(Candidate("relay", "UDP"), Candidate("srflx")))
    assert report == {"local": "relay", "remote": "srflx", "protocol": "udp"}
    assert pair_report(None) is None


async def test_a_connection_without_a_nominated_pair_reports_none() -> None:
    from aiortc import RTCPeerConnection

    from room_agents.ice import rtc_configuration

    pc = RTCPeerConnection(rtc_configuration([]))
    try:
        assert selected_pair(pc) is None  # no transceiver yet
        pc.addTransceiver("video")
        assert selected_pair(pc) is None  # not connected
    finally:
        await pc.close()


def test_a_media_report_carries_the_pair_s_candidate_types() -> None:
    media = MediaStats(peer_id="room:b", fps=30.0)
    relayed = with_pair(media, {"local": "relay", "remote": "srflx", "protocol": "udp"})
    assert (relayed.local_candidate, relayed.remote_candidate) == ("relay", "srflx")
    assert relayed.fps == 30.0
    assert with_pair(media, None) == media
    odd = with_pair(media, {"local": "mystery", "remote": "host", "protocol": "udp"})
    assert (odd.local_candidate, odd.remote_candidate) == (None, "host")
