"""Behind a reverse proxy that terminates TLS: trust ``X-Forwarded-Proto`` and
``X-Forwarded-For`` only from the proxies named in ``trusted_proxies``, so secure
cookies, https links and per-client login throttling see the real request.

Without trusted proxies the headers are ignored (anyone could send them).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from aiohttp import web

from signalling.candidates import Network, address_allowed, parse_networks

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _trusted(address: str | None, networks: Sequence[Network]) -> bool:
    return address is not None and address_allowed(address, networks)


def client_from_forwarded(remote: str, header: str, networks: Sequence[Network]) -> str:
    """The first address, walking ``X-Forwarded-For`` from the right, that is not one
    of our proxies (the rightmost entries are the ones our proxies appended)."""
    hops = [h.strip() for h in header.split(",") if h.strip()]
    client = remote
    for hop in reversed(hops):
        if not _trusted(client, networks):
            break
        client = hop
    return client


def forwarded_middleware(trusted: Sequence[str]) -> Callable[..., Awaitable[web.StreamResponse]]:
    networks = parse_networks(trusted)

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not networks or not _trusted(request.remote, networks):
            return await handler(request)
        proto = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
        host = request.headers.get("X-Forwarded-Host", "").split(",")[0].strip()
        forwarded_for = request.headers.get("X-Forwarded-For")
        remote = request.remote
        if forwarded_for and remote:
            remote = client_from_forwarded(remote, forwarded_for, networks)
        clone = request.clone(
            scheme=proto if proto in ("http", "https") else request.scheme,
            host=host or request.host,
            remote=remote or "",
        )
        return await handler(clone)

    return middleware
