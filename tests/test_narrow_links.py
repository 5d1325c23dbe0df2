"""The room agent's narrow-link patches, rule by rule (docs/architecture.md, "Narrow
links"): a hole in received video is given up for the next keyframe
(room_agents.jitter_holes), VP8 follows the estimate in steps under a cap per picture
size (room_agents.vp8_rate), video leaves paced (room_agents.rtp_pacing), and the
receiver's estimate climbs back fast to what the link carried (room_agents.rate_recall).

What they achieve on a shaped link is tests/test_lab_adaptation.py's and bench/network's.
"""

from __future__ import annotations

import asyncio
import fractions
import itertools
from typing import Any

import aiortc.codecs
import aiortc.rate
import aiortc.rtcrtpreceiver
import av
import numpy as np
from aiortc import RTCRtpSender
from aiortc.codecs.vpx import Vp8Encoder, VpxPayloadDescriptor
from aiortc.jitterbuffer import JitterBuffer
from aiortc.rate import AimdRateControl, BandwidthUsage
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtp import HeaderExtensionsMap, RtpPacket

from room_agents import calls as calls_module
from room_agents.early_reports import early_reports_installed
from room_agents.jitter import MarkerJitterBuffer, receivers_buffer
from room_agents.jitter_holes import (
    AUDIO_HOLE_DEADLINE_S,
    HOLE_DEADLINE_S,
    KEYFRAME_WAIT_LIMIT_S,
    PLI_REPEAT_S,
    HoleDeadlineJitterBuffer,
    install_hole_deadline,
    is_vp8_keyframe_start,
    uninstall_hole_deadline,
)
from room_agents.rate_recall import (
    AIORTC_GAIN_PER_S,
    QUIET_S,
    RECALL_GAIN_PER_S,
    RecallingRateControl,
    climb_gain,
    cut_basis,
    install_rate_recall,
    rate_recall_installed,
    uninstall_rate_recall,
)
from room_agents.rtp_pacing import (
    BURST_S,
    RTX_BACKLOG_S,
    RTX_REPEAT_S,
    STARTUP_RATE_BPS,
    STARTUP_S,
    PacedTransport,
    Pacer,
    RtxFilter,
    congested,
    install_video_pacing,
    pace_rate_bps,
    uninstall_video_pacing,
    video_pacing_installed,
)
from room_agents.vp8_rate import (
    LOSS_CLEAR_S,
    MAX_INTRA_PCT,
    RATE_HISTORY_MAX,
    REPORT_SLACK_S,
    RUNGS,
    UP_HOLD_S,
    SteppedVp8Encoder,
    highest_since,
    install_stepped_vp8,
    loss_cap,
    next_rate,
    rate_cap,
    rung_at_most,
    stepped_vp8_installed,
    uninstall_stepped_vp8,
)

# --- receiver: a hole is given up for the next keyframe ---------------------------------

KEY_DATA = b"\x00\x00\x00\x9d\x01\x2a" + bytes(4)  # frame tag P=0, then the start code
DELTA_DATA = b"\x01\x00\x00" + bytes(7)


def vp8(sequence: int, timestamp: int, *, key: bool = False, start: bool = True,
        marker: bool = True) -> RtpPacket:  # fmt: skip
    """A VP8 RTP packet as aiortc's receiver hands it to the buffer (payload and the
    depayloaded ``_data``)."""
    data = KEY_DATA if key else DELTA_DATA
    descriptor = VpxPayloadDescriptor(partition_start=int(start), partition_id=0, picture_id=1)
    packet = RtpPacket(sequence_number=sequence, timestamp=timestamp)
    packet.marker = int(marker)
    packet.payload = bytes(descriptor) + data
    packet._data = data  # type: ignore[attr-defined]
    return packet


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_vp8_keyframe_start_is_told_from_delta_frames_and_continuations() -> None:
    assert is_vp8_keyframe_start(vp8(1, 0, key=True).payload)
    assert not is_vp8_keyframe_start(vp8(1, 0).payload)
    assert not is_vp8_keyframe_start(vp8(1, 0, key=True, start=False).payload)
    assert not is_vp8_keyframe_start(b"")


def test_a_hole_blocks_only_until_the_deadline_then_a_pli_and_packets_wait_for_a_keyframe() -> None:
    clock = FakeClock()
    buffer = HoleDeadlineJitterBuffer(512, is_video=True, clock=clock)
    pli, frame = buffer.add(vp8(10, 100, key=True))
    assert frame is not None and frame.timestamp == 100 and not pli
    # 11 is lost; 12 and 13 arrive and wait behind it (NACK's chance).
    assert buffer.add(vp8(12, 300)) == (False, None)
    clock.now += HOLE_DEADLINE_S / 2
    assert buffer.add(vp8(13, 400)) == (False, None)
    # Past the deadline: no keyframe behind the hole, so the buffer empties and asks.
    clock.now += HOLE_DEADLINE_S
    pli, frame = buffer.add(vp8(14, 500))
    assert pli and frame is None and buffer.awaiting_keyframe and buffer.skips == 1
    # Delta frames (they reference the lost one) never reach the decoder; the late
    # retransmission of 11 neither; the PLI is repeated only after PLI_REPEAT_S.
    assert buffer.add(vp8(11, 200)) == (False, None)
    assert buffer.add(vp8(15, 600)) == (False, None)
    clock.now += PLI_REPEAT_S + 0.01
    assert buffer.add(vp8(16, 700)) == (True, None)
    # The keyframe starts the stream again, and the frames after it follow.
    pli, frame = buffer.add(vp8(17, 800, key=True))
    assert not pli and frame is not None and frame.timestamp == 800
    assert not buffer.awaiting_keyframe
    assert buffer.add(vp8(18, 900))[1] is not None


def test_a_keyframe_behind_the_hole_is_where_the_buffer_moves_on_at_once() -> None:
    clock = FakeClock()
    buffer = HoleDeadlineJitterBuffer(512, is_video=True, clock=clock)
    buffer.add(vp8(1, 100, key=True))
    assert buffer.add(vp8(3, 300)) == (False, None)  # 2 lost
    # A keyframe starts behind the hole: no need to wait out the deadline for 2.
    pli, frame = buffer.add(vp8(4, 400, key=True))
    assert not pli and frame is not None and frame.timestamp == 400
    assert not buffer.awaiting_keyframe and buffer.skips == 1
    assert buffer.add(vp8(5, 500))[1] is not None


def test_a_keyframe_in_pieces_behind_the_hole_is_taken_when_its_last_piece_arrives() -> None:
    clock = FakeClock()
    buffer = HoleDeadlineJitterBuffer(512, is_video=True, clock=clock)
    buffer.add(vp8(1, 100, key=True))
    assert buffer.add(vp8(3, 300)) == (False, None)  # 2 lost
    assert buffer.add(vp8(4, 400, key=True, marker=False)) == (False, None)
    assert buffer.add(vp8(5, 400, start=False, marker=False)) == (False, None)
    _, frame = buffer.add(vp8(6, 400, start=False))
    assert frame is not None and frame.timestamp == 400 and buffer.skips == 1


def test_a_keyframe_whose_own_tail_is_missing_is_not_skipped_over() -> None:
    clock = FakeClock()
    buffer = HoleDeadlineJitterBuffer(512, is_video=True, clock=clock)
    buffer.add(vp8(1, 100, key=True))
    # 4 (the middle of the keyframe 3-5) is missing; its start arrives late, before the
    # hole: the keyframe is still wanted, and NACK has its chance.
    assert buffer.add(vp8(5, 300, start=False)) == (False, None)
    _, frame = buffer.add(vp8(2, 200))
    assert frame is not None and frame.timestamp == 200
    assert buffer.add(vp8(3, 300, key=True, marker=False)) == (False, None)
    assert buffer.skips == 0 and not buffer.awaiting_keyframe
    _, frame = buffer.add(vp8(4, 300, start=False, marker=False))  # the retransmission
    assert frame is not None and frame.timestamp == 300 and buffer.skips == 0


def test_an_older_keyframe_s_start_arriving_late_does_not_end_the_wait() -> None:
    clock = FakeClock()
    buffer = HoleDeadlineJitterBuffer(512, is_video=True, clock=clock)
    buffer.add(vp8(10, 100, key=True, marker=False))  # 11, the keyframe's end, is lost
    buffer.add(vp8(12, 200))
    clock.now += HOLE_DEADLINE_S + 0.01
    pli, _ = buffer.add(vp8(13, 300))
    assert pli and buffer.awaiting_keyframe
    # A resend of that keyframe's start (NACKed, or late) is older than what was dropped.
    assert buffer.add(vp8(10, 100, key=True, marker=False)) == (False, None)
    assert buffer.awaiting_keyframe
    _, frame = buffer.add(vp8(14, 400, key=True))
    assert frame is not None and frame.timestamp == 400 and not buffer.awaiting_keyframe


def test_a_hole_filled_before_the_deadline_is_no_skip() -> None:
    clock = FakeClock()
    buffer = HoleDeadlineJitterBuffer(512, is_video=True, clock=clock)
    buffer.add(vp8(1, 100, key=True))
    buffer.add(vp8(3, 300))
    clock.now += HOLE_DEADLINE_S * 0.9
    _, frame = buffer.add(vp8(2, 200))  # the retransmission
    assert frame is not None and frame.timestamp == 200
    clock.now += HOLE_DEADLINE_S
    assert buffer.add(vp8(4, 400))[1] is not None  # 3 left with 2's next add or now
    assert buffer.skips == 0


def test_a_stream_without_recognisable_keyframes_falls_back_to_aiortc_s_rule() -> None:
    clock = FakeClock()
    buffer = HoleDeadlineJitterBuffer(512, is_video=True, clock=clock)
    buffer.add(vp8(1, 100, key=True))
    buffer.add(vp8(3, 300))
    clock.now += HOLE_DEADLINE_S + 0.01
    buffer.add(vp8(4, 400))
    assert buffer.awaiting_keyframe
    clock.now += KEYFRAME_WAIT_LIMIT_S + 0.01
    assert buffer.add(vp8(5, 500))[1] is not None
    assert not buffer.awaiting_keyframe


def opus(sequence: int) -> RtpPacket:
    packet = RtpPacket(sequence_number=sequence, timestamp=sequence * 960)
    packet._data = bytes([sequence % 256])  # type: ignore[attr-defined]
    return packet


def test_an_audio_hole_is_passed_over_after_its_deadline_where_aiortc_waits_16_packets() -> None:
    def played(buffer: JitterBuffer, clock: FakeClock) -> list[int]:
        out = []
        for sequence in [1, 2, 3, 4, 5, 6, *range(8, 14)]:  # 7 lost, never resent
            clock.now += 0.02
            _, frame = buffer.add(opus(sequence))
            if frame is not None:
                out.append(frame.timestamp // 960)
        return out

    clock = FakeClock()
    assert AUDIO_HOLE_DEADLINE_S < 0.1
    ours = played(HoleDeadlineJitterBuffer(16, prefetch=4, clock=clock), clock)
    theirs = played(JitterBuffer(16, prefetch=4), FakeClock())
    assert theirs == [1, 2]  # everything after the hole waits for 16 packets
    assert ours[:2] == [1, 2] and 8 in ours and 7 not in ours


def test_the_hole_buffer_installs_over_the_marker_buffer_and_back() -> None:
    before = receivers_buffer()
    try:
        uninstall_hole_deadline()
        assert install_hole_deadline() and install_hole_deadline()
        assert aiortc.rtcrtpreceiver.JitterBuffer is HoleDeadlineJitterBuffer
        uninstall_hole_deadline()
        assert receivers_buffer() is MarkerJitterBuffer
    finally:
        aiortc.rtcrtpreceiver.JitterBuffer = before  # type: ignore[misc]
    assert issubclass(HoleDeadlineJitterBuffer, JitterBuffer)


# --- sender: VP8 in steps, under a cap per picture size ---------------------------------


def test_the_cap_grows_with_the_picture() -> None:
    assert rate_cap(320, 180) < rate_cap(640, 360) == 2_000_000 < rate_cap(1280, 720)
    assert rate_cap(640, 360) > 1_500_000  # above aiortc's MAX_BITRATE


def test_the_rate_steps_down_at_once_and_up_only_after_the_hold() -> None:
    assert all(b / a <= 1.3 for a, b in itertools.pairwise(RUNGS))
    cap = rate_cap(640, 360)
    # Sawing within 10 % of the running rate changes nothing (no new encoder).
    assert next_rate(500_000, 460_000, cap, 0.1) == 500_000
    assert next_rate(500_000, 560_000, cap, 0.1) == 500_000
    # A real drop steps down at once, to the rung under the estimate.
    assert next_rate(2_000_000, 420_000, cap, 0.0) == 400_000
    # A rise waits for the hold, then goes to the rung under the estimate and cap.
    assert next_rate(400_000, 900_000, cap, UP_HOLD_S - 0.1) == 400_000
    assert next_rate(400_000, 900_000, cap, UP_HOLD_S) == 800_000
    assert next_rate(1_600_000, 9_000_000, cap, UP_HOLD_S) == cap
    assert next_rate(250_000, 100_000, cap, 5.0) == RUNGS[0] == rung_at_most(1)


def test_heavy_loss_cuts_the_rate_at_once_and_the_cut_lifts_after_a_clean_spell() -> None:
    # 40 % lost: the link narrowed under us; the cut does not wait for the REMB.
    assert loss_cap(None, 2_000_000, 0.4, None) == 1_200_000  # what arrived
    assert loss_cap(1_000_000, 2_000_000, 0.4, None) == 1_000_000
    # A lossy link's few % are no congestion: the cut holds a while, then lifts.
    assert loss_cap(None, 2_000_000, 0.01, 0.0) is None
    assert loss_cap(800_000, 800_000, 0.05, LOSS_CLEAR_S / 2) == 800_000
    assert loss_cap(800_000, 800_000, 0.05, LOSS_CLEAR_S) is None
    clock = FakeClock()
    encoder = SteppedVp8Encoder(clock)
    encoder.target_bitrate = 2_000_000
    encoder.on_loss(0.5)
    assert encoder.loss_cap_bps == 250_000  # of the 500 kbit/s it runs at before a frame
    # 2.5 % (one packet of 40 at 400 kbit/s) in every report: the cut still lifts.
    for _ in range(3):
        clock.now += LOSS_CLEAR_S / 2
        encoder.on_loss(0.025)
    assert encoder.loss_cap_bps is None


def test_the_rate_a_report_speaks_of_is_the_highest_run_over_its_span() -> None:
    steps = [(0.0, 500_000), (1.0, 2_000_000), (3.0, 400_000)]
    assert highest_since(steps, 0.5) == 2_000_000
    assert highest_since(steps, 2.0) == 2_000_000  # 2 Mbit/s until 3 s
    assert highest_since(steps, 3.0) == 400_000
    assert highest_since(steps, 9.0) == 400_000


def test_a_report_that_still_counts_the_old_rate_does_not_cut_twice() -> None:
    clock = FakeClock()
    encoder = SteppedVp8Encoder(clock)
    encoder.target_bitrate = 2_000_000
    clock.now += UP_HOLD_S
    encoder.encode(frame(0))
    assert encoder.target_bitrate == 2_000_000
    clock.now += 1.0
    encoder.on_loss(0.0)
    # The link narrows: three quarters lost, the cut takes what arrived.
    clock.now += 0.3
    encoder.on_loss(0.75)
    assert encoder.loss_cap_bps == 500_000
    clock.now += 0.03
    encoder.encode(frame(1))
    assert encoder.target_bitrate == 500_000
    # The next report's span began before the cut: the same loss, of the same 2 Mbit/s.
    clock.now += 0.3
    encoder.on_loss(0.75)
    assert encoder.loss_cap_bps == 500_000
    # Still losing half, at 500 kbit/s all through the span: cut again.
    clock.now += REPORT_SLACK_S + 0.05
    encoder.on_loss(0.5)
    assert encoder.loss_cap_bps == 250_000


def frame(index: int) -> av.VideoFrame:
    rng = np.random.default_rng(index)
    image = (rng.integers(0, 64, (360, 640, 3), dtype=np.uint8) + (index * 3) % 64).astype(np.uint8)
    out = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuv420p")
    out.pts = index * 3000
    out.time_base = fractions.Fraction(1, 90000)
    return out


def test_the_stepped_encoder_keeps_its_encoder_through_small_changes_and_caps_keyframes() -> None:
    clock = FakeClock()
    encoder = SteppedVp8Encoder(clock)
    sizes = []
    for index in range(45):
        clock.now += 1 / 30
        encoder.target_bitrate = 520_000 if index % 2 else 470_000  # REMB sawing
        payloads, _ = encoder.encode(frame(index))
        sizes.append(sum(len(p) for p in payloads))
    assert encoder.steps == 0 and encoder.target_bitrate == 500_000
    # The first keyframe is held near MAX_INTRA_PCT of a frame's budget (aiortc's first
    # keyframe at this rate: tens of KB).
    assert sizes[0] < MAX_INTRA_PCT / 100 * 500_000 / 8 / 30 * 1.5
    encoder.target_bitrate = 5_000_000
    clock.now += UP_HOLD_S
    encoder.encode(frame(50))
    assert encoder.target_bitrate == rate_cap(640, 360) and encoder.steps == 1


def test_the_rate_history_stays_bounded_when_no_report_comes() -> None:
    clock = FakeClock()
    encoder = SteppedVp8Encoder(clock)
    small = av.VideoFrame.from_ndarray(np.zeros((120, 160, 3), np.uint8), format="rgb24")
    for index in range(RATE_HISTORY_MAX + 20):
        clock.now += UP_HOLD_S
        encoder.target_bitrate = 5_000_000 if index % 2 else 250_000
        encoder.encode(small.reformat(format="yuv420p"))
    assert encoder.steps > RATE_HISTORY_MAX
    assert len(encoder._rate_history) == RATE_HISTORY_MAX


def test_the_stepped_encoder_is_what_aiortc_builds_for_vp8_once_installed() -> None:
    codec = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=96)
    was = stepped_vp8_installed()
    try:
        uninstall_stepped_vp8()
        assert type(aiortc.codecs.get_encoder(codec)) is Vp8Encoder
        assert install_stepped_vp8() and install_stepped_vp8()
        assert type(aiortc.codecs.get_encoder(codec)) is SteppedVp8Encoder
    finally:
        (install_stepped_vp8 if was else uninstall_stepped_vp8)()


# --- sender: paced video, bounded retransmissions ---------------------------------------


def test_the_pacer_spreads_a_burst_at_its_rate() -> None:
    pacer = Pacer()
    waits = [pacer.wait(1250, 1_000_000, 0.0) for _ in range(10)]  # 10 ms each at 1 Mbit/s
    assert waits[0] == 0.0
    assert abs(waits[-1] - (0.09 - BURST_S)) < 1e-9
    assert abs(pacer.backlog(0.0) - 0.1) < 1e-9
    # Once idle, a packet leaves at once again.
    assert pacer.wait(1250, 1_000_000, 1.0) == 0.0


def test_retransmissions_are_not_repeated_within_the_window_nor_sent_when_behind() -> None:
    rtx = RtxFilter()
    assert rtx.allow(7, 0.0, 0.0)
    assert not rtx.allow(7, RTX_REPEAT_S / 2, 0.0)
    assert rtx.allow(7, RTX_REPEAT_S + 0.01, 0.0)
    assert not rtx.allow(8, 1.0, RTX_BACKLOG_S + 0.01)
    # The peer's last report says the link is full: no repairs at all.
    assert not rtx.allow(9, 2.0, 0.0, congested=True)
    sender = FakeSender()
    assert not congested(sender)  # type: ignore[arg-type]
    sender._RTCRtpSender__encoder.last_loss = 0.5
    assert congested(sender)  # type: ignore[arg-type]
    sender._RTCRtpSender__encoder.last_loss = 0.02
    assert not congested(sender)  # type: ignore[arg-type]


class FakeDtls:
    def __init__(self) -> None:
        self.sent: list[tuple[float, bytes]] = []
        self.name = "inner"

    async def _send_rtp(self, data: bytes) -> None:
        self.sent.append((asyncio.get_running_loop().time(), data))


class FakeSender:
    def __init__(self) -> None:
        self._rtx_ssrc = 99
        self._RTCRtpSender__encoder: Any = type("E", (), {"target_bitrate": 400_000})()
        self._RTCRtpSender__rtp_header_extensions_map = HeaderExtensionsMap()


def test_a_call_s_first_second_leaves_as_good_as_unpaced() -> None:
    assert pace_rate_bps(400_000, 0.0) == STARTUP_RATE_BPS
    assert pace_rate_bps(400_000, STARTUP_S - 0.01) == STARTUP_RATE_BPS
    assert pace_rate_bps(400_000, STARTUP_S) == 1.25 * 400_000
    assert pace_rate_bps(None, 5.0) == 1.25 * 1_000_000  # before the encoder exists


def _video_packets(first: int, count: int) -> list[bytes]:
    packets = []
    for sequence in range(first, first + count):
        packet = RtpPacket(payload_type=96, sequence_number=sequence, timestamp=1)
        packet.ssrc = 1
        packet.payload = bytes(1200)
        packets.append(packet.serialize(HeaderExtensionsMap()))
    return packets


async def test_a_paced_transport_spreads_a_keyframe_and_passes_everything_else_through() -> None:
    loop = asyncio.get_running_loop()
    shift = [0.0]  # the transport's clock jumps past the call's first second
    inner, sender = FakeDtls(), FakeSender()
    paced = PacedTransport(inner, sender, lambda: loop.time() + shift[0])  # type: ignore[arg-type]
    assert paced.name == "inner"
    # The first keyframe of a call goes at once (the rate is only aiortc's guess yet).
    start = loop.time()
    await asyncio.gather(*(paced._send_rtp(p) for p in _video_packets(0, 10)))
    assert inner.sent[-1][0] - start < 0.05
    shift[0] = STARTUP_S + 1.0
    packets = _video_packets(10, 10)
    start = loop.time()
    await asyncio.gather(*(paced._send_rtp(p) for p in packets))
    took = inner.sent[-1][0] - start
    expected = 9 * len(packets[0]) * 8 / (1.25 * 400_000) - BURST_S  # 10 packets at 500 kbit/s
    assert expected * 0.9 <= took <= expected + 0.1
    assert [RtpPacket.parse(d).sequence_number for _, d in inner.sent] == list(range(20))


async def test_packets_waiting_to_leave_count_in_the_backlog_that_stops_repairs() -> None:
    loop = asyncio.get_running_loop()
    inner, sender = FakeDtls(), FakeSender()
    paced = PacedTransport(inner, sender, lambda: loop.time() + STARTUP_S + 1.0)  # type: ignore[arg-type]
    paced._first_sent = loop.time()  # past the call's first second
    packets = _video_packets(0, 20)  # 20 x 1.2 KB at 500 kbit/s: 0.39 s
    waiting = [asyncio.ensure_future(paced._send_rtp(p)) for p in packets]
    await asyncio.sleep(0)  # each has booked its departure; one or two have left
    resend = RtpPacket(payload_type=97, sequence_number=1, timestamp=1)
    resend.ssrc = sender._rtx_ssrc
    resend.payload = (5).to_bytes(2, "big") + bytes(1200)
    await paced._send_rtp(resend.serialize(HeaderExtensionsMap()))
    assert paced.rtx_dropped == 1
    await asyncio.gather(*waiting)
    assert [RtpPacket.parse(d).sequence_number for _, d in inner.sent] == list(range(20))


def test_video_pacing_installs_on_the_sender_s_transport_property_and_back() -> None:
    was = video_pacing_installed()
    try:
        uninstall_video_pacing()
        assert isinstance(RTCRtpSender.__dict__["transport"], property)
        assert install_video_pacing() and install_video_pacing()
        assert video_pacing_installed()
    finally:
        (install_video_pacing if was else uninstall_video_pacing)()


# --- receiver: the estimate climbs back fast --------------------------------------------


def test_the_climb_is_fast_only_after_a_quiet_spell() -> None:
    assert climb_gain(None) == RECALL_GAIN_PER_S > AIORTC_GAIN_PER_S  # a call's start
    assert climb_gain(int(QUIET_S * 1000)) == RECALL_GAIN_PER_S
    assert climb_gain(int(QUIET_S * 1000) - 1) == AIORTC_GAIN_PER_S  # an overuse just now


def test_a_cut_is_taken_from_the_recent_most_that_arrived() -> None:
    readings = [(0, 2_000_000), (1_000, 1_200_000), (1_500, 600_000)]
    assert cut_basis(readings, 1_600, 500_000) == 2_000_000
    assert cut_basis(readings, 2_500, 500_000) == 1_200_000  # 2 s later: the first is gone
    assert cut_basis([], 0, None) is None
    # A starved receiver: its throughput reading falls with its stalls, overuse after
    # overuse; aiortc's estimate follows it down, ours cuts from what arrived before.
    results = {}
    for cls in (AimdRateControl, RecallingRateControl):
        control = cls()
        control.set_estimate(2_000_000, 0)
        control.update(BandwidthUsage.NORMAL, 2_000_000, 500)
        for step, seen in enumerate((1_400_000, 900_000, 600_000)):
            control.update(BandwidthUsage.OVERUSING, seen, 1_000 + step * 300)
        results[cls] = control.current_bitrate
    assert results[RecallingRateControl] == 0.85 * 2_000_000 > 3 * results[AimdRateControl]


def test_heavy_loss_cuts_the_estimate_to_what_arrives_at_the_next_update() -> None:
    control = RecallingRateControl()
    control.set_estimate(1_800_000, 0)
    control.update(BandwidthUsage.NORMAL, 2_000_000, 500)
    # The link narrowed: no queue seen (NORMAL), but the receiver's report lost 70 %.
    control.note_heavy_loss()
    assert control.update(BandwidthUsage.NORMAL, 600_000, 1_000) == 0.85 * 600_000
    # Once: the next updates climb again, gently (the loss counts as an overuse).
    after = control.update(BandwidthUsage.NORMAL, 600_000, 1_500)
    assert after is not None and 0.85 * 600_000 <= after <= 0.85 * 600_000 * AIORTC_GAIN_PER_S


def climb(control: AimdRateControl, start_ms: int, seconds: int) -> int:
    """The estimate after ``seconds`` of normal use with the throughput following it."""
    rate = control.current_bitrate
    for step in range(seconds * 2):
        rate = control.update(BandwidthUsage.NORMAL, int(rate / 1.1), start_ms + step * 500) or rate
    return rate


def test_after_a_drop_the_recalling_control_is_back_in_a_few_seconds_where_aiortc_takes_20() -> (
    None
):
    results = {}
    for cls in (AimdRateControl, RecallingRateControl):
        control = cls()
        control.set_estimate(2_000_000, 0)
        climb(control, 0, 5)  # the wide link, remembered
        control.update(BandwidthUsage.OVERUSING, 400_000, 6_000)  # the link narrowed
        control.update(BandwidthUsage.NORMAL, 340_000, 6_500)
        results[cls] = climb(control, 8_000, 10)
    assert results[RecallingRateControl] > 1_500_000 > results[AimdRateControl]


def test_the_recalling_control_is_what_aiortc_s_estimator_builds_once_installed() -> None:
    was = rate_recall_installed()
    try:
        uninstall_rate_recall()
        assert type(aiortc.rate.RemoteBitrateEstimator().rate_control) is AimdRateControl
        assert install_rate_recall() and install_rate_recall()
        assert type(aiortc.rate.RemoteBitrateEstimator().rate_control) is RecallingRateControl
    finally:
        (install_rate_recall if was else uninstall_rate_recall)()


def test_the_calls_install_every_narrow_link_patch() -> None:
    calls_module.install_narrow_link_patches()
    assert receivers_buffer() is HoleDeadlineJitterBuffer
    assert stepped_vp8_installed() and video_pacing_installed() and rate_recall_installed()
    assert early_reports_installed()
