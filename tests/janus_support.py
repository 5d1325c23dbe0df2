"""A real Janus (Debian's ``/usr/bin/janus``) on loopback, started by the test that needs it.

Its configuration is the one the project ships (``deploy/janus/``) with the values a
test instance must change rewritten (``override``): its own WebSocket and admin ports
(on 127.0.0.1), its own RTP port range, its own secrets, the log in a file. Two
instances at once share no port.

ICE: Janus 1.1 never gathers on a loopback interface (ice.c skips every interface
flagged IFF_LOOPBACK, whatever ``ice_enforce_list`` says; enforcing ``lo`` leaves the
list empty and libnice then offers every other address of the machine). So each
instance gets an interface of its own, a veth pair made for it (``tcj<hex>a`` with one
address of 10.254.0.0/16, the other end up and bare), and ``ice_enforce_list`` names
it: its SDPs offer that one address and nothing of the host. The aiortc peers of a test
pin their host candidates to the same address (``JanusProcess.ice_address``; packets
between two local addresses never leave the machine). The pair is deleted at stop.
A pair left by a run killed before its cleanup is deleted by the next run (its alias
names the pid that made it). That needs root and iproute2, as the network lab does.

``kill9`` is for failover tests. Stopped with SIGTERM, then SIGKILL, and waited for.
Missing ``janus`` (or root, or ``ip``): the test skips with the reason on a laptop,
fails under CI (scripts/services.sh installs the ``janus`` package).
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tests.requirements import missing

DEPLOY = Path(__file__).resolve().parent.parent / "deploy" / "janus"
FILES = (
    "janus.jcfg",
    "janus.plugin.videoroom.jcfg",
    "janus.transport.websockets.jcfg",
    "janus.transport.http.jcfg",
)
START_TIMEOUT = 15.0
STOP_TIMEOUT = 5.0
START_ATTEMPTS = 3
RTP_RANGE = 1000  # ports per instance (a six-site session holds 64 handles, more while replaced)


def janus_binary() -> str:
    found = shutil.which("janus") or ("/usr/bin/janus" if Path("/usr/bin/janus").exists() else None)
    if found is None:
        missing("Janus is not installed (Debian package janus)")
    return found


def ip_command() -> str:
    found = shutil.which("ip")
    if found is None or os.geteuid() != 0:
        missing("a test Janus needs root and iproute2 for its own ICE interface")
    return found


ALIAS = "telecentre-janus-test pid="


def remove_orphan_interfaces(ip: str) -> None:
    """Delete the pairs of test runs whose process is gone (killed before its cleanup):
    each pair's alias names the pid that made it."""
    listing = subprocess.run(
        [ip, "-o", "link", "show"], capture_output=True, text=True, check=False
    ).stdout
    for match in re.finditer(
        r"^\d+: (tcj[0-9a-f]{8}a)@\S+.*? alias " + ALIAS + r"(\d+)", listing, re.M
    ):
        name, pid = match.group(1), int(match.group(2))
        if not Path(f"/proc/{pid}").exists():
            subprocess.run([ip, "link", "del", name], capture_output=True, check=False)


def make_ice_interface() -> tuple[str, str]:
    """A veth pair of our own; its name and the address Janus will gather on."""
    ip = ip_command()
    remove_orphan_interfaces(ip)
    for _ in range(20):
        tag = secrets.token_hex(4)
        name = f"tcj{tag}a"
        address = f"10.254.{secrets.randbelow(254) + 1}.{secrets.randbelow(254) + 1}"
        made = subprocess.run(
            [ip, "link", "add", name, "type", "veth", "peer", "name", f"tcj{tag}b"],
            capture_output=True,
            check=False,
        )
        if made.returncode != 0:
            continue
        for command in (
            ["link", "set", "dev", name, "alias", f"{ALIAS}{os.getpid()}"],
            ["addr", "add", f"{address}/32", "dev", name],
            ["link", "set", name, "up"],
            ["link", "set", f"tcj{tag}b", "up"],
        ):
            subprocess.run([ip, *command], capture_output=True, check=True)
        return name, address
    raise RuntimeError("cannot make a veth pair for Janus")


def remove_ice_interface(name: str) -> None:
    subprocess.run(
        [shutil.which("ip") or "ip", "link", "del", name], capture_output=True, check=False
    )


def override(text: str, key: str, value: str) -> str:
    """Set ``key = value`` in a jcfg text: the first line that sets ``key`` (commented
    out or not) is replaced. A key the file lacks is an error: the shipped config changed."""
    pattern = re.compile(rf"^(\s*)#?\s*{re.escape(key)}\s*=.*$", re.MULTILINE)
    if pattern.search(text) is None:
        raise KeyError(f"{key} is not in the configuration")
    return pattern.sub(lambda m: f"{m.group(1)}{key} = {value}", text, count=1)


def quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def free_tcp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def free_udp_range(size: int) -> tuple[int, int]:
    """A range of ``size`` UDP ports on loopback none of which is bound now (a
    random base; another instance could take one later, which the start retries)."""
    for _ in range(200):
        low = secrets.randbelow(20000) + 40000
        free = True
        for port in (low, low + size // 2, low + size - 1):
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    free = False
                    break
        if free:
            return low, low + size - 1
    raise RuntimeError("no free UDP range on loopback")


@dataclass(frozen=True)
class JanusConfig:
    directory: Path
    ws_port: int
    admin_port: int
    rtp_range: tuple[int, int]
    api_secret: str
    admin_secret: str
    admin_key: str
    log_path: Path
    ice_interface: str
    ice_address: str

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.ws_port}/"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}/admin"


def write_config(
    directory: Path,
    ice: tuple[str, str],
    extra: Mapping[str, Mapping[str, str]] = {},
) -> JanusConfig:
    """The shipped configuration in ``directory`` with a test instance's values; ``ice``:
    the interface and address it gathers on; ``extra``: ``{file: {key: raw value}}``."""
    directory.mkdir(parents=True, exist_ok=True)
    config = JanusConfig(
        directory=directory,
        ws_port=free_tcp_port(),
        admin_port=free_tcp_port(),
        rtp_range=free_udp_range(RTP_RANGE),
        api_secret=secrets.token_hex(12),
        admin_secret=secrets.token_hex(12),
        admin_key=secrets.token_hex(12),
        log_path=directory / "janus.log",
        ice_interface=ice[0],
        ice_address=ice[1],
    )
    values: dict[str, dict[str, str]] = {
        "janus.jcfg": {
            "configs_folder": quoted(str(directory)),
            "api_secret": quoted(config.api_secret),
            "admin_secret": quoted(config.admin_secret),
            "log_to_stdout": "false",
            "log_to_file": quoted(str(config.log_path)),
            "interface": quoted("127.0.0.1"),
            "rtp_port_range": quoted(f"{config.rtp_range[0]}-{config.rtp_range[1]}"),
            "ice_enforce_list": quoted(config.ice_interface),
        },
        "janus.transport.websockets.jcfg": {
            "ws_port": str(config.ws_port),
            "ws_ip": quoted("127.0.0.1"),
        },
        "janus.transport.http.jcfg": {
            "admin_port": str(config.admin_port),
            "admin_ip": quoted("127.0.0.1"),
        },
        "janus.plugin.videoroom.jcfg": {"admin_key": quoted(config.admin_key)},
    }
    for name, more in extra.items():
        values.setdefault(name, {}).update(more)
    for name in FILES:
        text = (DEPLOY / name).read_text()
        for key, value in values.get(name, {}).items():
            text = override(text, key, value)
        (directory / name).write_text(text)
    return config


def answers(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
        return True
    return False


@dataclass
class JanusProcess:
    config: JanusConfig
    process: subprocess.Popen[bytes]
    binary: str
    stopped: bool = field(default=False)

    @property
    def url(self) -> str:
        return self.config.url

    @property
    def admin_url(self) -> str:
        return self.config.admin_url

    @property
    def ice_address(self) -> str:
        return self.config.ice_address

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_text(self) -> str:
        path = self.config.log_path
        return path.read_text(errors="replace") if path.exists() else ""

    def kill9(self) -> None:
        """SIGKILL: Janus ends without a word (its sockets are closed by the kernel)."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(STOP_TIMEOUT)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(STOP_TIMEOUT)

    def restart(self) -> None:
        """Start again on the same configuration and ports (a Janus that comes back)."""
        self.stop()
        self.process = _spawn(self.binary, self.config)
        _wait_ready(self.process, self.config, START_TIMEOUT)


def _spawn(binary: str, config: JanusConfig) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [binary, "-C", str(config.directory / "janus.jcfg"), "-F", str(config.directory)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=(config.directory / "janus.stderr").open("ab"),
    )


def _wait_ready(process: subprocess.Popen[bytes], config: JanusConfig, timeout: float) -> None:
    """Until both the WebSocket and the admin API accept connections (bounded)."""
    deadline = time.monotonic() + timeout
    waiting = [config.ws_port, config.admin_port]
    while waiting:
        if process.poll() is not None:
            raise RuntimeError(f"janus exited with {process.returncode}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"janus did not listen on {waiting} within {timeout:g} s")
        if answers(waiting[0]):
            waiting.pop(0)
            continue
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(0.05)


def start_janus(
    directory: Path, ice: tuple[str, str], extra: Mapping[str, Mapping[str, str]] = {}
) -> JanusProcess:
    binary = janus_binary()
    for attempt in range(START_ATTEMPTS):
        config = write_config(directory, ice, extra)
        process = _spawn(binary, config)
        try:
            _wait_ready(process, config, START_TIMEOUT)
        except RuntimeError:
            if process.poll() is None:
                process.kill()
            process.wait(STOP_TIMEOUT)
            if attempt + 1 == START_ATTEMPTS:
                raise
            continue
        return JanusProcess(config, process, binary)
    raise AssertionError("unreachable")


@contextlib.contextmanager
def running_janus(
    directory: Path, extra: Mapping[str, Mapping[str, str]] = {}
) -> Iterator[JanusProcess]:
    janus_binary()
    ice = make_ice_interface()
    try:
        janus = start_janus(directory, ice, extra)
        try:
            yield janus
        finally:
            janus.stop()
    finally:
        remove_ice_interface(ice[0])


CANDIDATE = re.compile(r"^a=candidate:\S+ \d+ \S+ \d+ (\S+) \d+ typ (\S+)", re.MULTILINE)


def candidate_addresses(sdp: str) -> list[str]:
    return [m.group(1) for m in CANDIDATE.finditer(sdp)]
