"""TURN over TLS (``turns:``) that trusts a private certificate authority besides the
system's.

aiortc hands aioice ``turn_ssl=True`` for a ``turns:`` URL, and aioice passes it to
``loop.create_connection(ssl=True)``: Python's default context, the system's CA store
only. A deployment whose coturn has a certificate from its own CA (a ministry's, a
test lab's) then fails the handshake, and the room, whose firewall lets out only TCP
443, has no relay at all. Issue 12 asks for that CA to be configurable: the agent's
``turn_ca_file`` setting (room_agents.config).

``install_turn_ca(path)`` wraps ``aioice.turn.create_turn_endpoint`` (aioice.ice calls
it through the module, at each relayed gathering) so that ``ssl=True`` becomes a
context holding the system's CAs *and* the file's; an explicit context or a plain
connection passes through unchanged. The readiness check allocates through the same
function, so it checks what the calls will meet. Installed once by the agent when the
setting is given (idempotent; installing another file replaces the context).

This is the agent's fourth aioice patch (room_agents.ice, ice_pacing, ice_triggered);
it relies only on ``create_turn_endpoint``'s public ``ssl`` keyword.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import aioice.turn

_PATCHED: Final = "create_turn_endpoint"

Endpoint = Callable[..., Any]


class TurnCaError(ValueError):
    """The private CA file cannot be read as PEM certificates."""


def turn_tls_context(ca_file: Path | None) -> ssl.SSLContext:
    """The context ``turns:`` connections verify with: the system's CAs, plus
    ``ca_file``'s certificates when given (host names and expiry checked as usual)."""
    context = ssl.create_default_context()
    if ca_file is not None:
        try:
            context.load_verify_locations(cafile=str(ca_file))
        except (OSError, ssl.SSLError) as exc:
            raise TurnCaError(f"cannot read TURN CA file {ca_file}: {exc}") from None
    return context


class _TrustingEndpoint:
    """Stands in for ``aioice.turn.create_turn_endpoint``; remembers what it replaced."""

    def __init__(self, original: Endpoint, context: ssl.SSLContext) -> None:
        self.original = original
        self.context = context

    async def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("ssl") is True:
            kwargs["ssl"] = self.context
        return await self.original(*args, **kwargs)


def install_turn_ca(ca_file: Path) -> ssl.SSLContext:
    """Make every ``turns:`` connection of this process trust ``ca_file`` as well as
    the system's CAs; returns the context. Raises TurnCaError for an unreadable file."""
    context = turn_tls_context(ca_file)
    current = getattr(aioice.turn, _PATCHED)
    original = current.original if isinstance(current, _TrustingEndpoint) else current
    setattr(aioice.turn, _PATCHED, _TrustingEndpoint(original, context))
    return context


def uninstall_turn_ca() -> None:
    """Give aioice back its own ``create_turn_endpoint`` (no-op when not installed)."""
    current = getattr(aioice.turn, _PATCHED)
    if isinstance(current, _TrustingEndpoint):
        setattr(aioice.turn, _PATCHED, current.original)
