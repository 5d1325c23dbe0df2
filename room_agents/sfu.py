"""The room agent's rules for SFU sessions (docs/protocol.md, section 20), as pure functions.

In an SFU session the agent holds no connection with another member: one connection,
to ``sfu``, carries its publication (it sends, and receives nothing), and one per other
member P, ``sfu:<P>``, carries P's publication forwarded by the SFU (it receives, and
sends nothing). Calls are keyed by those addressees (room_agents.calls); what a
subscription receives is P's, so the screen, the stamps, the milestones and ``stats``
name P (``media_peer``).

- A move: on ``joined``, the server's word replaces ours whenever it differs (a rejoin
  on a new link after a move we missed, or a mesh session that grew while we were
  away); a ``topology`` message counts only when its epoch is above the one we know
  (a late copy of an older move changes nothing). A move closes every connection the
  session holds, then, on an SFU, publishes again.
- Make-before-break: on a move from a mesh to an SFU, each mesh call with a member P
  keeps running (sending and receiving, its pictures on the screen) until the
  subscription ``sfu:<P>`` is connected and the screen has decoded a camera frame from
  it, and P has what it needs from us too: an agent says so on the call's liveness
  channel (``SFU_DELIVERS``, sent when its own ``sfu:<us>`` delivers); a peer that
  does not speak the ping (a browser) is not waited for. ``MESH_KEEP`` seconds after
  the move it closes whatever came (a publication that never comes); a mesh call that
  is not connected has nothing to show and closes at once (``retire_mesh_call``). A
  move between two SFUs (the old Janus died) keeps nothing.
- Recovery: the publication that failed (or missed the connect deadline) is offered
  again to ``sfu``; a subscription that failed is asked for again with ``subscribe``,
  and the server answers with a fresh offer from ``sfu:<P>``. Connections with the SFU
  carry no liveness channel: Janus does not echo the ping.
"""

from __future__ import annotations

from typing import Final, Literal

from common.peers import SFU_PEER, sfu_publisher
from signalling.protocol import Topology

# How the publication's media sections are offered. Janus' VideoRoom takes a publisher's
# ``sendonly`` sections (it never sends media back on a publisher's connection), and a
# section that sends nothing costs nothing on the uplink; ``sendrecv`` is the fallback if
# a Janus build refused them.
PUBLISH_DIRECTION: Final[Literal["sendonly", "sendrecv"]] = "sendonly"

# How long a mesh call may outlive a move to an SFU, waiting for the member's
# subscription to deliver (Janus offers it within a second or two of the publication).
MESH_KEEP: Final = 10.0

# What an agent sends on a kept mesh call's liveness channel once its subscription of
# that peer delivers: the peer may close the call as soon as its own does. Older agents
# take it as any message on the channel (proof of a live path).
SFU_DELIVERS: Final = '{"type":"sfu-delivers"}'

Recovery = Literal["publish", "subscribe", "re-offer"]


def media_peer(peer_id: str) -> str:
    """The member whose media a connection with ``peer_id`` carries: P for ``sfu:<P>``,
    the peer itself in a mesh (``sfu``, our own publication, carries nobody's)."""
    return sfu_publisher(peer_id) or peer_id


def is_publication(peer_id: str) -> bool:
    return peer_id == SFU_PEER


def moves(known: tuple[Topology, int], told: tuple[Topology, int], *, joined: bool) -> bool:
    """Whether what the server told (``joined`` or a ``topology`` message) moves the
    session away from the ``(topology, epoch)`` we know: a ``joined`` that differs at
    all (it is the server's current word, after a link loss we may have missed a move),
    a ``topology`` message only with a higher epoch."""
    if joined:
        return told != known
    return told[1] > known[1]


def joined_outdated(joined_epoch: int, known_epoch: int, *, told_since: bool) -> bool:
    """Whether a ``joined`` answer is older than what we know: a ``topology`` message
    that reached us while our join was on its way (``told_since``) told a higher epoch.
    The server may send its answer before the move it makes next, and the answer is
    read after the message (it resumes the joining task, the message is handled at
    once): a CI run's room moved to the SFU and back to mesh 3 ms later, dropping its
    publication. Without a message since, ``joined`` stands whatever its epoch (a
    restarted server starts again at 0)."""
    return told_since and joined_epoch < known_epoch


def recovery(peer_id: str) -> Recovery:
    """What rebuilds a failed connection with ``peer_id``: ``publish`` (an offer to
    ``sfu`` again), ``subscribe`` (ask the server for a fresh ``sfu:<P>`` offer), or
    ``re-offer`` (a mesh call: room_agents.calls.re_offers decides who offers)."""
    if is_publication(peer_id):
        return "publish"
    if sfu_publisher(peer_id) is not None:
        return "subscribe"
    return "re-offer"


def retire_mesh_call(
    *,
    mesh_connected: bool,
    subscription_connected: bool,
    subscription_decoded: bool,
    peer_served: bool,
    kept_for: float,
    bound: float = MESH_KEEP,
) -> str | None:
    """Why a mesh call kept across a move to an SFU closes now (for the log), or None
    while it stays: it closes once the member's subscription is connected and the
    screen decoded a camera frame from it (the screen shows the subscription from that
    frame on) and the member no longer needs our media on it (``peer_served``: it said
    its subscription of us delivers, or it cannot say), when the call itself is not
    connected (it shows nothing), or ``bound`` seconds after the move whatever comes."""
    if not mesh_connected:
        return "the call is not connected"
    if kept_for >= bound:
        return "the bound"
    if subscription_connected and subscription_decoded and peer_served:
        return "the subscription delivers and the member is served"
    return None
