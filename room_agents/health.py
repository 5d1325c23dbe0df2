"""The agent's health figures: what each peer connection's ``getStats`` says (bitrate,
round-trip time, loss, jitter) and the agent process's own CPU and memory.

Rules (each figure is None until it can be known):

- Bitrates: the connection's transport bytes (everything the bundled connection
  carries: RTP, RTCP, DTLS) over the period between two reports, in kilobits per
  second, received (``bitrate_in_kbps``) and sent (``bitrate_out_kbps``). A
  connection's first report has none: a period needs two readings of one connection.
- ``rtt_ms``: the largest round-trip time of our senders, from the peer's RTCP
  receiver reports (aiortc smooths it).
- ``jitter_ms``: the largest interarrival jitter of the streams we receive, from RTP
  timestamp units by the codec's clock rate.
- ``packets_lost`` and ``loss_fraction`` over the period, for the streams we
  receive: lost / (received + lost); no fraction when nothing was expected.
- CPU: user and system time of the process over the period, as a percentage of one
  core (threads on several cores can exceed 100); memory: the resident set. Both
  from ``/proc/self/stat`` (Linux, no psutil); elsewhere CPU comes from
  ``time.process_time`` and memory stays None.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from signalling.protocol import MediaStats, ProcessStats

DEFAULT_CLOCK_RATES: Final = {"video": 90000, "audio": 48000}
PROC_STAT: Final = Path("/proc/self/stat")


# --- peer connection statistics ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RtpReading:
    """One reading of a connection's cumulative counters (``at``: monotonic seconds)."""

    at: float
    bytes_received: int = 0
    bytes_sent: int = 0
    packets_received: int = 0
    packets_lost: int = 0
    rtt_ms: float | None = None
    jitter_ms: float | None = None


@dataclass(frozen=True, slots=True)
class RtpFigures:
    bitrate_in_kbps: float | None = None
    bitrate_out_kbps: float | None = None
    rtt_ms: float | None = None
    jitter_ms: float | None = None
    packets_lost: int | None = None
    loss_fraction: float | None = None


def _max(current: float | None, value: float) -> float:
    return value if current is None else max(current, value)


def rtp_reading(stats: Iterable[Any], clock_rates: Mapping[str, int], at: float) -> RtpReading:
    """Read an ``RTCStatsReport``'s values (aiortc's stats dataclasses)."""
    transports: dict[str, tuple[int, int]] = {}
    received = lost = 0
    rtt: float | None = None
    jitter: float | None = None
    for stat in stats:
        kind = getattr(stat, "type", None)
        if kind == "transport":
            transports[stat.id] = (int(stat.bytesReceived), int(stat.bytesSent))
        elif kind == "inbound-rtp":
            received += int(stat.packetsReceived)
            lost += int(stat.packetsLost)
            rate = clock_rates.get(stat.kind) or DEFAULT_CLOCK_RATES.get(stat.kind, 90000)
            jitter = _max(jitter, 1000.0 * float(stat.jitter) / rate)
        elif kind == "remote-inbound-rtp" and stat.roundTripTime is not None:
            rtt = _max(rtt, 1000.0 * float(stat.roundTripTime))
    return RtpReading(
        at=at,
        bytes_received=sum(rx for rx, _ in transports.values()),
        bytes_sent=sum(tx for _, tx in transports.values()),
        packets_received=received,
        packets_lost=lost,
        rtt_ms=rtt,
        jitter_ms=jitter,
    )


def rtp_figures(previous: RtpReading | None, current: RtpReading) -> RtpFigures:
    """The figures of the period from ``previous`` to ``current`` (same connection)."""
    elapsed = current.at - previous.at if previous is not None else 0.0
    if previous is None or elapsed <= 0:
        return RtpFigures(rtt_ms=current.rtt_ms, jitter_ms=current.jitter_ms)
    received = max(current.packets_received - previous.packets_received, 0)
    lost = max(current.packets_lost - previous.packets_lost, 0)
    expected = received + lost
    return RtpFigures(
        bitrate_in_kbps=max(current.bytes_received - previous.bytes_received, 0)
        * 8
        / 1000
        / elapsed,
        bitrate_out_kbps=max(current.bytes_sent - previous.bytes_sent, 0) * 8 / 1000 / elapsed,
        rtt_ms=current.rtt_ms,
        jitter_ms=current.jitter_ms,
        packets_lost=lost,
        loss_fraction=lost / expected if expected else None,
    )


def with_figures(media: MediaStats, figures: RtpFigures | None) -> MediaStats:
    """The screen's figures for a peer with the connection's added."""
    if figures is None:
        return media
    return dataclasses.replace(media, **dataclasses.asdict(figures))


def clock_rates(pc: Any) -> dict[str, int]:
    """The negotiated clock rate per kind (aiortc keeps it on each transceiver)."""
    rates: dict[str, int] = {}
    for transceiver in pc.getTransceivers():
        codecs = getattr(transceiver, "_codecs", None) or []
        if codecs and transceiver.kind not in rates:
            rates[transceiver.kind] = int(codecs[0].clockRate)
    return rates


class ConnectionStats:
    """Readings of each peer connection, kept between reports (by connection id, so a
    replaced connection starts afresh)."""

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._monotonic = monotonic
        self._readings: dict[tuple[str, str], RtpReading] = {}

    async def figures(self, calls: Mapping[str, Any]) -> dict[str, RtpFigures]:
        """``calls``: peer id -> a call with ``conn`` and ``pc`` (room_agents.calls)."""
        out: dict[str, RtpFigures] = {}
        for peer_id, call in list(calls.items()):
            key = (peer_id, call.conn)
            try:
                report = await call.pc.getStats()
            except Exception:  # a connection closing under us: no figures this time
                continue
            reading = rtp_reading(report.values(), clock_rates(call.pc), self._monotonic())
            out[peer_id] = rtp_figures(self._readings.get(key), reading)
            self._readings[key] = reading
        return out

    def forget(self, keep: Iterable[tuple[str, str]]) -> None:
        """Drop the readings of connections not in ``keep`` (closed ones)."""
        wanted = set(keep)
        for key in list(self._readings):
            if key not in wanted:
                del self._readings[key]


# --- the process ------------------------------------------------------------------------


def parse_proc_stat(text: str) -> tuple[int, int]:
    """(user + system CPU ticks, resident pages) from ``/proc/<pid>/stat`` (proc(5)):
    fields 14, 15 and 24, counted after the command name, which may hold spaces."""
    fields = text[text.rindex(")") + 2 :].split()
    return int(fields[11]) + int(fields[12]), int(fields[21])


def cpu_percent(cpu_before: float, cpu_now: float, wall_before: float, wall_now: float) -> float:
    """CPU seconds over wall seconds, as a percentage of one core (0 for no time)."""
    elapsed = wall_now - wall_before
    if elapsed <= 0:
        return 0.0
    return max(cpu_now - cpu_before, 0.0) * 100.0 / elapsed


class ProcessMonitor:
    """CPU since the previous sample (the first: since the monitor was made) and the
    resident memory of this process."""

    def __init__(
        self, path: Path = PROC_STAT, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self._path = path
        self._monotonic = monotonic
        self._ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        self._page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
        self._last = self._read()

    def _read(self) -> tuple[float, float, int | None]:
        """(monotonic now, CPU seconds, resident bytes)."""
        now = self._monotonic()
        try:
            ticks, pages = parse_proc_stat(self._path.read_text())
        except (OSError, ValueError, IndexError):
            return now, time.process_time(), None
        return now, ticks / self._ticks, pages * self._page

    def sample(self) -> ProcessStats:
        before = self._last
        self._last = now = self._read()
        return ProcessStats(
            cpu_percent=round(cpu_percent(before[1], now[1], before[0], now[0]), 2),
            rss_bytes=now[2],
        )
