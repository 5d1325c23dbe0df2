"""Video leaves at a paced rate, retransmissions within it.

aiortc hands each encoded frame's packets (and each NACKed packet's retransmission) to
the transport at once. A shaped link drops whatever does not fit its queue: on a
600 kbit/s uplink with a 50 ms queue (the lab's), anything above ~4 KB sent in one go,
such as a keyframe or the retransmissions for a NACK listing several packets, lost its
tail, which made more holes and more NACKs (docs/architecture.md, "Narrow links").

``install_video_pacing`` puts a pacer between each video sender and its transport:
RTP packets (media and RTX) leave no faster than ``PACE_FACTOR`` times the encoder's
rate, with ``BURST_S`` of burst; RTCP and audio are never delayed (audio first).
A retransmission is dropped when the same packet was resent less than
``RTX_REPEAT_S`` ago (aiortc's receiver repeats its whole missing list with every new
loss), when the pacer is already ``RTX_BACKLOG_S`` behind (a late repair is worth less
than the frames after it; the receiver gives a hole up after
room_agents.jitter_holes.HOLE_DEADLINE_S), or when the peer's last receiver report lost
more than ``RTX_STOP_LOSS``: on a link that just narrowed, the resends of the NACK
lists (tens of packets) kept the pacer behind, and each frame and each keyframe a PLI
asked for waited 0.2-0.4 s behind them (a lab run's picture froze 2-3 s); the
encoder's cut and the receiver's skip to the next keyframe repair faster.

A call's first second leaves at ``STARTUP_RATE_BPS`` at least: the encoder's rate then
is aiortc's starting guess (500 kbit/s), not anything learnt about the link, and pacing
the first keyframe at 1.25x that held it back 100-160 ms on loopback at 720p (join ->
first frame, bench/autostart); raw aiortc sends it at once, and a link too narrow for
it loses a tail that NACK and the hole deadline repair, as on any keyframe before.

The abs-send-time stays aiortc's, written as the frame is handed over, so a frame is
still one send-time group (5 ms) for the receiver's delay-based estimator, which sees
the pacer's spreading the way it sees a bottleneck's queue. Stamped at departure
instead, a paced frame made several groups a few ms apart, and on these loaded cores
the estimate of the product's peers fell (false overuse, a cut to 280 kbit/s in a
call's first seconds) where raw aiortc's, beside it, did not.

The patch replaces ``RTCRtpSender.transport`` (a property) by one that returns, for a
video sender, a proxy of its DTLS transport whose ``_send_rtp`` paces; the proxy reads
the sender's private encoder, RTX SSRC and header-extension map (name-mangled), and is
left uninstalled if they are gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from collections.abc import Callable
from struct import unpack_from
from typing import Any, Final

from aiortc import RTCRtpSender
from aiortc.rtp import RtpPacket, is_rtcp

from common.tasks import TaskSet

log = logging.getLogger(__name__)

PACE_FACTOR: Final = 1.25  # of the encoder's rate: frames vary, keyframes more so
BURST_S: Final = 0.005
DEFAULT_RATE_BPS: Final = 1_000_000  # before the encoder exists
STARTUP_S: Final = 1.0  # from a sender's first packet: the first keyframe's time
STARTUP_RATE_BPS: Final = 50_000_000  # as good as unpaced
RTX_REPEAT_S: Final = 0.15
RTX_BACKLOG_S: Final = 0.2
# A narrowing link loses 60-90 %; a narrow link's probing, 10-30 % now and then, and
# its holes are still worth repairing (stopped from 10 %, a hole that came just after
# such a report went unrepaired for a second: two keyframe waits in a row, a freeze).
RTX_STOP_LOSS: Final = 0.3
_ENCODER: Final = "_RTCRtpSender__encoder"
_EXTENSIONS: Final = "_RTCRtpSender__rtp_header_extensions_map"
_TRANSPORT: Final = "transport"


def pace_rate_bps(encoder_bps: int | None, age_s: float) -> float:
    """The rate video leaves at: ``PACE_FACTOR`` times the encoder's (its default before
    it exists), and at least ``STARTUP_RATE_BPS`` in a sender's first ``STARTUP_S``."""
    rate = PACE_FACTOR * (
        encoder_bps if encoder_bps is not None and encoder_bps > 0 else DEFAULT_RATE_BPS
    )
    return max(rate, STARTUP_RATE_BPS) if age_s < STARTUP_S else rate


def congested(sender: RTCRtpSender) -> bool:
    """The peer's last report lost more than RTX_STOP_LOSS: the link is full, and a
    repair would only take the place of the next keyframe."""
    loss = getattr(getattr(sender, _ENCODER, None), "last_loss", None)
    return isinstance(loss, float) and loss > RTX_STOP_LOSS


class Pacer:
    """A leaky bucket over a virtual clock: when may ``size`` bytes leave at ``rate``."""

    def __init__(self) -> None:
        self._free_at = 0.0  # when everything accepted so far has left

    def backlog(self, now: float) -> float:
        """Seconds the bucket is behind."""
        return max(0.0, self._free_at - now)

    def wait(self, size: int, rate_bps: float, now: float) -> float:
        """Seconds to hold a packet of ``size`` bytes before it leaves (and account it)."""
        depart = max(now, self._free_at - BURST_S)
        self._free_at = max(self._free_at, now) + size * 8 / rate_bps
        return depart - now


class RtxFilter:
    """Which retransmissions are worth sending."""

    def __init__(self) -> None:
        self._sent: dict[int, float] = {}

    def allow(self, sequence: int, now: float, backlog_s: float, congested: bool = False) -> bool:
        if congested or backlog_s > RTX_BACKLOG_S:
            return False
        last = self._sent.get(sequence)
        if last is not None and now - last < RTX_REPEAT_S:
            return False
        self._sent[sequence] = now
        if len(self._sent) > 512:
            for old in [s for s, t in self._sent.items() if now - t > RTX_REPEAT_S]:
                del self._sent[old]
        return True


class PacedTransport:
    """A video sender's view of its DTLS transport: RTP leaves through a ``Pacer``."""

    def __init__(self, inner: Any, sender: RTCRtpSender, now: Callable[[], float]) -> None:
        self.inner = inner
        self._sender = weakref.ref(sender)
        self._now = now
        self._pacer = Pacer()
        self._first_sent: float | None = None  # the first paced packet's time
        self._rtx = RtxFilter()
        # Retransmissions under way; each ends within about RTX_BACKLOG_S (the pacer
        # takes none when it is further behind), so the proxy needs no close.
        self._resends = TaskSet()
        self.rtx_dropped = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def _rate_bps(self, sender: RTCRtpSender, now: float) -> float:
        rate = getattr(getattr(sender, _ENCODER, None), "target_bitrate", None)
        if self._first_sent is None:
            self._first_sent = now
        return pace_rate_bps(rate if isinstance(rate, int) else None, now - self._first_sent)

    async def _send_rtp(self, data: bytes) -> None:
        sender = self._sender()
        if sender is None or is_rtcp(data):
            await self.inner._send_rtp(data)
            return
        if len(data) >= 12 and unpack_from("!I", data, 8)[0] == sender._rtx_ssrc:
            packet = RtpPacket.parse(data, getattr(sender, _EXTENSIONS))
            if len(packet.payload) >= 2:
                original = unpack_from("!H", packet.payload)[0]
                now = self._now()
                if not self._rtx.allow(original, now, self._pacer.backlog(now), congested(sender)):
                    self.rtx_dropped += 1
                    return
            # aiortc resends from its RTCP handler, which also carries the PLIs and
            # REMBs (and, on the same transport, the peer's media): never hold it.
            self._resends.spawn(self._resend(sender, data))
            return
        await self._paced(sender, data)

    async def _resend(self, sender: RTCRtpSender, data: bytes) -> None:
        with contextlib.suppress(ConnectionError):  # the connection closed meanwhile
            await self._paced(sender, data)

    async def _paced(self, sender: RTCRtpSender, data: bytes) -> None:
        # The packet's departure is booked now, so the backlog the retransmission
        # filter reads counts every packet handed over, waiting resends included. (When
        # packets queued on a lock and were booked only once they held it, hundreds of
        # resends stood unseen in front of the next frame on a narrowing link.)
        # Departures only grow, so packets still leave in the order they came.
        now = self._now()
        wait = self._pacer.wait(len(data), self._rate_bps(sender, now), now)
        if wait > 0:
            await asyncio.sleep(wait)
        await self.inner._send_rtp(data)


class _PacedTransportProperty:
    """Stands in for ``RTCRtpSender.transport``; remembers the property it replaced."""

    def __init__(self, original: property) -> None:
        self.original = original
        self.proxies: weakref.WeakKeyDictionary[RTCRtpSender, PacedTransport] = (
            weakref.WeakKeyDictionary()
        )

    def __get__(self, sender: RTCRtpSender | None, owner: type | None = None) -> Any:
        if sender is None:
            return self
        inner = self.original.__get__(sender, owner)
        if sender.kind != "video" or inner is None:
            return inner
        proxy = self.proxies.get(sender)
        if proxy is None or proxy.inner is not inner:
            proxy = PacedTransport(inner, sender, time.monotonic)
            self.proxies[sender] = proxy
        return proxy


def video_pacing_installed() -> bool:
    return isinstance(RTCRtpSender.__dict__.get(_TRANSPORT), _PacedTransportProperty)


def _internals_present() -> bool:
    names = RTCRtpSender.__init__.__code__.co_names
    return _ENCODER in names and _EXTENSIONS in names and "_rtx_ssrc" in names


def install_video_pacing() -> bool:
    """Pace aiortc's video senders (idempotent, whole process); False, and left alone,
    when aiortc's sender lacks the internals the proxy reads."""
    if video_pacing_installed():
        return True
    original = RTCRtpSender.__dict__.get(_TRANSPORT)
    if not isinstance(original, property) or not _internals_present():
        log.warning("aiortc's RTCRtpSender changed: video is sent unpaced")
        return False
    setattr(RTCRtpSender, _TRANSPORT, _PacedTransportProperty(original))
    return True


def uninstall_video_pacing() -> None:
    current = RTCRtpSender.__dict__.get(_TRANSPORT)
    if isinstance(current, _PacedTransportProperty):
        setattr(RTCRtpSender, _TRANSPORT, current.original)
