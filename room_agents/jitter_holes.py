"""A hole in received video costs a short glitch, not a freeze: skip to a keyframe.

aiortc's video jitter buffer (512 packets) releases nothing past a missing packet until
512 later packets have arrived, while its receiver stops asking for the packet (NACK)
128 packets later and the sender keeps only 128 packets to resend. On a narrowing link
(docs/architecture.md, "Narrow links") a packet the shaper dropped and NACK did not
recover froze the picture for 4.6-10.4 s; after the overflow the decoder got frames
whose references were gone, and showed garbage until a keyframe.

``HoleDeadlineJitterBuffer`` bounds that wait. Once the buffer has been blocked by a
hole (packets arrived past a missing one) for ``HOLE_DEADLINE_S`` (a few round trips of
a long-haul link: NACK has had its chance), or as soon as a keyframe starts behind the
hole (nothing before a keyframe is needed to decode what follows), it drops the hole
and everything that depends on it: if a keyframe has arrived behind the hole, it moves
on to it; otherwise it empties itself, asks for a keyframe (PLI) and drops every
packet until a newer keyframe starts, asking again every ``PLI_REPEAT_S``. Nothing
that references a lost frame reaches the decoder. A stream whose keyframes it cannot
recognise (not VP8, or keyframes that keep being lost) is given back to aiortc's rule
after ``KEYFRAME_WAIT_LIMIT_S``.

The keyframe test is VP8's (RFC 7741: the payload descriptor's S bit and partition 0,
then the frame tag's P bit clear and the key frame start code): aiortc and Chromium
both put VP8 first, and the room agents send VP8.

Audio has the same wait and no repair at all (aiortc NACKs only video): a missing
packet held its 16-packet buffer for 320 ms, and when a narrowing link dropped one
packet in two, a room heard nothing for a whole second. An audio buffer blocked for
``AUDIO_HOLE_DEADLINE_S`` moves on to the next packet it has (Opus frames stand
alone).

It extends room_agents.jitter's ``MarkerJitterBuffer`` (frames still leave with their
marked packet); ``install_hole_deadline`` makes aiortc's receivers built from now on use
it (the room agent's calls install it; bench/network's raw floor does not).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Final

import aiortc.rtcrtpreceiver
from aiortc.codecs.vpx import VpxPayloadDescriptor
from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.rtp import RtpPacket
from aiortc.utils import uint16_add, uint16_gt

from room_agents.jitter import MarkerJitterBuffer, receivers_buffer

log = logging.getLogger(__name__)

HOLE_DEADLINE_S: Final = 0.3  # about three round trips of a 40 ms link: NACK had its go
PLI_REPEAT_S: Final = 0.5  # a PLI or its keyframe may be lost too: ask again
KEYFRAME_WAIT_LIMIT_S: Final = 3.0  # then aiortc's own rule (no recognisable keyframe)
AUDIO_HOLE_DEADLINE_S: Final = 0.06  # three Opus frames: reordering, not a repair
VP8_KEY_START_CODE: Final = b"\x9d\x01\x2a"
_BUILT_FROM: Final = "JitterBuffer"

Clock = Callable[[], float]


def is_vp8_keyframe_start(payload: bytes) -> bool:
    """True for the first RTP payload of a VP8 key frame (RFC 7741 section 4.3: S=1,
    PID=0; RFC 6386 section 9.1: frame tag P bit 0, then the start code)."""
    try:
        descriptor, data = VpxPayloadDescriptor.parse(payload)
    except ValueError:
        return False
    return (
        descriptor.partition_start == 1
        and descriptor.partition_id == 0
        and len(data) >= 6
        and not data[0] & 0x01
        and data[3:6] == VP8_KEY_START_CODE
    )


class HoleDeadlineJitterBuffer(MarkerJitterBuffer):
    """``MarkerJitterBuffer`` that gives up a hole after ``hole_deadline_s`` and skips
    to the next keyframe (asking for one when none has arrived)."""

    def __init__(
        self,
        capacity: int,
        prefetch: int = 0,
        is_video: bool = False,
        *,
        clock: Clock = time.monotonic,
        hole_deadline_s: float = HOLE_DEADLINE_S,
    ) -> None:
        super().__init__(capacity, prefetch=prefetch, is_video=is_video)
        self._clock = clock
        self._hole_deadline_s = hole_deadline_s
        self._highest: int | None = None
        self._blocked_since: float | None = None
        self._awaiting_keyframe_since: float | None = None
        self._cleared_at: int | None = None  # the highest sequence number dropped
        self._last_pli = float("-inf")
        self.skips = 0  # holes given up (each a glitch instead of a freeze)

    @property
    def awaiting_keyframe(self) -> bool:
        return self._awaiting_keyframe_since is not None

    def add(self, packet: RtpPacket) -> tuple[bool, JitterFrame | None]:
        if not self._is_video:
            return self._add_audio(packet)
        now = self._clock()
        if self._awaiting_keyframe_since is not None:
            if self._newer_than_cleared(packet) and is_vp8_keyframe_start(packet.payload):
                self._awaiting_keyframe_since = None
            elif now - self._awaiting_keyframe_since > KEYFRAME_WAIT_LIMIT_S:
                log.info("no keyframe within %.1f s of a skipped hole", KEYFRAME_WAIT_LIMIT_S)
                self._awaiting_keyframe_since = None
            else:
                return self._pli_due(now), None
        if self._highest is None or uint16_gt(packet.sequence_number, self._highest):
            self._highest = packet.sequence_number
        pli_flag, frame = super().add(packet)
        if pli_flag:
            self._last_pli = now
        if frame is not None or not self._blocked():
            self._blocked_since = None
            return pli_flag, frame
        if self._blocked_since is None:
            self._blocked_since = now
        if now - self._blocked_since < self._hole_deadline_s and not self._keyframe_past_hole(
            packet
        ):
            return pli_flag, None
        return self._skip(now) or pli_flag, self._after_skip()

    def _keyframe_past_hole(self, packet: RtpPacket) -> bool:
        """``packet`` starts a keyframe behind the hole: nothing before it is needed."""
        hole = self._first_missing()
        if hole is None or self._origin is None:
            return False
        offset = uint16_add(packet.sequence_number, -self._origin)
        return offset > hole and is_vp8_keyframe_start(packet.payload)

    def _add_audio(self, packet: RtpPacket) -> tuple[bool, JitterFrame | None]:
        """aiortc's rule, but a hole older than AUDIO_HOLE_DEADLINE_S is passed over."""
        now = self._clock()
        if self._highest is None or uint16_gt(packet.sequence_number, self._highest):
            self._highest = packet.sequence_number
        pli_flag, frame = super().add(packet)
        if frame is not None or not self._blocked():
            self._blocked_since = None
            return pli_flag, frame
        if self._blocked_since is None:
            self._blocked_since = now
        if now - self._blocked_since < AUDIO_HOLE_DEADLINE_S:
            return pli_flag, None
        self._blocked_since = None
        self.skips += 1
        hole = self._first_missing()
        assert self._origin is not None and self._highest is not None and hole is not None
        span = uint16_add(self._highest, -self._origin)
        for count in range(hole + 1, min(span + 1, self._capacity)):
            sequence = uint16_add(self._origin, count)
            found = self._packets[sequence % self._capacity]
            if found is not None and found.sequence_number == sequence:
                self.remove(count)
                break
        return pli_flag, self._remove_frame(packet.sequence_number)

    def _first_missing(self) -> int | None:
        """Offset from the origin of the first missing packet, None when none is."""
        if self._origin is None or self._highest is None:
            return None
        span = uint16_add(self._highest, -self._origin)
        for count in range(min(span, self._capacity)):
            sequence = uint16_add(self._origin, count)
            packet = self._packets[sequence % self._capacity]
            if packet is None or packet.sequence_number != sequence:
                return count
        return None

    def _blocked(self) -> bool:
        """Packets have arrived past a missing one."""
        return self._first_missing() is not None

    def _skip(self, now: float) -> bool:
        """Drop the hole and what depends on it; True when a PLI should go out."""
        self.skips += 1
        self._blocked_since = None
        hole = self._first_missing()
        assert self._origin is not None and self._highest is not None and hole is not None
        span = uint16_add(self._highest, -self._origin)
        for count in range(hole + 1, min(span + 1, self._capacity)):
            sequence = uint16_add(self._origin, count)
            packet = self._packets[sequence % self._capacity]
            if (
                packet is not None
                and packet.sequence_number == sequence
                and is_vp8_keyframe_start(packet.payload)
            ):
                self.remove(count)  # the keyframe is now the origin
                return False
        self._cleared_at = self._highest
        self._clear()
        self._awaiting_keyframe_since = now
        return self._pli_due(now)

    def _newer_than_cleared(self, packet: RtpPacket) -> bool:
        """Sent after what the buffer dropped: a late or resent start of an older
        keyframe would set the buffer back before a hole it already gave up."""
        return self._cleared_at is None or uint16_gt(packet.sequence_number, self._cleared_at)

    def _after_skip(self) -> JitterFrame | None:
        return None if self.awaiting_keyframe else self._marked_frame()

    def _clear(self) -> None:
        self._packets = [None] * self._capacity
        self._origin = None
        self._highest = None

    def _pli_due(self, now: float) -> bool:
        if now - self._last_pli < PLI_REPEAT_S:
            return False
        self._last_pli = now
        return True


def hole_deadline_installed() -> bool:
    return receivers_buffer() is HoleDeadlineJitterBuffer


def install_hole_deadline() -> bool:
    """Make aiortc's receivers built from now on use ``HoleDeadlineJitterBuffer``
    (idempotent, whole process); False, and left alone, when aiortc's buffer is not
    one this subclass was written over."""
    if hole_deadline_installed():
        return True
    current = receivers_buffer()
    if current not in (JitterBuffer, MarkerJitterBuffer):
        log.warning("aiortc's jitter buffer is not the expected one: holes keep freezing")
        return False
    setattr(aiortc.rtcrtpreceiver, _BUILT_FROM, HoleDeadlineJitterBuffer)
    return True


def uninstall_hole_deadline() -> None:
    """Back to the marker buffer (no-op when not installed)."""
    if hole_deadline_installed():
        setattr(aiortc.rtcrtpreceiver, _BUILT_FROM, MarkerJitterBuffer)
