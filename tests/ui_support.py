"""Helpers for the web application's tests: the service in-process on loopback (HTTP
or HTTPS with a throwaway certificate), people with each role, logging in through
the real login form, and the CSRF token of a page."""

from __future__ import annotations

import re
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from aiohttp import ClientSession, web

from orchestrator.clock import Clock
from tests.certificates import self_signed
from web.app import create_app
from web.keys import SERVICES
from web.settings import Settings

PASSWORD = "correct horse battery"
CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')
META_CSRF_RE = re.compile(r'<meta name="csrf-token" content="([^"]*)"')


def make_certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost (tests only)."""
    return self_signed(
        folder, common_name="telecentre test", dns_names=("localhost",), valid_days=7
    )


@dataclass(slots=True)
class RunningApp:
    app: web.Application
    url: str

    @property
    def services(self):  # type: ignore[no-untyped-def]
        return self.app[SERVICES]


@asynccontextmanager
async def running_app(
    settings: Settings, *, clock: Clock | None = None, tls: bool = False
) -> AsyncIterator[RunningApp]:
    """The whole service (pages, API, signalling, scheduler) on a free loopback port."""
    from web.app import tls_context

    if tls:
        cert, key = make_certificate(settings.data_dir)
        from dataclasses import replace

        settings = replace(settings, tls_cert=cert, tls_key=key)
    app = create_app(settings, clock=clock)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls_context(settings))
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    scheme = "https" if tls else "http"
    try:
        yield RunningApp(app, f"{scheme}://127.0.0.1:{port}")
    finally:
        await runner.cleanup()


def client_ssl() -> ssl.SSLContext:
    """Trust the throwaway certificate (tests only)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


async def csrf_of(http: ClientSession, url: str) -> str:
    async with http.get(url) as response:
        text = await response.text()
    match = CSRF_RE.search(text) or META_CSRF_RE.search(text)
    assert match, f"no CSRF token on {url}"
    return match.group(1)
