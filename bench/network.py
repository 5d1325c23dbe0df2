"""bench/network: calls across the network lab (tests/netlab), raw aiortc peers
(bench/network_peer.py), one JSON document on stdout, progress on stderr. As root.

The lab: a WAN with coturn (``turn``: UDP/TCP 3478, TLS 443, its own test CA),
site ``a`` (home NAT) holding the sender, the receiver on the WAN (a host address,
so every mode crosses the same shaped link: a's, both ways), site ``guest`` (home
NAT) and site ``b`` (symmetric NAT, only TCP 443 to ``turn`` let out) as receivers
of a few extra calls. Every site's access link is shaped the same way in both
directions (default 3 Mbit/s, 1 % loss, 40 +- 5 ms delay with the lab's delay
backend).

``calls``: for each mode, direct (STUN from coturn, policy all) and
relayed through coturn over UDP, TCP and TLS (policy relay on both peers),
``--calls`` calls of ``--seconds`` each: offer -> first decoded frame, glass-to-glass
p50/p95 (capture stamp -> decoded), fps, freezes (over 1 s without a frame), the
nominated pair, and coturn's CPU per relayed stream (/proc/<pid>/stat over the
call), and each relayed mode against direct (``versus_direct``). Plus site a to
site guest (two home NATs: direct, TURN/UDP listed with policy all, relayed), centre
B (symmetric NAT, 443 only) receiving through TURN/TLS, and coturn's CPU for one
relayed 1280x720 stream.

``product`` (``bench/network product [--modes ...] [--product-calls 1]
[--product-seconds 15]``, and part of ``all``): the product's own call path
(bench/network_product.py: coturn, ``telecentre serve`` and two room agents, sender
behind a and receiver on the WAN, in an automatic session) per mode, join -> first
frame and glass-to-glass, and against the floor of the same run
(``product_versus_floor``, when ``calls`` ran too).

``narrow``: one call (640x360 at 30 fps), 30 s to climb, then the sender's uplink
narrowed from 3 Mbit/s to 600 kbit/s for 30 s and widened again (``--phases``); per
second: received bitrate, fps, longest gap, freezes, the sender's VP8 target bitrate and the last REMB it
received, and the receiver's NACKs, PLIs and jitter-buffer overflows; summarised as
``adapt_s``, ``recover_s``, ``stale_until_s`` and freezes. Once with raw aiortc peers
and once with the room agent's narrow-link patches installed in both (``--peers``;
``report["narrow"]["raw"|"product"]``). ``all`` (default): both.

    bench/network [calls|narrow|all] [--calls 3] [--seconds 10] [--no-delay]
                  [--peers raw,product] [--out F]

Goals in ../shared/PERFORMANCE.md; findings in docs/architecture.md ("Narrow links").
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import itertools
import json
import os
import queue
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from bench.measure import cpu_seconds, emit, ratio, summary
from bench.network_product import run_product, versus_floor
from common.turn import turn_password
from tests.netlab import Egress, Lab, Link, Nat, SiteSpec, available
from tests.netlab.turn import PORT as TURN_PORT
from tests.netlab.turn import TLS_PORT, coturn_files, popen_coturn

Json = dict[str, Any]
ROOT = Path(__file__).resolve().parent.parent
SECRET = "bench-network-secret"
MODES = ("direct", "relay_udp", "relay_tcp", "relay_tls")
FIRST_FRAME_TIMEOUT_S = 20.0
LINE_TIMEOUT_S = 30.0
FPS = 30
NARROW_KBIT = 600
WIDE_KBIT = 3000
RECOVERED_KBPS = 1500  # issue 12, acceptance 4: back above 1.5 Mbit/s within 20 s
PEER_LOG = Path(os.environ.get("BENCH_NETWORK_PEER_LOG", "/dev/null"))  # the peers' stderr
SUSTAIN_S = 3  # a level counts once held this many consecutive seconds


def log(message: str) -> None:
    print(f"[network {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- coturn inside the lab's WAN --------------------------------------------------------


@dataclass(frozen=True)
class Turn:
    address: str
    pid: int
    ca_file: Path

    def servers(self, mode: str) -> list[Json]:
        """The ICE server list of a mode (one server: aiortc uses only the first)."""
        if mode == "direct":
            return [{"urls": [f"stun:{self.address}:{TURN_PORT}"]}]
        username = f"{int(time.time()) + 3600}:bench"
        password = turn_password(SECRET, username)
        url = {
            "any_via_udp": f"turn:{self.address}:{TURN_PORT}?transport=udp",
            "relay_udp": f"turn:{self.address}:{TURN_PORT}?transport=udp",
            "relay_tcp": f"turn:{self.address}:{TURN_PORT}?transport=tcp",
            "relay_tls": f"turns:{self.address}:{TLS_PORT}?transport=tcp",
        }[mode]
        return [{"urls": [url], "username": username, "credential": password}]


@contextlib.contextmanager
def lab_coturn(lab: Lab, directory: Path) -> Iterator[Turn]:
    """coturn as every lab test starts it (tests/netlab/turn.py), TLS on, not verbose
    (its CPU is measured)."""
    files = coturn_files(
        directory, lab.wan_host("turn"), secret=SECRET, tls=True, verbose=False,
        common_name="bench network TURN",
    )  # fmt: skip
    assert files.ca_file is not None
    proc = popen_coturn(lab, files)
    try:
        yield Turn(files.address, proc.pid, files.ca_file)
    finally:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5)


# --- the peers --------------------------------------------------------------------------


class Peer:
    """A bench/network_peer process inside a namespace; its JSON lines on a queue."""

    def __init__(
        self, lab: Lab, site: str, role: str, config: Json, env: dict[str, str], log: Path
    ) -> None:
        with log.open("ab") as errors:
            self.proc = self._start(lab, site, role, config, env, errors)
        self.lines: queue.Queue[Json | None] = queue.Queue()
        self.ticks: list[Json] = []
        self.events: Json = {}
        assert self.proc.stdout is not None
        threading.Thread(target=self._read, args=(self.proc.stdout,), daemon=True).start()

    @staticmethod
    def _start(
        lab: Lab, site: str, role: str, config: Json, env: dict[str, str], errors: IO[bytes]
    ) -> subprocess.Popen[bytes]:
        namespace = lab.wan if site == "wan" else lab.site(site).lan
        return namespace.popen(
            sys.executable,
            "-m",
            "bench.network_peer",
            role,
            json.dumps(config),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=errors,
            cwd=str(ROOT),
            env=env,
        )

    def _read(self, stream: IO[bytes]) -> None:
        for line in stream:
            value: Json = json.loads(line)
            if "tick" in value:
                self.ticks.append(value["tick"])
            else:
                self.events.update(value)
                self.lines.put(value)
        self.lines.put(None)

    def wait_for(self, key: str, timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        while key not in self.events:
            try:
                if self.lines.get(timeout=max(0.0, deadline - time.monotonic())) is None:
                    raise RuntimeError(f"peer exited before {key!r}")
            except queue.Empty:
                raise TimeoutError(f"no {key!r} within {timeout:g} s") from None
        return self.events[key]

    def send(self, value: Json | str) -> None:
        assert self.proc.stdin is not None
        text = value if isinstance(value, str) else json.dumps(value)
        self.proc.stdin.write(text.encode() + b"\n")
        self.proc.stdin.flush()

    def stop(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.send("stop")
            assert self.proc.stdin is not None
            self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


SDP_ADDRESS = re.compile(r"^a=candidate:\S+ \d+ \S+ \d+ (\S+) \d+", re.MULTILINE)


def foreign_addresses(sdp: str, networks: str) -> list[str]:
    """Candidate addresses of an SDP outside the lab (the bench refuses them)."""
    block = ipaddress.ip_network(networks)
    found = []
    for address in SDP_ADDRESS.findall(sdp):
        try:
            if ipaddress.ip_address(address) not in block:
                found.append(address)
        except ValueError:
            found.append(address)  # a hostname (mDNS) is not a lab address either
    return found


@contextlib.contextmanager
def call(
    lab: Lab,
    turn: Turn,
    mode: str,
    width: int,
    height: int,
    receiver_site: str = "wan",
    product: bool = False,
) -> Iterator[tuple[Peer, Peer, Json]]:
    """A call from site a to ``receiver_site``; yields the peers once the first frame
    is decoded, with the set-up figures. ``product``: both peers run with the room
    agent's narrow-link patches (bench/network_peer.py)."""
    config = {
        "ice_servers": turn.servers(mode),
        "policy": "all" if mode in ("direct", "any_via_udp") else "relay",
        "width": width,
        "height": height,
        "fps": FPS,
        "product": product,
    }
    env = dict(os.environ, SSL_CERT_FILE=str(turn.ca_file), PYTHONPATH=str(ROOT))
    sender = Peer(lab, "a", "send", config, env, PEER_LOG)
    receiver = Peer(lab, receiver_site, "recv", config, env, PEER_LOG)
    try:
        offer = sender.wait_for("offer", LINE_TIMEOUT_S)
        receiver.send({"offer": offer})
        answer = receiver.wait_for("answer", LINE_TIMEOUT_S)
        sender.send({"answer": answer})
        foreign = foreign_addresses(offer, lab.networks) + foreign_addresses(answer, lab.networks)
        if foreign:
            raise RuntimeError(f"an SDP carries addresses outside the lab: {foreign}")
        first = receiver.wait_for("first_frame_at", FIRST_FRAME_TIMEOUT_S)
        setup = {
            "offer_to_first_frame_ms": round((first - sender.events["started"]) * 1000, 1),
            "pair": receiver.wait_for("pair", 5),
        }
        yield sender, receiver, setup
    finally:
        sender.stop()
        receiver.stop()


def run_call(lab: Lab, turn: Turn, mode: str, width: int, height: int, seconds: float,
             receiver_site: str = "wan") -> Json:  # fmt: skip
    with call(lab, turn, mode, width, height, receiver_site) as (_sender, receiver, setup):
        skip = len(receiver.ticks) + 1  # the second of the first frame is set-up
        cpu0, wall0 = cpu_seconds(turn.pid), time.monotonic()
        time.sleep(seconds)  # the measuring window (the peers report every second)
        cpu1, wall1 = cpu_seconds(turn.pid), time.monotonic()
        ticks = receiver.ticks[skip:]
    latencies = [v for t in ticks for v in t["latencies_ms"]]
    frames = sum(t["frames"] for t in ticks)
    result = dict(setup)
    result.update(
        glass_to_glass_ms=percentiles(latencies),
        fps=round(frames / len(ticks), 1) if ticks else None,
        freezes=sum(t["freezes"] for t in ticks),
        longest_gap_s=max((t["max_gap_s"] for t in ticks), default=None),
        received_kbps=round(
            (ticks[-1]["bytes_received"] - ticks[0]["bytes_received"]) * 8 / 1000 / len(ticks), 1
        )
        if len(ticks) > 1
        else None,
        coturn_cpu_percent=round((cpu1 - cpu0) / (wall1 - wall0) * 100, 2)
        if cpu0 is not None and cpu1 is not None
        else None,
    )
    return result


def percentiles(values: Sequence[float]) -> Json:
    """p50 and p95 (nearest rank) of the stamped frames' glass-to-glass latencies."""
    ordered = sorted(values)
    if not ordered:
        return {"p50": None, "p95": None, "n": 0}

    def rank(p: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]

    return {"p50": rank(50), "p95": rank(95), "n": len(ordered)}


# --- narrowing: pure summaries ----------------------------------------------------------


def per_second(sender: list[Json], receiver: list[Json], start: float) -> list[Json]:
    """One row a second (seconds since ``start``), joining the two peers' ticks."""
    rows = []
    for previous, tick in itertools.pairwise(receiver):
        at = tick["t"]
        sent = [s for s in sender if s["t"] <= at + 0.5]
        sent_prev = [s for s in sender if s["t"] <= previous["t"] + 0.5]
        last = sent[-1] if sent else {}
        sent_kbps = (
            round((sent[-1]["bytes_sent"] - sent_prev[-1]["bytes_sent"]) * 8 / 1000, 1)
            if sent and sent_prev
            else None
        )
        rows.append(
            {
                "s": round(at - start, 1),
                "recv_kbps": round(
                    (tick["bytes_received"] - previous["bytes_received"]) * 8 / 1000, 1
                ),
                "sent_kbps": sent_kbps,
                "fps": tick["frames"],
                "gap_s": tick["max_gap_s"],
                "freezes": tick["freezes"],
                "audio": tick["audio_frames"],
                "g2g_ms": tick["latency_p50_ms"],
                "nacks": tick.get("nacks"),
                "plis": tick.get("plis"),
                "overflows": tick.get("buffer_overflows"),
                "skips": tick.get("skips"),
                "target_kbps": None
                if last.get("target_bps") is None
                else last["target_bps"] // 1000,
                "remb_kbps": None if last.get("remb_bps") is None else last["remb_bps"] // 1000,
                "estimate_kbps": None
                if last.get("estimate_bps") is None
                else last["estimate_bps"] // 1000,
                "loss_cap_kbps": None
                if last.get("loss_cap_bps") is None
                else last["loss_cap_bps"] // 1000,
                "reported_loss": last.get("loss"),
            }
        )
    return rows


def first_sustained(
    rows: Sequence[Json], since: float, until: float, ok: Callable[[Json], bool]
) -> float | None:
    """Seconds after ``since`` to the first row from which ``ok`` holds SUSTAIN_S rows."""
    window = [r for r in rows if since < r["s"] <= until]
    for i in range(len(window) - SUSTAIN_S + 1):
        if all(ok(r) for r in window[i : i + SUSTAIN_S]):
            return round(float(window[i]["s"]) - since, 1)
    return None


def narrow_summary(rows: Sequence[Json], narrow_at: float, widen_at: float, end: float) -> Json:
    during = [r for r in rows if narrow_at < r["s"] <= widen_at]
    settled = [r for r in during if r["s"] > narrow_at + 5]
    after = [r for r in rows if widen_at < r["s"] <= end]
    before = [r for r in rows if r["s"] <= narrow_at and r["s"] > narrow_at - 10]

    def mean(values: list[float]) -> float | None:
        return round(statistics.fmean(values), 1) if values else None

    before_g2g = mean([r["g2g_ms"] for r in before if r["g2g_ms"] is not None]) or 0.0
    stale = [
        r["s"]
        for r in rows
        if narrow_at < r["s"] <= end and (r["g2g_ms"] is None or r["g2g_ms"] > 2 * before_g2g)
    ]
    return {
        "before": {
            "recv_kbps": mean([r["recv_kbps"] for r in before]),
            "fps": mean([r["fps"] for r in before]),
            "target_kbps": mean([r["target_kbps"] for r in before if r["target_kbps"]]),
            "g2g_ms": before_g2g,
        },
        "narrowed": {
            "recv_kbps": mean([r["recv_kbps"] for r in settled]),
            "fps": mean([r["fps"] for r in settled]),
            "min_target_kbps": min(
                (r["target_kbps"] for r in during if r["target_kbps"]), default=None
            ),
            "freezes_after_5s": sum(r["freezes"] for r in settled),
            "longest_gap_s_after_5s": max((r["gap_s"] for r in settled), default=None),
            "seconds_without_audio": sum(1 for r in during if r["audio"] == 0),
            # The receiver's recovery: NACK and PLI messages, and the jitter buffer's
            # overflows (a hole waited on for 512 packets, then dropped).
            "nacks": sum(r["nacks"] or 0 for r in during),
            "plis": sum(r["plis"] or 0 for r in during),
            "buffer_overflows": sum(r["overflows"] or 0 for r in during),
            # Holes the product's buffer gave up for a keyframe (room_agents.jitter_holes).
            "hole_skips": sum(r.get("skips") or 0 for r in during),
            "max_recv_kbps_after_5s": max((r["recv_kbps"] for r in settled), default=None),
            "max_g2g_ms": max(
                (r["g2g_ms"] for r in during if r["g2g_ms"] is not None), default=None
            ),
        },
        # The last second (from the narrowing) without frames or with glass-to-glass over
        # twice the wide link's: how long the picture stayed frozen or stale.
        "stale_until_s": round(max(stale) - narrow_at, 1) if stale else 0.0,
        "adapt_s": {
            "sent_below_limit": first_sustained(
                rows, narrow_at, widen_at, lambda r: (r["sent_kbps"] or 0) < NARROW_KBIT
            ),
            "target_below_limit": first_sustained(
                rows, narrow_at, widen_at, lambda r: (r["target_kbps"] or 0) < NARROW_KBIT
            ),
            "fps_25": first_sustained(rows, narrow_at, widen_at, lambda r: r["fps"] >= 25),
        },
        "recover_s": {
            "recv_above_1500kbps": first_sustained(
                rows, widen_at, end, lambda r: r["recv_kbps"] > RECOVERED_KBPS
            ),
            "recv_at_90pct_of_before": first_sustained(
                rows,
                widen_at,
                end,
                lambda r: r["recv_kbps"] >= 0.9 * (mean([b["recv_kbps"] for b in before]) or 0),
            ),
            "fps_25": first_sustained(rows, widen_at, end, lambda r: r["fps"] >= 25),
        },
        "freezes": sum(r["freezes"] for r in rows if r["s"] > narrow_at),
        "max_target_after_kbps": max((r["target_kbps"] or 0 for r in after), default=None),
    }


def run_narrow(
    lab: Lab, turn: Turn, mode: str, link: Link, phases: tuple[int, int, int], product: bool
) -> Json:
    warm, narrow, wide = phases
    site = lab.site("a")
    with call(lab, turn, mode, 640, 360, product=product) as (sender, receiver, setup):
        start = time.time()
        log(f"narrow: {warm} s at {link.rate_kbit} kbit/s")
        time.sleep(warm)
        site.shape(up=Link(NARROW_KBIT, link.loss, link.delay_ms, link.jitter_ms))
        narrow_at = time.time() - start
        log(f"narrow: {narrow} s at {NARROW_KBIT} kbit/s")
        time.sleep(narrow)
        site.shape(up=link)
        widen_at = time.time() - start
        log(f"narrow: {wide} s at {link.rate_kbit} kbit/s again")
        time.sleep(wide)
        end = time.time() - start
        shaper_drops = site.shaper_drops("up")
        rows = per_second(sender.ticks, receiver.ticks, start)
    return {
        "mode": mode,
        "peers": "product" if product else "raw",
        "setup": setup,
        "narrow_at_s": round(narrow_at, 1),
        "widen_at_s": round(widen_at, 1),
        "summary": narrow_summary(rows, narrow_at, widen_at, end),
        "uplink_shaper_drops_since_widen": shaper_drops,
        "per_second": rows,
    }


# --- main -------------------------------------------------------------------------------


def loadavg() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "what", nargs="?", choices=("calls", "product", "narrow", "all"), default="all"
    )
    parser.add_argument("--product-calls", type=int, default=1, help="product calls per mode")
    parser.add_argument(
        "--product-seconds", type=float, default=15, help="session seconds per product call"
    )
    parser.add_argument("--calls", type=int, default=3, help="calls per mode")
    parser.add_argument("--seconds", type=float, default=10, help="media seconds per call")
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--narrow-mode", default="direct", choices=MODES)
    parser.add_argument("--phases", default="30,30,30", help="seconds: wide,narrow,wide")
    parser.add_argument(
        "--peers",
        default="raw,product",
        help="narrow: raw aiortc peers, peers with the room agent's patches, or both",
    )
    parser.add_argument("--no-delay", action="store_true", help="rate and loss only")
    parser.add_argument("--out", type=Path)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    problem = available()
    if problem:
        log(f"the lab cannot run here: {problem}")
        return 2
    delay = (0.0, 0.0) if args.no_delay else (40.0, 5.0)
    link = Link(rate_kbit=WIDE_KBIT, loss=0.01, delay_ms=delay[0], jitter_ms=delay[1])
    sites = (
        SiteSpec("a", up=link, down=link),
        SiteSpec(
            "b", nat=Nat.SYMMETRIC, egress=(Egress("tcp", TLS_PORT, "turn"),), up=link, down=link
        ),
        SiteSpec("guest", up=link, down=link),
    )
    report: Json = {"loadavg_start": loadavg(), "link": {"rate_kbit": WIDE_KBIT, "loss": 0.01,
                    "delay_ms": delay[0], "jitter_ms": delay[1]}}  # fmt: skip
    if args.what in ("product", "all"):
        # Its own lab (coturn and the service take the same ports), shaped the same way.
        report["product_640x360"] = run_product(
            link, args.modes.split(","), args.product_calls, args.product_seconds
        )
        if args.what == "product":  # no floor in this run
            report["loadavg_end"] = loadavg()
            emit(report, args.out)
            return 0
    with tempfile.TemporaryDirectory() as work, Lab.build(sites=sites) as lab:
        report["lab"] = lab.describe()
        with lab_coturn(lab, Path(work)) as turn:
            if args.what in ("calls", "all"):
                calls: Json = {}
                for mode in args.modes.split(","):
                    runs = []
                    for i in range(args.calls):
                        log(f"calls: {mode} {i + 1}/{args.calls}")
                        runs.append(run_call(lab, turn, mode, 640, 360, args.seconds))
                    calls[mode] = aggregate(runs)
                # any_via_udp: TURN over UDP in the list, policy all (ICE picks).
                for mode in ("direct", "any_via_udp", "relay_udp"):
                    log(f"calls: site a -> site guest (two home NATs, both links shaped), {mode}")
                    calls[f"a_to_guest_{mode}"] = attempt(
                        lab, turn, mode, 640, 360, args.seconds, "guest"
                    )
                log("calls: centre b (symmetric NAT, 443 only) through TURN/TLS")
                calls["b_relay_tls"] = aggregate(
                    [run_call(lab, turn, "relay_tls", 640, 360, args.seconds, "b")]
                )
                log("calls: coturn CPU, one relayed 1280x720 stream over UDP")
                calls["relay_udp_720p"] = aggregate(
                    [run_call(lab, turn, "relay_udp", 1280, 720, args.seconds)]
                )
                report["calls_640x360"] = calls
                report["versus_direct"] = versus_direct(calls)
            if args.what in ("narrow", "all"):
                warm, narrow, wide = (int(v) for v in args.phases.split(","))
                phases = (warm, narrow, wide)
                report["narrow"] = {}
                for peers in args.peers.split(","):
                    lab.site("a").shape(up=link)
                    log(f"narrow: {peers} peers")
                    report["narrow"][peers] = run_narrow(
                        lab, turn, args.narrow_mode, link, phases, peers == "product"
                    )
    report["loadavg_end"] = loadavg()
    if "product_640x360" in report and report.get("calls_640x360"):
        floor = report["calls_640x360"]
        report["product_versus_floor"] = versus_floor(report["product_640x360"], floor)
    emit(report, args.out)
    return 0


def versus_direct(calls: Json) -> Json:
    """Each relayed mode against the direct call over the same link (PERFORMANCE.md:
    TURN's cost): offer -> first frame as a ratio, glass-to-glass p50 as a difference."""
    direct = calls.get("direct")
    if not direct or "error" in direct:
        return {}
    base_setup = direct["offer_to_first_frame_ms"]["p50"]
    base_g2g = direct["glass_to_glass_p50_ms"]["p50"]
    result: Json = {}
    for mode in ("relay_udp", "relay_tcp", "relay_tls"):
        found = calls.get(mode)
        if not found or "error" in found:
            continue
        g2g = found["glass_to_glass_p50_ms"]["p50"]
        result[mode] = {
            "offer_to_first_frame_ratio": ratio(
                found["offer_to_first_frame_ms"]["p50"], base_setup
            ),
            "glass_to_glass_p50_added_ms": None
            if g2g is None or base_g2g is None
            else round(g2g - base_g2g, 1),
        }
    return result


def attempt(lab: Lab, turn: Turn, mode: str, width: int, height: int, seconds: float,
            receiver_site: str) -> Json:  # fmt: skip
    """One call whose failure is a finding, not the end of the run."""
    try:
        return aggregate([run_call(lab, turn, mode, width, height, seconds, receiver_site)])
    except (TimeoutError, RuntimeError) as error:
        return {"error": str(error)}


def aggregate(runs: list[Json]) -> Json:
    def values(key: str) -> list[Any]:
        return [r[key] for r in runs]

    return {
        "offer_to_first_frame_ms": summary(values("offer_to_first_frame_ms"), 1),
        "glass_to_glass_p50_ms": summary([r["glass_to_glass_ms"].get("p50") for r in runs], 1),
        "glass_to_glass_p95_ms": summary([r["glass_to_glass_ms"].get("p95") for r in runs], 1),
        "fps": summary(values("fps"), 1),
        "freezes": sum(values("freezes")),
        "received_kbps": summary(values("received_kbps"), 1),
        "coturn_cpu_percent": summary(values("coturn_cpu_percent"), 2),
        "pairs": [r["pair"] for r in runs],
        "runs": runs,
    }


if __name__ == "__main__":
    sys.exit(main())
