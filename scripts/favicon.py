"""Draw telecentre's icon: two room screens, a person on each, joined by a link, on
the brand's blue.

Writes ``web/static/favicon.svg`` (for browsers that take an SVG icon) and
``web/static/favicon.ico`` (16, 32 and 48 pixels, each a PNG inside the ICO, for
``/favicon.ico`` and older browsers). Plain Python: the shapes are rasterised here
with 4x4 supersampling, so no imaging library is needed.

    python scripts/favicon.py
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from pathlib import Path

STATIC = Path(__file__).resolve().parent.parent / "web" / "static"
SIZES = (16, 32, 48)
SAMPLES = 4

Colour = tuple[int, int, int]
BRAND: Colour = (0x12, 0x3B, 0x5C)
SCREEN: Colour = (0xFF, 0xFF, 0xFF)
LINK: Colour = (0x7C, 0xC4, 0xFF)

# (x, y, width, height, corner radius, colour) on a 32-unit square, back to front:
# the brand's square, two screens each showing a person, the link between them and
# the screens' feet.
SHAPES: tuple[tuple[float, float, float, float, float, Colour], ...] = (
    (0, 0, 32, 32, 6, BRAND),
    (2.5, 6.5, 12, 12, 1.5, SCREEN),
    (17.5, 6.5, 12, 12, 1.5, SCREEN),
    (6.5, 8.5, 4, 4, 2, BRAND),
    (21.5, 8.5, 4, 4, 2, BRAND),
    (5, 13.5, 7, 5, 2.5, BRAND),
    (20, 13.5, 7, 5, 2.5, BRAND),
    (14.5, 11.5, 3, 2, 0, LINK),
    (6, 21.5, 5, 2, 1, SCREEN),
    (21, 21.5, 5, 2, 1, SCREEN),
)


def svg() -> str:
    parts = [
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32">',
        "<title>telecentre</title>",
    ]
    for x, y, w, h, r, (red, green, blue) in SHAPES:
        parts.append(
            f'<rect x="{x:g}" y="{y:g}" width="{w:g}" height="{h:g}" rx="{r:g}" '
            f'fill="#{red:02x}{green:02x}{blue:02x}"/>'
        )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def _inside(x: float, y: float, w: float, h: float, r: float) -> Callable[[float, float], bool]:
    def test(px: float, py: float) -> bool:
        if not (x <= px <= x + w and y <= py <= y + h):
            return False
        cx = min(max(px, x + r), x + w - r)
        cy = min(max(py, y + r), y + h - r)
        return (px - cx) ** 2 + (py - cy) ** 2 <= r * r

    return test


def pixels(size: int) -> list[list[tuple[int, int, int, int]]]:
    """RGBA rows: each pixel the average of SAMPLES x SAMPLES points."""
    tests = [(_inside(x, y, w, h, r), colour) for x, y, w, h, r, colour in SHAPES]
    scale = 32 / size
    rows = []
    for row in range(size):
        line = []
        for column in range(size):
            total = [0.0, 0.0, 0.0, 0.0]
            for sy in range(SAMPLES):
                for sx in range(SAMPLES):
                    px = (column + (sx + 0.5) / SAMPLES) * scale
                    py = (row + (sy + 0.5) / SAMPLES) * scale
                    found: Colour | None = None
                    for test, colour in tests:
                        if test(px, py):
                            found = colour
                    if found is not None:
                        total[0] += found[0]
                        total[1] += found[1]
                        total[2] += found[2]
                        total[3] += 255
            covered = total[3] / 255
            n = SAMPLES * SAMPLES
            if covered:
                rgb = [round(total[i] / covered) for i in range(3)]
            else:
                rgb = [0, 0, 0]
            line.append((rgb[0], rgb[1], rgb[2], round(total[3] / n)))
        rows.append(line)
    return rows


def png(size: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    raw = b"".join(b"\x00" + bytes(v for p in line for v in p) for line in pixels(size))
    header = struct.pack(">IIBBBBB", size, size, 8, 6, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )


def ico(sizes: tuple[int, ...] = SIZES) -> bytes:
    """An ICO holding one PNG per size (Windows Vista's format, read by every browser)."""
    images = [png(size) for size in sizes]
    out = struct.pack("<HHH", 0, 1, len(images))
    offset = 6 + 16 * len(images)
    for size, image in zip(sizes, images, strict=True):
        out += struct.pack("<BBBBHHII", size % 256, size % 256, 0, 0, 1, 32, len(image), offset)
        offset += len(image)
    return out + b"".join(images)


def main() -> None:
    (STATIC / "favicon.svg").write_text(svg(), encoding="utf-8")
    (STATIC / "favicon.ico").write_bytes(ico())


if __name__ == "__main__":
    main()
