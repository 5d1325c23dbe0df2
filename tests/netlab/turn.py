"""coturn in the lab's WAN: the one way every lab test and benchmark starts it.

TURN over UDP and TCP on ``lab.wan_host("turn")``:3478 (and over TLS on 443, its own
CA, with ``tls``: centre B's firewall lets out only that), the REST API secret scheme,
relay ports 40000-40999 on the same address; no ``denied-peer-ip`` (relay to relay
works, docs/deploy.md). ``coturn_files`` writes its certificate and configuration,
``start_coturn`` (asyncio) and ``popen_coturn`` (blocking, for benchmarks) start it
inside the WAN and wait, bounded, until it answers: its TCP listeners accept and its
UDP one answers a STUN binding request (coturn logs its listeners only when verbose).
Users: ``lab_turn`` below (tests that drive calls themselves, tests/netlab/call_peer.py),
tests/netlab/deployment.py (the product in the lab) and bench/network.py.

The lab's WAN drops packets for unrouted lab addresses (a site's LAN) silently, as the
internet does; ``unroute_lan_addresses`` takes that away, so that coturn's relayed send
there fails as on a server whose egress is unrouted or firewalled (the case
room_agents/ice_relay_pairs.py is about). Started with ``Namespace.spawn`` or
``Namespace.popen`` (the lab stops it at teardown too); ``verbose`` (the tests' default)
so its log says what happened to each allocation.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from aioice import stun

from common.turn import mint
from tests.certificates import self_signed
from tests.coturn_support import REALM, turnserver
from tests.netlab.lab import Lab

PORT = 3478
TLS_PORT = 443
RELAY_PORTS = (40000, 40999)
SECRET = "netlab-turn-secret"
START_TIMEOUT = 10.0
_PROBE_TIMEOUT = 0.2  # one readiness probe (a TCP connect, a STUN round trip)
_POLL = 0.05


def config_text(
    address: str,
    secret: str,
    pid: Path,
    tls: tuple[Path, Path] | None = None,
    *,
    verbose: bool = True,
) -> str:
    """``tls``: the certificate and key for TURN over TLS on ``TLS_PORT`` (else none);
    ``verbose``: a log line per allocation event (off where coturn's CPU is measured)."""
    tls_lines = (
        [f"tls-listening-port={TLS_PORT}", f"cert={tls[0]}", f"pkey={tls[1]}"]
        if tls is not None
        else ["no-tls"]
    )
    return "\n".join(
        [
            f"listening-ip={address}",
            f"relay-ip={address}",
            f"listening-port={PORT}",
            f"min-port={RELAY_PORTS[0]}",
            f"max-port={RELAY_PORTS[1]}",
            "use-auth-secret",
            f"static-auth-secret={secret}",
            f"realm={REALM}",
            "fingerprint",
            *tls_lines,
            "no-dtls",
            "no-cli",
            "no-multicast-peers",
            "log-file=stdout",
            *(["verbose"] if verbose else []),
            f"pidfile={pid}",
        ]
    )


@dataclass(frozen=True)
class CoturnFiles:
    """One lab coturn's files in its directory: configuration, log, database, and the
    certificate to trust for ``turns:`` (None: no TLS)."""

    address: str
    config: Path
    log: Path
    db: Path
    ca_file: Path | None

    @property
    def tcp_ports(self) -> tuple[int, ...]:
        return (PORT, TLS_PORT) if self.ca_file is not None else (PORT,)

    def argv(self) -> list[str]:
        return [turnserver(), "-c", str(self.config), "--db", str(self.db)]

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def coturn_files(
    directory: Path,
    address: str,
    *,
    secret: str = SECRET,
    tls: bool = False,
    verbose: bool = True,
    common_name: str = "netlab TURN",
    cert_prefix: str = "",
) -> CoturnFiles:
    """Write coturn's certificate (with ``tls``: its own CA, for ``address``) and its
    configuration (readable by its owner only: it holds the secret) in ``directory``;
    ``cert_prefix`` names the certificate's files, where several services share the
    directory."""
    directory.mkdir(parents=True, exist_ok=True)
    cert_key = (
        self_signed(
            directory, common_name=common_name, addresses=(address,), ca=True, prefix=cert_prefix
        )
        if tls
        else None
    )
    config = directory / "turnserver.conf"
    pid = directory / "turnserver.pid"
    config.write_text(config_text(address, secret, pid, cert_key, verbose=verbose) + "\n")
    config.chmod(0o600)
    return CoturnFiles(
        address=address,
        config=config,
        log=directory / "turnserver.log",
        db=directory / "turndb",
        ca_file=cert_key[0] if cert_key is not None else None,
    )


def answering(lab: Lab, files: CoturnFiles) -> bool:
    """coturn answers in the WAN: each TCP listener accepts and the UDP one answers a
    STUN binding request (coturn opens UDP last). Blocking, at most a few probe timeouts."""
    for port in files.tcp_ports:
        with lab.wan.socket(socket.SOCK_STREAM) as probe:
            probe.settimeout(_PROBE_TIMEOUT)
            try:
                probe.connect((files.address, port))
            except OSError:
                return False
    request = stun.Message(message_method=stun.Method.BINDING, message_class=stun.Class.REQUEST)
    with lab.wan.socket(socket.SOCK_DGRAM) as probe:
        probe.settimeout(_PROBE_TIMEOUT)
        try:
            probe.sendto(bytes(request), (files.address, PORT))
            data = probe.recv(2048)
        except OSError:
            return False
    with contextlib.suppress(ValueError):
        return stun.parse_message(data).transaction_id == request.transaction_id
    return False


def _not_started(files: CoturnFiles, why: str) -> RuntimeError:
    return RuntimeError(f"coturn {why} in the lab:\n{files.log_text()}")


async def start_coturn(lab: Lab, files: CoturnFiles) -> asyncio.subprocess.Process:
    """coturn in the WAN (asyncio), answering; bounded by ``START_TIMEOUT``. The caller
    stops it (the lab's teardown would too)."""
    with files.log.open("ab") as log_file:
        process = await lab.wan.spawn(
            *files.argv(),
            stdin=asyncio.subprocess.DEVNULL, stdout=log_file, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
    deadline = time.monotonic() + START_TIMEOUT
    while not await asyncio.to_thread(answering, lab, files):
        if process.returncode is not None:
            raise _not_started(files, f"exited with {process.returncode}")
        if time.monotonic() > deadline:
            raise _not_started(files, f"did not answer within {START_TIMEOUT:g} s")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(process.wait(), _POLL)
    return process


def popen_coturn(lab: Lab, files: CoturnFiles) -> subprocess.Popen[bytes]:
    """coturn in the WAN (blocking API, for benchmarks), answering; bounded by
    ``START_TIMEOUT``. ``ip netns exec`` execs turnserver, so the pid is coturn's own."""
    with files.log.open("ab") as log_file:
        process = lab.wan.popen(
            *files.argv(), stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT
        )
    deadline = time.monotonic() + START_TIMEOUT
    while not answering(lab, files):
        if process.poll() is not None:
            raise _not_started(files, f"exited with {process.returncode}")
        if time.monotonic() > deadline:
            raise _not_started(files, f"did not answer within {START_TIMEOUT:g} s")
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(_POLL)
    return process


@dataclass(frozen=True)
class LabTurn:
    address: str
    log_path: Path
    ca_file: Path | None = None  # the certificate to trust for turns:, with TLS

    def ice_servers(self, session_id: str, peer_id: str) -> list[dict[str, object]]:
        """What the service hands a room: STUN and TURN (UDP first, then TCP), with a
        credential minted for the session and peer (protocol ``IceServer`` fields)."""
        username, password = mint(SECRET, time.time() + 3600, session_id, peer_id)
        urls = [
            f"turn:{self.address}:{PORT}?transport=udp",
            f"turn:{self.address}:{PORT}?transport=tcp",
        ]
        if self.ca_file is not None:
            urls.append(f"turns:{self.address}:{TLS_PORT}?transport=tcp")
        return [
            {"urls": [f"stun:{self.address}:{PORT}"]},
            {"urls": urls, "username": username, "credential": password},
        ]

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def unroute_lan_addresses(lab: Lab) -> None:
    """The WAN forgets its route into the void (tests/netlab/lab.py): a send from the WAN
    to a site's LAN address fails at once (ENETUNREACH) instead of vanishing."""
    lab.wan.run("ip", "route", "del", lab.networks)


@contextlib.asynccontextmanager
async def lab_turn(lab: Lab, directory: Path, *, tls: bool = False) -> AsyncIterator[LabTurn]:
    """coturn in the WAN until the block ends, answering (``start_coturn``)."""
    files = coturn_files(directory, lab.wan_host("turn"), tls=tls)
    process = await start_coturn(lab, files)
    try:
        yield LabTurn(files.address, files.log, files.ca_file)
    finally:
        if process.returncode is None:
            process.terminate()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(process.wait(), 5)
