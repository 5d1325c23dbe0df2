"""Issue 10: ``/favicon.ico`` answered 404 on every page. The service serves its own
icon (drawn by ``scripts/favicon.py``) there and as an SVG, and the pages link it."""

from __future__ import annotations

import importlib.util
import re
import struct
import xml.etree.ElementTree as ET
import zlib
from pathlib import Path
from types import ModuleType

from aiohttp import ClientSession

from tests.ui_support import running_app
from web.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
ICON_LINK = re.compile(r'<link rel="icon" href="([^"]+)"')


def drawing() -> ModuleType:
    spec = importlib.util.spec_from_file_location("favicon", ROOT / "scripts" / "favicon.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def ico_images(data: bytes) -> dict[int, bytes]:
    """The PNG images of an ICO file by their width."""
    reserved, kind, count = struct.unpack_from("<HHH", data)
    assert (reserved, kind) == (0, 1) and count > 0
    images = {}
    for index in range(count):
        width, height, _, _, _, _, size, offset = struct.unpack_from(
            "<BBBBHHII", data, 6 + 16 * index
        )
        image = data[offset : offset + size]
        assert image.startswith(b"\x89PNG\r\n\x1a\n")
        assert struct.unpack_from(">II", image, 16) == (width or 256, height or 256)
        images[width] = image
    return images


def test_the_icon_files_are_what_the_script_draws() -> None:
    script = drawing()
    assert (ROOT / "web/static/favicon.ico").read_bytes() == script.ico()
    assert (ROOT / "web/static/favicon.svg").read_text(encoding="utf-8") == script.svg()
    images = ico_images(script.ico())
    assert sorted(images) == [16, 32, 48]
    # Each PNG's data decompresses to its rows: a filter byte and RGBA pixels.
    for width, image in images.items():
        length = struct.unpack_from(">I", image, 33)[0]
        assert image[37:41] == b"IDAT"
        raw = zlib.decompress(image[41 : 41 + length])
        assert len(raw) == width * (1 + 4 * width)


async def test_favicon_ico_is_served_and_every_page_links_the_icon(tmp_path: Path) -> None:
    async with running_app(Settings(data_dir=tmp_path)) as app, ClientSession() as http:
        async with http.get(app.url + "/favicon.ico") as response:
            assert response.status == 200
            assert response.content_type in ("image/vnd.microsoft.icon", "image/x-icon")
            assert "max-age" in response.headers["Cache-Control"]
            assert sorted(ico_images(await response.read())) == [16, 32, 48]
        async with http.get(app.url + "/login") as response:
            page = await response.text()
        links = ICON_LINK.findall(page)
        assert links == ["/static/favicon.svg", "/favicon.ico"]
        async with http.get(app.url + links[0]) as response:
            assert response.status == 200 and response.content_type == "image/svg+xml"
            root = ET.fromstring(await response.text())
            assert root.tag == "{http://www.w3.org/2000/svg}svg"
