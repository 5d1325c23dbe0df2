"""A received video frame leaves aiortc's jitter buffer with its last packet.

aiortc's ``JitterBuffer`` hands a video frame to the decoder only when a packet of the
*next* frame arrives (it sees the RTP timestamp change). So every frame waited one
frame interval in it (about 33 ms of the 46-50 ms glass-to-glass floor at 30 fps), and
the first frame of a call waited for the sender to capture and encode its second one:
on a call's critical path (join -> first frame) that is a frame interval or the
second frame's encoding, whichever is longer.

The RTP marker bit ends a video frame (RFC 7741 for VP8, RFC 6184 for H.264).
``MarkerJitterBuffer`` returns a frame as soon as every packet from the buffer's
origin through a marked packet is there, in sequence, with one timestamp. Everything
else is aiortc's: a frame whose marker is lost still leaves when the next frame
arrives, packets late for a frame already handed over are dropped as before, and the
capacity, misordering and PLI rules are unchanged. Audio buffers (not ``is_video``)
are left alone.

``install_marker_release`` swaps the class aiortc's receivers build their video
buffer from (``aiortc.rtcrtpreceiver.JitterBuffer``); receivers created afterwards
use it. The room agent's calls install it (room_agents.calls); the raw-aiortc floors
of bench/ do not.
"""

from __future__ import annotations

import logging
from typing import Final

import aiortc.rtcrtpreceiver
from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.rtp import RtpPacket
from aiortc.utils import uint16_add

log = logging.getLogger(__name__)

# What the subclass reads of aiortc's buffer; without them it is not installed.
_NEEDED: Final = ("_origin", "_packets", "_capacity", "_is_video")
# The name aiortc's receivers build their buffers from, in aiortc.rtcrtpreceiver.
_BUILT_FROM: Final = "JitterBuffer"


class MarkerJitterBuffer(JitterBuffer):
    """aiortc's jitter buffer, plus: a video frame leaves with its marked last packet."""

    def add(self, packet: RtpPacket) -> tuple[bool, JitterFrame | None]:
        pli_flag, frame = super().add(packet)
        if frame is None and self._is_video:
            frame = self._marked_frame()
        return pli_flag, frame

    def _marked_frame(self) -> JitterFrame | None:
        """The frame at the origin if it is complete up to its marked packet (and
        removed from the buffer), else None."""
        origin = self._origin
        if origin is None:
            return None
        packets: list[RtpPacket] = []
        for count in range(self._capacity):
            sequence = uint16_add(origin, count)
            packet = self._packets[sequence % self._capacity]
            if packet is None or packet.sequence_number != sequence:
                return None  # a gap: wait for it (or for the next frame, as aiortc does)
            if packets and packet.timestamp != packets[0].timestamp:
                return None  # the frame ended unmarked: aiortc's own rule hands it over
            packets.append(packet)
            if packet.marker:
                self.remove(count + 1)
                data = b"".join(p._data for p in packets)  # type: ignore[attr-defined]
                return JitterFrame(data=data, timestamp=packets[0].timestamp)
        return None


def receivers_buffer() -> type[JitterBuffer]:
    """The class aiortc's receivers build their jitter buffers from, now."""
    current: type[JitterBuffer] = getattr(aiortc.rtcrtpreceiver, _BUILT_FROM)
    return current


def marker_release_installed() -> bool:
    """Receivers release on the marker (this class or one built on it, such as
    room_agents.jitter_holes')."""
    return issubclass(receivers_buffer(), MarkerJitterBuffer)


def install_marker_release() -> bool:
    """Make aiortc's receivers built from now on release video frames on their marker
    (idempotent, whole process); False when aiortc's buffer is not the one this
    subclass was written for, and is left alone."""
    if marker_release_installed():
        return True
    current = receivers_buffer()
    probe = current(capacity=4, is_video=True)
    if current is not JitterBuffer or not all(hasattr(probe, name) for name in _NEEDED):
        log.warning("aiortc's jitter buffer is not the expected one: frames keep waiting")
        return False
    setattr(aiortc.rtcrtpreceiver, _BUILT_FROM, MarkerJitterBuffer)
    return True


def uninstall_marker_release() -> None:
    """Give aiortc's receivers back its own buffer (no-op when not installed)."""
    if marker_release_installed():
        setattr(aiortc.rtcrtpreceiver, _BUILT_FROM, JitterBuffer)
