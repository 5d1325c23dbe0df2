"""The readiness check: before each session the agent checks that the room can take
part, and tells the server (``readiness``), which tells the centre's staff if not.

Checks (each a pure rule over what the agent observed):

- ``camera``: the capture delivered a frame within ``FRESH_SECONDS`` (the synthetic
  camera always does); a missing, busy or stalled device fails with its reason.
- ``microphone``: the capture delivered a sample above the silence floor within
  ``SOUND_SECONDS`` (digital silence fails: a muted or dead input).
- ``signalling``: a ping's round trip to the server, within ``PING_TIMEOUT``.
- ``turn``: each TURN URL of the welcome's ICE servers is probed for real: with the
  room's check credential (signalling.turn; a fresh one comes with the ``pong`` of
  the check's own ping, as the welcome's expires after ``turn_check_seconds``), an
  allocation (over UDP, TCP or TLS for ``turns:``), released at once; a server given
  without a credential gets a STUN binding request (a TCP connection for ``turns:``).
  It passes if one answers, and with none configured it passes as "not
  configured". A refused allocation says
  ``credential refused (401)`` or ``allocation refused (<code>)``, never the
  username or the password.
- ``clock``: the offset to the server's clock is known from a round trip of at
  most ``CLOCK_MAX_RTT`` (so it is within half that).

When: a session is due from ``start - lead`` (the agent's ``readiness_lead``) until
its start, unless it is over or reserve-only; it is checked when it becomes due,
again every ``RECHECK_FAILING`` seconds while it fails (so a repaired room sends
its recovery) and every ``RECHECK_PASSING`` seconds while it passes. Each new
connection forgets the results (they may not have arrived) and also runs one check
for the room itself (no session), so the dashboard knows every connected room. A
check waits, at most ``SETTLE_SECONDS``, for devices still opening and for the
first clock measurement, so a room that just started is not reported failing.

A device that changes its verdict also runs a check at once: the camera and
microphone checks are evaluated every second (and at once when a guarded source
fails or comes back, room_agents.capture), and when one no longer says what the
latest report said (a camera unplugged, a capture that ended, a source that raised;
or its recovery), a fresh check is sent for the room's open sessions (``open_sessions``:
those it is in, and those from ``start - lead`` until their end) or, with none, for
the room. At most one such report every ``DEVICE_REPORT_SPACING`` seconds, so a
flapping device cannot flood the server. A room in a live session is checked no
other way: without this, a camera that died at T would go unreported.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
import os
import ssl
import struct
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol
from urllib.parse import parse_qs

import aioice.turn
from aioice.stun import TransactionFailed, TransactionTimeout

from common import turn
from common.sessions import RESERVE_ONLY
from common.waits import sleep_or_wake
from signalling import protocol as p
from signalling.client import SignallingClient, SignallingError

log = logging.getLogger(__name__)

FRESH_SECONDS: Final = 3.0
SOUND_SECONDS: Final = 5.0
PING_TIMEOUT: Final = 5.0
TURN_TIMEOUT: Final = 3.0
CLOCK_MAX_RTT: Final = 1.0
RECHECK_PASSING: Final = 120.0
RECHECK_FAILING: Final = 15.0
SETTLE_SECONDS: Final = 10.0
DEVICE_REPORT_SPACING: Final = 5.0
DEVICE_CHECKS: Final = ("camera", "microphone")
TURN_PORTS: Final = {"turn": 3478, "turns": 5349}
STUN_MAGIC: Final = 0x2112A442
STUN_BINDING_REQUEST: Final = 0x0001
SYNTHETIC: Final = "synthetic"


# --- the rules --------------------------------------------------------------------------


def _check(name: str, ok: bool, detail: str) -> p.ReadinessCheck:
    return p.ReadinessCheck(name=name, ok=ok, detail=detail[: p.MAX_CHECK_DETAIL])


def camera_check(status: Mapping[str, Any], fresh: float = FRESH_SECONDS) -> p.ReadinessCheck:
    """``status``: the camera's device status (room_agents.capture)."""
    spec = str(status.get("spec", ""))
    if spec == SYNTHETIC and status.get("state") == "ok":
        return _check("camera", True, "synthetic test picture")
    age = status.get("last_frame_age")
    if status.get("state") == "ok" and age is not None and age <= fresh:
        return _check("camera", True, f"{spec}: delivering ({status.get('frames', 0)} frames)")
    if status.get("error"):
        return _check("camera", False, str(status["error"]))
    if age is None:
        return _check("camera", False, f"{spec}: no frame yet")
    return _check("camera", False, f"{spec}: no frame for {age:.0f} s")


def microphone_check(status: Mapping[str, Any], fresh: float = SOUND_SECONDS) -> p.ReadinessCheck:
    """``status``: the microphone's device status; ``level`` is an RMS fraction of
    full scale, ``last_sound_age`` the seconds since a sample above the floor."""
    spec = str(status.get("spec", ""))
    if spec == SYNTHETIC and status.get("state") == "ok":
        return _check("microphone", True, "synthetic tone")
    sound_age = status.get("last_sound_age")
    if status.get("state") == "ok" and sound_age is not None and sound_age <= fresh:
        level = float(status.get("level") or 0.0)
        dbfs = 20 * math.log10(level) if level > 0 else -math.inf
        return _check("microphone", True, f"{spec}: sound at {dbfs:.0f} dBFS")
    if status.get("error"):
        return _check("microphone", False, str(status["error"]))
    if status.get("state") == "ok":
        return _check("microphone", False, f"{spec}: only silence (zero samples)")
    return _check("microphone", False, f"{spec}: no samples yet")


def signalling_check(rtt: float | None, error: str | None = None) -> p.ReadinessCheck:
    if rtt is None:
        return _check("signalling", False, error or "not connected")
    return _check("signalling", True, f"round trip {rtt * 1000:.0f} ms")


def clock_check(best_rtt: float | None, offset: float) -> p.ReadinessCheck:
    """The offset is known when a round trip of at most ``CLOCK_MAX_RTT`` measured it."""
    if best_rtt is None or best_rtt > CLOCK_MAX_RTT:
        what = "not measured" if best_rtt is None else f"best round trip {best_rtt:.1f} s"
        return _check("clock", False, f"offset to the server unknown ({what})")
    return _check("clock", True, f"offset {offset:+.3f} s (± {best_rtt / 2:.3f} s)")


@dataclass(frozen=True, slots=True)
class TurnTarget:
    url: str
    host: str
    port: int
    transport: str  # udp or tcp
    tls: bool
    username: str | None = None
    password: str | None = field(default=None, repr=False)


def parse_turn_url(url: str) -> TurnTarget | None:
    """``turn:host[:port][?transport=udp|tcp]`` or ``turns:...`` (RFC 7065); None for
    anything else (``stun:`` URLs, typos)."""
    scheme, sep, rest = url.partition(":")
    scheme = scheme.lower()
    if not sep or scheme not in TURN_PORTS:
        return None
    address, _, query = rest.partition("?")
    transports = parse_qs(query).get("transport", [])
    transport = (transports[0] if transports else ("tcp" if scheme == "turns" else "udp")).lower()
    if transport not in ("udp", "tcp"):
        return None
    if address.startswith("["):  # an IPv6 literal
        host, _, tail = address[1:].partition("]")
        port_text = tail.removeprefix(":")
    else:
        host, _, port_text = address.partition(":")
    try:
        port = int(port_text) if port_text else TURN_PORTS[scheme]
    except ValueError:
        return None
    if not host or not 0 < port < 65536:
        return None
    return TurnTarget(url, host, port, "tcp" if scheme == "turns" else transport, scheme == "turns")


def turn_targets(servers: Iterable[p.IceServer], now: float | None = None) -> list[TurnTarget]:
    """The TURN URLs to probe, with their credential; a credential of ours that has
    expired at ``now`` (server clock: the room stayed connected longer than the check
    credential lasts) is left out, so the server gets a binding request instead."""
    out = []
    for s in servers:
        username = s.username
        parts = turn.parse_turn_username(username) if username is not None else None
        if parts is not None and now is not None and now >= parts.expires:
            username = None
        for url in s.urls:
            target = parse_turn_url(url)
            if target is not None:
                out.append(dataclasses.replace(target, username=username, password=s.credential))
    return out


def allocation_refusal(code: int) -> str:
    """The stable detail of a TURN error response to an Allocate request."""
    if code == 401:
        return "credential refused (401)"
    return f"allocation refused ({code})"


def turn_check(results: Sequence[tuple[TurnTarget, str | None]]) -> p.ReadinessCheck:
    """``results``: each target with None (it answered) or why not."""
    if not results:
        return _check("turn", True, "not configured")
    answered = [t.url for t, error in results if error is None]
    failed = [f"{t.url}: {error}" for t, error in results if error is not None]
    if answered:
        detail = "reachable: " + ", ".join(answered)
        if failed:
            detail += "; not: " + "; ".join(failed)
        return _check("turn", True, detail)
    return _check("turn", False, "unreachable: " + "; ".join(failed))


@dataclass(frozen=True, slots=True)
class LastCheck:
    at: float  # server clock
    ok: bool


def due_sessions(
    entries: Iterable[p.ScheduleEntry],
    now: float,
    lead: float,
    last: Mapping[str, LastCheck],
    recheck_passing: float = RECHECK_PASSING,
    recheck_failing: float = RECHECK_FAILING,
) -> list[p.ScheduleEntry]:
    """The sessions to check at ``now`` (see the module's rules)."""
    due = []
    for entry in entries:
        if entry.state in p.TERMINAL_SESSION_STATES or entry.connect_mode == RESERVE_ONLY:
            continue
        if not entry.start - lead <= now < entry.start:
            continue
        previous = last.get(entry.session_id)
        if previous is None or now - previous.at >= (
            recheck_passing if previous.ok else recheck_failing
        ):
            due.append(entry)
    return due


def open_sessions(
    entries: Iterable[p.ScheduleEntry], now: float, lead: float, joined: Iterable[str]
) -> list[str]:
    """The sessions a change of the room's devices is reported for: those the room is
    in (``joined``), and those from ``start - lead`` until their end that it joins by
    itself (not over, not reserve-only), in schedule order."""
    inside = set(joined)
    out = []
    for entry in entries:
        if entry.state in p.TERMINAL_SESSION_STATES:
            continue
        if entry.session_id in inside or (
            entry.connect_mode != RESERVE_ONLY and entry.start - lead <= now < entry.end
        ):
            out.append(entry.session_id)
    return out


def device_verdicts(devices: Mapping[str, Any]) -> dict[str, bool]:
    """Whether the camera and the microphone pass their checks now."""
    return {
        "camera": camera_check(devices.get("camera") or {}).ok,
        "microphone": microphone_check(devices.get("microphone") or {}).ok,
    }


def devices_changed(latest: p.Readiness | None, devices: Mapping[str, Any]) -> list[str]:
    """The device checks whose verdict now differs from the ``latest`` report's (none
    before the first report: the check at connection comes first)."""
    if latest is None:
        return []
    reported = {c.name: c.ok for c in latest.checks}
    now = device_verdicts(devices)
    return [name for name in DEVICE_CHECKS if name in reported and reported[name] != now[name]]


def stun_binding_request(transaction: bytes) -> bytes:
    """A STUN Binding request with no attributes (RFC 8489 §5)."""
    return struct.pack("!HHI12s", STUN_BINDING_REQUEST, 0, STUN_MAGIC, transaction)


def is_stun_answer(data: bytes, transaction: bytes) -> bool:
    """Any STUN response (success or error) to our transaction: the server is there."""
    if len(data) < 20:
        return False
    kind, _, magic, tid = struct.unpack("!HHI12s", data[:20])
    return magic == STUN_MAGIC and tid == transaction and (kind & 0x0110) in (0x0100, 0x0110)


# --- probes (IO) ------------------------------------------------------------------------


class _StunAnswer(asyncio.DatagramProtocol):
    def __init__(self, transaction: bytes) -> None:
        self.transaction = transaction
        self.answered: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if is_stun_answer(data, self.transaction) and not self.answered.done():
            self.answered.set_result(None)

    def error_received(self, exc: Exception) -> None:
        if not self.answered.done():
            self.answered.set_exception(exc)


class _Released(asyncio.DatagramProtocol):
    """The relayed endpoint's protocol: knows when the allocation is released."""

    def __init__(self) -> None:
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


async def allocate_turn(
    target: TurnTarget,
    timeout: float = TURN_TIMEOUT,
    ssl_context: ssl.SSLContext | None = None,
) -> str | None:
    """None when the server granted an allocation with the target's credential within
    ``timeout`` (released at once); otherwise why not. ``turns:`` checks the server's
    certificate with ``ssl_context`` (default: the system's CAs, and the agent's
    ``turn_ca_file`` when room_agents.turn_tls is installed)."""
    try:
        async with asyncio.timeout(timeout):
            # Through the module: room_agents.turn_tls's private CA applies here too.
            transport, protocol = await aioice.turn.create_turn_endpoint(
                _Released,
                (target.host, target.port),
                username=target.username,
                password=target.password,
                ssl=(ssl_context or True) if target.tls else None,
                transport=target.transport,
            )
            transport.close()
            await protocol.closed  # the allocation is deleted (or given up)
        return None
    except TransactionFailed as exc:
        code, _reason = exc.response.attributes.get("ERROR-CODE", (0, ""))
        return allocation_refusal(int(code))
    except TransactionTimeout:
        return "no answer to the allocation"
    except TimeoutError:
        return f"no answer within {timeout:g} s"
    except ssl.SSLError as exc:
        return f"TLS: {exc.reason or type(exc).__name__}"
    except ConnectionRefusedError:
        return "connection refused"
    except ConnectionError as exc:
        return f"connection failed ({type(exc).__name__})"
    except OSError as exc:
        return exc.strerror or type(exc).__name__


async def probe_turn(target: TurnTarget, timeout: float = TURN_TIMEOUT) -> str | None:
    """None when the server answered: an allocation with the target's credential, or
    without one a STUN binding request (``turns:``: a TCP connection) within
    ``timeout``; otherwise why not."""
    if target.username is not None and target.password is not None:
        return await allocate_turn(target, timeout)
    transaction = os.urandom(12)
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(timeout):
            if target.transport == "udp":
                transport, protocol = await loop.create_datagram_endpoint(
                    lambda: _StunAnswer(transaction), remote_addr=(target.host, target.port)
                )
                try:
                    # Datagrams get lost: ask again every half second until the deadline.
                    while not protocol.answered.done():
                        transport.sendto(stun_binding_request(transaction))
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(asyncio.shield(protocol.answered), 0.5)
                    protocol.answered.result()
                finally:
                    transport.close()
                return None
            reader, writer = await asyncio.open_connection(target.host, target.port)
            try:
                if not target.tls:
                    writer.write(stun_binding_request(transaction))
                    await writer.drain()
                    header = await reader.readexactly(20)
                    if not is_stun_answer(header, transaction):
                        return "not a STUN server"
            finally:
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
            return None
    except TimeoutError:
        return f"no answer within {timeout:g} s"
    except asyncio.IncompleteReadError:
        return "closed the connection"
    except ConnectionRefusedError:
        return "connection refused"
    except OSError as exc:
        return exc.strerror or type(exc).__name__


# --- the runner -------------------------------------------------------------------------


class _Clock(Protocol):
    def now(self) -> float: ...


class _Devices(Protocol):
    def status(self) -> dict[str, Any]: ...


class AgentView(Protocol):
    """What the runner reads of the agent (room_agents.agent.RoomAgent)."""

    @property
    def client(self) -> SignallingClient | None: ...

    @property
    def clock(self) -> _Clock: ...

    @property
    def entries(self) -> list[p.ScheduleEntry]: ...

    @property
    def ice_servers(self) -> list[p.IceServer]: ...

    @property
    def devices(self) -> _Devices: ...

    @property
    def sessions(self) -> Mapping[str, object]:
        """The sessions the room is in, by id."""
        ...


class ReadinessRunner:
    """Runs the checks when they are due and sends them; owned by the agent, which
    runs ``run()`` as one of its loops and calls ``connected()`` on each welcome."""

    def __init__(
        self,
        agent: AgentView,
        lead: float,
        *,
        settle: float = SETTLE_SECONDS,
        turn_timeout: float = TURN_TIMEOUT,
        recheck_passing: float = RECHECK_PASSING,
        recheck_failing: float = RECHECK_FAILING,
        device_spacing: float = DEVICE_REPORT_SPACING,
    ) -> None:
        self.agent = agent
        self.lead = lead
        self.settle = settle
        self.turn_timeout = turn_timeout
        self.recheck_passing = recheck_passing
        self.recheck_failing = recheck_failing
        self.device_spacing = device_spacing
        self.device_reports = 0  # reports sent because a device changed its verdict
        self._device_report_at: float | None = None  # monotonic
        self.last: dict[str, LastCheck] = {}
        self.latest: p.Readiness | None = None
        self.sent = 0
        self._started = time.monotonic()
        self._connected_at = self._started
        self._room_check_pending = False
        self._wake = asyncio.Event()

    def connected(self) -> None:
        """A new connection: check the room now, and due sessions again."""
        self.last.clear()
        self._room_check_pending = True
        self._connected_at = time.monotonic()
        self._wake.set()

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        while True:
            try:
                await self.step()
            except (asyncio.CancelledError, KeyboardInterrupt):
                raise
            except Exception:
                log.exception("readiness check failed to run")
            await sleep_or_wake(self._wake, 1.0)

    def _settled(self, client: SignallingClient, devices: Mapping[str, Any]) -> bool:
        """Devices have opened (or failed) and the clock was measured, or waited for long
        enough."""
        now = time.monotonic()
        opening = any(
            isinstance(d, Mapping) and d.get("state") == "starting" for d in devices.values()
        )
        if opening and now - self._started < self.settle:
            return False
        best = client.clock_offset.best_rtt
        measured = best is not None and best <= CLOCK_MAX_RTT
        return measured or now - self._connected_at >= self.settle

    async def step(self) -> list[p.Readiness]:
        """Run and send the checks due now; returns what was sent."""
        agent = self.agent
        client = agent.client
        if client is None:
            return []
        due = due_sessions(
            agent.entries,
            agent.clock.now(),
            self.lead,
            self.last,
            self.recheck_passing,
            self.recheck_failing,
        )
        devices = agent.devices.status()
        changed = self._device_change(devices)
        if not due and not self._room_check_pending and not changed:
            return []
        if not self._settled(client, devices):
            return []
        checks = await self.check(client, devices)
        at = agent.clock.now()
        ok = all(c.ok for c in checks)
        session_ids: list[str | None] = [e.session_id for e in due]
        if changed:
            self._device_report_at = time.monotonic()
            self.device_reports += 1
            log.info("readiness: %s changed, checking now", " and ".join(changed))
            opened = open_sessions(agent.entries, at, self.lead, agent.sessions)
            session_ids += [s for s in opened if s not in session_ids]
        session_ids = session_ids or [None]
        messages = [p.Readiness(ok=ok, checks=checks, at=at, session_id=s) for s in session_ids]
        sent = []
        for message in messages:
            try:
                await client.send(message)
            except SignallingError as exc:
                log.warning("readiness not sent: %s", exc)
                break  # not recorded: due again on the next connection
            sent.append(message)
            if message.session_id is not None:
                self.last[message.session_id] = LastCheck(at, ok)
        if sent:
            self._room_check_pending = False
            self.latest = sent[-1]
            self.sent += len(sent)
            failing = [f"{c.name} ({c.detail})" for c in checks if not c.ok]
            log.log(
                logging.INFO if ok else logging.WARNING,
                "readiness %s%s",
                "ok" if ok else "FAILING: " + "; ".join(failing),
                "".join(f" for {m.session_id}" for m in sent if m.session_id),
            )
        return sent

    def _device_change(self, devices: Mapping[str, Any]) -> list[str]:
        """The device checks that changed since the latest report, if a report for
        them may be sent now (``device_spacing``)."""
        at = self._device_report_at
        if at is not None and time.monotonic() - at < self.device_spacing:
            return []
        return devices_changed(self.latest, devices)

    async def check(
        self, client: SignallingClient, devices: Mapping[str, Any]
    ) -> list[p.ReadinessCheck]:
        """Every check, now."""
        fresh: list[p.IceServer] | None = None
        try:
            rtt, fresh = await client.ping_for_ice(PING_TIMEOUT)
            signalling = signalling_check(rtt)
        except (SignallingError, TimeoutError) as exc:
            signalling = signalling_check(None, f"no answer to a ping: {exc}")
        # The pong's servers carry a fresh check credential; the welcome's may have expired.
        servers = fresh if fresh is not None else self.agent.ice_servers
        targets = turn_targets(servers, self.agent.clock.now())
        answers = await asyncio.gather(*(probe_turn(t, self.turn_timeout) for t in targets))
        offset = client.clock_offset
        return [
            camera_check(devices.get("camera") or {}),
            microphone_check(devices.get("microphone") or {}),
            signalling,
            turn_check(list(zip(targets, answers, strict=True))),
            clock_check(offset.best_rtt, offset.offset),
        ]

    def status(self) -> dict[str, Any] | None:
        """The latest check sent, for the agent's status file."""
        return dataclasses.asdict(self.latest) if self.latest is not None else None
