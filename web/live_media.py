"""A room's latest media report as the live view keeps it (``web.services.LiveView``):
what the dashboard, the booking page and ``GET /api/v1/rooms/{id}/health`` read while
a session runs. Typed after what flows (``signalling.ports.MediaReport``)."""

from __future__ import annotations

from dataclasses import dataclass

from signalling.protocol import MediaStats, ProcessStats


@dataclass(frozen=True, slots=True)
class LiveMedia:
    """The figures a room's agent reported last for a session: each peer's (its id
    made safe, at most ``MAX_PEERS`` of them) and the agent's own process. ``at`` is
    the report's time as the agent sent it (the API checks it is an instant)."""

    session_id: str
    at: float
    peers: tuple[MediaStats, ...] = ()
    process: ProcessStats | None = None

    def peers_json(self) -> list[dict[str, object]]:
        """The peers' figures as the API shows them (counts of frames left out)."""
        return [
            {
                "peer_id": m.peer_id,
                "fps": m.fps,
                "latency_p50_ms": m.latency_p50_ms,
                "latency_p95_ms": m.latency_p95_ms,
                "freezes": m.freezes,
                "live": m.live,
                "audio_level": m.audio_level,
                "bitrate_in_kbps": m.bitrate_in_kbps,
                "bitrate_out_kbps": m.bitrate_out_kbps,
                "rtt_ms": m.rtt_ms,
                "jitter_ms": m.jitter_ms,
                "packets_lost": m.packets_lost,
                "loss_fraction": m.loss_fraction,
                "local_candidate": m.local_candidate,
                "remote_candidate": m.remote_candidate,
            }
            for m in self.peers
        ]

    def process_json(self) -> dict[str, object] | None:
        if self.process is None:
            return None
        return {"cpu_percent": self.process.cpu_percent, "rss_bytes": self.process.rss_bytes}
