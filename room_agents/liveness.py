"""Is the media path to a peer alive? An application ping on a data channel.

aiortc has no ICE restart, and its own consent checks take about 30 s to call a
path dead (DESIGN "aiortc facts"). So every peer connection between agents
carries a data channel on which both sides ping and answer each other's pings;
a path that goes silent is found within ``DEAD_AFTER`` seconds, and the agent
rebuilds the connection (room_agents.calls: the peer whose id sorts first offers
again, as after an ICE failure).

Rules:

- The channel is negotiated out of band (both sides create id ``CHANNEL_ID``; no
  DCEP open message), unordered and with no retransmission: a late ping proves
  nothing, and a lost one must not hold up the next.
- Each side pings every ``PING_INTERVAL`` while the channel is open, and answers
  every ping with a pong carrying the ping's number.
- Anything received on the channel (a ping or a pong) proves the path.
- A peer is held to the rule only once it has proved that it speaks the ping
  (its first message): a browser page may answer an offer without a data section,
  or open the channel and never say anything on it, and must not be torn down
  for that.
- Once armed, a path silent for ``DEAD_AFTER`` seconds is dead; ``on_dead`` is
  called once, and the watch stops.

``PathLiveness`` is the bookkeeping (a clock is passed in); ``PathWatch`` is the
shell that runs it on a real channel.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Literal

from aiortc import RTCDataChannel, RTCPeerConnection

log = logging.getLogger(__name__)

PING_INTERVAL: Final = 0.5
DEAD_AFTER: Final = 3.0
CHANNEL_LABEL: Final = "telecentre-liveness"
# Out of the low ids aiortc and browsers hand out to channels opened in-band, and
# below 1024, the stream count older browsers negotiate.
CHANNEL_ID: Final = 1000
# Ping send times kept for round trips; older pings are forgotten.
_KEPT_PINGS: Final = 16


# --- the wire ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Beat:
    """One message on the channel: a ping, or the pong answering ping ``n``."""

    kind: Literal["ping", "pong"]
    n: int


def encode(beat: Beat) -> str:
    return json.dumps({"type": beat.kind, "n": beat.n}, separators=(",", ":"))


def decode(text: str | bytes) -> Beat | None:
    """The beat in a message, or None for anything else (still proof of a live path)."""
    try:
        data = json.loads(text)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(data, dict):
        return None
    kind, n = data.get("type"), data.get("n")
    if kind not in ("ping", "pong") or not isinstance(n, int) or isinstance(n, bool):
        return None
    return Beat(kind, n)


# --- the bookkeeping --------------------------------------------------------------------


class PathLiveness:
    """When to ping, and whether the path is dead, for one channel; times on one
    monotonic clock, passed in."""

    def __init__(
        self, now: float, interval: float = PING_INTERVAL, dead_after: float = DEAD_AFTER
    ) -> None:
        self.interval = interval
        self.dead_after = dead_after
        self.armed = False  # the peer has answered or pinged: it speaks the ping
        self.last_heard: float | None = None
        self.rtt: float | None = None  # of the latest answered ping, seconds
        self.pings = 0
        self._next_ping = now
        self._sent: dict[int, float] = {}

    def ping_due(self, now: float) -> Beat | None:
        """The ping to send now, if one is due; a late wake-up sends one, not a burst."""
        if now < self._next_ping:
            return None
        self.pings += 1
        self._sent[self.pings] = now
        self._sent.pop(self.pings - _KEPT_PINGS, None)
        self._next_ping = now + self.interval
        return Beat("ping", self.pings)

    def received(self, text: str | bytes, now: float) -> Beat | None:
        """A message from the peer: the path works. Returns the pong to send back."""
        self.armed = True
        self.last_heard = now
        beat = decode(text)
        if beat is None:
            return None
        if beat.kind == "ping":
            return Beat("pong", beat.n)
        sent = self._sent.pop(beat.n, None)
        if sent is not None:
            self.rtt = now - sent
        return None

    def silent_for(self, now: float) -> float | None:
        """Seconds since the peer was last heard; None before it was ever heard."""
        return None if self.last_heard is None else now - self.last_heard

    def dead(self, now: float) -> bool:
        silent = self.silent_for(now)
        return self.armed and silent is not None and silent >= self.dead_after

    def next_wake(self, now: float) -> float:
        """The next instant at which a ping is due or the path may be found dead."""
        wake = self._next_ping
        if self.armed and self.last_heard is not None:
            wake = min(wake, self.last_heard + self.dead_after)
        return max(wake, now)


# --- the shell --------------------------------------------------------------------------


def create_channel(pc: RTCPeerConnection) -> RTCDataChannel:
    """The liveness channel of ``pc``: the offerer creates it before its offer; the
    answerer only when the offer has a data section (``pc.sctp`` after the remote
    description), or aiortc would gather for a transport nobody negotiates."""
    return pc.createDataChannel(
        CHANNEL_LABEL, negotiated=True, id=CHANNEL_ID, ordered=False, maxRetransmits=0
    )


class PathWatch:
    """Runs ``PathLiveness`` on one channel: pings, answers, and calls ``on_dead``
    once when the path dies. Owns its task; ``close`` stops it."""

    def __init__(
        self,
        channel: RTCDataChannel,
        on_dead: Callable[[], None],
        *,
        interval: float = PING_INTERVAL,
        dead_after: float = DEAD_AFTER,
        clock: Callable[[], float] | None = None,
        name: str = "",
    ) -> None:
        self.channel = channel
        self._on_dead = on_dead
        self._clock = clock or asyncio.get_running_loop().time
        self.name = name
        self.state = PathLiveness(self._clock(), interval, dead_after)
        self.found_dead = False
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        channel.on("open", self._start)
        channel.on("message", self._on_message)
        if channel.readyState == "open":
            self._start()

    def _start(self) -> None:
        if self._task is None and not self._closed:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name=f"liveness-{self.name}"
            )

    def _on_message(self, message: str | bytes) -> None:
        if self._closed:
            return
        reply = self.state.received(message, self._clock())
        if reply is not None:
            self._send(reply)

    def _send(self, beat: Beat) -> None:
        if self.channel.readyState != "open":
            return
        # A full or closing transport must not stop the watch: the deadline decides.
        with contextlib.suppress(Exception):
            self.channel.send(encode(beat))

    async def _run(self) -> None:
        while not self._closed:
            now = self._clock()
            if self.state.dead(now):
                self.found_dead = True
                log.warning(
                    "%s: nothing on the liveness channel for %.1f s: the path is dead",
                    self.name,
                    self.state.silent_for(now) or 0.0,
                )
                self._on_dead()
                return
            ping = self.state.ping_due(now)
            if ping is not None:
                self._send(ping)
            await asyncio.sleep(max(0.0, self.state.next_wake(self._clock()) - self._clock()))

    async def close(self) -> None:
        """Stop watching (the connection is being closed or replaced)."""
        self._closed = True
        task = self._task
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
