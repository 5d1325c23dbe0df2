"""The lab's rules as pure functions: which addresses each site gets, the router's
iptables rule set, the tbf parameters of a shaped link. No IO here (tested directly
in tests/test_netlab.py without root).

Address plan, inside one private /16 the lab picks (``10.N.0.0/16``, N chosen so that
no host address or route falls inside it):

- ``10.N.0.0/24``: the WAN's hosts (the service, the TURN server...), on the WAN
  namespace's loopback: host i is ``10.N.0.(i+1)``.
- ``10.N.(16+k).0/24``: the uplink of site k, WAN end ``.1``, the router's public
  address ``.2`` (``.3``, ``.4``... after each re-addressing: an ISP handing out
  another address).
- ``10.N.(128+k).0/24``: the LAN of site k, the router ``.1``, the LAN host ``.2``.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from enum import Enum

MAX_SITES = 16
MAX_WAN_HOSTS = 64
NAME = re.compile(r"^[a-z][a-z0-9]{0,9}$")
# The delaying forwarder's NFQUEUE numbers (one queue per direction of a router).
UP_QUEUE, DOWN_QUEUE = 1, 2
MTU_BYTES = 1514


class Nat(Enum):
    """How a router maps its LAN's flows to its public address."""

    HOME = "home"
    """Linux MASQUERADE: keeps the source port when it is free, so one LAN socket has one
    public port whatever the destination (endpoint-independent mapping)."""
    SYMMETRIC = "symmetric"
    """MASQUERADE --random-fully: a random public port per flow, so per destination."""


@dataclass(frozen=True, slots=True)
class Link:
    """One direction of a site's access link, shaped at its router.

    ``rate_kbit`` with tbf (None: unlimited), ``loss`` (0..1) with iptables' statistic
    match, ``delay_ms`` and ``jitter_ms`` (uniform in +- jitter) with netem where the
    kernel has it, else with the lab's delaying forwarder. ``queue_ms`` is how long a
    packet may wait in the tbf queue before it is dropped (a router's buffer).
    """

    rate_kbit: int | None = None
    loss: float = 0.0
    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    queue_ms: int = 50

    def __post_init__(self) -> None:
        if self.rate_kbit is not None and self.rate_kbit <= 0:
            raise ValueError(f"rate_kbit must be positive: {self.rate_kbit}")
        if not 0.0 <= self.loss < 1.0:
            raise ValueError(f"loss must be in [0, 1): {self.loss}")
        if self.delay_ms < 0 or self.jitter_ms < 0 or self.jitter_ms > self.delay_ms:
            raise ValueError(f"need 0 <= jitter_ms <= delay_ms: {self.delay_ms}, {self.jitter_ms}")
        if self.queue_ms <= 0:
            raise ValueError(f"queue_ms must be positive: {self.queue_ms}")

    @property
    def delayed(self) -> bool:
        return self.delay_ms > 0


OPEN = Link()


@dataclass(frozen=True, slots=True)
class Egress:
    """A firewall opening: LAN hosts may start flows of ``proto`` to WAN host ``to``'s
    port ``port``. Replies to those flows come back (conntrack ESTABLISHED)."""

    proto: str
    port: int
    to: str

    def __post_init__(self) -> None:
        if self.proto not in ("tcp", "udp"):
            raise ValueError(f"proto must be tcp or udp: {self.proto}")
        if not 0 < self.port < 65536:
            raise ValueError(f"port out of range: {self.port}")


@dataclass(frozen=True, slots=True)
class SiteSpec:
    """A site: a LAN namespace behind a router namespace doing NAT.

    ``egress`` None lets every flow out; a tuple lets out only those (a corporate
    firewall), dropping the rest silently.
    """

    name: str
    nat: Nat = Nat.HOME
    egress: tuple[Egress, ...] | None = None
    up: Link = OPEN
    down: Link = OPEN

    def __post_init__(self) -> None:
        if not NAME.match(self.name):
            raise ValueError(
                f"site names are 1-10 of [a-z0-9], starting with a letter: {self.name!r}"
            )


WAN_HOSTS = ("service", "turn")
CENTRES = (
    SiteSpec("a"),
    SiteSpec("b", nat=Nat.SYMMETRIC, egress=(Egress("tcp", 443, "turn"),)),
    SiteSpec("guest"),
)
"""The issue's lab: centre A behind a home NAT, centre B behind a symmetric NAT whose
firewall lets out only TCP 443 to the TURN server, a browser guest behind a third NAT."""

DEPLOYMENT_CENTRES = (
    CENTRES[0],
    SiteSpec(
        "b",
        nat=Nat.SYMMETRIC,
        egress=(Egress("tcp", 443, "turn"), Egress("tcp", 443, "service")),
    ),
    CENTRES[2],
)
"""``CENTRES`` for a deployment of the product (tests/netlab/deployment.py): B's
firewall also lets out HTTPS to the service (on 443), which its room agent needs to
sign in at all; still no UDP and nothing else."""


@dataclass(frozen=True, slots=True)
class SitePlan:
    index: int
    uplink: ipaddress.IPv4Network
    lan: ipaddress.IPv4Network

    @property
    def wan_gateway(self) -> str:
        return str(self.uplink.network_address + 1)

    def public_address(self, generation: int = 0) -> str:
        """The router's public address after ``generation`` re-addressings."""
        if not 0 <= generation < 250:
            raise ValueError(f"re-addressed too often: {generation}")
        return str(self.uplink.network_address + 2 + generation)

    @property
    def lan_gateway(self) -> str:
        return str(self.lan.network_address + 1)

    @property
    def lan_host(self) -> str:
        return str(self.lan.network_address + 2)


@dataclass(frozen=True, slots=True)
class AddressPlan:
    block: ipaddress.IPv4Network
    wan_hosts: dict[str, str] = field(default_factory=dict)

    @property
    def wan_hosts_net(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network((int(self.block.network_address), 24))

    def site(self, index: int) -> SitePlan:
        if not 0 <= index < MAX_SITES:
            raise ValueError(f"at most {MAX_SITES} sites")
        base = int(self.block.network_address)
        return SitePlan(
            index,
            ipaddress.IPv4Network((base + ((16 + index) << 8), 24)),
            ipaddress.IPv4Network((base + ((128 + index) << 8), 24)),
        )


def plan_addresses(block: ipaddress.IPv4Network, wan_hosts: tuple[str, ...]) -> AddressPlan:
    if block.prefixlen != 16:
        raise ValueError(f"the lab needs a /16: {block}")
    if len(set(wan_hosts)) != len(wan_hosts) or not 0 < len(wan_hosts) <= MAX_WAN_HOSTS:
        raise ValueError(f"1-{MAX_WAN_HOSTS} distinct WAN host names: {wan_hosts}")
    base = block.network_address
    return AddressPlan(block, {name: str(base + 1 + i) for i, name in enumerate(wan_hosts)})


def free_block(taken: list[ipaddress.IPv4Network], candidates: list[int]) -> ipaddress.IPv4Network:
    """The first ``10.N.0.0/16`` (N from ``candidates``) that overlaps none of ``taken``
    (the host's addresses and routes)."""
    for n in candidates:
        block = ipaddress.IPv4Network(f"10.{n}.0.0/16")
        if not any(block.overlaps(net) for net in taken):
            return block
    raise RuntimeError("no free 10.N.0.0/16 for the lab: every candidate overlaps the host")


def tbf_args(link: Link) -> list[str]:
    """``tc qdisc ... tbf`` arguments for ``link``'s rate (needs ``rate_kbit``).

    The bucket holds 10 ms of the rate but at least two full frames (a smaller bucket
    cannot pass a full-size packet at all), so the rate holds over any window longer
    than a few tens of milliseconds.
    """
    if link.rate_kbit is None:
        raise ValueError("no rate to shape")
    burst = max(2 * MTU_BYTES, link.rate_kbit * 1000 // 8 // 100)
    return [
        "tbf",
        "rate",
        f"{link.rate_kbit}kbit",
        "burst",
        str(burst),
        "latency",
        f"{link.queue_ms}ms",
    ]


def netem_args(link: Link) -> list[str]:
    """``tc qdisc ... netem`` arguments for ``link``'s delay and jitter."""
    args = ["netem", "delay", f"{link.delay_ms:g}ms"]
    if link.jitter_ms:
        args.append(f"{link.jitter_ms:g}ms")
    return args


@dataclass(frozen=True, slots=True)
class RouterRules:
    """What a router's iptables rule set says (see ``router_ruleset``)."""

    nat: Nat
    allowed: tuple[tuple[str, int, str], ...] | None  # (proto, port, address); None: all
    up_loss: float = 0.0
    down_loss: float = 0.0
    up_queue: bool = False  # send uplink packets through the delaying forwarder
    down_queue: bool = False


def router_ruleset(rules: RouterRules, wan_if: str = "wan0", lan_if: str = "lan0") -> str:
    """The router's rule set, as ``iptables-restore`` input (it replaces the three tables
    at once; established flows keep their conntrack entries and so their mappings).

    - nat: MASQUERADE out of the WAN interface, ``--random-fully`` for a symmetric NAT.
    - filter: with an egress list, LAN flows may start only towards the listed
      (proto, port, address); replies and related ICMP come back; the rest is dropped.
    - mangle: per direction, loss (statistic match) then the delaying forwarder's queue.
      The mangle table's FORWARD hook runs before the filter's, so dropped-by-loss
      packets never reach the firewall's counters.
    """
    masquerade = f"-A POSTROUTING -o {wan_if} -j MASQUERADE"
    if rules.nat is Nat.SYMMETRIC:
        masquerade += " --random-fully"
    lines = ["*nat", masquerade, "COMMIT", "*filter", ":FORWARD ACCEPT [0:0]"]
    if rules.allowed is not None:
        lines.append("-A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT")
        for proto, port, address in rules.allowed:
            lines.append(
                f"-A FORWARD -i {lan_if} -o {wan_if} -p {proto} -d {address}/32"
                f" --dport {port} -m conntrack --ctstate NEW -j ACCEPT"
            )
        lines.append(f"-A FORWARD -i {lan_if} -j DROP")
    lines += ["COMMIT", "*mangle", ":NETLAB-UP - [0:0]", ":NETLAB-DOWN - [0:0]"]
    lines.append(f"-A FORWARD -i {lan_if} -o {wan_if} -j NETLAB-UP")
    lines.append(f"-A FORWARD -i {wan_if} -o {lan_if} -j NETLAB-DOWN")
    for chain, loss, queued, queue in (
        ("NETLAB-UP", rules.up_loss, rules.up_queue, UP_QUEUE),
        ("NETLAB-DOWN", rules.down_loss, rules.down_queue, DOWN_QUEUE),
    ):
        if loss > 0:
            lines.append(f"-A {chain} -m statistic --mode random --probability {loss:.6f} -j DROP")
        if queued:
            lines.append(f"-A {chain} -j NFQUEUE --queue-num {queue}")
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"
