"""Behind a TLS-terminating reverse proxy: forwarded headers count only from trusted
proxies (secure cookies, the client address used by login throttling)."""

from __future__ import annotations

from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer

from web.app import create_app
from web.proxy import client_from_forwarded, parse_networks
from web.settings import Settings


def test_the_client_is_the_first_untrusted_hop_from_the_right() -> None:
    proxies = parse_networks(["10.0.0.0/8", "127.0.0.1/32"])
    assert client_from_forwarded("127.0.0.1", "203.0.113.9, 10.1.2.3", proxies) == "203.0.113.9"
    # A client cannot pretend to be someone else by prepending an address.
    assert client_from_forwarded("127.0.0.1", "1.1.1.1, 198.51.100.7", proxies) == "198.51.100.7"
    # Not from a proxy: the header is ignored.
    assert client_from_forwarded("198.51.100.7", "1.1.1.1", proxies) == "198.51.100.7"


async def _csrf_cookie(settings: Settings, headers: dict[str, str]) -> str:
    async with TestClient(TestServer(create_app(settings))) as client:
        response = await client.get("/lang/en", headers=headers, allow_redirects=False)
        return response.headers.getone("Set-Cookie", "")


async def test_forwarded_https_makes_cookies_secure_only_from_a_trusted_proxy(
    tmp_path: Path,
) -> None:
    headers = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"}
    trusted = Settings(data_dir=tmp_path / "a", trusted_proxies=("127.0.0.1/32",))
    untrusted = Settings(data_dir=tmp_path / "b")
    assert "Secure" in await _csrf_cookie(trusted, headers)
    assert "Secure" not in await _csrf_cookie(untrusted, headers)
