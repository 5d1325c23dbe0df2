"""A network namespace joined to the host by a veth pair, for tests that cut a room's
network (needs root, ``ip`` and ``tc``; ``available()`` says why not).

The pair gets a private /30 (10.231.x.y) nobody else on the machine uses: the host
end is the first address, the namespace end the second. ``cut()`` drops every
packet in both directions and closes nothing, like a pulled cable somewhere along
the way: a queue of length zero (``tc qdisc ... pfifo limit 0``) on the egress of
both ends. There is no nftables or iptables on these machines, and taking a link
down is not the same thing (the kernel then answers the namespace's own sends with
"network unreachable" at once).
"""

from __future__ import annotations

import ipaddress
import os
import random
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

BLOCK = ipaddress.IPv4Network("10.231.0.0/16")


def _run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=20)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {proc.stderr.strip()}")
    return proc


def available() -> str | None:
    """None if this machine lets the test make namespaces; else why not."""
    for tool in ("ip", "tc"):
        if shutil.which(tool) is None:
            return f"{tool} (iproute2) is not installed"
    if os.geteuid() != 0:
        return "network namespaces need root"
    probe = f"tcprobe{os.getpid()}"
    made = _run("ip", "netns", "add", probe, check=False)
    if made.returncode != 0:
        return f"ip netns add is not permitted here: {made.stderr.strip()}"
    _run("ip", "netns", "del", probe, check=False)
    return None


def _free_subnet() -> ipaddress.IPv4Network:
    used = _run("ip", "-4", "-o", "addr", "show").stdout
    subnets = list(BLOCK.subnets(new_prefix=30))
    random.shuffle(subnets)
    for subnet in subnets:
        if not any(str(host) in used for host in subnet):
            return subnet
    raise RuntimeError(f"no free /30 left in {BLOCK}")


@dataclass(frozen=True, slots=True)
class Veth:
    ns: str
    host_if: str
    ns_if: str
    host_address: str
    ns_address: str

    @property
    def exec_prefix(self) -> list[str]:
        """Prefix a command with this to run it inside the namespace."""
        return ["ip", "netns", "exec", self.ns]

    @property
    def networks(self) -> str:
        """The candidate networks that allow exactly the two ends (comma-separated)."""
        return f"{self.host_address}/32,{self.ns_address}/32"

    def _ends(self) -> tuple[tuple[list[str], str], tuple[list[str], str]]:
        """(command prefix, interface) of the namespace's end and of the host's."""
        return (self.exec_prefix, self.ns_if), ([], self.host_if)

    def cut(self) -> None:
        for prefix, dev in self._ends():
            _run(*prefix, "tc", "qdisc", "add", "dev", dev, "root", "pfifo", "limit", "0")

    def restore(self) -> None:
        for prefix, dev in self._ends():
            _run(*prefix, "tc", "qdisc", "del", "dev", dev, "root")

    def dropped(self) -> int:
        """Packets the cut dropped so far, both ends together (0 when not cut)."""
        total = 0
        for prefix, dev in self._ends():
            out = _run(*prefix, "tc", "-s", "qdisc", "show", "dev", dev).stdout
            for part in out.split("dropped ")[1:]:
                total += int(part.split(",")[0])
        return total


@contextmanager
def veth_namespace(tag: str = "t") -> Iterator[Veth]:
    """A fresh namespace and veth pair, removed on the way out (even on failure).

    Stop the processes running inside before leaving, or the kernel keeps the
    namespace (and the pair) until they exit.
    """
    suffix = f"{tag}{random.randrange(16**5):05x}"
    subnet = _free_subnet()
    host, inside = (str(a) for a in subnet.hosts())
    veth = Veth(f"tc-{suffix}", f"tch{suffix}"[:15], f"tcn{suffix}"[:15], host, inside)
    try:
        _run("ip", "netns", "add", veth.ns)
        _run("ip", "link", "add", veth.host_if, "type", "veth", "peer", "name", veth.ns_if)
        _run("ip", "link", "set", veth.ns_if, "netns", veth.ns)
        _run("ip", "addr", "add", f"{host}/30", "dev", veth.host_if)
        _run("ip", "link", "set", veth.host_if, "up")
        _run(*veth.exec_prefix, "ip", "addr", "add", f"{inside}/30", "dev", veth.ns_if)
        _run(*veth.exec_prefix, "ip", "link", "set", veth.ns_if, "up")
        _run(*veth.exec_prefix, "ip", "link", "set", "lo", "up")
        yield veth
    finally:
        _run("ip", "netns", "del", veth.ns, check=False)
        _run("ip", "link", "del", veth.host_if, check=False)  # gone with the namespace, normally
