"""A video receiver that is losing packets reports it at once, not at the next turn.

aiortc's receivers send a receiver report (RR) every 0.5-1.5 s, and the room agent's
VP8 sender cuts its rate on the fraction lost it reads there (room_agents.vp8_rate).
When a link narrowed from 3 to 0.6 Mbit/s both ways (tests/test_lab_adaptation.py), the
first report showing the loss reached the sender 1.5-2.5 s after the narrowing: it
waited for its turn, then crossed the peer's own uplink, flooded by the peer's video,
and was lost as often as not. Meanwhile both pictures froze (3-6 s in all, once the
holes were repaired by keyframes), and a CI run failed on it.

``install_early_reports`` replaces the video receivers' RTCP loop by one that looks
every ``CHECK_S`` at what each stream lost since the last report: from
``EARLY_MIN_EXPECTED`` packets on, a fraction over ``EARLY_LOSS`` sends the report
now (RFC 4585's early feedback, in spirit), at most one every ``EARLY_MIN_S``; and it
is sent again while the loss lasts, so one of them gets through. Otherwise reports
keep aiortc's random interval. A report that tells of such a loss also lowers the
receiver's own estimate to what arrives (room_agents.rate_recall's
``note_heavy_loss``), so its next REMB says the same as the report. Audio receivers
keep aiortc's loop (nothing adapts to their reports).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Final

from aiortc import RTCRtpReceiver
from aiortc.rtp import RtcpReceiverInfo, RtcpRrPacket

log = logging.getLogger(__name__)

CHECK_S: Final = 0.1
EARLY_LOSS: Final = 0.10  # as room_agents.vp8_rate.LOSS_HIGH: what makes it cut
EARLY_MIN_EXPECTED: Final = 20  # packets since the last report: one lost is 5 %
EARLY_MIN_S: Final = 0.25
_RUN_RTCP: Final = "_run_rtcp"
_PRIVATE: Final = (
    "__kind", "__remote_streams", "__lsr", "__lsr_time", "__rtcp_ssrc",
    "__remote_bitrate_estimator",
)  # fmt: skip
_EVENTS: Final = ("__rtcp_started", "__rtcp_exited")


def regular_interval() -> float:
    """aiortc's: 0.5-1.5 s, drawn afresh for each report."""
    return 0.5 + random.random()


def interval_loss(expected: int, received: int) -> float:
    """The fraction lost of ``expected`` packets of which ``received`` arrived (0 when
    none were expected, or retransmissions made up for the loss)."""
    if expected <= 0 or received >= expected:
        return 0.0
    return (expected - received) / expected


def heavy_loss(since_last: Iterable[tuple[int, int]]) -> bool:
    """A stream lost more than EARLY_LOSS of at least EARLY_MIN_EXPECTED packets
    (``since_last``: expected and received per stream since the last report)."""
    return any(
        expected >= EARLY_MIN_EXPECTED and interval_loss(expected, received) > EARLY_LOSS
        for expected, received in since_last
    )


def report_due(
    now: float,
    last_sent: float,
    next_regular: float,
    since_last: Iterable[tuple[int, int]],
) -> bool:
    """Whether a report goes out now: its regular time has come, or a stream lost more
    than EARLY_LOSS of at least EARLY_MIN_EXPECTED packets (``since_last``: expected and
    received per stream since the last report) and the last report is EARLY_MIN_S old."""
    if now >= next_regular:
        return True
    return now - last_sent >= EARLY_MIN_S and heavy_loss(since_last)


def _private(receiver: RTCRtpReceiver, name: str) -> Any:
    return getattr(receiver, f"_RTCRtpReceiver{name}")


def _since_last_report(receiver: RTCRtpReceiver) -> list[tuple[int, int]]:
    """(expected, received) per remote stream since its last report, read without
    consuming aiortc's counters (its ``fraction_lost`` does, when the report is made)."""
    return [
        (s.packets_expected - s._expected_prior, s.packets_received - s._received_prior)
        for s in _private(receiver, "__remote_streams").values()
    ]


def _note_heavy_loss(receiver: RTCRtpReceiver) -> None:
    """Tell the receiver's estimator (room_agents.rate_recall's, when installed) and have
    it update with the next packet, so its REMB follows the report."""
    estimator = _private(receiver, "__remote_bitrate_estimator")
    note = getattr(getattr(estimator, "rate_control", None), "note_heavy_loss", None)
    if callable(note):
        note()
        estimator.last_update_ms = None


def _report(receiver: RTCRtpReceiver) -> RtcpRrPacket | None:
    """A receiver report on every remote stream, as aiortc's loop makes it."""
    ssrc = _private(receiver, "__rtcp_ssrc")
    lsrs, lsr_times = _private(receiver, "__lsr"), _private(receiver, "__lsr_time")
    reports = []
    for stream_ssrc, stream in _private(receiver, "__remote_streams").items():
        lsr = lsrs.get(stream_ssrc, 0)
        dlsr = 0
        if stream_ssrc in lsrs:
            delay = time.time() - lsr_times[stream_ssrc]
            if 0 < delay < 65536:
                dlsr = int(delay * 65536)
        reports.append(
            RtcpReceiverInfo(
                ssrc=stream_ssrc,
                fraction_lost=stream.fraction_lost,
                packets_lost=stream.packets_lost,
                highest_sequence=stream.max_seq,
                jitter=stream.jitter,
                lsr=lsr,
                dlsr=dlsr,
            )
        )
    if ssrc is None or not reports:
        return None
    return RtcpRrPacket(ssrc=ssrc, reports=reports)


class _EarlyReportingLoop:
    """Stands in for ``RTCRtpReceiver._run_rtcp``; remembers the method it replaced."""

    def __init__(self, original: Callable[[RTCRtpReceiver], Awaitable[None]]) -> None:
        self.original = original

    def __get__(self, receiver: RTCRtpReceiver | None, owner: type | None = None) -> Any:
        if receiver is None:
            return self
        return lambda: self(receiver)

    async def __call__(self, receiver: RTCRtpReceiver) -> None:
        if _private(receiver, "__kind") != "video":
            await self.original(receiver)
            return
        _private(receiver, "__rtcp_started").set()
        # aiortc's stop() cancels the loop and waits for __rtcp_exited: it is set
        # whatever ends the loop.
        try:
            last_sent = time.monotonic()
            next_regular = last_sent + regular_interval()
            while True:
                await asyncio.sleep(CHECK_S)
                now = time.monotonic()
                since_last = _since_last_report(receiver)
                if not report_due(now, last_sent, next_regular, since_last):
                    continue
                early = now < next_regular
                if heavy_loss(since_last):
                    _note_heavy_loss(receiver)
                packet = _report(receiver)
                if packet is not None:
                    if early:
                        log.debug("early receiver report: %s", packet.reports)
                    await receiver._send_rtcp(packet)
                last_sent, next_regular = now, now + regular_interval()
        except asyncio.CancelledError:
            pass
        finally:
            _private(receiver, "__rtcp_exited").set()


def early_reports_installed() -> bool:
    return isinstance(RTCRtpReceiver.__dict__.get(_RUN_RTCP), _EarlyReportingLoop)


def _internals_present() -> bool:
    probe = RTCRtpReceiver.__init__.__code__.co_names
    names = [f"_RTCRtpReceiver{n}" for n in (*_PRIVATE, *_EVENTS)]
    return all(n in probe for n in names) and callable(getattr(RTCRtpReceiver, "_send_rtcp", None))


def install_early_reports() -> bool:
    """Make aiortc's video receivers report loss early (idempotent, whole process);
    False, and left alone, when aiortc's receiver lacks what the loop reads."""
    if early_reports_installed():
        return True
    original = RTCRtpReceiver.__dict__.get(_RUN_RTCP)
    if not callable(original) or not _internals_present():
        log.warning("aiortc's RTCRtpReceiver changed: receiver reports keep their interval")
        return False
    setattr(RTCRtpReceiver, _RUN_RTCP, _EarlyReportingLoop(original))
    return True


def uninstall_early_reports() -> None:
    current = RTCRtpReceiver.__dict__.get(_RUN_RTCP)
    if isinstance(current, _EarlyReportingLoop):
        setattr(RTCRtpReceiver, _RUN_RTCP, current.original)
