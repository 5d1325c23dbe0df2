"""The VP8 sender follows the receiver's estimate in steps, with a cap per resolution.

aiortc's ``Vp8Encoder`` takes every REMB as its target (clamped to 250 kbit/s -
1.5 Mbit/s) and re-creates the libvpx encoder whenever the target moved by more than
10 %: every re-creation starts with a keyframe, and on a narrowing link (docs/
architecture.md, "Narrow links") those keyframes, sent in one burst, were a good part
of what overflowed the shaper. libvpx could change its rate on the fly
(``vpx_codec_enc_config_set``), but FFmpeg's libvpx wrapper reads the bit rate only
when it opens the encoder (measured: setting ``bit_rate`` on an open PyAV context
changes nothing), so a rate change still costs a new encoder.

``SteppedVp8Encoder`` therefore runs the encoder on a ladder of rates (``RUNGS``, 25 %
apart) and re-creates it only on a step: down at once when the estimate falls 10 %
below the running rate (the sender must not stay above the link), up only when the
estimate reaches a higher rung and the last step is ``UP_HOLD_S`` old. The REMB sawing
within a rung costs nothing. The ceiling depends on the picture (``rate_cap``): aiortc's
1.5 Mbit/s for every size left a 3 Mbit/s link half used at 640x360. Each new
encoder's keyframe is capped (libvpx ``max-intra-rate``) at ``MAX_INTRA_PCT`` of a
frame's budget, so a step or a PLI does not send a second's worth of bits at once.

The REMB is a delay-based estimate and needs a few seconds to fall to a link that
narrowed from 3 Mbit/s to 600 kbit/s (it cuts to 0.85 of a one-second throughput
window that still holds the wide rate): meanwhile the sender went on at 1-1.7 Mbit/s,
half of it dropped. So the encoder also follows the loss its peer reports (RTCP
receiver reports' fraction lost, ``loss_cap``): above ``LOSS_HIGH`` the rate is cut to
what arrived, ``(1 - loss)`` of what it runs at, at once (webrtc.org's ``1 - loss/2``
took three reports, 3.6 s, to come under a link narrowed from 3 to 0.6 Mbit/s); the
cut is lifted after ``LOSS_CLEAR_S`` of reports under ``LOSS_HIGH``, and the REMB rules
again. (Lifting it only under 2 % kept it for good on a link with 1 % random loss: at
400 kbit/s a report covers some 40 packets, and one lost is 2.5 %.) "What it runs at"
is the highest rate the encoder ran at over the report's span (``highest_since``, from
``REPORT_SLACK_S`` before the previous report): a report that arrives just after a cut
still counts packets sent at the old rate, and cutting the new rate by that loss again
took a stream from 2 Mbit/s to the lowest rung in half a second. Receivers that lose
heavily report at once (room_agents.early_reports), some 0.25 s apart.

``install_stepped_vp8`` makes aiortc's ``get_encoder`` build this class for VP8 and
feeds the senders' receiver reports to it (room agents' calls install it;
bench/network's raw floor does not).
"""

from __future__ import annotations

import logging
import multiprocessing
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final

import aiortc.codecs
import av
from aiortc import RTCRtpSender
from aiortc.codecs.vpx import Vp8Encoder, number_of_threads
from aiortc.rtp import RtcpRrPacket, RtcpSrPacket
from av.frame import Frame
from av.video.frame import VideoFrame

log = logging.getLogger(__name__)

# Encoder rates, bit/s: each 25 % above the last, so a receiver whose estimate may
# reach 1.5x what it receives (aiortc's AIMD clamp) can always ask for the next one.
RUNGS: Final = (
    250_000, 320_000, 400_000, 500_000, 640_000, 800_000, 1_000_000, 1_250_000,
    1_600_000, 2_000_000, 2_500_000, 3_200_000, 4_000_000, 5_000_000,
)  # fmt: skip
DOWN_BELOW: Final = 0.9  # step down once the estimate is this far under the rate
UP_HOLD_S: Final = 0.5  # a step up waits this long after the last step
MAX_INTRA_PCT: Final = 600  # a keyframe: at most 6 frames' worth of the rate
# Ceilings by picture size (pixels up to, bit/s): 640x360 carries 2 Mbit/s on a
# 3 Mbit/s link with room for audio and the headers; 720p 4 Mbit/s.
CAPS: Final = ((320 * 180, 640_000), (640 * 360, 2_000_000), (1280 * 720, 4_000_000))
CAP_ABOVE: Final = 5_000_000
LOSS_HIGH: Final = 0.10
LOSS_CLEAR_S: Final = 2.0
# A report counts the packets that reached the peer since its last one: sent up to a
# queue and a one-way trip before the report arrives.
REPORT_SLACK_S: Final = 0.25
FIRST_SPAN_S: Final = 1.5  # aiortc's longest interval between reports
RATE_HISTORY_MAX: Final = 128  # steps kept (each report keeps only its span's)
_GET_ENCODER_NAME: Final = "Vp8Encoder"
_RTCP: Final = "_handle_rtcp_packet"
_ENCODER: Final = "_RTCRtpSender__encoder"

Clock = Callable[[], float]


def rate_cap(width: int, height: int) -> int:
    """The highest encoder rate for a picture of this size."""
    pixels = width * height
    for limit, cap in CAPS:
        if pixels <= limit:
            return cap
    return CAP_ABOVE


def rung_at_most(bps: float) -> int:
    """The highest rung not above ``bps`` (the lowest rung for anything below it)."""
    fitting = [rung for rung in RUNGS if rung <= bps]
    return fitting[-1] if fitting else RUNGS[0]


def next_rate(running: int, estimate: int, cap: int, since_step_s: float) -> int:
    """The encoder rate to run at, given the rate it runs at, the receiver's estimate
    (REMB), the picture's cap and the time since the last step."""
    allowed = min(estimate, cap)
    if allowed < running * DOWN_BELOW:
        return rung_at_most(allowed)
    if running > cap:
        return rung_at_most(cap)
    wanted = rung_at_most(allowed)
    if wanted > running and since_step_s >= UP_HOLD_S:
        return wanted
    return running


def loss_cap(cap: int | None, sent: int, loss: float, low_since_s: float | None) -> int | None:
    """The loss-based ceiling after a receiver report (None: no ceiling); ``loss`` is
    the fraction lost since the last report, ``sent`` the highest rate the encoder ran
    at over that span, ``low_since_s`` how long reports have been under LOSS_HIGH
    (None when this one is not)."""
    if loss > LOSS_HIGH:
        cut = int(sent * (1 - loss))
        return cut if cap is None else min(cap, cut)
    if low_since_s is not None and low_since_s >= LOSS_CLEAR_S:
        return None
    return cap


def highest_since(steps: list[tuple[float, int]], since: float) -> int:
    """The highest rate in effect from ``since`` on; ``steps``: (time, rate) in time
    order, each rate in effect until the next step (the first one from the start)."""
    in_effect = steps[0][1]
    later = []
    for at, rate in steps:
        if at <= since:
            in_effect = rate
        else:
            later.append(rate)
    return max([in_effect, *later])


def steps_from(steps: list[tuple[float, int]], since: float) -> list[tuple[float, int]]:
    """``steps`` without those over before ``since`` (the one in effect then stays)."""
    over = [index for index, (at, _) in enumerate(steps) if at <= since]
    return steps[over[-1] :] if over else steps


class SteppedVp8Encoder(Vp8Encoder):
    """aiortc's VP8 encoder on a ladder of rates; ``target_bitrate`` reads the rate
    the encoder runs at and takes the receiver's estimate."""

    def __init__(self, clock: Clock = time.monotonic) -> None:
        super().__init__()
        self._clock = clock
        self.estimate_bps = RUNGS[3]  # aiortc starts VP8 at 500 kbit/s
        self.running_bps = RUNGS[3]
        self._cap = rate_cap(640, 360)
        self._stepped_at = clock()
        self.steps = 0
        self.loss_cap_bps: int | None = None
        self.last_loss: float | None = None
        self._low_loss_since: float | None = None
        self._rate_history: list[tuple[float, int]] = [(self._stepped_at, self.running_bps)]
        self._reported_at: float | None = None  # when the last report arrived

    def on_loss(self, loss: float) -> None:
        """A receiver report's fraction lost (0-1)."""
        now = self._clock()
        self.last_loss = loss
        if loss > LOSS_HIGH:
            self._low_loss_since = None
        elif self._low_loss_since is None:
            self._low_loss_since = now
        low_for = None if self._low_loss_since is None else now - self._low_loss_since
        previous = now - FIRST_SPAN_S if self._reported_at is None else self._reported_at
        since = previous - REPORT_SLACK_S
        self._reported_at = now
        self._rate_history = steps_from(self._rate_history, since)
        sent = highest_since(self._rate_history, since)
        self.loss_cap_bps = loss_cap(self.loss_cap_bps, sent, loss, low_for)

    @property
    def target_bitrate(self) -> int:
        return self.running_bps

    @target_bitrate.setter
    def target_bitrate(self, bitrate: int) -> None:
        self.estimate_bps = bitrate

    def encode(self, frame: Frame, force_keyframe: bool = False) -> tuple[list[bytes], int]:
        assert isinstance(frame, VideoFrame)
        self._cap = rate_cap(frame.width, frame.height)
        now = self._clock()
        estimate = self.estimate_bps
        if self.loss_cap_bps is not None:
            estimate = min(estimate, self.loss_cap_bps)
        rate = next_rate(self.running_bps, estimate, self._cap, now - self._stepped_at)
        if rate != self.running_bps:
            log.debug("VP8 rate %d -> %d bit/s", self.running_bps, rate)
            self.running_bps, self._stepped_at = rate, now
            self._rate_history.append((now, rate))
            del self._rate_history[:-RATE_HISTORY_MAX]  # a peer that never reports
            self.steps += 1
            self.codec = None
        if self.codec is not None and (
            frame.width != self.codec.width or frame.height != self.codec.height
        ):
            self.codec = None
        if self.codec is None:
            self._open(frame)
        return super().encode(frame, force_keyframe)

    def _open(self, frame: VideoFrame) -> None:
        """aiortc's encoder settings (codecs/vpx.py) at the running rate, plus the
        keyframe cap."""
        rate = self.running_bps
        self._Vp8Encoder__target_bitrate = rate  # aiortc sizes the rate buffer from it
        codec = av.CodecContext.create("libvpx", "w")
        assert isinstance(codec, av.video.codeccontext.VideoCodecContext)
        codec.width = frame.width
        codec.height = frame.height
        codec.bit_rate = rate
        codec.pix_fmt = "yuv420p"
        codec.gop_size = 3000
        codec.qmin = 2
        codec.qmax = 56
        codec.options = {
            "bufsize": str(rate),  # a one-second rate buffer
            "cpu-used": "-6",
            "deadline": "realtime",
            "lag-in-frames": "0",
            "minrate": str(rate),
            "maxrate": str(rate),
            "max-intra-rate": str(MAX_INTRA_PCT),
            "noise-sensitivity": "4",
            "overshoot-pct": "15",
            "partitions": "0",
            "static-thresh": "1",
            "undershoot-pct": "100",
        }
        codec.thread_count = number_of_threads(
            frame.width * frame.height, multiprocessing.cpu_count()
        )
        self.codec = codec


class _LossFeedingHandler:
    """Stands in for ``RTCRtpSender._handle_rtcp_packet``: hands the fraction lost of
    receiver reports about this sender's stream to its stepped encoder, then lets
    aiortc handle the packet."""

    def __init__(self, original: Callable[[RTCRtpSender, Any], Awaitable[None]]) -> None:
        self.original = original

    def __get__(self, sender: RTCRtpSender | None, owner: type | None = None) -> Any:
        if sender is None:
            return self
        return lambda packet: self(sender, packet)

    async def __call__(self, sender: RTCRtpSender, packet: Any) -> None:
        if isinstance(packet, RtcpRrPacket | RtcpSrPacket):
            encoder = getattr(sender, _ENCODER, None)
            if isinstance(encoder, SteppedVp8Encoder):
                for report in packet.reports:
                    if report.ssrc == sender._ssrc:
                        encoder.on_loss(report.fraction_lost / 256)
        await self.original(sender, packet)


def stepped_vp8_installed() -> bool:
    return getattr(aiortc.codecs, _GET_ENCODER_NAME) is SteppedVp8Encoder and isinstance(
        RTCRtpSender.__dict__.get(_RTCP), _LossFeedingHandler
    )


def install_stepped_vp8() -> bool:
    """Make aiortc's senders built from now on encode VP8 with ``SteppedVp8Encoder``
    (idempotent, whole process); False, and left alone, when aiortc's VP8 encoder is
    not the one this subclass was written over."""
    if stepped_vp8_installed():
        return True
    current = getattr(aiortc.codecs, _GET_ENCODER_NAME, None)
    handler = RTCRtpSender.__dict__.get(_RTCP)
    if (
        current is not Vp8Encoder
        or not hasattr(Vp8Encoder(), "_Vp8Encoder__target_bitrate")
        or not callable(handler)
        or _ENCODER not in RTCRtpSender.__init__.__code__.co_names
    ):
        log.warning("aiortc's VP8 encoder is not the expected one: rates change as before")
        return False
    setattr(aiortc.codecs, _GET_ENCODER_NAME, SteppedVp8Encoder)
    setattr(RTCRtpSender, _RTCP, _LossFeedingHandler(handler))
    return True


def uninstall_stepped_vp8() -> None:
    setattr(aiortc.codecs, _GET_ENCODER_NAME, Vp8Encoder)
    handler = RTCRtpSender.__dict__.get(_RTCP)
    if isinstance(handler, _LossFeedingHandler):
        setattr(RTCRtpSender, _RTCP, handler.original)
