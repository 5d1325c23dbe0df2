"""Which addresses a peer may offer as ICE candidates, and the one aioice patch.

Rules (DESIGN "aiortc facts to design around"):

- The deployment allows candidate addresses by network (CIDR, from the welcome's
  ``candidate_filter``). Tests and the demo allow only loopback.
- aioice gathers host candidates from ``aioice.ice.get_host_addresses``, which
  leaves out 127.0.0.1 and offers every other address of the machine, with no
  option to change it. ``pin_host_addresses`` replaces that module-level function
  so gathering offers exactly the given addresses; this module is the only place
  that patches it (aioice's version range is pinned in pyproject.toml).
- An SDP's candidates are checked, or filtered, by the connection address of each
  ``a=candidate`` line; an address that is not an IP literal (an mDNS ``.local``
  name) is never allowed.
- aiortc adds a public Google STUN server when ``iceServers`` is None, so the
  configuration always carries a list, empty by default.
- aiortc 1.16 uses only the first STUN URL and the first TURN URL it can use, in list
  order. The agent chooses which by ordering each server's TURN URLs by its ICE policy
  (``order_turn_urls``): a room on ``all`` puts UDP first (the cheapest relay), a
  ``relay`` room (its network forbids direct UDP, or lets out only TCP 443) puts
  ``turns:`` first, then TURN over TCP, then UDP.
- The ``relay`` policy is aiortc's ``iceTransportPolicy`` (aioice's RELAY policy):
  only relay candidates are gathered (no host, no server-reflexive), so the SDP
  carries only the TURN server's relay addresses.
- A session's calls use only the TURN credential minted for that session and peer
  (``session_ice_servers``, common.turn's rule); the room's check credential, or
  another session's, is dropped.
"""

from __future__ import annotations

import inspect
import ipaddress
from collections.abc import Callable, Sequence
from typing import Final

import aioice.ice
import ifaddr
from aiortc import RTCConfiguration, RTCIceServer
from aiortc.rtcconfiguration import RTCIceTransportPolicy

from common import turn

# One copy of the filter rules, shared with the server that enforces them; re-exported.
from signalling.candidates import Network as Network
from signalling.candidates import address_allowed as address_allowed
from signalling.candidates import candidate_address as candidate_address
from signalling.candidates import parse_networks as parse_networks
from signalling.candidates import sdp_candidate_addresses as sdp_candidate_addresses
from signalling.protocol import ErrorCode, IcePolicy, IceServer

HostAddresses = Callable[[bool, bool], list[str]]

LOOPBACKS: Final = ("127.0.0.1", "::1")
# The module-level function of aioice.ice that gathering calls for host addresses.
_PATCHED: Final = "get_host_addresses"
# The signature aioice 0.10-0.13 calls during gathering; anything else means the
# patch no longer does what we think.
_EXPECTED_PARAMETERS: Final = ["use_ipv4", "use_ipv6"]


class CandidateNotAllowed(Exception):
    """An SDP offers candidates outside the allowed networks."""

    code: Final = ErrorCode.CANDIDATE_NOT_ALLOWED

    def __init__(self, addresses: list[str]) -> None:
        super().__init__(f"candidate addresses not allowed: {', '.join(addresses)}")
        self.addresses = addresses


# --- pure helpers ---------------------------------------------------------------------


def filter_sdp(sdp: str, networks: Sequence[Network]) -> tuple[str, list[str]]:
    """Drop candidate lines whose address is outside ``networks``; return the removed ones.

    Other lines, and the line endings, are kept as they are.
    """
    kept: list[str] = []
    removed: list[str] = []
    for line in sdp.splitlines(keepends=True):
        if line.startswith("a=candidate:"):
            addr = candidate_address(line)
            if addr is None or not address_allowed(addr, networks):
                removed.append(addr if addr is not None else line.strip())
                continue
        kept.append(line)
    return "".join(kept), removed


def check_sdp(sdp: str, networks: Sequence[Network]) -> None:
    """Raise CandidateNotAllowed when the SDP offers a candidate outside ``networks``."""
    _, removed = filter_sdp(sdp, networks)
    if removed:
        raise CandidateNotAllowed(removed)


def turn_url_rank(url: str, policy: IcePolicy) -> int:
    """Where a URL goes in a server's list: STUN and unknown schemes keep the front
    (aiortc skips them for TURN), then TURN transports by the policy's preference."""
    scheme, _, rest = url.partition(":")
    scheme = scheme.lower()
    if scheme not in ("turn", "turns"):
        return 0
    if scheme == "turns":
        kind = "tls"
    else:
        kind = "tcp" if "transport=tcp" in rest.lower() else "udp"
    order = ("tls", "tcp", "udp") if policy == "relay" else ("udp", "tcp", "tls")
    return 1 + order.index(kind)


def order_turn_urls(urls: Sequence[str], policy: IcePolicy) -> list[str]:
    """``urls`` with the TURN URL aiortc should use first (stable otherwise)."""
    return sorted(urls, key=lambda url: turn_url_rank(url, policy))


def effective_policy(local: str, server: str) -> IcePolicy:
    """``relay`` when the room's own configuration or the server's room setting asks
    for it (either knows the network forbids direct paths), else ``all``."""
    return "relay" if "relay" in (local, server) else "all"


def session_ice_servers(
    servers: Sequence[IceServer], session_id: str, peer_id: str, now: float
) -> tuple[list[IceServer], list[str]]:
    """The servers a call in ``session_id`` may use, and why the others were dropped.

    A server without a username (STUN) is kept; a TURN server is kept only when its
    username was minted for this session and peer and has not expired at ``now``
    (server clock). Reasons never carry the username or the credential."""
    kept: list[IceServer] = []
    dropped: list[str] = []
    for server in servers:
        if server.username is None:
            kept.append(server)
            continue
        why = turn.usable_for_session(server.username, session_id, peer_id, now)
        if why is None:
            kept.append(server)
        else:
            dropped.append(why)
    return kept, dropped


def rtc_configuration(
    ice_servers: Sequence[IceServer] = (), policy: IcePolicy = "all"
) -> RTCConfiguration:
    """aiortc configuration with exactly these ICE servers (never None: no Google STUN),
    each server's TURN URLs ordered for the policy, and the policy as aiortc's
    ``iceTransportPolicy``."""
    return RTCConfiguration(
        iceServers=[
            RTCIceServer(
                urls=order_turn_urls(s.urls, policy),
                username=s.username,
                credential=s.credential,
            )
            for s in ice_servers
        ],
        iceTransportPolicy=(
            RTCIceTransportPolicy.RELAY if policy == "relay" else RTCIceTransportPolicy.ALL
        ),
    )


# --- the machine's addresses and the aioice patch --------------------------------------


def local_addresses_in(networks: Sequence[Network]) -> list[str]:
    """This machine's addresses (as ifaddr, which aioice uses, lists them) in ``networks``.

    Link-local IPv6 addresses are left out, as aioice leaves them out; the loopback
    addresses are included whenever a network allows them.
    """
    found: list[str] = []
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            if isinstance(ip.ip, str):
                addr = ip.ip
            else:
                addr, _flowinfo, scope_id = ip.ip
                if scope_id != 0:
                    continue
            if addr not in found and address_allowed(addr, networks):
                found.append(addr)
    for addr in LOOPBACKS:
        if addr not in found and address_allowed(addr, networks):
            found.append(addr)
    return found


class _PinnedHostAddresses:
    """Stands in for aioice.ice.get_host_addresses; remembers what it replaced."""

    def __init__(self, original: HostAddresses, addresses: list[str]) -> None:
        self.original = original
        self.addresses = addresses

    def __call__(self, use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return [
            addr
            for addr in self.addresses
            if (use_ipv4 and ipaddress.ip_address(addr).version == 4)
            or (use_ipv6 and ipaddress.ip_address(addr).version == 6)
        ]


def _current_host_addresses() -> HostAddresses:
    current: HostAddresses | None = getattr(aioice.ice, _PATCHED, None)
    if current is None:
        raise RuntimeError("aioice.ice.get_host_addresses is gone: the candidate pin is broken")
    return current


def pin_host_addresses(addresses: list[str]) -> None:
    """Make aioice gather host candidates on exactly ``addresses`` (idempotent).

    Affects every connection that gathers afterwards, in the whole process.
    """
    # aioice looks the function up as a module global at each gathering, so replacing
    # the module attribute is enough; nobody imports it by name.
    for addr in addresses:
        ipaddress.ip_address(addr)  # fail here, not in the middle of gathering
    current = _current_host_addresses()
    if isinstance(current, _PinnedHostAddresses):
        current.addresses = list(addresses)
        return
    parameters = list(inspect.signature(current).parameters)
    if parameters != _EXPECTED_PARAMETERS:
        raise RuntimeError(
            f"aioice.ice.get_host_addresses takes {parameters}, not {_EXPECTED_PARAMETERS}: "
            "the candidate pin is broken"
        )
    setattr(aioice.ice, _PATCHED, _PinnedHostAddresses(current, list(addresses)))


def unpin_host_addresses() -> None:
    """Give aioice back its own address discovery (no-op when not pinned)."""
    current = _current_host_addresses()
    if isinstance(current, _PinnedHostAddresses):
        setattr(aioice.ice, _PATCHED, current.original)


def pinned_host_addresses() -> list[str] | None:
    """The pinned addresses, or None when aioice discovers them itself."""
    current = _current_host_addresses()
    return list(current.addresses) if isinstance(current, _PinnedHostAddresses) else None
