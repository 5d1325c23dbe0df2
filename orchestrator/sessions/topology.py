"""Which topology a session is planned on: a mesh, or the SFU (issue 13).

A mesh costs each peer one upload per other peer, so it suits small sessions; the
SFU takes one upload from each peer whatever the number of sites. The orchestrator
plans a session on the SFU, when the deployment has an SFU pool, if its peers (its
rooms and its guests not revoked) are more than the mesh limit, or if one of its
rooms declares a small uplink (``Room.small_uplink``). The plan travels with each
open transition (``SessionTransition.topology``); signalling places a session
planned on the SFU there when it is prepared, and still moves a mesh session to the
SFU by itself when a join passes the mesh cap (docs/protocol.md 20).
"""

from __future__ import annotations

from common.sessions import MESH, SFU, Topology


def planned_topology(
    rooms: int, guests: int, small_uplink: bool, mesh_limit: int, sfu_available: bool
) -> Topology:
    """``sfu`` when an SFU pool is configured and either the session's peers (``rooms``
    plus ``guests``) are more than ``mesh_limit`` or one of its rooms declares a small
    uplink; ``mesh`` otherwise (and always without an SFU pool)."""
    if not sfu_available:
        return MESH
    if small_uplink or rooms + guests > mesh_limit:
        return SFU
    return MESH
