"""The network lab (tests/netlab/) does what later tests rely on: NATs that map like
the real ones, a firewall that lets out only TCP 443 to the TURN server, links shaped
per direction (rate, loss, delay), mappings that can be lost, a teardown that leaves
nothing, and no lab traffic on the host's interfaces.

Each property is checked against a WAN server the test runs itself (sockets made inside
the namespaces, served by the test's event loop), so what the server sees is what the
internet would see.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import math
import socket
import statistics
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from pathlib import Path
from subprocess import PIPE
from typing import cast

import pytest
from aiohttp import web

from tests.browser_support import CHROMIUM, CHROMIUM_ARGS, chromium_available
from tests.netlab import (
    CENTRES,
    Egress,
    Lab,
    Link,
    Namespace,
    Nat,
    SiteSpec,
    available,
    host_interface_bytes,
    lab_namespaces,
)
from tests.netlab.delay_control import REPO
from tests.netlab.nsops import PREFIX, run
from tests.netlab.plan import (
    RouterRules,
    free_block,
    netem_args,
    plan_addresses,
    router_ruleset,
    tbf_args,
)
from tests.requirements import missing

WAIT = 5.0  # bound on any wait for something that must happen


@contextmanager
def built(*sites: SiteSpec) -> Iterator[Lab]:
    reason = available()
    if reason is not None:
        missing(reason)
    with Lab.build(sites=sites or CENTRES) as lab:
        yield lab


class Echo(asyncio.DatagramProtocol):
    """A UDP server that answers each datagram with the address it came from."""

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.seen: list[tuple[str, int]] = []
        self.payloads: list[bytes] = []
        self.arrived = asyncio.Event()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # 3.11's selector transport is not a subclass of asyncio.DatagramTransport.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.seen.append(addr)
        self.payloads.append(data)
        self.arrived.set()
        assert self.transport is not None
        if not data.startswith(b"quiet"):
            self.transport.sendto(f"{addr[0]}:{addr[1]}".encode() + b"|" + data, addr)


@asynccontextmanager
async def echo_server(ns: Namespace, address: str, port: int = 3478) -> AsyncIterator[Echo]:
    sock = ns.socket(socket.SOCK_DGRAM, bind=(address, port))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    transport, echo = await asyncio.get_running_loop().create_datagram_endpoint(Echo, sock=sock)
    try:
        yield echo
    finally:
        transport.close()


async def ask(sock: socket.socket, to: tuple[str, int], payload: bytes = b"hi") -> tuple[str, int]:
    """Send to the echo server until it answers (bounded); the source address it saw."""
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(WAIT):
        while True:
            await loop.sock_sendto(sock, payload, to)
            try:
                async with asyncio.timeout(0.5):
                    data = await loop.sock_recv(sock, 2048)
            except TimeoutError:
                continue  # lost (a lossy link): ask again
            seen, _, echoed = data.partition(b"|")
            if echoed == payload:
                host, port = seen.decode().rsplit(":", 1)
                return host, int(port)


async def wait_for(condition: Callable[[], bool], what: str) -> None:
    """Poll ``condition`` (a kernel counter: nothing to wait on) for at most WAIT s."""
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, f"not within {WAIT} s: {what}"
        await asyncio.sleep(0.01)


def forward_drops(lab: Lab, site: str) -> int:
    """Packets the site's firewall dropped (the DROP rule's counter)."""
    out = lab.site(site).router.run("iptables", "-t", "filter", "-L", "FORWARD", "-v", "-x", "-n")
    return sum(int(line.split()[0]) for line in out.splitlines() if " DROP " in f" {line} ")


def forwarded_up(lab: Lab, site: str) -> int:
    """Packets the site's router forwarded from its LAN to the WAN."""
    out = lab.site(site).router.run("iptables", "-t", "mangle", "-L", "FORWARD", "-v", "-x", "-n")
    return sum(int(line.split()[0]) for line in out.splitlines() if "NETLAB-UP" in line)


async def dropped_by_firewall(lab: Lab, sending: Awaitable[object]) -> None:
    """Start ``sending`` from B's LAN and wait until B's firewall has dropped it."""
    before = forward_drops(lab, "b")
    task = asyncio.ensure_future(sending)
    try:
        await wait_for(lambda: forward_drops(lab, "b") > before, "B's firewall dropped it")
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task


# The pure parts: no root needed.


def test_router_ruleset_says_what_each_nat_and_firewall_does() -> None:
    home = router_ruleset(RouterRules(Nat.HOME, None))
    assert "-A POSTROUTING -o wan0 -j MASQUERADE\n" in home
    assert "random" not in home and "DROP" not in home and "NFQUEUE" not in home
    corporate = router_ruleset(
        RouterRules(Nat.SYMMETRIC, (("tcp", 443, "10.9.0.2"),), up_loss=0.2, down_queue=True)
    )
    assert "MASQUERADE --random-fully" in corporate
    assert "-p tcp -d 10.9.0.2/32 --dport 443 -m conntrack --ctstate NEW -j ACCEPT" in corporate
    assert corporate.index("--ctstate NEW") < corporate.index("-A FORWARD -i lan0 -j DROP")
    assert "-A NETLAB-UP -m statistic --mode random --probability 0.200000 -j DROP" in corporate
    assert "-A NETLAB-DOWN -j NFQUEUE --queue-num 2" in corporate
    assert "-A NETLAB-UP -j NFQUEUE" not in corporate


def test_address_plan_stays_off_the_host_and_inside_its_block() -> None:
    taken = [ipaddress.IPv4Network("10.40.0.0/16"), ipaddress.IPv4Network("10.0.0.0/12")]
    assert free_block(taken, [5, 40, 41]) == ipaddress.IPv4Network("10.41.0.0/16")
    with pytest.raises(RuntimeError):
        free_block([ipaddress.IPv4Network("10.0.0.0/8")], [41])
    plan = plan_addresses(ipaddress.IPv4Network("10.41.0.0/16"), ("service", "turn"))
    assert plan.wan_hosts == {"service": "10.41.0.1", "turn": "10.41.0.2"}
    site = plan.site(2)
    assert (site.public_address(), site.public_address(1)) == ("10.41.18.2", "10.41.18.3")
    assert (site.wan_gateway, site.lan_gateway, site.lan_host) == (
        "10.41.18.1",
        "10.41.130.1",
        "10.41.130.2",
    )
    assert tbf_args(Link(rate_kbit=100))[:5] == ["tbf", "rate", "100kbit", "burst", "3028"]
    assert tbf_args(Link(rate_kbit=3000, queue_ms=80))[4:] == ["3750", "latency", "80ms"]
    assert netem_args(Link(delay_ms=40, jitter_ms=5)) == ["netem", "delay", "40ms", "5ms"]
    with pytest.raises(ValueError):
        Link(delay_ms=5, jitter_ms=10)
    with pytest.raises(ValueError):
        SiteSpec("Bad name")


# The lab itself.


async def test_home_nat_hides_the_lan_and_maps_independently_of_the_destination(
    netlab: Lab,
) -> None:
    a = netlab.site("a")
    service, turn = netlab.wan_host("service"), netlab.wan_host("turn")
    async with echo_server(netlab.wan, service), echo_server(netlab.wan, turn, 3479) as other:
        sock = a.lan.socket(socket.SOCK_DGRAM)
        with sock:
            seen = await ask(sock, (service, 3478))
            assert seen[0] == a.public_address != a.lan_address
            # One LAN socket, one public port, whatever the destination.
            assert await ask(sock, (turn, 3479)) == seen
            assert other.seen == [seen]


async def test_symmetric_nat_maps_each_destination_to_its_own_port() -> None:
    with built(SiteSpec("s", nat=Nat.SYMMETRIC)) as lab:
        s = lab.site("s")
        service, turn = lab.wan_host("service"), lab.wan_host("turn")
        async with echo_server(lab.wan, service), echo_server(lab.wan, turn):
            differ = 0
            for _ in range(4):
                with s.lan.socket(socket.SOCK_DGRAM) as sock:
                    first = await ask(sock, (service, 3478))
                    second = await ask(sock, (turn, 3478))
                    assert first[0] == second[0] == s.public_address
                    assert await ask(sock, (service, 3478)) == first  # a mapping holds
                    differ += first[1] != second[1]
            # Random ports collide once in ~64k draws: 3 of 4 sockets is a safe margin.
            assert differ >= 3


async def test_corporate_firewall_lets_out_only_tcp_443_to_the_turn_server(netlab: Lab) -> None:
    b = netlab.site("b")
    turn, service = netlab.wan_host("turn"), netlab.wan_host("service")
    loop = asyncio.get_running_loop()
    peers: list[str] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peers.append(writer.get_extra_info("peername")[0])
        writer.close()

    listeners = [
        await asyncio.start_server(accept, sock=netlab.wan.socket(socket.SOCK_STREAM, (host, port)))
        for host, port in ((turn, 443), (turn, 80), (service, 443))
    ]
    try:
        with b.lan.socket(socket.SOCK_STREAM) as ok:
            async with asyncio.timeout(WAIT):
                await loop.sock_connect(ok, (turn, 443))
            await wait_for(lambda: peers == [b.public_address], "the TURN server saw B's NAT")
        for host, port in ((turn, 80), (service, 443)):
            with b.lan.socket(socket.SOCK_STREAM) as blocked:
                await dropped_by_firewall(netlab, loop.sock_connect(blocked, (host, port)))
        async with echo_server(netlab.wan, turn) as echo:
            with b.lan.socket(socket.SOCK_DGRAM) as udp:
                await dropped_by_firewall(netlab, loop.sock_sendto(udp, b"quiet", (turn, 3478)))
            assert echo.seen == []
        assert peers == [b.public_address]  # neither port 80 nor the service got a SYN
    finally:
        for listener in listeners:
            listener.close()


async def test_datagrams_to_an_unrouted_lan_address_vanish_without_an_error(
    netlab: Lab,
) -> None:
    """A TURN server relaying to a peer's host candidate (a site's LAN address) sends
    into the void as on the internet: no ENETUNREACH, which makes coturn close the whole
    allocation (tests/netlab/lab.py), and nothing reaches that LAN."""
    a = netlab.site("a")
    loop = asyncio.get_running_loop()
    void = netlab.wan.run("ip", "-s", "-j", "link", "show", "void0")
    sent_before = json.loads(void)[0]["stats64"]["tx"]["packets"]
    async with echo_server(a.lan, a.lan_address, 3479) as echo:
        with netlab.wan.socket(socket.SOCK_DGRAM, (netlab.wan_host("turn"), 0)) as relay:
            for _ in range(5):
                await loop.sock_sendto(relay, b"to a host candidate", (a.lan_address, 3479))

            def into_the_void() -> bool:
                out = netlab.wan.run("ip", "-s", "-j", "link", "show", "void0")
                return int(json.loads(out)[0]["stats64"]["tx"]["packets"]) >= sent_before + 5

            await wait_for(into_the_void, "the datagrams went into the void")
        assert echo.seen == []
    # Still no route out of the lab (test_lab_has_no_path_to_the_host... checks more).
    assert netlab.wan.run("ip", "route", "get", "192.0.2.1", check=False) == ""


async def _tcp_flow(sender: socket.socket, to: tuple[str, int], seconds: float) -> None:
    loop = asyncio.get_running_loop()
    await loop.sock_connect(sender, to)
    chunk = b"x" * 16384
    end = loop.time() + seconds
    while loop.time() < end:
        await loop.sock_sendall(sender, chunk)


async def test_tbf_limits_each_direction_to_its_rate(netlab: Lab) -> None:
    a = netlab.site("a")
    up_kbit, down_kbit, seconds = 4000, 2000, 2.5
    await asyncio.to_thread(a.shape, up=Link(rate_kbit=up_kbit), down=Link(rate_kbit=down_kbit))
    service = netlab.wan_host("service")
    arrivals: dict[str, list[tuple[float, int]]] = {"up": [], "down": []}
    loop = asyncio.get_running_loop()

    async def sink(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        total = 0
        while data := await reader.read(65536):
            total += len(data)
            arrivals["up"].append((loop.time(), total))
        writer.close()

    async def source(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        end = loop.time() + seconds
        while loop.time() < end:
            writer.write(b"y" * 16384)
            await writer.drain()
        writer.close()

    up_server = await asyncio.start_server(
        sink, sock=netlab.wan.socket(socket.SOCK_STREAM, (service, 5001))
    )
    down_server = await asyncio.start_server(
        source, sock=netlab.wan.socket(socket.SOCK_STREAM, (service, 5002))
    )
    try:
        with a.lan.socket(socket.SOCK_STREAM) as up, a.lan.socket(socket.SOCK_STREAM) as down:
            await loop.sock_connect(down, (service, 5002))

            async def read_down() -> None:
                total = 0
                while data := await loop.sock_recv(down, 65536):
                    total += len(data)
                    arrivals["down"].append((loop.time(), total))

            async with asyncio.timeout(seconds + WAIT):
                await asyncio.gather(_tcp_flow(up, (service, 5001), seconds), read_down())
    finally:
        up_server.close()
        down_server.close()
    for direction, kbit in (("up", up_kbit), ("down", down_kbit)):
        points = arrivals[direction]
        start = next(p for p in points if p[0] >= points[0][0] + 0.5)  # past the bucket
        stop = points[-1]
        rate = (stop[1] - start[1]) * 8 / 1000 / (stop[0] - start[0])
        assert rate <= kbit * 1.3, (direction, rate)
        assert rate >= kbit * 0.5, (direction, rate)  # shaped, not broken


async def test_a_link_narrows_and_widens_under_a_live_flow(netlab: Lab) -> None:
    """Shaping changes apply to flows already running (the adaptation tests narrow a
    link mid-call): a paced 2 Mbit/s UDP flow gets through whole, then at most the
    narrowed rate, then whole again once the link widens."""
    a = netlab.site("a")
    to = (netlab.wan_host("service"), 5004)
    loop = asyncio.get_running_loop()
    sink = netlab.wan.socket(socket.SOCK_DGRAM, bind=to)
    arrivals: list[float] = []
    size, pps = 1000, 250  # 2 Mbit/s

    async def receive() -> None:
        while True:
            await loop.sock_recv(sink, 2048)
            arrivals.append(loop.time())

    sent = 0
    counted = asyncio.Condition()

    async def send() -> None:
        nonlocal sent
        with a.lan.socket(socket.SOCK_DGRAM) as sock:
            start = loop.time()
            while True:
                await loop.sock_sendto(sock, b"f" * size, to)
                async with counted:
                    sent += 1
                    counted.notify_all()
                await asyncio.sleep(max(0.0, start + sent / pps - loop.time()))  # pacing

    async def one_second_of_flow() -> None:
        async with asyncio.timeout(WAIT), counted:
            target = sent + pps
            await counted.wait_for(lambda: sent >= target)

    def kbit(since: float, until: float) -> float:
        count = sum(1 for t in arrivals if since <= t < until)
        return count * size * 8 / 1000 / (until - since)

    tasks = [asyncio.ensure_future(receive()), asyncio.ensure_future(send())]
    try:
        marks = [loop.time()]
        await one_second_of_flow()
        await asyncio.to_thread(a.shape, up=Link(rate_kbit=500))
        marks.append(loop.time())
        await one_second_of_flow()
        drops = await asyncio.to_thread(a.shaper_drops, "up")
        await asyncio.to_thread(a.shape, up=Link())
        marks.append(loop.time())
        await one_second_of_flow()
        marks.append(loop.time())
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        sink.close()
    whole, narrowed, widened = (
        kbit(marks[0] + 0.2, marks[1]),
        kbit(marks[1] + 0.3, marks[2]),  # past the queue's 50 ms and the bucket
        kbit(marks[2] + 0.2, marks[3]),
    )
    assert whole >= 2000 * 0.8, whole
    assert 500 * 0.6 <= narrowed <= 500 * 1.3, narrowed
    assert drops >= pps * 0.5, drops  # about 3 in 4 datagrams of that second
    assert widened >= 2000 * 0.8, widened


async def test_loss_drops_about_its_share_of_datagrams(netlab: Lab) -> None:
    a = netlab.site("a")
    service = netlab.wan_host("service")
    count, p = 500, 0.2
    await asyncio.to_thread(a.shape, up=Link(loss=p))
    loop = asyncio.get_running_loop()
    async with echo_server(netlab.wan, service) as echo:
        with a.lan.socket(socket.SOCK_DGRAM) as sock:
            for i in range(count):
                await loop.sock_sendto(sock, b"quiet%d" % i, (service, 3478))
            # The link keeps its order: once a marker is answered, every datagram sent
            # before it has arrived or was dropped. Markers cross the same loss (the
            # answers come back on a lossless downlink), so they are counted too.
            markers = 0
            async with asyncio.timeout(WAIT):
                while b"marker" not in echo.payloads:
                    markers += 1
                    await loop.sock_sendto(sock, b"marker", (service, 3478))
                    with suppress(TimeoutError):
                        async with asyncio.timeout(0.2):
                            await loop.sock_recv(sock, 2048)
            lost = await asyncio.to_thread(a.lost, "up")
        received = sum(1 for data in echo.payloads if data.startswith(b"quiet"))
    # The loss rule, and nothing else on the way, dropped what did not arrive.
    assert received + lost == count + markers - 1, (received, lost, markers)
    expected, sd = count * (1 - p), math.sqrt(count * p * (1 - p))
    assert abs(received - expected) <= 6 * sd, received  # 6 sigma: never flaky


async def _rtts(sock: socket.socket, to: tuple[str, int], n: int) -> list[float]:
    rtts = []
    for i in range(n):
        start = time.monotonic()
        await ask(sock, to, b"ping%d" % i)
        rtts.append((time.monotonic() - start) * 1000)
    return rtts


async def test_delay_adds_to_the_round_trip_with_its_jitter(netlab: Lab) -> None:
    a = netlab.site("a")
    to = (netlab.wan_host("service"), 3478)
    async with echo_server(netlab.wan, to[0]):
        with a.lan.socket(socket.SOCK_DGRAM) as sock:
            base = statistics.median(await _rtts(sock, to, 10))
            await asyncio.to_thread(
                a.shape, up=Link(delay_ms=30), down=Link(delay_ms=20, jitter_ms=5)
            )
            rtts = await _rtts(sock, to, 30)
    assert base < 5, base
    # 30 + 20 - 5, less the forwarder's half millisecond of early release per way.
    assert min(rtts) >= 44, rtts
    assert 50 - 5 <= statistics.median(rtts) - base <= 50 + 10, rtts
    assert max(rtts) - min(rtts) >= 2, rtts  # the jitter shows
    if netlab.delay_backend == "forwarder":
        delayer = a._delayer
        assert delayer is not None and min(delayer.packets().values()) >= 30


async def test_losing_mappings_moves_the_flows_public_side() -> None:
    with built(SiteSpec("h"), SiteSpec("s", nat=Nat.SYMMETRIC)) as lab:
        h, s = lab.site("h"), lab.site("s")
        to = (lab.wan_host("turn"), 3478)
        async with echo_server(lab.wan, to[0]):
            with h.lan.socket(socket.SOCK_DGRAM) as sock:
                before = await ask(sock, to)
                assert await ask(sock, to) == before
                # Linux keeps a free source port: a flushed home NAT maps the flow
                # to the same public side again (a lost mapping that goes unnoticed).
                await asyncio.to_thread(h.flush_mappings)
                assert await ask(sock, to) == before
                # A new public address (an ISP's reconnection) moves it for good.
                new_address = await asyncio.to_thread(h.readdress)
                after = await ask(sock, to)
                assert after[0] == new_address == h.public_address != before[0]
            # The symmetric NAT draws a new random port for the same flow.
            changed = 0
            for _ in range(4):
                with s.lan.socket(socket.SOCK_DGRAM) as sock:
                    before = await ask(sock, to)
                    assert await ask(sock, to) == before  # the mapping holds until...
                    await asyncio.to_thread(s.flush_mappings)
                    changed += await ask(sock, to) != before
            assert changed >= 3  # random ports collide once in ~64k draws


def candidate_addresses(sdp: str) -> list[str]:
    return [line.split()[4] for line in sdp.splitlines() if line.startswith("a=candidate:")]


async def test_a_webrtc_call_crosses_a_home_nat_and_its_delay(netlab: Lab) -> None:
    """Two bare aiortc peers (tests/netlab/peer.py): the answerer on the WAN, the
    offerer behind A's NAT on a link of 20 ms each way. The call comes up with no ICE
    server, every candidate is a lab address, and its data channel's round trip is
    the link's."""
    a = netlab.site("a")
    await asyncio.to_thread(a.shape, up=Link(delay_ms=20), down=Link(delay_ms=20))
    pipes: dict[str, object] = {"stdin": PIPE, "stdout": PIPE, "cwd": str(REPO)}
    peer = (sys.executable, "-m", "tests.netlab.peer")
    answerer = await netlab.wan.spawn(*peer, "answer", **pipes)
    offerer = await a.lan.spawn(*peer, "offer", **pipes)
    assert answerer.stdin and answerer.stdout and offerer.stdin and offerer.stdout
    async with asyncio.timeout(30):
        offer = await offerer.stdout.readline()
        answerer.stdin.write(offer)
        await answerer.stdin.drain()
        answer = await answerer.stdout.readline()
        offerer.stdin.write(answer)
        await offerer.stdin.drain()
        result = json.loads(await offerer.stdout.readline())
        answerer.stdin.close()
        assert await offerer.wait() == 0
    block = ipaddress.IPv4Network(netlab.networks)
    for sdp in (json.loads(offer)["sdp"], json.loads(answer)["sdp"]):
        addresses = candidate_addresses(sdp)
        assert addresses and all(ipaddress.ip_address(x) in block for x in addresses), sdp
    assert a.lan_address in candidate_addresses(json.loads(offer)["sdp"])
    rtt = statistics.median(result["rtts_ms"])
    assert 40 - 1 <= rtt <= 40 + 20, result


async def test_a_browser_behind_the_guest_nat_loads_a_page_from_the_wan(
    netlab: Lab, tmp_path: Path
) -> None:
    """Chromium runs inside the guest's LAN through a wrapper (Playwright drives it over
    its pipes, which cross ``ip netns exec``) and reaches a server on the WAN, which
    sees the guest's NAT."""
    if not chromium_available():
        missing("Chromium is not installed (Debian package chromium)")
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        missing("the playwright Python package is not installed")
    guest = netlab.site("guest")
    seen: list[str | None] = []

    async def hello(request: web.Request) -> web.Response:
        seen.append(request.remote)
        return web.Response(text="<h1>the WAN</h1>", content_type="text/html")

    app = web.Application()
    app.router.add_get("/", hello)
    runner = web.AppRunner(app)
    await runner.setup()
    listening = netlab.wan.socket(socket.SOCK_STREAM, (netlab.wan_host("service"), 8080))
    listening.listen(16)
    await web.SockSite(runner, listening).start()
    chromium = guest.lan.wrapper(str(CHROMIUM), tmp_path)
    try:
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(
                executable_path=str(chromium), args=CHROMIUM_ARGS, headless=True
            )
            try:
                page = await browser.new_page()
                await page.goto(f"http://{netlab.wan_host('service')}:8080/", timeout=15_000)
                assert await page.inner_text("h1") == "the WAN"
            finally:
                await browser.close()
    finally:
        await runner.cleanup()
    assert seen == [guest.public_address]


async def test_teardown_removes_every_namespace_and_process(tmp_path: Path) -> None:
    reason = available()
    if reason is not None:
        missing(reason)
    # A crashed run's leftovers (its process is gone) are cleared by the next build.
    gone = await asyncio.create_subprocess_exec("true")
    await gone.wait()
    stale = f"{PREFIX}{gone.pid}-dead-wan"
    await asyncio.to_thread(run, "ip", "netns", "add", stale)
    lab = await asyncio.to_thread(Lab.build)
    assert stale not in lab_namespaces()
    names = lab.namespaces()
    assert len(names) == 7 and set(names) <= set(lab_namespaces())
    sleeper = await lab.site("a").lan.spawn("sleep", "600")
    await lab.aclose()
    assert sleeper.returncode is not None
    assert not set(names) & set(lab_namespaces())
    # What a tool starts through a wrapper is not the lab's, yet the teardown ends it.
    lab = await asyncio.to_thread(Lab.build)
    wrapped = lab.site("guest").lan.wrapper("sh", tmp_path)
    assert lab.site("guest").lan_address in run(str(wrapped), "-c", "ip -4 -o addr show")
    stray = await asyncio.create_subprocess_exec(
        str(wrapped), "-c", "echo inside; sleep 600", stdout=PIPE
    )
    assert stray.stdout is not None
    async with asyncio.timeout(WAIT):
        assert await stray.stdout.readline() == b"inside\n"  # it entered the namespace
    await lab.aclose()
    async with asyncio.timeout(WAIT):
        assert await stray.wait() != 0
    described = json.loads(json.dumps(lab.describe()))  # a benchmark's report of the lab
    assert described["sites"]["b"]["nat"] == "symmetric"
    assert described["sites"]["b"]["egress"] == [{"proto": "tcp", "port": 443, "to": "turn"}]
    # A build that fails half-way removes what it made.
    before = set(lab_namespaces())
    with pytest.raises(KeyError):
        Lab.build(sites=(SiteSpec("a"), SiteSpec("x", egress=(Egress("tcp", 443, "nope"),))))
    assert set(lab_namespaces()) == before


async def test_lab_has_no_path_to_the_host_and_its_traffic_stays_off_the_host(
    netlab: Lab,
) -> None:
    block = ipaddress.IPv4Network(netlab.networks)
    host_addresses = [
        ipaddress.IPv4Interface(word)
        for line in run("ip", "-4", "-o", "addr", "show").splitlines()
        for word in line.split()[3:4]
    ]
    for name in netlab.namespaces():
        out = Namespace(name, netlab.processes).run("ip", "-4", "-o", "addr", "show")
        for line in out.splitlines():
            address = ipaddress.IPv4Interface(line.split()[3])
            assert address.ip in block or address.ip.is_loopback, (name, line)
    for address in host_addresses:
        if not address.ip.is_loopback:
            # The internet core has no default route: nothing leaves the lab.
            got = netlab.wan.run("ip", "route", "get", str(address.ip), check=False)
            assert got == "", got
    # A burst through the lab moves the lab's counters, not the host's.
    a = netlab.site("a")
    burst = 40 << 20
    service = netlab.wan_host("service")
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    received = 0

    async def sink(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal received
        while data := await reader.read(1 << 20):
            received += len(data)
        writer.close()
        done.set()

    server = await asyncio.start_server(
        sink, sock=netlab.wan.socket(socket.SOCK_STREAM, (service, 5003))
    )
    lab_before = a.router.link_bytes("wan0")
    host_before = host_interface_bytes()
    try:
        with a.lan.socket(socket.SOCK_STREAM) as sock:
            await loop.sock_connect(sock, (service, 5003))
            chunk = b"z" * (1 << 20)
            for _ in range(burst >> 20):
                await loop.sock_sendall(sock, chunk)
        async with asyncio.timeout(WAIT * 2):
            await done.wait()
    finally:
        server.close()
    host_after = host_interface_bytes()
    lab_moved = a.router.link_bytes("wan0") - lab_before
    assert received == burst and lab_moved >= burst
    # Wire-sized packets, not 64 KiB aggregates: loss and delay act per packet.
    assert forwarded_up(netlab, "a") >= burst // 1514
    host_moved = sum(host_after.get(dev, 0) - n for dev, n in host_before.items())
    # The host's own background (this machine's network chatter during the burst) is
    # allowed; a tenth of the burst would mean lab traffic leaked.
    assert host_moved < burst // 10, (host_moved, host_before, host_after)
