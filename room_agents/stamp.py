"""A capture-time stamp in the pixels of a video frame (DESIGN "Measuring media").

Layout, in the luma plane, from the top-left corner:

- blocks of ``BLOCK`` x ``BLOCK`` pixels aligned to the codec's 16x16 macroblock grid,
  laid row-major: ``width // BLOCK`` blocks to a row, wrapping to further rows;
- block 0 is the black reference (luma ``BLACK``), block 1 the white reference
  (luma ``WHITE``);
- then 48 bits of capture time in integer milliseconds since the epoch, most
  significant bit first;
- then 8 bits of flags: bit 0 (``FLAG_CAMERA``) is 1 for camera content and 0 for
  a card; bit 1 (``FLAG_PRIVACY``) is 1 for the privacy card (the room muted its
  camera and microphone from its touch panel), 0 otherwise; bit 2
  (``FLAG_NO_CAMERA``) is 1 for the "camera unavailable" card (the room should
  send its camera but cannot open it); the other bits are 0. At most one bit is
  set: neither card is camera content;
- then a CRC-8 (polynomial 0x07, initial value 0, no reflection, no final XOR)
  over the 7 payload bytes (6 time bytes, then the flags byte), as 8 bits.

A one bit is a ``WHITE`` block, a zero bit a ``BLACK`` block. The chroma under the
stamp is neutral (128) so that colour does not bleed into the luma on conversion.

Reading takes the mean of the inner 8x8 pixels of each block (the edges are where
the codec's loop filter and ringing land) and thresholds it at the midpoint of the
two references. A frame is rejected when the references are not separated by more
than ``MIN_CONTRAST`` levels (no stamp, or a frame too damaged) or the CRC fails.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

BLOCK: Final = 16
BLACK: Final = 16
WHITE: Final = 235
NEUTRAL_CHROMA: Final = 128
MIN_CONTRAST: Final = 60
TIME_BITS: Final = 48
FLAG_BITS: Final = 8
CRC_BITS: Final = 8
FLAG_CAMERA: Final = 0x01
FLAG_PRIVACY: Final = 0x02
FLAG_NO_CAMERA: Final = 0x04
KNOWN_FLAGS: Final = FLAG_CAMERA | FLAG_PRIVACY | FLAG_NO_CAMERA
CRC_POLY: Final = 0x07
REFERENCE_BLOCKS: Final = 2
STAMP_BLOCKS: Final = REFERENCE_BLOCKS + TIME_BITS + FLAG_BITS + CRC_BITS  # 66

_INNER_FROM: Final = BLOCK // 4
_INNER_TO: Final = BLOCK - BLOCK // 4
_MAX_MS: Final = (1 << TIME_BITS) - 1

Array = npt.NDArray[np.uint8]


@dataclass(frozen=True)
class Stamp:
    capture_ms: int
    camera: bool
    privacy: bool = False
    no_camera: bool = False


def crc8(data: bytes) -> int:
    """CRC-8 with polynomial 0x07, initial value 0 (CRC-8/SMBUS)."""
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ CRC_POLY) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def stamp_rows(width: int) -> int:
    """Rows of blocks the stamp takes in a frame ``width`` pixels wide."""
    cols = width // BLOCK
    if cols < 1:
        raise ValueError(f"a frame {width} px wide is too narrow for a stamp")
    return -(-STAMP_BLOCKS // cols)


def _payload(capture_ms: int, camera: bool, privacy: bool, no_camera: bool = False) -> bytes:
    if camera + privacy + no_camera > 1:
        raise ValueError("a frame is camera content, the privacy card or the unavailable card")
    flags = (
        (FLAG_CAMERA if camera else 0)
        | (FLAG_PRIVACY if privacy else 0)
        | (FLAG_NO_CAMERA if no_camera else 0)
    )
    return capture_ms.to_bytes(TIME_BITS // 8, "big") + bytes([flags])


def _bits(data: bytes) -> list[int]:
    return [(byte >> (7 - i)) & 1 for byte in data for i in range(8)]


def stamp_levels(
    capture_ms: int, camera: bool, privacy: bool = False, no_camera: bool = False
) -> Array:
    """The luma level of each of the ``STAMP_BLOCKS`` blocks, in layout order."""
    if not 0 <= capture_ms <= _MAX_MS:
        raise ValueError(f"capture time {capture_ms} ms does not fit in {TIME_BITS} bits")
    payload = _payload(capture_ms, camera, privacy, no_camera)
    bits = [0, 1, *_bits(payload), *_bits(bytes([crc8(payload)]))]
    return np.where(np.array(bits, dtype=bool), WHITE, BLACK).astype(np.uint8)


def write_stamp(
    yuv: Array,
    width: int,
    height: int,
    capture_ms: int,
    camera: bool,
    privacy: bool = False,
    no_camera: bool = False,
) -> None:
    """Write the stamp in place into a yuv420p array of shape (height * 3 // 2, width).

    The array is laid out as PyAV's ``VideoFrame.to_ndarray(format="yuv420p")`` gives
    it: the luma plane, then the U plane and the V plane, each (height // 2) x
    (width // 2) flattened into the remaining rows. ``width`` and ``height`` must be
    even, as yuv420p requires.
    """
    if yuv.shape != (height * 3 // 2, width) or yuv.dtype != np.uint8:
        raise ValueError(f"expected a uint8 yuv420p array of {width}x{height}")
    if not yuv.flags.c_contiguous:
        # The chroma planes are reshaped views; a copy would swallow the writes.
        raise ValueError("the yuv420p array must be C-contiguous")
    if width % 2 or height % 2:
        raise ValueError("yuv420p needs an even width and height")
    rows = stamp_rows(width)
    if rows * BLOCK > height:
        raise ValueError(f"a frame {height} px high is too short for a stamp")
    cols = width // BLOCK
    levels = stamp_levels(capture_ms, camera, privacy, no_camera)
    flat = yuv.reshape(-1)
    chroma_size = (height // 2) * (width // 2)
    u = flat[width * height : width * height + chroma_size].reshape(height // 2, width // 2)
    v = flat[width * height + chroma_size :].reshape(height // 2, width // 2)
    half = BLOCK // 2
    for row in range(rows):
        chunk = levels[row * cols : (row + 1) * cols]
        top = row * BLOCK
        yuv[top : top + BLOCK, : len(chunk) * BLOCK] = np.repeat(chunk, BLOCK)[np.newaxis, :]
        u[row * half : (row + 1) * half, : len(chunk) * half] = NEUTRAL_CHROMA
        v[row * half : (row + 1) * half, : len(chunk) * half] = NEUTRAL_CHROMA


def block_means(luma: Array) -> npt.NDArray[np.float64]:
    """Mean of the inner 8x8 pixels of each stamp block, in layout order."""
    height, width = luma.shape
    cols = width // BLOCK
    rows = stamp_rows(width)
    if rows * BLOCK > height:
        raise ValueError(f"a frame {height} px high is too short for a stamp")
    grid = luma[: rows * BLOCK, : cols * BLOCK].reshape(rows, BLOCK, cols, BLOCK)
    inner = grid[:, _INNER_FROM:_INNER_TO, :, _INNER_FROM:_INNER_TO]
    means: npt.NDArray[np.float64] = inner.mean(axis=(1, 3), dtype=np.float64)
    return means.reshape(-1)[:STAMP_BLOCKS]


def _to_bytes(bits: npt.NDArray[np.bool_]) -> bytes:
    return bytes(np.packbits(bits).tolist())


def read_stamp(luma: Array) -> Stamp | None:
    """Read the stamp from a luma plane (height x width); None if absent or damaged."""
    try:
        means = block_means(luma)
    except ValueError:
        return None
    black, white = means[0], means[1]
    if white - black <= MIN_CONTRAST:
        return None
    bits = means[REFERENCE_BLOCKS:] > (black + white) / 2
    payload = _to_bytes(bits[: TIME_BITS + FLAG_BITS])
    crc = _to_bytes(bits[TIME_BITS + FLAG_BITS :])[0]
    if crc8(payload) != crc:
        return None
    flags = payload[-1]
    if flags & ~KNOWN_FLAGS or flags & (flags - 1):
        return None  # bits we never write together: a collision the CRC let through
    return Stamp(
        capture_ms=int.from_bytes(payload[: TIME_BITS // 8], "big"),
        camera=bool(flags & FLAG_CAMERA),
        privacy=bool(flags & FLAG_PRIVACY),
        no_camera=bool(flags & FLAG_NO_CAMERA),
    )
