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


UNSPECIFIED = frozenset({"0.0.0.0", "::"})
"""A related address or connection line of all zeros tells nothing: browsers write it
to hide the real one."""


def _unspecified_or_allowed(address: str, networks: Sequence[Network]) -> bool:
    return address in UNSPECIFIED or address_allowed(address, networks)


def candidate_addresses(candidate_line: str) -> list[str] | None:
    """Every address an ``a=candidate:`` line or a bare ``candidate:`` string carries:
    its connection address and, after ``raddr``, its related address. None when the
    line cannot be read exactly as a browser reads it.

    RFC 8839 §5.1: foundation SP component SP transport SP priority SP address SP
    port SP "typ" SP type *(SP name SP value). Browsers split on single spaces only,
    so a line with any other whitespace (a tab, a line break) or an empty field is
    unreadable here: another parser could find another address in it.
    """
    text = candidate_line.removesuffix("\n").removesuffix("\r")
    if text.startswith("a="):
        text = text[2:]
    if not text.startswith("candidate:"):
        return None
    fields = text.split(" ")
    if len(fields) < 8 or fields[6] != "typ" or any(not f or not f.isprintable() for f in fields):
        return None
    addresses = [fields[4]]
    extensions = fields[8:]
    for i in range(0, len(extensions) - 1, 2):
        if extensions[i] == "raddr":
            addresses.append(extensions[i + 1])
    return addresses


def candidate_address(candidate_line: str) -> str | None:
    """The connection address of a candidate line (``candidate_addresses``' first)."""
    addresses = candidate_addresses(candidate_line)
    return addresses[0] if addresses else None


def refused_candidate(candidate: str, networks: Sequence[Network]) -> str | None:
    """Why a trickled candidate may not be relayed: its connection address if it is
    outside ``networks``, its related address if it is neither inside nor unspecified,
    or the candidate itself (cut short) when it cannot be read; None when it may."""
    addresses = candidate_addresses(candidate)
    if addresses is None:
        return candidate[:60]
    connection, *related = addresses
    if not address_allowed(connection, networks):
        return connection
    return next((a for a in related if not _unspecified_or_allowed(a, networks)), None)


def sdp_candidate_addresses(sdp: str) -> list[str]:
    """The connection address of each readable candidate line of ``sdp``."""
    out = []
    for line in sdp.split("\n"):
        if line.startswith("a=candidate:"):
            addr = candidate_address(line)
            if addr is not None:
                out.append(addr)
    return out


def _connection_line_address(line: str) -> str | None:
    """The address of ``c=IN IP4 <address>[/ttl]`` or ``a=rtcp:<port> IN IP4 <address>``;
    "" when the line is not one of those."""
    if line.startswith("c="):
        parts = line[2:].split(" ")
    elif line.startswith("a=rtcp:"):
        parts = line[7:].split(" ")[1:]
        if not parts:
            return ""
    else:
        return ""
    if len(parts) != 3 or parts[0] != "IN" or parts[1] not in ("IP4", "IP6"):
        return None
    return parts[2].split("/", 1)[0]


MAX_SDP_CANDIDATES = 100
"""More candidate lines than a browser or an agent ever gathers (a few per network
interface and transport); an SDP with more is refused, whatever their addresses."""


def refused_in_sdp(sdp: str, networks: Sequence[Network]) -> str | None:
    """The first reason ``sdp`` may not be relayed, or None: an address of a candidate
    line (``refused_candidate``) or of a connection (``c=``) or ``a=rtcp`` line outside
    ``networks`` (those two may be unspecified), a line that cannot be read, or a
    candidate line beyond the ``MAX_SDP_CANDIDATES``-th. Lines are split as browsers
    split them, on line feeds (a carriage return before one is dropped). The first
    reason is enough to refuse: a refused SDP costs no more than that line."""
    candidates = 0
    for line in sdp.split("\n"):
        line = line.removesuffix("\r")
        if line.startswith("a=candidate:"):
            candidates += 1
            if candidates > MAX_SDP_CANDIDATES:
                return f"more than {MAX_SDP_CANDIDATES} candidates"
            refused = refused_candidate(line, networks)
        else:
            address = _connection_line_address(line)
            if address is None:
                refused = line[:60]
            elif address and not _unspecified_or_allowed(address, networks):
                refused = address
            else:
                refused = None
        if refused is not None:
            return refused
    return None


def keep_allowed_candidates(sdp: str, networks: Sequence[Network]) -> str:
    """``sdp`` without what the filter would refuse: candidate lines outside
    ``networks`` (or unreadable) are dropped, a connection line outside them reads
    ``0.0.0.0`` (unspecified), an ``a=rtcp`` line outside them is dropped. For SDPs
    the server itself relays from a trusted source (an SFU), which may know more
    addresses than the deployment allows."""
    out = []
    for raw in sdp.split("\n"):
        line = raw.removesuffix("\r")
        if line.startswith("a=candidate:"):
            if refused_candidate(line, networks) is not None:
                continue
        elif line.startswith("a=rtcp:") or line.startswith("c="):
            address = _connection_line_address(line)
            if address is None or (address and not _unspecified_or_allowed(address, networks)):
                if line.startswith("a=rtcp:"):
                    continue
                version = "IP6" if " IP6 " in line else "IP4"
                raw = f"c=IN {version} {'::' if version == 'IP6' else '0.0.0.0'}" + (
                    "\r" if raw.endswith("\r") else ""
                )
        out.append(raw)
    return "\n".join(out)
