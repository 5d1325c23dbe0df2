"""Which addresses a peer may offer as ICE candidates (the candidate address filter).

A deployment names the networks its rooms and browsers reach each other on; the
server refuses to relay an SDP or candidate that offers any other address, so a
misconfigured peer cannot leak its private addresses to the other sites (and the
test suite can prove that no SDP carries an address outside loopback).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(cidrs: Iterable[str]) -> list[Network]:
    """Parse CIDR strings (a bare address is a /32 or /128); raises ValueError."""
    return [ipaddress.ip_network(c.strip(), strict=False) for c in cidrs if c.strip()]


def address_allowed(address: str, networks: Sequence[Network]) -> bool:
    """An address is allowed when it is an IP inside one of the networks.

    Host names (mDNS ``.local`` names included) are never allowed: they hide the
    address, so the filter could not be enforced.
    """
    # IPv6 candidates may carry brackets or a zone ("fe80::1%eth0").
    try:
        ip = ipaddress.ip_address(address.strip().strip("[]").split("%", 1)[0])
    except ValueError:
        return False
    return any(ip.version == n.version and ip in n for n in networks)


def candidate_address(candidate_line: str) -> str | None:
    """The connection address of an ``a=candidate:`` line or a bare ``candidate:`` string.

    RFC 8839: foundation component transport priority address port "typ" type ...
    """
    text = candidate_line.strip()
    if text.startswith("a="):
        text = text[2:]
    if not text.startswith("candidate:"):
        return None
    parts = text.split()
    if len(parts) < 8:
        return None
    return parts[4]


def sdp_candidate_addresses(sdp: str) -> list[str]:
    out = []
    for line in sdp.splitlines():
        if line.startswith("a=candidate:"):
            addr = candidate_address(line)
            if addr is not None:
                out.append(addr)
    return out


def disallowed_addresses(sdp: str, networks: Sequence[Network]) -> list[str]:
    """Candidate addresses of ``sdp`` that fall outside ``networks``."""
    return [a for a in sdp_candidate_addresses(sdp) if not address_allowed(a, networks)]
