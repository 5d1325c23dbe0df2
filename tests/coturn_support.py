"""A real coturn (Debian's ``turnserver``) on loopback, started by the test that needs it.

Its own configuration file in a temporary directory, its own ports (listening and
relay range), its log on a file the test can read; stopped (and waited for) when the
test ends, so no daemon is left behind. The REST API scheme (``use-auth-secret``)
with one ``static-auth-secret`` line per secret given: coturn accepts them all, which
is how a secret is rotated with an overlap (docs/deploy.md).

Missing ``turnserver``: the test skips with the reason on a laptop, fails under CI
(scripts/services.sh installs the ``coturn`` package).
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.certificates import self_signed
from tests.requirements import missing

REALM = "telecentre.test"
START_TIMEOUT = 10.0
START_ATTEMPTS = 3
STOP_TIMEOUT = 5.0


@dataclass(frozen=True)
class Coturn:
    port: int  # TURN over UDP and TCP
    relay_range: tuple[int, int]
    log_path: Path
    config_path: Path
    tls_port: int | None = None  # TURN over TLS, when started with tls=True
    ca_file: Path | None = None  # the self-signed certificate to trust for it

    @property
    def tls_url(self) -> str:
        assert self.tls_port is not None, "started without TLS"
        return f"turns:127.0.0.1:{self.tls_port}"

    @property
    def udp_url(self) -> str:
        return f"turn:127.0.0.1:{self.port}?transport=udp"

    @property
    def tcp_url(self) -> str:
        return f"turn:127.0.0.1:{self.port}?transport=tcp"

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def turnserver() -> str:
    found = shutil.which("turnserver")
    if found is None:
        missing("coturn's turnserver is not installed (Debian package coturn)")
    return found


def _free_port_pair() -> int:
    """A port free for both UDP and TCP on loopback."""
    for _ in range(100):
        port = random.randint(20000, 29999)
        with contextlib.ExitStack() as stack:
            try:
                for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
                    s = stack.enter_context(socket.socket(socket.AF_INET, kind))
                    s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port pair on loopback")


def turn_certificate(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 (its own CA) and its key, as PEM files."""
    return self_signed(directory, common_name="telecentre test TURN", ca=True, prefix="turn-")


def config_text(
    port: int,
    relay_range: tuple[int, int],
    secrets: Sequence[str],
    pid: Path,
    tls: tuple[int, Path, Path] | None = None,
    extra: Sequence[str] = (),
) -> str:
    """``tls``: the TLS port, certificate and key (else no TLS); ``extra``: more lines."""
    tls_lines = (
        [f"tls-listening-port={tls[0]}", f"cert={tls[1]}", f"pkey={tls[2]}"]
        if tls is not None
        else ["no-tls"]
    )
    lines = [
        "listening-ip=127.0.0.1",
        f"listening-port={port}",
        "relay-ip=127.0.0.1",
        f"min-port={relay_range[0]}",
        f"max-port={relay_range[1]}",
        "use-auth-secret",
        *(f"static-auth-secret={secret}" for secret in secrets),
        f"realm={REALM}",
        "fingerprint",
        # Both peers of the tests are on loopback: coturn refuses loopback peers unless told.
        "allow-loopback-peers",
        *tls_lines,
        "no-dtls",
        "no-cli",
        "no-multicast-peers",
        "log-file=stdout",
        "verbose",
        f"pidfile={pid}",
        *extra,
    ]
    return "\n".join(lines) + "\n"


def _listening(log_path: Path, port: int) -> bool:
    """coturn says it opened its UDP and TCP listeners on ``port`` (so the port is
    coturn's, not another process's that happened to take it meanwhile)."""
    text = log_path.read_text(errors="replace") if log_path.exists() else ""
    udp = f"UDP listener opened on: 127.0.0.1:{port}" in text
    tcp = f"TCP listener opened on : 127.0.0.1:{port}" in text
    return udp and tcp


def _wait_listening(
    ports: Sequence[int], process: subprocess.Popen[bytes], log_path: Path, timeout: float
) -> None:
    """Until coturn has opened its listeners and accepts TCP on each port (bounded)."""
    deadline = time.monotonic() + timeout
    waiting = list(ports)
    while waiting:
        if process.poll() is not None:
            raise RuntimeError(f"turnserver exited with {process.returncode}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"turnserver did not listen on {waiting} within {timeout:g} s")
        port = waiting[0]
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                pass
        except OSError:
            pass
        else:
            if port != ports[0] or _listening(log_path, port):
                waiting.pop(0)
                continue
        # Not yet: wait a little on the process instead of spinning.
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(0.05)


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(STOP_TIMEOUT)


@contextlib.contextmanager
def running_coturn(
    directory: Path, secrets: Sequence[str], *, tls: bool = False, extra: Sequence[str] = ()
) -> Iterator[Coturn]:
    """coturn on 127.0.0.1 accepting credentials minted with any of ``secrets``; with
    ``tls``, also TURN over TLS with a self-signed certificate (``Coturn.ca_file``)."""
    binary = turnserver()
    directory.mkdir(parents=True, exist_ok=True)
    cert_key = turn_certificate(directory) if tls else None
    config = directory / "turnserver.conf"
    log_path = directory / "turnserver.log"
    # A free port can be taken by another process before coturn binds it: try afresh.
    for attempt in range(START_ATTEMPTS):
        port = _free_port_pair()
        low = random.randint(30000, 39000)
        relay_range = (low, low + 199)
        tls_setup = (_free_port_pair(), *cert_key) if cert_key is not None else None
        config.write_text(
            config_text(port, relay_range, secrets, directory / "turnserver.pid", tls_setup, extra)
        )
        os.chmod(config, 0o600)
        with log_path.open("wb") as log_file:
            process = subprocess.Popen(
                [binary, "-c", str(config), "--db", str(directory / "turndb")],
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        try:
            ports = [port] if tls_setup is None else [port, tls_setup[0]]
            _wait_listening(ports, process, log_path, START_TIMEOUT)
        except RuntimeError:
            _stop(process)
            if attempt + 1 == START_ATTEMPTS:
                raise
            continue
        try:
            yield Coturn(
                port,
                relay_range,
                log_path,
                config,
                tls_port=tls_setup[0] if tls_setup else None,
                ca_file=tls_setup[1] if tls_setup else None,
            )
        finally:
            _stop(process)
        return
