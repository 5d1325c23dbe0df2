"""Media statistics: the connection figures read from aiortc's getStats, the agent's CPU
and memory from /proc/self, their summary per session, and two real agents whose
reports carry plausible values."""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path
from typing import Any

import pytest
from aiortc.stats import (
    RTCInboundRtpStreamStats,
    RTCOutboundRtpStreamStats,
    RTCRemoteInboundRtpStreamStats,
    RTCTransportStats,
)

from orchestrator.sessions.participation import summarise_media, summarise_process
from room_agents import health
from signalling import protocol as p
from signalling.ports import MediaReport
from tests.signalling_fixtures import eventually, running_agent, signalling_harness
from web.services import LiveView

NOW = dt.datetime(2030, 6, 3, 9, 0, tzinfo=dt.UTC)
# /proc/self/stat of a process whose name holds a space and a parenthesis (proc(5)):
# utime 250, stime 50 ticks, rss 12800 pages.
PROC_STAT = (
    "4242 (agent (x) 1) S 1 4242 4242 0 -1 4194560 9000 0 0 0 250 50 0 0 20 0 7 0 "
    "1000 900000000 12800 18446744073709551615 1 1 0 0 0 0 0 16781312 17642 0 0 0 17 1 "
    "0 0 0 0 0"
)


def _report(
    rx: int, tx: int, received: int, lost: int, jitter: int, rtt: float | None
) -> list[object]:
    base: dict[str, Any] = {"timestamp": NOW, "transportId": "t1"}
    stats: list[object] = [
        RTCTransportStats(
            timestamp=NOW,
            type="transport",
            id="t1",
            packetsSent=0,
            packetsReceived=0,
            bytesSent=tx,
            bytesReceived=rx,
            iceRole="controlling",
            dtlsState="connected",
        ),
        RTCInboundRtpStreamStats(
            type="inbound-rtp",
            id="in-v",
            ssrc=1,
            kind="video",
            packetsReceived=received,
            packetsLost=lost,
            jitter=jitter,
            **base,
        ),
        RTCInboundRtpStreamStats(
            type="inbound-rtp",
            id="in-a",
            ssrc=2,
            kind="audio",
            packetsReceived=100,
            packetsLost=0,
            jitter=48,  # 1 ms at 48 kHz
            **base,
        ),
        RTCOutboundRtpStreamStats(
            type="outbound-rtp",
            id="out-v",
            ssrc=3,
            kind="video",
            packetsSent=1,
            bytesSent=1,
            trackId="x",
            **base,
        ),
    ]
    if rtt is not None:
        stats.append(
            RTCRemoteInboundRtpStreamStats(
                type="remote-inbound-rtp",
                id="rin-v",
                ssrc=3,
                kind="video",
                packetsReceived=1,
                packetsLost=0,
                jitter=0,
                roundTripTime=rtt,
                fractionLost=0.0,
                **base,
            )
        )
    return stats


def test_a_stats_report_is_read_into_cumulative_counters() -> None:
    reading = health.rtp_reading(
        _report(50_000, 80_000, 900, 10, 900, 0.012), {"video": 90000, "audio": 48000}, at=5.0
    )
    assert reading == health.RtpReading(
        at=5.0,
        bytes_received=50_000,
        bytes_sent=80_000,
        packets_received=1000,
        packets_lost=10,
        rtt_ms=12.0,
        jitter_ms=10.0,  # 900 ticks at 90 kHz
    )
    bare = health.rtp_reading(_report(0, 0, 0, 0, 0, None), {}, at=1.0)
    assert bare.rtt_ms is None and bare.jitter_ms == 1.0  # default clock rates


def test_a_period_s_bitrates_and_loss_come_from_two_readings() -> None:
    first = health.RtpReading(at=10.0, bytes_received=0, bytes_sent=0, packets_received=0)
    second = health.RtpReading(
        at=12.0,
        bytes_received=250_000,
        bytes_sent=125_000,
        packets_received=190,
        packets_lost=10,
        rtt_ms=8.0,
        jitter_ms=2.5,
    )
    figures = health.rtp_figures(first, second)
    assert figures == health.RtpFigures(
        bitrate_in_kbps=1000.0,
        bitrate_out_kbps=500.0,
        rtt_ms=8.0,
        jitter_ms=2.5,
        packets_lost=10,
        loss_fraction=0.05,
    )
    only = health.rtp_figures(None, second)  # a connection's first reading
    assert (only.bitrate_in_kbps, only.loss_fraction, only.rtt_ms) == (None, None, 8.0)
    idle = health.rtp_figures(second, health.RtpReading(at=14.0, packets_received=190))
    assert idle.loss_fraction is None and idle.bitrate_in_kbps == 0.0
    media = health.with_figures(p.MediaStats(peer_id="room:b", fps=30.0), figures)
    assert (media.fps, media.bitrate_in_kbps, media.loss_fraction) == (30.0, 1000.0, 0.05)


def test_cpu_and_memory_come_from_proc_self_stat(tmp_path: Path) -> None:
    assert health.parse_proc_stat(PROC_STAT) == (300, 12800)
    assert health.cpu_percent(1.0, 1.5, 100.0, 102.0) == 25.0
    assert health.cpu_percent(1.0, 1.0, 100.0, 100.0) == 0.0
    stat = tmp_path / "stat"
    stat.write_text(PROC_STAT)
    ticks = [0.0]
    monitor = health.ProcessMonitor(stat, monotonic=lambda: ticks[0])
    stat.write_text(PROC_STAT.replace(" 250 50 ", " 350 50 "))
    ticks[0] = 2.0
    sample = monitor.sample()
    assert sample.cpu_percent == pytest.approx(100 / monitor._ticks / 2 * 100)
    assert sample.rss_bytes == 12800 * monitor._page


def test_this_process_has_plausible_figures() -> None:
    monitor = health.ProcessMonitor()
    deadline = time.process_time() + 0.05
    while time.process_time() < deadline:  # burn a little CPU to measure
        pass
    sample = monitor.sample()
    assert sample.cpu_percent > 0 and sample.rss_bytes is not None
    assert 10 * 2**20 < sample.rss_bytes < 8 * 2**30


def test_the_session_summary_keeps_means_worsts_and_totals() -> None:
    summary: dict[str, object] = {}
    reports = [
        (10.0, {"peer_id": "room:b", "fps": 30.0, "bitrate_in_kbps": 800.0, "rtt_ms": 10.0,
                "jitter_ms": 2.0, "packets_lost": 3, "loss_fraction": 0.01}),
        (12.0, {"peer_id": "room:b", "fps": 28.0, "bitrate_in_kbps": 1200.0, "rtt_ms": 30.0,
                "jitter_ms": 4.0, "packets_lost": 1, "loss_fraction": 0.03}),
        (12.0, {"peer_id": "room:b", "fps": 28.0, "bitrate_in_kbps": 1200.0}),  # repeated
        (12.0, {"peer_id": "guest:c", "fps": 25.0, "bitrate_in_kbps": None}),
    ]  # fmt: skip
    for at, media in reports:
        summary = summarise_media(summary, media, at) or summary
    summary = summarise_process(summary, {"cpu_percent": 40.0, "rss_bytes": 100}, 10.0) or summary
    summary = summarise_process(summary, {"cpu_percent": 60.0, "rss_bytes": 300}, 12.0) or summary
    assert summarise_process(summary, {"cpu_percent": 99.0}, 12.0) is None  # counted
    summary = summarise_media(summary, {"peer_id": "room:b", "fps": 29.0}, 14.0) or summary
    assert summary["reports"] == 4
    assert summary["bitrate_in_kbps_mean"] == 1000.0 and summary["bitrate_in_kbps_max"] == 1200.0
    assert summary["bitrate_in_kbps_samples"] == 2
    assert (summary["rtt_ms_mean"], summary["rtt_ms_max"]) == (20.0, 30.0)
    assert summary["jitter_ms_max"] == 4.0
    assert summary["packets_lost_total"] == 4 and summary["loss_fraction_max"] == 0.03
    # the process's figures survive the media reports folded after them
    assert (summary["cpu_percent_mean"], summary["cpu_percent_max"]) == (50.0, 60.0)
    assert (summary["rss_bytes_latest"], summary["rss_bytes_max"]) == (300, 300)
    json.dumps(summary)


def test_the_live_view_keeps_each_room_s_latest_report() -> None:
    live = LiveView()
    report = MediaReport(
        seq=1,
        session_id="s1",
        peer_id="room:a",
        room_id="a",
        at=1000.0,
        media=(p.MediaStats(peer_id="room:b", fps=29.0, rtt_ms=4.0),),
        process=p.ProcessStats(cpu_percent=12.5, rss_bytes=150_000_000),
    )
    live.listen(report)
    assert live.rooms["a"].session_id == "s1"
    assert live.rooms["a"].process_json() == {"cpu_percent": 12.5, "rss_bytes": 150_000_000}
    peers = live.media[("s1", "a")].peers_json()
    assert isinstance(peers, list) and peers[0]["rtt_ms"] == 4.0


async def test_two_agents_report_plausible_connection_and_process_figures() -> None:
    async with signalling_harness() as h:
        h.add_room("a")
        h.add_room("b")
        async with running_agent(h, "a"), running_agent(h, "b"):
            now = time.time()
            h.push_session("s1", ["a", "b"], start=now - 1, end=now + 120)

            def complete() -> list[MediaReport]:
                return [
                    e
                    for e in h.events.events
                    if isinstance(e, MediaReport)
                    and e.process is not None
                    and all(
                        m.bitrate_in_kbps is not None
                        and m.rtt_ms is not None
                        and m.loss_fraction is not None
                        for m in e.media
                    )
                ]

            await eventually(lambda: {e.room_id for e in complete()} == {"a", "b"}, "figures", 30)
    for report in complete():
        assert report.process is not None
        assert report.process.cpu_percent >= 0
        assert report.process.rss_bytes is not None and report.process.rss_bytes > 10 * 2**20
        (media,) = report.media
        assert media.bitrate_in_kbps is not None and media.bitrate_in_kbps > 10
        assert media.bitrate_out_kbps is not None and media.bitrate_out_kbps > 10
        assert media.rtt_ms is not None and 0 <= media.rtt_ms < 1000
        assert media.jitter_ms is not None and 0 <= media.jitter_ms < 1000
        assert media.packets_lost is not None and media.packets_lost >= 0
        assert media.loss_fraction is not None and 0 <= media.loss_fraction <= 1
