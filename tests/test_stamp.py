"""The capture-time stamp: layout, round trips, and survival through real VP8."""

from __future__ import annotations

import fractions

import av
import numpy as np
import numpy.typing as npt
import pytest
from aiortc.codecs.vpx import Vp8Decoder, Vp8Encoder, vp8_depayload
from aiortc.jitterbuffer import JitterFrame

from room_agents.stamp import (
    BLACK,
    BLOCK,
    STAMP_BLOCKS,
    WHITE,
    Stamp,
    block_means,
    crc8,
    read_stamp,
    stamp_levels,
    stamp_rows,
    write_stamp,
)

T0 = 1_767_225_600_123  # 2026-01-01T00:00:00.123Z in ms

Array = npt.NDArray[np.uint8]


def moving_frame(rng: np.random.Generator, width: int, height: int, index: int) -> Array:
    """Hard content for a codec: a scrolling ramp, noise, a sweeping bar, noisy chroma."""
    yuv = np.empty((height * 3 // 2, width), np.uint8)
    x = np.arange(width)
    yuv[:height] = ((x[np.newaxis, :] * 3 + index * 37) % 220 + 16).astype(np.uint8)
    yuv[:height] ^= rng.integers(0, 64, (height, width), dtype=np.uint8)
    bar = (index * 29) % width
    yuv[:height, bar : bar + 40] = 235
    yuv[height:] = rng.integers(60, 200, (height // 2, width), dtype=np.uint8)
    return yuv


def luma_of(frame: av.VideoFrame) -> Array:
    return np.asarray(frame.to_ndarray(format="yuv420p"), dtype=np.uint8)[: frame.height]


def test_stamp_takes_66_blocks_and_wraps_at_640() -> None:
    assert STAMP_BLOCKS == 66
    assert stamp_rows(640) == 2  # 40 blocks to a row
    assert stamp_rows(1280) == 1
    assert stamp_rows(16) == 66
    with pytest.raises(ValueError):
        stamp_rows(15)


def test_crc8_matches_the_smbus_check_value() -> None:
    # CRC-8 poly 0x07 init 0 ("CRC-8/SMBUS") has check value 0xF4 over "123456789".
    assert crc8(b"123456789") == 0xF4
    assert crc8(b"") == 0


def test_layout_references_then_time_msb_first_then_flags_then_crc() -> None:
    levels = stamp_levels(1, camera=True)
    assert levels[0] == BLACK and levels[1] == WHITE
    time_bits = levels[2:50]
    assert list(time_bits[:-1]) == [BLACK] * 47 and time_bits[-1] == WHITE
    flags = levels[50:58]
    assert list(flags) == [BLACK] * 7 + [WHITE]
    crc = crc8(b"\x00\x00\x00\x00\x00\x01\x01")
    assert [int(v == WHITE) for v in levels[58:66]] == [(crc >> (7 - i)) & 1 for i in range(8)]


@pytest.mark.parametrize(("width", "height"), [(640, 360), (1280, 720), (320, 240), (648, 360)])
@pytest.mark.parametrize("camera", [True, False])
def test_round_trip_without_codec(width: int, height: int, camera: bool) -> None:
    yuv = np.random.default_rng(0).integers(0, 256, (height * 3 // 2, width), dtype=np.uint8)
    write_stamp(yuv, width, height, T0, camera)
    assert read_stamp(yuv[:height]) == Stamp(capture_ms=T0, camera=camera)


def test_chroma_under_the_stamp_is_neutral_and_the_rest_untouched() -> None:
    width, height = 640, 360
    yuv = np.full((height * 3 // 2, width), 77, np.uint8)
    write_stamp(yuv, width, height, T0, camera=True)
    chroma = yuv.reshape(-1)[width * height :]
    u, v = (p.reshape(height // 2, width // 2) for p in np.split(chroma, 2))
    for plane in (u, v):
        assert (plane[:8, :320] == 128).all()  # first row: 40 blocks
        assert (plane[8:16, : 26 * 8] == 128).all()  # second row: 26 blocks
        assert (plane[8:16, 26 * 8 :] == 77).all()
        assert (plane[16:] == 77).all()
    assert (yuv[16:32, 26 * BLOCK : width] == 77).all()
    assert (yuv[32:height] == 77).all()


def test_write_rejects_frames_that_cannot_hold_a_stamp() -> None:
    with pytest.raises(ValueError):
        write_stamp(np.zeros((30, 64), np.uint8), 64, 20, T0, True)  # 5 rows needed
    with pytest.raises(ValueError):
        write_stamp(np.zeros((540, 640), np.uint8), 640, 300, T0, True)  # wrong shape
    with pytest.raises(ValueError):
        write_stamp(np.zeros((640, 540), np.uint8).T, 640, 360, T0, True)  # not contiguous
    with pytest.raises(ValueError):
        write_stamp(np.zeros((540, 640), np.uint8), 640, 360, 1 << 48, True)


def test_a_frame_without_a_stamp_reads_none() -> None:
    assert read_stamp(np.full((360, 640), 128, np.uint8)) is None
    assert read_stamp(np.zeros((8, 640), np.uint8)) is None  # too short


@pytest.mark.parametrize("block", [2, 10, 49, 55, 60, 65])
def test_a_flipped_block_fails_the_crc(block: int) -> None:
    width, height = 1280, 720
    yuv = np.zeros((height * 3 // 2, width), np.uint8)
    write_stamp(yuv, width, height, T0, camera=True)
    luma = yuv[:height]
    x = block * BLOCK
    luma[:BLOCK, x : x + BLOCK] = WHITE + BLACK - luma[:BLOCK, x : x + BLOCK]
    assert read_stamp(luma) is None


def test_references_too_close_read_none() -> None:
    yuv = np.zeros((540, 640), np.uint8)
    write_stamp(yuv, 640, 360, T0, camera=True)
    yuv[:BLOCK, BLOCK : 2 * BLOCK] = BLACK + 60  # white reference dimmed to 60 above black
    assert read_stamp(yuv[:360]) is None


@pytest.mark.parametrize(("width", "height"), [(640, 360), (1280, 720)])
def test_survives_aiortc_vp8_at_its_lowest_bitrate(width: int, height: int) -> None:
    """aiortc's own encoder, clamped to MIN_BITRATE, on hard moving content."""
    rng = np.random.default_rng(1)
    encoder, decoder = Vp8Encoder(), Vp8Decoder()
    encoder.target_bitrate = 0  # clamped to aiortc's MIN_BITRATE
    sent: list[Stamp] = []
    read: list[Stamp | None] = []
    for index in range(30):
        yuv = moving_frame(rng, width, height, index)
        stamp = Stamp(T0 + index * 33 + int(rng.integers(0, 1 << 20)), camera=index % 3 != 0)
        write_stamp(yuv, width, height, stamp.capture_ms, stamp.camera)
        sent.append(stamp)
        frame = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
        frame.pts, frame.time_base = index * 3000, fractions.Fraction(1, 90000)
        payloads, timestamp = encoder.encode(frame, force_keyframe=index == 0)
        data = b"".join(vp8_depayload(p) for p in payloads)
        for decoded in decoder.decode(JitterFrame(data=data, timestamp=timestamp)):
            assert isinstance(decoded, av.VideoFrame)
            read.append(read_stamp(luma_of(decoded)))
    assert read == sent


@pytest.mark.parametrize(("width", "height"), [(640, 360), (1280, 720)])
def test_survives_vp8_pinned_at_aiortcs_coarsest_quantiser(width: int, height: int) -> None:
    """libvpx with min = max quantiser = 56, aiortc's rc_max_quantizer, every frame."""
    rng = np.random.default_rng(2)
    encoder = av.CodecContext.create("libvpx", "w")
    assert isinstance(encoder, av.VideoCodecContext)
    encoder.width, encoder.height, encoder.pix_fmt = width, height, "yuv420p"
    encoder.bit_rate = 250_000
    encoder.qmin = encoder.qmax = 56
    encoder.time_base = fractions.Fraction(1, 30)
    encoder.options = {"deadline": "realtime", "cpu-used": "-6", "lag-in-frames": "0"}
    decoder = av.CodecContext.create("libvpx", "r")
    margins: list[float] = []
    errors = 0
    for index in range(30):
        yuv = moving_frame(rng, width, height, index)
        capture_ms = T0 + index * 33 + int(rng.integers(0, 1 << 20))
        write_stamp(yuv, width, height, capture_ms, camera=True)
        frame = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
        frame.pts, frame.time_base = index, fractions.Fraction(1, 30)
        for packet in encoder.encode(frame):
            for decoded in decoder.decode(packet):
                assert isinstance(decoded, av.VideoFrame)
                luma = luma_of(decoded)
                if read_stamp(luma) != Stamp(capture_ms, camera=True):
                    errors += 1
                means = block_means(luma)
                margins.append(float(np.abs(means[2:] - (means[0] + means[1]) / 2).min()))
    assert errors == 0
    assert len(margins) == 30
    assert min(margins) > 60  # far from the threshold, not just on the right side of it
