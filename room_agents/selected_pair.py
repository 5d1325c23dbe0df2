"""Which candidate pair a call's media flows on: the local and remote candidate types
(``host``, ``srflx``, ``prflx``, ``relay``) of the pair ICE nominated, and its
transport.

Staff ask "is this room relayed?" when a call is slow or costs TURN bandwidth, and the
lab's tests check that a room behind a 443-only firewall really goes through TURN.
aiortc exposes no candidate-pair statistics, so this reads aioice's nominated pair
(``Connection._nominated``, private: the aioice range is pinned in pyproject.toml)
through the transport every bundled section shares; anything missing reads as None
(not connected yet, or an aioice without the attribute), never as an error.

The agent's status file carries it per session and peer (``pairs``), its log says it
when a call connects, and each media report to the service (``MediaStats``
``local_candidate``/``remote_candidate``, docs/protocol.md) carries its candidate types,
so the room's live figures in the API say whether the room is relayed.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Final, TypedDict

from signalling.protocol import CandidateType, MediaStats

RTP_COMPONENT = 1
# aioice's candidate type words, as the protocol's (typed) values.
CANDIDATE_TYPES: Final[dict[str, CandidateType]] = {
    "host": "host",
    "srflx": "srflx",
    "prflx": "prflx",
    "relay": "relay",
}


class PairReport(TypedDict):
    local: str  # the local candidate's type: host, srflx, prflx or relay
    remote: str  # the remote candidate's type
    protocol: str  # udp or tcp (ICE's own; a TURN relay over TCP or TLS still says udp)


def pair_report(pair: Any) -> PairReport | None:
    """The report of an aioice CandidatePair (None for anything else)."""
    local = getattr(pair, "local_candidate", None)
    remote = getattr(pair, "remote_candidate", None)
    if local is None or remote is None:
        return None
    return PairReport(
        local=str(getattr(local, "type", "?")),
        remote=str(getattr(remote, "type", "?")),
        protocol=str(getattr(local, "transport", "?")).lower(),
    )


def selected_pair(pc: Any) -> PairReport | None:
    """The nominated pair of an RTCPeerConnection's (bundled) ICE transport."""
    for transceiver in pc.getTransceivers():
        dtls = getattr(transceiver.sender, "transport", None)
        ice = getattr(dtls, "transport", None)
        connection = getattr(ice, "_connection", None)
        nominated = getattr(connection, "_nominated", None)
        if isinstance(nominated, dict):
            return pair_report(nominated.get(RTP_COMPONENT))
    return None


def with_pair(media: MediaStats, pair: PairReport | None) -> MediaStats:
    """A media report with the pair's candidate types (a type the protocol does not
    know, or no pair yet, leaves them absent)."""
    if pair is None:
        return media
    return dataclasses.replace(
        media,
        local_candidate=CANDIDATE_TYPES.get(pair["local"]),
        remote_candidate=CANDIDATE_TYPES.get(pair["remote"]),
    )
