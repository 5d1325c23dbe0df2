"""One raw aiortc peer of bench/network (``python -m bench.network_peer send|recv CONFIG``),
run by bench/network.py inside a lab namespace. No project call code: the floor.

JSON lines on stdin/stdout (the driver relays the SDP between the two peers):

- ``send``: a stamped synthetic camera (room_agents/media.py) and a synthetic
  audio track. Prints ``{"offer": sdp, "started": t}`` (``started``: wall clock
  before createOffer), reads ``{"answer": sdp}``, then prints one ``{"tick": ...}``
  a second: the VP8 encoder's target bitrate, the last REMB the sender received
  (and how many), bytes sent. Ends at ``stop`` or end of input.
- ``recv``: reads the offer, prints ``{"answer": sdp}``, prints
  ``{"first_frame_at": t}`` at its first decoded video frame, then one ``{"tick": ...}``
  a second: bytes received, video frames, the longest gap between frames, the
  glass-to-glass latency of the second's stamped frames (capture stamp -> decoded),
  audio frames, and the NACKs, PLIs and video jitter-buffer overflows of the second
  (``Recovery``). Ends like ``send``.

With ``"product": true`` in CONFIG, both peers first install the room agent's
narrow-link patches (room_agents.calls.install_narrow_link_patches: hole deadline,
stepped VP8, paced video, fast recall), so the same run measures the product's media
path beside the raw floor; the sender's ticks then add the receiver's estimate it
follows, and the receiver's the holes it gave up (``skips``).

Both print ``{"pair": ...}`` (the nominated candidate pair's types and transport) once
connected. Sender and receiver share the host's wall clock (two namespaces, one
machine), so the stamps give glass-to-glass directly.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.rtcconfiguration import RTCIceTransportPolicy
from aiortc.rtcrtpsender import unpack_remb_fci  # type: ignore[attr-defined]

from room_agents.screen import frame_stamp

Json = dict[str, Any]
REMB_FMT = 15  # RTCP_PSFB_APP
FREEZE_S = 1.0  # the freeze: over 1 s without a frame


class Remb:
    """The REMB values a sender received (aiortc hands them to its encoder; recorded
    here by wrapping its RTCP handler, bench-only)."""

    last_bps: int | None = None
    count = 0

    @classmethod
    def install(cls) -> None:
        original = RTCRtpSender._handle_rtcp_packet

        async def handle(self: RTCRtpSender, packet: Any) -> None:
            if getattr(packet, "fmt", None) == REMB_FMT and hasattr(packet, "fci"):
                try:
                    cls.last_bps, _ = unpack_remb_fci(packet.fci)
                    cls.count += 1
                except ValueError:
                    pass
            await original(self, packet)

        RTCRtpSender._handle_rtcp_packet = handle  # type: ignore[method-assign]


class Recovery:
    """What the receiver did about lost video (bench-only wrappers): NACKs and PLIs
    sent, and how often the video jitter buffer overflowed (a hole it waited on until
    ``capacity`` later packets had arrived, then dropped)."""

    nacks = 0
    plis = 0
    overflows = 0
    skips = 0

    @classmethod
    def install(cls) -> None:
        from aiortc.jitterbuffer import JitterBuffer
        from aiortc.rtcrtpreceiver import RTCRtpReceiver

        nack, pli = RTCRtpReceiver._send_rtcp_nack, RTCRtpReceiver._send_rtcp_pli
        smart_remove = JitterBuffer.smart_remove

        async def send_nack(self: RTCRtpReceiver, media_ssrc: int, lost: list[int]) -> None:
            cls.nacks += 1
            await nack(self, media_ssrc, lost)

        async def send_pli(self: RTCRtpReceiver, media_ssrc: int) -> None:
            cls.plis += 1
            await pli(self, media_ssrc)

        def remove(self: JitterBuffer, count: int) -> bool:
            if self._is_video:
                cls.overflows += 1
            return smart_remove(self, count)

        RTCRtpReceiver._send_rtcp_nack = send_nack  # type: ignore[method-assign]
        RTCRtpReceiver._send_rtcp_pli = send_pli  # type: ignore[method-assign]
        JitterBuffer.smart_remove = remove  # type: ignore[method-assign]

        from room_agents.jitter_holes import HoleDeadlineJitterBuffer

        skip = HoleDeadlineJitterBuffer._skip

        def counted_skip(self: HoleDeadlineJitterBuffer, now: float) -> bool:
            cls.skips += 1
            return skip(self, now)

        HoleDeadlineJitterBuffer._skip = counted_skip  # type: ignore[method-assign]

    @classmethod
    def take(cls) -> Json:
        counts = {
            "nacks": cls.nacks,
            "plis": cls.plis,
            "buffer_overflows": cls.overflows,
            "skips": cls.skips,
        }
        cls.nacks = cls.plis = cls.overflows = cls.skips = 0
        return counts


def say(value: Json) -> None:
    print(json.dumps(value), flush=True)


async def read_line() -> Json | None:
    line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    if not line or line.strip() == "stop":
        return None
    value: Json = json.loads(line)
    return value


def configuration(config: Json) -> RTCConfiguration:
    servers = [
        RTCIceServer(urls=s["urls"], username=s.get("username"), credential=s.get("credential"))
        for s in config.get("ice_servers", [])
    ]
    policy = RTCIceTransportPolicy.RELAY if config.get("policy") == "relay" else None
    if policy is None:
        return RTCConfiguration(iceServers=servers)
    return RTCConfiguration(iceServers=servers, iceTransportPolicy=policy)


def turn_client(protocol: Any) -> str | None:
    """How a relayed pair reaches coturn: "udp", "tcp" or "tls"; None when direct."""
    inner = getattr(getattr(protocol, "transport", None), "_TurnTransport__inner_protocol", None)
    if inner is None:
        return None
    if type(inner).__name__ != "TurnClientTcpProtocol":
        return "udp"
    return "tls" if inner.transport.get_extra_info("ssl_object") is not None else "tcp"


def nominated_pair(pc: RTCPeerConnection) -> Json | None:
    """The nominated pair's candidate types (reading aioice's connection)."""
    for transceiver in pc.getTransceivers():
        connection = getattr(transceiver.sender.transport.transport, "_connection", None)
        nominated = getattr(connection, "_nominated", {})
        for pair in nominated.values():
            return {
                "local": pair.local_candidate.type,
                "remote": pair.remote_candidate.type,
                "transport": pair.local_candidate.transport,
                "turn_client": turn_client(pair.protocol),
            }
    return None


async def wait_pair(pc: RTCPeerConnection) -> None:
    connected = asyncio.Event()

    @pc.on("connectionstatechange")
    def on_state() -> None:
        print(f"connection {pc.connectionState}", file=sys.stderr, flush=True)
        if pc.connectionState == "connected":
            connected.set()

    await asyncio.wait_for(connected.wait(), 60)
    say({"pair": nominated_pair(pc)})


async def stats_bytes(pc: RTCPeerConnection, kind: str) -> int:
    """Bytes of the bundled transport (everything the connection sent or received)."""
    report = await pc.getStats()
    total = 0
    for stat in report.values():
        if stat.type == "transport":
            total += int(getattr(stat, kind, 0) or 0)
    return total


async def send(config: Json) -> None:
    from room_agents.media import (
        OutgoingVideoTrack,
        StartingCard,
        SyntheticAudioTrack,
        SyntheticCamera,
    )

    class Clock:
        def now(self) -> float:
            return time.time()

    Remb.install()
    width, height, fps = config["width"], config["height"], config["fps"]
    video = OutgoingVideoTrack(
        SyntheticCamera(Clock(), width, height, fps, label="net"),
        StartingCard(Clock(), width, height, fps, label="net"),
        fps=fps,
    )
    video.set_live(True)
    audio = SyntheticAudioTrack()
    pc = RTCPeerConnection(configuration(config))
    try:
        sender = pc.addTrack(video)
        pc.addTrack(audio)
        started = time.time()
        await pc.setLocalDescription(await pc.createOffer())
        say({"offer": pc.localDescription.sdp, "started": started})
        answer = await read_line()
        if answer is None:
            return
        await pc.setRemoteDescription(RTCSessionDescription(answer["answer"], "answer"))
        pair = asyncio.ensure_future(wait_pair(pc))
        stop = asyncio.ensure_future(read_line())
        while not stop.done():
            await asyncio.wait([stop], timeout=1.0)
            encoder = getattr(sender, "_RTCRtpSender__encoder", None)
            say(
                {
                    "tick": {
                        "t": time.time(),
                        "target_bps": getattr(encoder, "target_bitrate", None),
                        "estimate_bps": getattr(encoder, "estimate_bps", None),
                        "loss_cap_bps": getattr(encoder, "loss_cap_bps", None),
                        "loss": getattr(encoder, "last_loss", None),
                        "remb_bps": Remb.last_bps,
                        "rembs": Remb.count,
                        "bytes_sent": await stats_bytes(pc, "bytesSent"),
                    }
                }
            )
        pair.cancel()
    finally:
        await pc.close()
        video.stop()
        audio.stop()


class Receiver:
    def __init__(self) -> None:
        self.first_frame_at: float | None = None
        self.frames = 0
        self.last_at: float | None = None
        self.max_gap = 0.0
        self.latencies: list[float] = []
        self.audio_frames = 0
        self.freezes = 0  # gaps over FREEZE_S between two decoded frames

    def take(self) -> Json:
        values = sorted(self.latencies)
        tick = {
            "frames": self.frames,
            "max_gap_s": round(self.max_gap, 3),
            "latency_p50_ms": values[len(values) // 2] if values else None,
            "latencies_ms": values,
            "audio_frames": self.audio_frames,
            "freezes": self.freezes,
        }
        self.frames, self.max_gap, self.latencies, self.audio_frames = 0, 0.0, [], 0
        self.freezes = 0
        return tick

    async def video(self, track: MediaStreamTrack) -> None:
        while True:
            frame = await track.recv()
            now = time.time()
            if self.first_frame_at is None:
                self.first_frame_at = now
                say({"first_frame_at": now})
            if self.last_at is not None:
                self.max_gap = max(self.max_gap, now - self.last_at)
                self.freezes += now - self.last_at > FREEZE_S
            self.last_at = now
            self.frames += 1
            stamp = frame_stamp(frame)  # type: ignore[arg-type]
            if stamp is not None and stamp.camera:
                self.latencies.append(round(now * 1000 - stamp.capture_ms, 1))

    async def audio(self, track: MediaStreamTrack) -> None:
        while True:
            await track.recv()
            self.audio_frames += 1


async def recv(config: Json) -> None:
    Recovery.install()
    pc = RTCPeerConnection(configuration(config))
    receiver = Receiver()
    tasks: set[asyncio.Task[None]] = set()

    @pc.on("track")
    def on_track(track: MediaStreamTrack) -> None:
        drain = receiver.video if track.kind == "video" else receiver.audio
        tasks.add(asyncio.ensure_future(drain(track)))

    try:
        offer = await read_line()
        if offer is None:
            return
        await pc.setRemoteDescription(RTCSessionDescription(offer["offer"], "offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        say({"answer": pc.localDescription.sdp})
        pair = asyncio.ensure_future(wait_pair(pc))
        stop = asyncio.ensure_future(read_line())
        while not stop.done():
            await asyncio.wait([stop], timeout=1.0)
            now = time.time()
            # A gap still open at the tick counts too (a freeze in progress).
            if receiver.last_at is not None:
                receiver.max_gap = max(receiver.max_gap, now - receiver.last_at)
            tick = receiver.take() | Recovery.take()
            tick.update(t=now, bytes_received=await stats_bytes(pc, "bytesReceived"))
            say({"tick": tick})
        pair.cancel()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await pc.close()


def main() -> None:
    role, config = sys.argv[1], json.loads(sys.argv[2])
    if config.get("product"):
        from room_agents.calls import install_narrow_link_patches

        install_narrow_link_patches()
    asyncio.run(send(config) if role == "send" else recv(config))


if __name__ == "__main__":
    main()
