"""Peer ids: how a connection is named on the wire and in a join ticket's ``sub``.

A room agent is ``room:<room_id>``, a browser guest ``guest:<guest_id>`` (docs/protocol.md,
"peer_id"). The orchestrator mints tickets for these ids, signalling admits and relays by
them, the room agent and the pages recognise rooms by them: so they are spelled here once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal

ROOM_PREFIX: Final = "room:"
GUEST_PREFIX: Final = "guest:"
GUEST_ID: Final = re.compile(r"[A-Za-z0-9_-]{1,64}")
"""A guest id: 1 to 64 URL-safe characters."""

SFU_PEER: Final = "sfu"
"""The addressee standing for the SFU in an SFU session: a member's own publication."""
SFU_PREFIX: Final = "sfu:"
"""``sfu:<peer_id>``: the SFU forwarding that member's publication (docs/protocol.md, 20)."""

PeerKind = Literal["room", "guest"]


@dataclass(frozen=True, slots=True)
class PeerRef:
    """A peer id read back: a room's id or a guest's."""

    kind: PeerKind
    id: str


def room_peer_id(room_id: str) -> str:
    """The peer id of a room agent: ``room:<room_id>``."""
    return f"{ROOM_PREFIX}{room_id}"


def guest_peer_id(guest_id: str) -> str:
    """The peer id of a browser guest (a guest ticket's ``sub``): ``guest:<guest_id>``;
    ``ValueError`` unless the guest id is 1 to 64 characters of A-Z, a-z, 0-9, ``_``, ``-``."""
    if not GUEST_ID.fullmatch(guest_id):
        raise ValueError("a guest id is 1 to 64 characters of A-Z, a-z, 0-9, '_' and '-'")
    return f"{GUEST_PREFIX}{guest_id}"


def is_guest_peer_id(peer_id: str) -> bool:
    """Whether ``peer_id`` is a well-formed guest's peer id."""
    return peer_id.startswith(GUEST_PREFIX) and bool(GUEST_ID.fullmatch(peer_id, len(GUEST_PREFIX)))


def parse_peer_id(peer_id: str) -> PeerRef:
    """The room or guest a peer id names; ``ValueError`` for anything else (no prefix,
    an empty room id, a malformed guest id)."""
    if peer_id.startswith(ROOM_PREFIX) and len(peer_id) > len(ROOM_PREFIX):
        return PeerRef("room", peer_id[len(ROOM_PREFIX) :])
    if is_guest_peer_id(peer_id):
        return PeerRef("guest", peer_id[len(GUEST_PREFIX) :])
    raise ValueError(f"not a peer id: {peer_id[:40]!r}")


def room_id_of(peer_id: str) -> str | None:
    """The room id in a room's peer id; None for a guest or anything else."""
    try:
        ref = parse_peer_id(peer_id)
    except ValueError:
        return None
    return ref.id if ref.kind == "room" else None


def sfu_peer_id(publisher: str) -> str:
    """The addressee standing for ``publisher``'s publication forwarded by the SFU."""
    return f"{SFU_PREFIX}{publisher}"


def sfu_publisher(peer_id: str) -> str | None:
    """The member whose publication ``sfu:<member>`` forwards; None for any other id."""
    if peer_id.startswith(SFU_PREFIX) and len(peer_id) > len(SFU_PREFIX):
        return peer_id[len(SFU_PREFIX) :]
    return None


def is_sfu_peer(peer_id: str) -> bool:
    """Whether ``peer_id`` stands for the SFU (``sfu`` or ``sfu:<member>``)."""
    return peer_id == SFU_PEER or sfu_publisher(peer_id) is not None
