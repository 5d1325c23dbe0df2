"""Real processes for end-to-end tests: ``telecentre serve``, ``telecentre agent`` and the CLI.

Waiting is always on a condition with a deadline (``wait_until``), never a bare sleep.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parents[1]
T = TypeVar("T")


def clock_behind(seconds: int) -> list[str]:
    """A command prefix that runs a process with its wall clock ``seconds`` behind this
    one's (libfaketime). When the suite itself runs under faketime (tests/test_any_hour.py
    sets ``FAKETIME="+N"``), a second faketime would replace that offset instead of
    adding to it, so the prefix carries the sum."""
    outer = os.environ.get("FAKETIME", "") if "faketime" in os.environ.get("LD_PRELOAD", "") else ""
    offset = int(outer) if re.fullmatch(r"[+-]\d+", outer) else 0
    return ["faketime", "-f", f"{offset - seconds:+d}"]


def file_clock(folder: Path) -> float:
    """The file system's now, to compare file times with: under faketime
    (tests/test_any_hour.py) ``time.time()`` is shifted and file times are not."""
    marker = folder / ".file-clock"
    marker.touch()  # an existing file's times are set to now as well
    return marker.stat().st_mtime


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_until(
    what: str, condition: Callable[[], T | None], timeout: float, interval: float = 0.05
) -> T:
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = condition()
        except (OSError, ValueError, KeyError) as exc:
            last_error = exc
            value = None
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(
        f"timed out after {timeout} s waiting for {what} (last error: {last_error})"
    )


def base_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TELECENTRE_")}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


@dataclass
class Cli:
    data_dir: Path
    # A command prefix and environment, such as another wall clock's (faketime_support).
    prefix: Sequence[str] = ()
    env: dict[str, str] = field(default_factory=dict)

    def run(self, *args: str, check: bool = True) -> dict[str, Any]:
        proc = subprocess.run(
            [
                *self.prefix,
                sys.executable,
                "-m",
                "web.cli",
                *args,
                "--data-dir",
                str(self.data_dir),
                "--json",
            ],
            cwd=ROOT,
            env=base_env(**self.env),
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"telecentre {' '.join(args)} failed: {proc.stderr}{proc.stdout}")
        out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
        return out


def _group_alive(pgid: int) -> bool:
    """Whether a live (not zombie) process of group ``pgid`` remains (Linux /proc)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            return True
    return False


def _group_gone(pgid: int, timeout: float) -> bool:
    """Wait (bounded) until no live process of group ``pgid`` remains."""
    deadline = time.monotonic() + timeout
    while _group_alive(pgid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@dataclass
class Managed:
    """A child process whose output goes to a log file the test can read."""

    argv: list[str]
    log_path: Path
    env: dict[str, str] = field(default_factory=base_env)
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.argv,
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        """SIGTERM to the whole process group, and return once every process of it is
        gone: under ``faketime`` the direct child is faketime, which dies at once
        while the program it started is still shutting down (and writing its files)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.kill()
        if not _group_gone(self.proc.pid, 10):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            _group_gone(self.proc.pid, 5)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@dataclass
class Serve(Managed):
    port: int = 0

    @classmethod
    def make(cls, data_dir: Path, port: int) -> Serve:
        argv = [
            sys.executable,
            "-m",
            "web.cli",
            "serve",
            "--port",
            str(port),
            "--data-dir",
            str(data_dir),
        ]
        return cls(argv=argv, log_path=data_dir / "serve.log", port=port)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 30) -> None:
        def ready() -> bool:
            with urllib.request.urlopen(self.url + "/healthz", timeout=2) as r:
                return bool(r.status == 200)

        wait_until("serve to answer /healthz", ready, timeout)

    def get(self, path: str, token: str | None = None) -> Any:
        req = urllib.request.Request(self.url + path)
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        with urllib.request.urlopen(req, timeout=5) as r:
            body = r.read().decode()
        return json.loads(body) if path.startswith("/api/") else body


@dataclass
class Agent(Managed):
    status_path: Path = Path()

    @classmethod
    def make(
        cls,
        work: Path,
        name: str,
        server_url: str,
        key_file: Path,
        prefix: Sequence[str] = (),
        width: int = 640,
        height: int = 360,
        fps: int | None = None,
    ) -> Agent:
        d = work / name
        d.mkdir(parents=True, exist_ok=True)
        argv = [
            *prefix,
            sys.executable,
            "-m",
            "web.cli",
            "agent",
            "--server",
            server_url,
            "--key-file",
            str(key_file),
            "--cache-dir",
            str(d),
            "--status-file",
            str(d / "status.json"),
            "--label",
            name,
            "--width",
            str(width),
            "--height",
            str(height),
            *(["--fps", str(fps)] if fps is not None else []),
        ]
        return cls(argv=argv, log_path=d / "agent.log", status_path=d / "status.json")

    def status(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.status_path.read_text())
        return data

    def fresh_status(self, after: float) -> dict[str, Any] | None:
        """The status, once it was written after ``after`` (a file time: file_clock).
        File times tick coarsely (a few milliseconds): a write in the same tick as
        ``after`` may be from before it, so it does not count (agents write every 0.5 s)."""
        if not self.status_path.exists() or self.status_path.stat().st_mtime <= after:
            return None
        return self.status()


@dataclass
class Network:
    """A service with centres and rooms created through the CLI, keys in files."""

    work: Path
    cli: Cli
    serve: Serve
    rooms: dict[str, str] = field(default_factory=dict)  # name -> room id
    key_files: dict[str, Path] = field(default_factory=dict)
    agents: dict[str, Agent] = field(default_factory=dict)

    @classmethod
    def create(cls, work: Path, rooms: Sequence[tuple[str, str, str]]) -> Network:
        """``rooms``: (room name, centre name, IANA zone); one centre per distinct name."""
        data = work / "data"
        data.mkdir(parents=True, exist_ok=True)
        cli = Cli(data)
        net = cls(work, cli, Serve.make(data, free_port()))
        centres: dict[str, str] = {}
        for room, centre, zone in rooms:
            if centre not in centres:
                centres[centre] = cli.run("centre", "add", centre, "--timezone", zone)["id"]
            out = cli.run("room", "add", "--centre", centres[centre], room)
            net.rooms[room] = out["id"]
            key_file = work / f"{room}.key"
            key_file.write_text(out["key"] + "\n")
            key_file.chmod(0o600)
            net.key_files[room] = key_file
        return net

    def agent(self, room: str, prefix: Sequence[str] = (), **kw: Any) -> Agent:
        agent = Agent.make(
            self.work / "agents", room, self.serve.url, self.key_files[room], prefix, **kw
        )
        self.agents[room] = agent
        return agent

    def book(self, start: float, end: float, rooms: Sequence[str], lead: int) -> str:
        from datetime import UTC, datetime

        args = [
            "book",
            "--title",
            "e2e",
            "--lead",
            str(lead),
            "--start",
            datetime.fromtimestamp(start, UTC).isoformat(),
            "--end",
            datetime.fromtimestamp(end, UTC).isoformat(),
        ]
        for room in rooms:
            args += ["--room", self.rooms[room]]
        session_id: str = self.cli.run(*args)["session_id"]
        return session_id

    def session(self, session_id: str) -> dict[str, Any]:
        return self.cli.run("session", "show", session_id)

    def stop_all(self) -> None:
        for agent in self.agents.values():
            agent.stop()
        self.serve.stop()
