"""The product itself across the network lab: coturn and ``telecentre serve`` in the WAN,
real ``telecentre agent`` processes in the sites' LANs.

- coturn on ``lab.wan_host("turn")`` as every lab test starts it (tests/netlab/turn.py):
  TURN over UDP and TCP on 3478, TLS on 443 with a certificate of its own CA
  (tests/certificates.py), the REST API secret scheme, relay ports 40000-40999 on the
  same address (relay to relay works: no catch-all ``denied-peer-ip``, docs/deploy.md).
- ``telecentre serve`` on ``lab.wan_host("service")``, HTTPS on 443 (its own
  certificate, which agents trust with ``--ca-file``), SQLite in ``work``, with the
  deployment's settings: ``stun_urls``/``turn_urls`` (UDP, TCP, TLS on 443)
  and the secret file, ``candidate_networks`` = the lab's block (``turn_relay_networks``
  the TURN host).
- Agents in a site's LAN (``site.lan.spawn``) with ``--ca-file`` (the service's
  certificate), ``--turn-ca-file`` (coturn's: the product's setting for a private CA)
  and a status file the test reads (``LabAgent.status()``).
- Centres, rooms (and their ICE policy) and bookings are made with the product's own CLI
  (``Cli``, the one booking door) on the SQLite file, which the running service picks up
  within a second. The test process stays in the host namespace: it reaches the
  service's HTTP through a socket made in the WAN namespace (``get``), so the lab needs
  no route to the host.

Build the lab with ``DEPLOYMENT_CENTRES`` (the ``deployment_lab`` fixture): ``CENTRES``
whose B firewall also lets out HTTPS to the service, or B's agent could not sign in.

Every process is the lab's (``Namespace.spawn``): ``Lab.aclose`` stops them all, and
``Deployment.stop`` stops one deployment's early (another may then start in the same
lab, as bench/network_product.py does per mode). A room of site "wan" runs in the WAN
itself; ``Deployment.start(..., turn_transports=("tls",))`` lists only those TURN URLs.
Agents report the pair their media flows on in their status (``pairs``: per session
and peer, local and remote candidate types). Logs are files in ``work``
(``serve.log``, ``turnserver.log``, ``agents/<room>/agent.log``).

    async def test_x(deployment_lab: Lab, tmp_path: Path) -> None:
        dep = await Deployment.start(deployment_lab, tmp_path)
        a = await dep.add_room("a", site="a")                 # centre "a", room "a"
        b = await dep.add_room("b", site="b", ice_policy="relay")
        await dep.start_agents("a", "b")                      # and wait until both are online
        start = time.time() + 12
        session = await dep.book(start, start + 10, ["a", "b"], lead=8)
        ...  # dep.agents["a"].status(), await dep.session(session), await dep.get("/api/...")
        guest_id, url = await dep.guest_link(session, "Ada")  # open url in a guest browser
        dep.assert_clean_logs()
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import ssl
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.certificates import self_signed
from tests.e2e_support import ROOT, Cli, base_env
from tests.netlab.lab import Lab, Namespace
from tests.netlab.turn import PORT as TURN_PORT
from tests.netlab.turn import TLS_PORT, CoturnFiles, coturn_files, start_coturn

SERVICE_PORT = 443  # HTTPS: a 443-only firewall lets it out
TURN_SECRET = "netlab-deployment-secret"
START_TIMEOUT = 30.0  # serve, coturn, an agent online: bounded waits
POLL = 0.05


def turn_urls(lab: Lab) -> dict[str, str]:
    """The lab's TURN URLs by transport: ``udp``, ``tcp`` and ``tls`` (443)."""
    turn = lab.wan_host("turn")
    return {
        "udp": f"turn:{turn}:{TURN_PORT}?transport=udp",
        "tcp": f"turn:{turn}:{TURN_PORT}?transport=tcp",
        "tls": f"turns:{turn}:{TLS_PORT}?transport=tcp",
    }


def service_env(
    lab: Lab,
    data_dir: Path,
    secret_file: Path,
    tls: tuple[Path, Path],
    turn_transports: Sequence[str] = ("udp", "tcp", "tls"),
) -> dict[str, str]:
    """``telecentre serve``'s settings for the lab (environment, as a deployment's
    unit); ``turn_transports`` picks the TURN URLs it lists (none: STUN only)."""
    turn, service = lab.wan_host("turn"), lab.wan_host("service")
    urls = turn_urls(lab)
    env = base_env(
        TELECENTRE_HOST=service,
        TELECENTRE_PORT=str(SERVICE_PORT),
        TELECENTRE_PUBLIC_URL=f"https://{service}",
        TELECENTRE_TLS_CERT=str(tls[0]),
        TELECENTRE_TLS_KEY=str(tls[1]),
        TELECENTRE_DATA_DIR=str(data_dir),
        TELECENTRE_CANDIDATE_NETWORKS=lab.networks,
        TELECENTRE_TURN_RELAY_NETWORKS=f"{turn}/32",
        TELECENTRE_STUN_URLS=f"stun:{turn}:{TURN_PORT}",
        TELECENTRE_TURN_URLS=",".join(urls[t] for t in turn_transports),
        TELECENTRE_TURN_SECRET_FILE=str(secret_file),
        # The scheduler notices the CLI's bookings quickly (DESIGN: within a second).
        TELECENTRE_POLL_INTERVAL="0.2",
    )
    if not turn_transports:  # STUN only: no TURN URL, so no secret either
        del env["TELECENTRE_TURN_URLS"], env["TELECENTRE_TURN_SECRET_FILE"]
    return env


async def wait_for(what: str, condition: Any, timeout: float) -> Any:
    """``await condition()`` until it is truthy (bounded), its value."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            value = await condition()
        except (OSError, ValueError, KeyError) as exc:
            last, value = exc, None
        if value:
            return value
        await asyncio.sleep(POLL)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what} (last error: {last})")


@dataclass
class LabAgent:
    """A ``telecentre agent`` in a site's LAN; its status file and log."""

    room: str
    site: str
    directory: Path
    proc: asyncio.subprocess.Process | None = None

    @property
    def status_path(self) -> Path:
        return self.directory / "status.json"

    @property
    def log_path(self) -> Path:
        return self.directory / "agent.log"

    def status(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.status_path.read_text())
        return data

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@dataclass
class Deployment:
    """coturn, the service and room agents in a ``Lab`` (see the module docstring)."""

    lab: Lab
    work: Path
    cli: Cli
    turn_ca: Path  # coturn's certificate (its own CA), for --turn-ca-file
    service_ca: Path  # the service's, for --ca-file and the test's own requests
    rooms: dict[str, str] = field(default_factory=dict)  # room name -> room id
    centres: dict[str, str] = field(default_factory=dict)  # centre name -> centre id
    key_files: dict[str, Path] = field(default_factory=dict)
    agents: dict[str, LabAgent] = field(default_factory=dict)
    bookings: dict[str, str] = field(default_factory=dict)  # session id -> booking id
    processes: list[asyncio.subprocess.Process] = field(default_factory=list)

    @property
    def service_url(self) -> str:
        return f"https://{self.lab.wan_host('service')}"

    @property
    def turn_address(self) -> str:
        return self.lab.wan_host("turn")

    @property
    def serve_log(self) -> Path:
        return self.work / "serve.log"

    @property
    def turn_log(self) -> Path:
        return self.work / "turnserver.log"

    @classmethod
    def _prepare(
        cls, lab: Lab, work: Path, turn_transports: Sequence[str]
    ) -> tuple[Deployment, CoturnFiles, dict[str, str]]:
        """The files (certificates, secret, coturn's configuration); the deployment,
        coturn's files and the service's environment."""
        work.mkdir(parents=True, exist_ok=True)
        data = work / "data"
        data.mkdir(exist_ok=True)
        turn, service = lab.wan_host("turn"), lab.wan_host("service")
        turn_files = coturn_files(work, turn, secret=TURN_SECRET, tls=True, cert_prefix="turn-")
        assert turn_files.ca_file is not None
        service_tls = self_signed(
            work, common_name="netlab service", addresses=(service,), ca=True, prefix="service-"
        )
        secret_file = work / "turn-secret"
        secret_file.write_text(TURN_SECRET + "\n")
        secret_file.chmod(0o600)
        # The CLI prints links under the service's public address.
        cli = Cli(data, env={"TELECENTRE_PUBLIC_URL": f"https://{service}"})
        dep = cls(lab, work, cli, turn_files.ca_file, service_tls[0])
        return dep, turn_files, service_env(lab, data, secret_file, service_tls, turn_transports)

    @classmethod
    async def start(
        cls, lab: Lab, work: Path, turn_transports: Sequence[str] = ("udp", "tcp", "tls")
    ) -> Deployment:
        """coturn and the service, both answering, in ``lab``'s WAN; the service lists
        the TURN URLs of ``turn_transports`` (a benchmark measuring one transport)."""
        dep, turn_files, env = await asyncio.to_thread(cls._prepare, lab, work, turn_transports)
        dep.processes.append(await start_coturn(lab, turn_files))  # answering
        with dep.serve_log.open("ab") as serve_log:
            await dep._spawn(
                lab.wan,
                sys.executable,
                "-m",
                "web.cli",
                "serve",
                cwd=ROOT,
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=serve_log,
                stderr=asyncio.subprocess.STDOUT,
            )
        service = lab.wan_host("service")
        await wait_for(
            f"{service}:{SERVICE_PORT} to accept in the WAN",
            lambda: dep._accepts(service, SERVICE_PORT),
            START_TIMEOUT,
        )
        await wait_for("serve's /healthz", dep._healthy, START_TIMEOUT)
        return dep

    async def _spawn(self, ns: Namespace, *argv: str, **kwargs: Any) -> asyncio.subprocess.Process:
        proc = await ns.spawn(*argv, **kwargs)
        self.processes.append(proc)
        return proc

    async def stop(self, grace: float = 5.0) -> None:
        """Stop this deployment's processes (agents first, the service, coturn last),
        so that another can start in the same lab; the lab's own teardown would too."""
        for proc in reversed(self.processes):
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), grace)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
                await proc.wait()
        self.processes = []

    # --- HTTP from the host, through a socket of the WAN namespace ---------------------

    async def _connect(self, address: str, port: int) -> socket.socket:
        sock = self.lab.wan.socket(socket.SOCK_STREAM)
        try:
            await asyncio.wait_for(
                asyncio.get_running_loop().sock_connect(sock, (address, port)), 2
            )
        except BaseException:
            sock.close()
            raise
        return sock

    async def _accepts(self, address: str, port: int) -> bool:
        (await self._connect(address, port)).close()
        return True

    async def request(
        self, method: str, path: str, body: object = None, token: str | None = None
    ) -> tuple[int, bytes]:
        """One HTTP/1.0 request to the service (status, body), from the WAN namespace."""
        service = self.lab.wan_host("service")
        sock = await self._connect(service, SERVICE_PORT)
        context = ssl.create_default_context(cafile=str(self.service_ca))
        reader, writer = await asyncio.open_connection(
            sock=sock, ssl=context, server_hostname=service
        )
        try:
            payload = b"" if body is None else json.dumps(body).encode()
            head = [
                f"{method} {path} HTTP/1.0",
                f"Host: {service}",
                f"Content-Length: {len(payload)}",
            ]
            if body is not None:
                head.append("Content-Type: application/json")
            if token is not None:
                head.append(f"Authorization: Bearer {token}")
            writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + payload)
            await writer.drain()
            raw = await asyncio.wait_for(reader.read(), 10)
        finally:
            writer.close()
        header, _, content = raw.partition(b"\r\n\r\n")
        return int(header.split(b" ", 2)[1]), content

    async def get(self, path: str, token: str | None = None) -> Any:
        status, content = await self.request("GET", path, token=token)
        if status != 200:
            raise AssertionError(f"GET {path}: HTTP {status}: {content[:200]!r}")
        return json.loads(content) if path.startswith("/api/") else content.decode()

    async def _healthy(self) -> bool:
        status, _ = await self.request("GET", "/healthz")
        return status == 200

    # --- the product's CLI (the one booking door) --------------------------------------

    async def run_cli(self, *args: str) -> dict[str, Any]:
        return await asyncio.to_thread(self.cli.run, *args)

    async def add_room(
        self, name: str, site: str, centre: str | None = None, zone: str = "UTC",
        ice_policy: str = "all",
    ) -> str:  # fmt: skip
        """A room (in centre ``centre``, default: its own name) whose agent will run in
        ``site``'s LAN ("wan": in the WAN itself); its key in a file. Returns the room id."""
        centre = centre or name
        if centre not in self.centres:
            made = await self.run_cli("centre", "add", centre, "--timezone", zone)
            self.centres[centre] = made["id"]
        out = await self.run_cli("room", "add", "--centre", self.centres[centre], name)
        room_id: str = out["id"]
        if ice_policy != "all":
            await self.run_cli("room", "set", room_id, "--ice-policy", ice_policy)
        key_file = self.work / f"{name}.key"
        key_file.write_text(out["key"] + "\n")
        key_file.chmod(0o600)
        self.rooms[name], self.key_files[name] = room_id, key_file
        self.agents[name] = LabAgent(name, site, self.work / "agents" / name)
        return room_id

    async def book(
        self, start: float, end: float, rooms: Sequence[str], lead: int, title: str = "lab"
    ) -> str:
        """An automatic session of ``rooms`` from ``start`` to ``end`` (epoch seconds)
        with ``lead`` seconds of pre-roll; its session id."""
        args = ["book", "--title", title, "--lead", str(lead)]
        args += ["--start", datetime.fromtimestamp(start, UTC).isoformat()]
        args += ["--end", datetime.fromtimestamp(end, UTC).isoformat()]
        for room in rooms:
            args += ["--room", self.rooms[room]]
        made = await self.run_cli(*args)
        session_id: str = made["session_id"]
        self.bookings[session_id] = made["booking_id"]
        return session_id

    async def guest_link(self, session_id: str, name: str) -> tuple[str, str]:
        """A guest invited to ``session_id``'s booking (the CLI, as the booking page's
        form does it): (guest id, their link on the service's public address)."""
        made = await self.run_cli("booking", "guest", self.bookings[session_id], name)
        return made["guest_id"], made["url"]

    async def session(self, session_id: str) -> dict[str, Any]:
        return await self.run_cli("session", "show", session_id)

    # --- agents ------------------------------------------------------------------------

    async def start_agent(self, room: str, *extra: str) -> LabAgent:
        """Start ``room``'s agent in its site's LAN (640x360, synthetic camera)."""
        agent = self.agents[room]
        agent.directory.mkdir(parents=True, exist_ok=True)
        argv = [
            sys.executable, "-m", "web.cli", "agent",
            "--server", self.service_url,
            "--key-file", str(self.key_files[room]),
            "--cache-dir", str(agent.directory),
            "--status-file", str(agent.status_path),
            "--ca-file", str(self.service_ca),
            "--turn-ca-file", str(self.turn_ca),
            "--label", room,
            "--width", "640", "--height", "360",
            *extra,
        ]  # fmt: skip
        with agent.log_path.open("ab") as log:
            # Site "wan": a room on a public address (no NAT in front of it).
            namespace = self.lab.wan if agent.site == "wan" else self.lab.site(agent.site).lan
            agent.proc = await namespace.spawn(
                *argv,
                cwd=ROOT,
                env=base_env(),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
            )

        self.processes.append(agent.proc)  # stopped first by ``stop``
        return agent

    async def start_agents(self, *rooms: str) -> None:
        """Start the agents of ``rooms`` and wait until each is connected."""
        for room in rooms:
            await self.start_agent(room)
        for room in rooms:
            await self.online(room)

    async def online(self, room: str, timeout: float = START_TIMEOUT) -> None:
        agent = self.agents[room]

        async def connected() -> bool:
            if agent.proc is not None and agent.proc.returncode is not None:
                raise AssertionError(f"agent {room} exited:\n{agent.log()[-3000:]}")
            return bool(agent.status().get("connected"))

        await wait_for(f"agent {room} online", connected, timeout)

    # --- checks ------------------------------------------------------------------------

    def logs(self) -> dict[str, str]:
        """Every log of the deployment, by name."""
        out = {"serve": self.serve_log.read_text(errors="replace")}
        out.update({f"agent {r}": a.log() for r, a in self.agents.items()})
        return out

    def assert_clean_logs(self) -> None:
        """No room key, TURN secret or ticket in any log; no candidate refused by the
        service's filter or dropped by an agent's (an address outside the lab)."""
        keys = [p.read_text().strip() for p in self.key_files.values()]
        for name, text in self.logs().items():
            for key in keys:
                assert key not in text, f"a room key in the {name} log"
            assert TURN_SECRET not in text, f"the TURN secret in the {name} log"
            assert "candidate-not-allowed" not in text, f"{name}: a candidate was refused"
        for room, agent in self.agents.items():
            if agent.status_path.exists():
                assert agent.status()["violations"] == [], f"agent {room} dropped candidates"
