"""The network lab: an internet of sites inside network namespaces the test makes.

A WAN namespace (the internet core, where the service and the TURN server run, each
on an address of ``lab.wan_host(name)``, on its loopback) and per site a ROUTER namespace doing NAT in
front of a LAN namespace (where a room agent or a browser runs, at
``site.lan_address``). The default sites are the issue's centres (``plan.CENTRES``):

- ``a``: an ordinary home NAT (MASQUERADE: endpoint-independent mapping);
- ``b``: a symmetric NAT (MASQUERADE --random-fully) whose firewall lets out only
  TCP 443 to the WAN host ``turn``;
- ``guest``: a third home NAT.

Every address is inside one private /16 (``lab.networks``) picked so that it overlaps
none of the host's addresses or routes; every veth has both ends inside the lab, so no
namespace has a path to the host's interfaces. IPv4 only (IPv6 is disabled inside).

From a test (the ``netlab`` fixture, tests/conftest.py, builds ``CENTRES`` and removes
it afterwards, even when the test fails)::

    async def test_x(netlab: Lab) -> None:
        a = netlab.site("a")
        server = netlab.wan.socket(socket.SOCK_DGRAM, bind=(netlab.wan_host("service"), 3478))
        proc = await a.lan.spawn("python", "-m", "room_agents", ...)  # owned, killed at the end
        await asyncio.to_thread(a.shape, up=Link(rate_kbit=600, loss=0.01, delay_ms=40, jitter_ms=5))
        await asyncio.to_thread(a.readdress)  # the NAT loses its mappings, new public address

Sockets made by ``Namespace.socket`` live in that namespace for good and can be used
from the test's event loop. ``Namespace.wrapper(program, dir)`` writes an executable
that runs ``program`` inside, for tools that start a program themselves (Playwright's
``executable_path`` for a Chromium guest behind the ``guest`` NAT).
``site.lost(direction)`` and ``site.shaper_drops(direction)`` read the drop counters
of the loss rule and of the rate shaper; ``lab.describe()`` is the lab as JSON, for a
benchmark's report. tests/netlab/peer.py is a bare aiortc peer that the lab's own
test calls across a NAT (no project code: a floor for comparisons). Shaping is per direction at the router (``up``: LAN -> WAN,
``down``: WAN -> LAN): rate with tbf, loss with iptables' statistic match, delay and
jitter with netem where the kernel has it, else with the lab's NFQUEUE forwarder
(tests/netlab/delay.py; these machines' kernels have no netem).

From a benchmark (synchronous; ``Namespace.popen`` for processes)::

    with Lab.build(sites=(SiteSpec("a", up=Link(rate_kbit=3000)),)) as lab:
        proc = lab.site("a").lan.popen(sys.executable, "bench/...")

Needs root, iproute2, iptables and conntrack (scripts/services.sh installs them):
``available()`` says what is missing. A run's namespaces are named
``netlab-<pid>-<tag>-<role>``; building a lab first deletes those of runs whose
process is gone.
"""

from tests.netlab.lab import Lab, Namespace, Site, host_interface_bytes
from tests.netlab.nsops import available, lab_namespaces
from tests.netlab.plan import (
    CENTRES,
    DEPLOYMENT_CENTRES,
    OPEN,
    WAN_HOSTS,
    Egress,
    Link,
    Nat,
    SiteSpec,
)

__all__ = [
    "CENTRES",
    "DEPLOYMENT_CENTRES",
    "OPEN",
    "WAN_HOSTS",
    "Egress",
    "Lab",
    "Link",
    "Namespace",
    "Nat",
    "Site",
    "SiteSpec",
    "available",
    "host_interface_bytes",
    "lab_namespaces",
]
