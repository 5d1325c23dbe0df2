"""IO at the edge of the lab: commands, namespaces, sockets made inside a namespace,
and the processes the lab starts (each in its own process group, killed at teardown).
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")
PREFIX = "netlab-"
NETNS_DIR = Path("/var/run/netns")
CLONE_NEWNET = 0x40000000
_LEFTOVER = re.compile(rf"^{PREFIX}(\d+)-")


def run(*argv: str, check: bool = True, stdin: str | None = None) -> str:
    """Run a command to completion (20 s at most); its stdout. Raises with its stderr."""
    proc = subprocess.run(argv, capture_output=True, text=True, input=stdin, timeout=20)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout


def in_ns(ns: str, *argv: str) -> list[str]:
    return ["ip", "netns", "exec", ns, *argv]


def available() -> str | None:
    """None if this machine can build the lab; else why not."""
    for tool, package in (
        ("ip", "iproute2"),
        ("tc", "iproute2"),
        ("iptables", "iptables"),
        ("iptables-restore", "iptables"),
        ("conntrack", "conntrack"),
    ):
        if shutil.which(tool) is None:
            return f"{tool} ({package}) is not installed"
    if os.geteuid() != 0:
        return "the network lab needs root (network namespaces, iptables)"
    probe = f"{PREFIX}{os.getpid()}-probe"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"ip netns add is not permitted here: {made.stderr.strip()}"
    try:
        nat = subprocess.run(
            in_ns(probe, "iptables", "-t", "nat", "-L", "-n"), capture_output=True, text=True
        )
        if nat.returncode != 0:
            return f"iptables' nat table does not work in a namespace: {nat.stderr.strip()}"
    finally:
        subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


def netem_available(ns: str) -> bool:
    """Whether the kernel has the netem qdisc (tried on the namespace's loopback)."""
    added = subprocess.run(
        ["tc", "-n", ns, "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms"],
        capture_output=True,
    )
    if added.returncode != 0:
        return False
    subprocess.run(["tc", "-n", ns, "qdisc", "del", "dev", "lo", "root"], capture_output=True)
    return True


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def kill_inside(ns: str, rounds: int = 20) -> None:
    """SIGKILL every process still running in namespace ``ns`` (a daemon that forked
    away from its group, say), so that deleting the namespace really frees it. Again
    until none is left: a shell may fork a child while its parent is being killed."""
    for _ in range(rounds):
        listed = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True)
        pids = [int(pid) for pid in listed.stdout.split() if pid.isdigit()]
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def delete_ns(ns: str) -> None:
    kill_inside(ns)
    subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def lab_namespaces() -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.startswith(PREFIX)]


def clean_leftovers() -> list[str]:
    """Delete the namespaces of earlier lab runs whose process is gone (a crashed or
    killed run); a lab of a run still alive (another test session) is left alone.
    Their veths and iptables rules live inside them and go with them."""
    removed = []
    for ns in lab_namespaces():
        owner = _LEFTOVER.match(ns)
        if owner is not None and not _pid_alive(int(owner.group(1))):
            delete_ns(ns)
            removed.append(ns)
    return removed


_libc: ctypes.CDLL | None = None


def _setns(fd: int) -> None:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


def call_in_ns(ns: str, fn: Callable[[], T]) -> T:
    """Call ``fn`` in a fresh thread that has joined network namespace ``ns``.

    A socket belongs to the namespace it was made in for its whole life, so a socket
    made here can then be used from any thread or event loop of the test process
    (Python 3.11 has no os.setns: libc's setns moves only the calling thread).
    """
    result: list[T] = []
    error: list[BaseException] = []

    def body() -> None:
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        target = os.open(NETNS_DIR / ns, os.O_RDONLY)
        try:
            _setns(target)
            try:
                result.append(fn())
            finally:
                _setns(home)
        except BaseException as exc:  # handed to the caller's thread
            error.append(exc)
        finally:
            os.close(target)
            os.close(home)

    thread = threading.Thread(target=body, name=f"netns {ns}")
    thread.start()
    thread.join()
    if error:
        raise error[0]
    return result[0]


def socket_in_ns(
    ns: str, kind: socket.SocketKind = socket.SOCK_DGRAM, bind: tuple[str, int] | None = None
) -> socket.socket:
    """An IPv4 socket of namespace ``ns``, non-blocking, bound to ``bind`` if given."""

    def make() -> socket.socket:
        sock = socket.socket(socket.AF_INET, kind)
        try:
            sock.setblocking(False)
            if kind == socket.SOCK_STREAM:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if bind is not None:
                sock.bind(bind)
        except BaseException:
            sock.close()
            raise
        return sock

    return call_in_ns(ns, make)


def _kill_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


class Processes:
    """The processes the lab started, each leading its own process group."""

    def __init__(self) -> None:
        self._async: list[asyncio.subprocess.Process] = []
        self._sync: list[subprocess.Popen[bytes]] = []

    async def spawn(self, ns: str, *argv: str, **kwargs: object) -> asyncio.subprocess.Process:
        proc = await asyncio.create_subprocess_exec(
            *in_ns(ns, *argv),
            start_new_session=True,
            **kwargs,  # type: ignore[arg-type]
        )
        self._async.append(proc)
        return proc

    def popen(self, ns: str, *argv: str, **kwargs: object) -> subprocess.Popen[bytes]:
        proc: subprocess.Popen[bytes] = subprocess.Popen(
            in_ns(ns, *argv),
            start_new_session=True,
            **kwargs,  # type: ignore[call-overload]
        )
        self._sync.append(proc)
        return proc

    async def aclose(self, grace: float = 2.0) -> None:
        """SIGTERM each group, SIGKILL after ``grace`` seconds, and reap them."""
        procs, self._async = self._async, []
        for proc in procs:
            if proc.returncode is None:
                _kill_group(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                await asyncio.wait_for(proc.wait(), grace)
            except TimeoutError:
                _kill_group(proc.pid, signal.SIGKILL)
                await proc.wait()

    def close(self, grace: float = 2.0) -> None:
        """Stop the synchronous ones the same way; SIGKILL any asynchronous one that
        ``aclose`` did not get to (its loop's child watcher reaps it)."""
        for aproc in self._async:
            if aproc.returncode is None:
                _kill_group(aproc.pid, signal.SIGKILL)
        self._async = []
        procs, self._sync = self._sync, []
        for proc in procs:
            if proc.poll() is None:
                _kill_group(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                _kill_group(proc.pid, signal.SIGKILL)
                proc.wait()
