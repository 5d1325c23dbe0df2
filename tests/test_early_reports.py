"""A video receiver losing packets reports it at once (room_agents.early_reports).

aiortc's own receiver, with its RTCP loop replaced, fed RTP packets with holes in them;
what it would send is captured instead of going to a transport. The narrowing link
itself is tests/test_lab_adaptation.py.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiortc import RTCRtpReceiver
from aiortc.rtcrtpreceiver import StreamStatistics
from aiortc.rtp import RtcpRrPacket, RtpPacket

from room_agents.early_reports import (
    EARLY_LOSS,
    EARLY_MIN_EXPECTED,
    EARLY_MIN_S,
    early_reports_installed,
    install_early_reports,
    interval_loss,
    report_due,
    uninstall_early_reports,
)
from room_agents.rate_recall import (
    RecallingRateControl,
    install_rate_recall,
    rate_recall_installed,
    uninstall_rate_recall,
)

SSRC = 1234
QUIET_S = 0.6  # shorter than aiortc's slowest interval with random() pinned at 1


def test_a_report_is_due_at_its_time_or_early_on_heavy_loss() -> None:
    assert interval_loss(0, 0) == 0.0 and interval_loss(10, 12) == 0.0
    assert interval_loss(40, 30) == 0.25
    # Its regular time has come: whatever the loss.
    assert report_due(10.0, 9.0, 10.0, [])
    # Early: heavy loss over enough packets, once the last report is EARLY_MIN_S old.
    heavy = [(EARLY_MIN_EXPECTED, int(EARLY_MIN_EXPECTED * (1 - EARLY_LOSS)) - 1)]
    assert report_due(10.0, 10.0 - EARLY_MIN_S, 11.0, heavy)
    assert not report_due(10.0, 10.0 - EARLY_MIN_S / 2, 11.0, heavy)
    # Not early: too few packets to tell, or a loss a lossy link has anyway.
    assert not report_due(10.0, 9.0, 11.0, [(EARLY_MIN_EXPECTED - 1, 0)])
    assert not report_due(10.0, 9.0, 11.0, [(100, 100 - int(100 * EARLY_LOSS))])
    # Any stream of the receiver's may ask.
    assert report_due(10.0, 9.0, 11.0, [(100, 100), (40, 20)])


class Capture:
    """Stands in for the receiver's ``_send_rtcp``."""

    def __init__(self) -> None:
        self.reports: list[tuple[float, RtcpRrPacket]] = []
        self.arrived = asyncio.Event()

    async def __call__(self, packet: Any) -> None:
        if isinstance(packet, RtcpRrPacket):
            self.reports.append((asyncio.get_running_loop().time(), packet))
            self.arrived.set()

    async def next(self, timeout: float) -> RtcpRrPacket:
        self.arrived.clear()
        await asyncio.wait_for(self.arrived.wait(), timeout)
        return self.reports[-1][1]


class FakeTransport:
    state = "connected"


class Fed:
    """A receiver of ``kind`` whose RTCP loop runs, and the stream it is fed."""

    def __init__(self, kind: str) -> None:
        self.receiver = RTCRtpReceiver(kind, FakeTransport())  # type: ignore[arg-type]
        self.capture = Capture()
        self.receiver._send_rtcp = self.capture  # type: ignore[method-assign]
        self.receiver._RTCRtpReceiver__rtcp_ssrc = 99  # type: ignore[attr-defined]
        self.stream = StreamStatistics(90000 if kind == "video" else 48000)
        self.receiver._RTCRtpReceiver__remote_streams[SSRC] = self.stream  # type: ignore[attr-defined]
        self.sequence = 0
        self.task = asyncio.ensure_future(self.receiver._run_rtcp())

    def feed(self, count: int, *, lose_every: int = 0) -> None:
        """``count`` more sequence numbers, every ``lose_every``-th one lost."""
        for _ in range(count):
            self.sequence += 1
            if lose_every and self.sequence % lose_every == 0:
                continue
            self.stream.add(RtpPacket(sequence_number=self.sequence, ssrc=SSRC))

    async def stop(self) -> None:
        self.task.cancel()
        await asyncio.wait_for(self.receiver._RTCRtpReceiver__rtcp_exited.wait(), 5)  # type: ignore[attr-defined]
        self.receiver._RTCRtpReceiver__stop_decoder()  # type: ignore[attr-defined]


@pytest.fixture
async def installed(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[None]:
    # Every regular interval, aiortc's and ours, at its longest: 1.5 s.
    monkeypatch.setattr(random, "random", lambda: 1.0)
    was = early_reports_installed()
    assert install_early_reports()
    yield
    if not was:
        uninstall_early_reports()


async def test_a_video_stream_losing_half_its_packets_is_reported_at_once_and_again(
    installed: None,
) -> None:
    fed = Fed("video")
    try:
        fed.feed(EARLY_MIN_EXPECTED * 2, lose_every=2)
        report = await fed.capture.next(QUIET_S)
        (info,) = report.reports
        assert info.ssrc == SSRC and abs(info.fraction_lost / 256 - 0.5) < 0.05  # half
        # The loss goes on: reported again, no sooner than EARLY_MIN_S after.
        fed.feed(EARLY_MIN_EXPECTED * 2, lose_every=2)
        await fed.capture.next(QUIET_S)
        (first, _), (second, _) = fed.capture.reports
        assert second - first >= EARLY_MIN_S * 0.99
    finally:
        await fed.stop()


async def test_the_report_of_a_heavy_loss_lowers_the_receiver_s_own_estimate(
    installed: None,
) -> None:
    was = rate_recall_installed()
    install_rate_recall()
    try:
        fed = Fed("video")
    finally:
        if not was:
            uninstall_rate_recall()
    estimator = fed.receiver._RTCRtpReceiver__remote_bitrate_estimator  # type: ignore[attr-defined]
    control = estimator.rate_control
    assert isinstance(control, RecallingRateControl)
    try:
        estimator.last_update_ms = 123
        fed.feed(EARLY_MIN_EXPECTED * 2, lose_every=2)
        await fed.capture.next(QUIET_S)
        # The next packet's update is an overuse cut from what arrives then.
        assert control._heavy_loss and estimator.last_update_ms is None
    finally:
        await fed.stop()


async def test_a_lossy_link_s_few_percent_wait_for_the_regular_report(installed: None) -> None:
    fed = Fed("video")
    try:
        fed.feed(200, lose_every=50)  # 2 %
        with pytest.raises(TimeoutError):
            await fed.capture.next(QUIET_S)
        report = await fed.capture.next(2.0)  # its turn: 1.5 s after the loop began
        (info,) = report.reports
        assert info.packets_lost == 3 and 0 < info.fraction_lost / 256 < EARLY_LOSS
    finally:
        await fed.stop()


async def test_audio_receivers_keep_aiortc_s_interval(installed: None) -> None:
    fed = Fed("audio")
    try:
        fed.feed(EARLY_MIN_EXPECTED * 2, lose_every=2)
        with pytest.raises(TimeoutError):
            await fed.capture.next(QUIET_S)
        report = await fed.capture.next(2.0)
        assert abs(report.reports[0].fraction_lost / 256 - 0.5) < 0.05
    finally:
        await fed.stop()


def test_early_reports_install_over_aiortc_s_loop_and_back() -> None:
    was = early_reports_installed()
    try:
        uninstall_early_reports()
        assert not early_reports_installed()
        assert install_early_reports() and install_early_reports()
        assert early_reports_installed()
    finally:
        (install_early_reports if was else uninstall_early_reports)()
