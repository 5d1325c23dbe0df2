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
- Once armed, a path silent for ``SUSPECT_AFTER`` seconds is suspect: ``on_suspect``
  is called once per silence (the agent checks its signalling link).
- Once armed, a path silent for ``DEAD_AFTER`` seconds is dead; ``on_dead`` is
  called once, and the watch stops.
- No verdict right after the event loop stalled (the watch woke more than a ping
  interval late: a busy CPU, a long encode): what arrived meanwhile may still be
  waiting in the loop's queues, so the watch looks again a moment later (once).

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

# A centre whose NAT lost its mappings must have media back within 5 s (issue 12,
# acceptance 5): finding the path dead is the first part, then a re-offer, gathering
# (a TURN allocation over TLS: several round trips), ICE, DTLS and a keyframe, which on
# the lab's lossy 40 ms links took 1.5-3 s more (docs/architecture.md). 0.8 s of
# silence is 8 pings and 8 pongs lost in a row: at 1 % loss never, and less likely
# than the old 3 s at 0.5 s (12 messages) on a link whose queue overflows. The pings
# are tiny (about 100 bytes with their headers: 8 kbit/s each way).
PING_INTERVAL: Final = 0.1
DEAD_AFTER: Final = 0.8
# Half-way to the deadline the path is suspect: the agent checks its signalling link
# at once (a change of its public address breaks that too, and a reset comes back at
# its next packet), so that a re-offer finds it back, not dead.
SUSPECT_AFTER: Final = 0.4
CHANNEL_LABEL: Final = "telecentre-liveness"
# Out of the low ids aiortc and browsers hand out to channels opened in-band, and
# below 1024, the stream count older browsers negotiate.
CHANNEL_ID: Final = 1000
# How long the watch lets the loop catch up after a stall before judging the path.
_AFTER_STALL: Final = 0.05
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

Verdict = Literal["alive", "look-again", "dead"]


def stalled(planned_wake: float, now: float, interval: float) -> bool:
    """The watch woke more than ``interval`` after it meant to: the loop was busy, and
    silence measured across the stall proves nothing yet."""
    return now - planned_wake > interval


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
        self._suspected: float | None = None  # last_heard when the path was last suspect

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

    def heard_traffic(self, now: float) -> None:
        """Packets arrived on the connection (media, say) though not on the channel: the
        path works. Counts only once the peer is held to the rule (``armed``)."""
        if self.armed:
            self.last_heard = now

    def silent_for(self, now: float) -> float | None:
        """Seconds since the peer was last heard; None before it was ever heard."""
        return None if self.last_heard is None else now - self.last_heard

    def dead(self, now: float) -> bool:
        silent = self.silent_for(now)
        return self.armed and silent is not None and silent >= self.dead_after

    def verdict(self, now: float, planned_wake: float, looked_again: bool) -> Verdict:
        """``dead`` once silent for ``dead_after``, but ``look-again`` (once) when the
        watch woke more than an interval after ``planned_wake``: the loop was stalled and
        what arrived meanwhile may still wait in its queues."""
        if not self.dead(now):
            return "alive"
        if not looked_again and stalled(planned_wake, now, self.interval):
            return "look-again"
        return "dead"

    def suspect(self, now: float, suspect_after: float = SUSPECT_AFTER) -> bool:
        """Silent for ``suspect_after`` (armed), the first time in this silence."""
        silent = self.silent_for(now)
        if not self.armed or silent is None or silent < suspect_after:
            return False
        if self._suspected == self.last_heard:
            return False
        self._suspected = self.last_heard
        return True

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
        on_suspect: Callable[[], None] | None = None,
        packets: Callable[[], int] | None = None,
    ) -> None:
        self.channel = channel
        # Packets received on the whole connection: media that keeps arriving proves
        # the path too. The channel's SCTP can go quiet for a second or more on its
        # own (a lost packet waits for its retransmission timer), and on a busy machine
        # did, tearing down healthy calls; a path that really died (our address
        # changed) brings neither pings nor media.
        self._packets = packets
        self._packets_seen: int | None = None
        self._on_dead = on_dead
        self._on_suspect = on_suspect
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
        planned = self._clock()
        looked_again = False  # once: a loop always late still gets a verdict
        while not self._closed:
            now = self._clock()
            self._count_packets(now)
            verdict = self.state.verdict(now, planned, looked_again)
            if verdict == "look-again":
                # Let the loop deliver what came in during the stall, then judge.
                looked_again = True
                planned = now + _AFTER_STALL
                await asyncio.sleep(_AFTER_STALL)
                continue
            looked_again = False
            if verdict == "dead":
                self.found_dead = True
                log.warning(
                    "%s: nothing received (liveness channel or media) for %.1f s: the path is dead",
                    self.name,
                    self.state.silent_for(now) or 0.0,
                )
                self._on_dead()
                return
            if self._on_suspect is not None and self.state.suspect(now):
                self._on_suspect()
            ping = self.state.ping_due(now)
            if ping is not None:
                self._send(ping)
            planned = self.state.next_wake(self._clock())
            await asyncio.sleep(max(0.0, planned - self._clock()))

    def _count_packets(self, now: float) -> None:
        if self._packets is None:
            return
        with contextlib.suppress(Exception):  # a closing connection: the deadline decides
            count = self._packets()
            if self._packets_seen is not None and count != self._packets_seen:
                self.state.heard_traffic(now)
            self._packets_seen = count

    async def close(self) -> None:
        """Stop watching (the connection is being closed or replaced)."""
        self._closed = True
        task = self._task
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
