"""The lab itself: builds the namespaces, veths, NAT and shaping of a ``plan`` and tears
them down (see the package's docstring for how to use it)."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import random
import socket
import subprocess
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path
from types import TracebackType

from tests.netlab import nsops
from tests.netlab.delay_control import Delayer
from tests.netlab.plan import (
    CENTRES,
    DOWN_QUEUE,
    OPEN,
    UP_QUEUE,
    WAN_HOSTS,
    AddressPlan,
    Link,
    RouterRules,
    SitePlan,
    SiteSpec,
    free_block,
    netem_args,
    plan_addresses,
    router_ruleset,
    tbf_args,
)

# tests/netns_support.py's pairs live in this block on the host: never pick it.
NETNS_SUPPORT_BLOCK = ipaddress.IPv4Network("10.231.0.0/16")


def host_networks() -> list[ipaddress.IPv4Network]:
    """Every IPv4 network the host has an address in or a route to."""
    taken = [NETNS_SUPPORT_BLOCK]
    for line in nsops.run("ip", "-4", "-o", "addr", "show").splitlines():
        fields = line.split()
        if "inet" in fields:
            taken.append(ipaddress.IPv4Interface(fields[fields.index("inet") + 1]).network)
    for line in nsops.run("ip", "-4", "route", "show", "table", "all").splitlines():
        dest = line.split()[0] if line.split() else ""
        if dest in ("broadcast", "local", "unreachable", "prohibit", "blackhole"):
            dest = line.split()[1]
        if dest == "default":
            continue
        try:
            taken.append(ipaddress.IPv4Network(dest, strict=False))
        except ValueError:
            continue
    return taken


def host_interface_bytes() -> dict[str, int]:
    """rx + tx bytes of each of the host's non-loopback interfaces (the test process
    runs in the host's namespace)."""
    counters = {}
    for dev in sorted(Path("/sys/class/net").iterdir()):
        if dev.name == "lo":
            continue
        stats = dev / "statistics"
        counters[dev.name] = int((stats / "rx_bytes").read_text()) + int(
            (stats / "tx_bytes").read_text()
        )
    return counters


class Namespace:
    """One namespace of the lab: run commands, start owned processes, make sockets."""

    def __init__(self, name: str, processes: nsops.Processes) -> None:
        self.name = name
        self._processes = processes

    def __repr__(self) -> str:
        return f"Namespace({self.name!r})"

    @property
    def exec_prefix(self) -> list[str]:
        """Prefix a command with this to run it inside the namespace."""
        return nsops.in_ns(self.name)

    def run(self, *argv: str, check: bool = True, stdin: str | None = None) -> str:
        return nsops.run(*nsops.in_ns(self.name, *argv), check=check, stdin=stdin)

    async def spawn(self, *argv: str, **kwargs: object) -> asyncio.subprocess.Process:
        """Start ``argv`` inside (asyncio); the lab kills its process group at teardown."""
        return await self._processes.spawn(self.name, *argv, **kwargs)

    def popen(self, *argv: str, **kwargs: object) -> subprocess.Popen[bytes]:
        """Start ``argv`` inside (blocking API, for benchmarks); killed at teardown."""
        return self._processes.popen(self.name, *argv, **kwargs)

    def socket(
        self, kind: socket.SocketKind = socket.SOCK_DGRAM, bind: tuple[str, int] | None = None
    ) -> socket.socket:
        """A non-blocking IPv4 socket of this namespace (usable from the test's loop)."""
        return nsops.socket_in_ns(self.name, kind, bind)

    def wrapper(self, program: str, directory: Path) -> Path:
        """An executable in ``directory`` that runs ``program`` inside this namespace
        with the arguments it is given: for tools that start a program themselves
        (Playwright's ``executable_path``, say). What it starts is not owned by the
        lab, but the teardown kills every process left in a lab namespace."""
        path = directory / f"{self.name}-{Path(program).name}"
        path.write_text(f'#!/bin/sh\nexec ip netns exec {self.name} {program} "$@"\n')
        path.chmod(0o755)
        return path

    def link_bytes(self, dev: str) -> int:
        """rx + tx bytes of interface ``dev`` inside this namespace."""
        out = nsops.run("ip", "-n", self.name, "-j", "-s", "link", "show", "dev", dev)
        stats = json.loads(out)[0]["stats64"]
        return int(stats["rx"]["bytes"]) + int(stats["tx"]["bytes"])


class Site:
    """A LAN namespace (``lan``, one host at ``lan_address``) behind a router namespace
    (``router``) doing NAT to ``public_address`` on the WAN."""

    def __init__(
        self, spec: SiteSpec, plan: SitePlan, router: Namespace, lan: Namespace, lab: Lab
    ) -> None:
        self.spec = spec
        self.plan = plan
        self.router = router
        self.lan = lan
        self._lab = lab
        self.up: Link = OPEN
        self.down: Link = OPEN
        self._generation = 0
        self._delayer: Delayer | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def lan_address(self) -> str:
        return self.plan.lan_host

    @property
    def public_address(self) -> str:
        return self.plan.public_address(self._generation)

    def _rules(self) -> RouterRules:
        allowed = None
        if self.spec.egress is not None:
            allowed = tuple(
                (rule.proto, rule.port, self._lab.wan_host(rule.to)) for rule in self.spec.egress
            )
        forwarder = self._lab.delay_backend == "forwarder"
        return RouterRules(
            nat=self.spec.nat,
            allowed=allowed,
            up_loss=self.up.loss,
            down_loss=self.down.loss,
            up_queue=forwarder and self.up.delayed,
            down_queue=forwarder and self.down.delayed,
        )

    def shape(self, up: Link | None = None, down: Link | None = None) -> None:
        """Shape the uplink (LAN -> WAN) and/or downlink (WAN -> LAN) from now on; a
        direction left None keeps its shape. Blocking (a few ``tc``/``iptables`` runs):
        from a coroutine, ``await asyncio.to_thread(site.shape, ...)``."""
        new_up = self.up if up is None else up
        new_down = self.down if down is None else down
        if self._lab.delay_backend == "forwarder" and (new_up.delayed or new_down.delayed):
            if self._delayer is None:
                self._delayer = Delayer.start(self.router)
            # The forwarder takes the new delays before the rules send it packets.
            self._delayer.set(UP_QUEUE, new_up.delay_ms, new_up.jitter_ms)
            self._delayer.set(DOWN_QUEUE, new_down.delay_ms, new_down.jitter_ms)
        changed = [
            (dev, new)
            for dev, old, new in (("wan0", self.up, new_up), ("lan0", self.down, new_down))
            if new != old
        ]
        self.up, self.down = new_up, new_down
        self.router.run("iptables-restore", stdin=router_ruleset(self._rules()))
        # A direction that keeps its shape keeps its qdisc (its queue and counters).
        for dev, link in changed:
            self._qdisc(dev, link)

    def _qdisc(self, dev: str, link: Link) -> None:
        """tbf for the rate, and netem under it for delay where the kernel has netem."""
        tc = ["tc", "-n", self.router.name, "qdisc"]
        netem = self._lab.delay_backend == "netem" and link.delayed
        if link.rate_kbit is None and not netem:
            nsops.run(*tc, "del", "dev", dev, "root", check=False)
        elif not netem:
            nsops.run(*tc, "replace", "dev", dev, "root", "handle", "1:", *tbf_args(link))
        else:
            nsops.run(*tc, "del", "dev", dev, "root", check=False)
            if link.rate_kbit is None:
                nsops.run(*tc, "add", "dev", dev, "root", "handle", "1:", *netem_args(link))
            else:
                nsops.run(*tc, "add", "dev", dev, "root", "handle", "1:", *tbf_args(link))
                nsops.run(*tc, "add", "dev", dev, "parent", "1:1", *netem_args(link))

    def lost(self, direction: str) -> int:
        """Packets the loss rule of ``direction`` ("up" or "down") dropped so far (the
        counter restarts when ``shape`` rewrites the rules)."""
        chain = {"up": "NETLAB-UP", "down": "NETLAB-DOWN"}[direction]
        out = self.router.run("iptables", "-t", "mangle", "-L", chain, "-v", "-x", "-n")
        return sum(
            int(line.split()[0])
            for line in out.splitlines()
            if "statistic" in line and " DROP " in f" {line} "
        )

    def shaper_drops(self, direction: str) -> int:
        """Packets the rate shaper of ``direction`` dropped (its queue was full) since its
        qdisc was made (0 when the direction has no rate)."""
        dev = {"up": "wan0", "down": "lan0"}[direction]
        out = nsops.run("tc", "-n", self.router.name, "-j", "-s", "qdisc", "show", "dev", dev)
        return sum(int(q.get("drops", 0)) for q in json.loads(out) if q.get("kind") == "tbf")

    def flush_mappings(self) -> None:
        """The NAT forgets every mapping (and the firewall every flow): ``conntrack -F``.

        A home NAT (Linux keeps free source ports) then maps a flow to the same public
        port again when it resumes; a symmetric one draws new random ports. Use
        ``readdress`` for a public address that changes too."""
        self.router.run("conntrack", "-F", check=False)

    def readdress(self) -> str:
        """The ISP hands the router a new public address: every mapping is lost and
        flows resume from the new address. Returns it."""
        old = self.public_address
        self._generation += 1
        new = self.public_address
        ip = ["ip", "-n", self.router.name, "addr"]
        nsops.run(*ip, "add", f"{new}/24", "dev", "wan0")
        nsops.run(*ip, "del", f"{old}/24", "dev", "wan0")
        self.flush_mappings()
        return new

    def close(self) -> None:
        if self._delayer is not None:
            self._delayer.close()
            self._delayer = None


class Lab:
    """An internet of sites in network namespaces (see the package docstring)."""

    def __init__(self, plan: AddressPlan, tag: str, delay_backend: str) -> None:
        self.plan = plan
        self.tag = tag
        self.delay_backend = delay_backend
        self.processes = nsops.Processes()
        self.wan = Namespace(f"{tag}-wan", self.processes)
        self.sites: dict[str, Site] = {}
        self._namespaces: list[str] = []

    @property
    def networks(self) -> str:
        """The lab's whole address block (every lab address is inside it)."""
        return str(self.plan.block)

    def wan_host(self, name: str) -> str:
        """The WAN address of host ``name`` (on the WAN namespace's loopback)."""
        return self.plan.wan_hosts[name]

    def site(self, name: str) -> Site:
        return self.sites[name]

    def describe(self) -> dict[str, object]:
        """The lab as it is now, JSON-ready (for a benchmark's output)."""
        return {
            "networks": self.networks,
            "delay_backend": self.delay_backend,
            "wan_hosts": dict(self.plan.wan_hosts),
            "sites": {
                name: {
                    "nat": site.spec.nat.value,
                    "egress": None
                    if site.spec.egress is None
                    else [asdict(rule) for rule in site.spec.egress],
                    "public_address": site.public_address,
                    "lan_address": site.lan_address,
                    "up": asdict(site.up),
                    "down": asdict(site.down),
                }
                for name, site in self.sites.items()
            },
        }

    def namespaces(self) -> list[str]:
        return list(self._namespaces)

    @classmethod
    def build(
        cls,
        sites: Iterable[SiteSpec] = CENTRES,
        wan_hosts: tuple[str, ...] = WAN_HOSTS,
        delay_backend: str = "auto",
    ) -> Lab:
        """Build the lab (about a tenth of a second per site); ``close`` removes it.

        ``delay_backend``: "netem" (the kernel's), "forwarder" (the lab's NFQUEUE
        forwarder, tests/netlab/delay.py) or "auto" (netem when the kernel has it).
        """
        specs = list(sites)
        if len({spec.name for spec in specs}) != len(specs):
            raise ValueError("site names must be distinct")
        nsops.clean_leftovers()
        candidates = list(range(32, 224))
        random.shuffle(candidates)
        plan = plan_addresses(free_block(host_networks(), candidates), wan_hosts)
        tag = f"{nsops.PREFIX}{os.getpid()}-{random.randrange(16**4):04x}"
        lab = cls(plan, tag, delay_backend)
        try:
            lab._build_wan()
            if delay_backend == "auto":
                lab.delay_backend = "netem" if nsops.netem_available(lab.wan.name) else "forwarder"
            elif delay_backend not in ("netem", "forwarder"):
                raise ValueError(f"delay_backend: auto, netem or forwarder: {delay_backend}")
            for index, spec in enumerate(specs):
                lab._build_site(index, spec)
        except BaseException:
            lab.close()
            raise
        return lab

    def _add_ns(self, name: str) -> None:
        nsops.run("ip", "netns", "add", name)
        self._namespaces.append(name)

    def _build_wan(self) -> None:
        self._add_ns(self.wan.name)
        # The hosts' addresses sit on the WAN's loopback (these kernels have no dummy
        # interfaces): the sites route to them through their uplinks.
        # Packets for a lab address nobody routes (a site's LAN address, which peers
        # offer as host candidates) vanish as on the internet instead of failing the
        # sender with ENETUNREACH: coturn closes an allocation whose relay hits such an
        # error, so a relayed call died as soon as it checked the other side's host
        # candidate. They go into a veth whose far end (in the WAN too) drops them
        # (a permanent neighbour whose MAC nobody has): still no route to the host.
        void_hop = str(self.plan.block.broadcast_address - 1)
        script = [
            "sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.disable_ipv6=1",
            "ip link set lo up",
            *(f"ip addr add {addr}/32 dev lo" for addr in self.plan.wan_hosts.values()),
            "ip link add void0 type veth peer name void1",
            "ip link set void0 up",
            "ip link set void1 up",
            f"ip route add {self.plan.block} via {void_hop} dev void0 onlink",
            f"ip neigh add {void_hop} lladdr 02:00:00:00:00:01 dev void0 nud permanent",
        ]
        self.wan.run("sh", "-ec", "\n".join(script))

    def _build_site(self, index: int, spec: SiteSpec) -> None:
        site_plan = self.plan.site(index)
        router = Namespace(f"{self.tag}-{spec.name}-rt", self.processes)
        lan = Namespace(f"{self.tag}-{spec.name}-lan", self.processes)
        self._add_ns(router.name)
        self._add_ns(lan.name)
        wan_if = f"to-{spec.name}"
        # Both ends of each pair are made inside namespaces: nothing touches the host's.
        nsops.run(
            "ip", "link", "add", "wan0", "netns", router.name,
            "type", "veth", "peer", "name", wan_if, "netns", self.wan.name,
        )  # fmt: skip
        nsops.run(
            "ip", "link", "add", "lan0", "netns", router.name,
            "type", "veth", "peer", "name", "eth0", "netns", lan.name,
        )  # fmt: skip
        # gso_max_segs 1: senders hand the stack wire-sized packets, not 64 KiB TCP
        # aggregates, so that loss and delay apply per packet as on a real link.
        self.wan.run(
            "sh",
            "-ec",
            f"ip addr add {site_plan.wan_gateway}/24 dev {wan_if}\n"
            f"ip link set {wan_if} gso_max_segs 1 up",
        )
        router.run(
            "sh",
            "-ec",
            "\n".join(
                [
                    "sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.disable_ipv6=1",
                    "sysctl -qw net.ipv4.conf.all.promote_secondaries=1",
                    "sysctl -qw net.ipv4.conf.default.promote_secondaries=1",
                    "ip link set lo up",
                    f"ip addr add {site_plan.public_address()}/24 dev wan0",
                    f"ip addr add {site_plan.lan_gateway}/24 dev lan0",
                    "ip link set wan0 gso_max_segs 1 up",
                    "ip link set lan0 gso_max_segs 1 up",
                    f"ip route add default via {site_plan.wan_gateway}",
                ]
            ),
        )
        lan.run(
            "sh",
            "-ec",
            "\n".join(
                [
                    "sysctl -qw net.ipv6.conf.all.disable_ipv6=1",
                    "ip link set lo up",
                    f"ip addr add {site_plan.lan_host}/24 dev eth0",
                    "ip link set eth0 gso_max_segs 1 up",
                    f"ip route add default via {site_plan.lan_gateway}",
                ]
            ),
        )
        site = Site(spec, site_plan, router, lan, self)
        self.sites[spec.name] = site
        site.shape(up=spec.up, down=spec.down)

    async def aclose(self) -> None:
        """Stop the processes started with ``spawn`` (awaited), then ``close``."""
        await self.processes.aclose()
        self.close()

    def close(self) -> None:
        """Remove everything the lab made: processes, namespaces (with their veths,
        addresses, qdiscs and iptables rules). Safe to call twice and after a failure."""
        for site in self.sites.values():
            site.close()
        self.processes.close()
        for name in reversed(self._namespaces):
            nsops.delete_ns(name)
        self._namespaces = []

    def __enter__(self) -> Lab:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> Lab:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
