"""A real Radicale CalDAV server on loopback, for the CalDAV transport and sync tests.

``RadicaleServer`` runs ``python -m radicale`` in a subprocess with a generated
config: filesystem storage in a temporary directory, htpasswd (plain) auth with one
known user so authentication is exercised, ``owner_only`` rights. ``radicale_server()``
starts it, waits until it answers, and always stops it (terminate, wait, kill).
``new_calendar()`` makes a fresh calendar collection (MKCALENDAR through caldav) so
each test starts from an empty calendar on a shared server.

Radicale missing: the tests skip with the reason, except under ``CI=true`` where
they fail (a missing CalDAV server must not turn the suite green).
"""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

USERNAME = "organiser"
PASSWORD = "s3cret-pass"
STARTUP_TIMEOUT = 20.0


def skip_or_fail(reason: str) -> None:
    """Under ``CI=true`` a missing server is a failure; elsewhere a skip with the reason."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _config_text(root: Path, port: int) -> str:
    return f"""\
[server]
hosts = 127.0.0.1:{port}
max_connections = 20

[auth]
type = htpasswd
htpasswd_filename = {root / "users"}
htpasswd_encryption = plain
# No penalty delay: the wrong-password test would otherwise wait a second.
delay = 0
cache_logins = false

[rights]
type = owner_only

[storage]
filesystem_folder = {root / "collections"}
# Sync tokens last ten years, not 30 days: Radicale ages them by their file time
# against time.time(), and when the suite runs under faketime only the latter moves.
max_sync_token_age = 315360000

[logging]
level = warning
mask_passwords = true
"""


@dataclass
class RadicaleServer:
    """One Radicale process; ``start()`` returns once it answers HTTP."""

    root: Path
    port: int = 0
    username: str = USERNAME
    password: str = PASSWORD
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    @property
    def principal_url(self) -> str:
        return f"{self.base_url}{self.username}/"

    @property
    def log_path(self) -> Path:
        return self.root / "radicale.log"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def start(self, timeout: float = STARTUP_TIMEOUT) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "users").write_text(f"{self.username}:{self.password}\n")
        (self.root / "collections").mkdir(exist_ok=True)
        # The free port can be taken between our probe and Radicale's bind: retry a few.
        last = ""
        for _attempt in range(3):
            self.port = free_port()
            config = self.root / "config"
            config.write_text(_config_text(self.root, self.port))
            with open(self.log_path, "ab") as log:
                self.proc = subprocess.Popen(
                    [sys.executable, "-m", "radicale", "--config", str(config)],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
            if self._wait_ready(timeout):
                return
            last = self.log()
            self.stop()
        raise RuntimeError(f"Radicale did not start on 127.0.0.1: {last[-2000:]}")

    def _wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                return False
            try:
                with urllib.request.urlopen(self.base_url + ".web/", timeout=1) as r:
                    if r.status < 500:
                        return True
            except urllib.error.HTTPError as exc:
                if exc.code < 500:  # it answers: 401/404 are fine here
                    return True
            except OSError:
                pass
            time.sleep(0.05)
        return False

    def stop(self) -> None:
        """Terminate, wait, then kill: the process never outlives the test session."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(5)

    def new_calendar(self, name: str | None = None) -> str:
        """MKCALENDAR a fresh, empty calendar of the test user; returns its URL."""
        from caldav.davclient import DAVClient

        cal_id = name or f"cal-{uuid.uuid4().hex[:12]}"
        url = f"{self.principal_url}{cal_id}/"
        with DAVClient(
            url=self.principal_url,
            username=self.username,
            password=self.password,
            enable_rfc6764=False,
            timeout=10,
        ) as client:
            response = client.mkcalendar(url)
            if response.status not in (200, 201):
                raise RuntimeError(f"MKCALENDAR {url} answered {response.status}")
        return url


@dataclass(frozen=True)
class RadicaleInfo:
    """What a test needs to reach the server: its URLs and the test user's credentials."""

    base_url: str
    calendar_url: str
    username: str
    password: str


def radicale_available() -> bool:
    return importlib.util.find_spec("radicale") is not None


@contextmanager
def radicale_server(root: Path) -> Iterator[RadicaleServer]:
    """A started Radicale under ``root``, stopped on exit whatever happened."""
    if not radicale_available():
        skip_or_fail(
            "radicale is not installed (pip install radicale): no CalDAV server to test against"
        )
    server = RadicaleServer(root=root)
    try:
        server.start()
        yield server
    finally:
        server.stop()
