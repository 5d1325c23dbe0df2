"""The ICE servers a peer is handed: the deployment's static servers (STUN), and its
TURN URLs with a credential minted for that peer (common.turn's scheme).

Rules (docs/protocol.md, ``welcome`` and ``joined``):

- A room's ``welcome`` carries a credential for its own checks (no session), valid
  ``check_seconds`` from the welcome: the readiness check allocates with it.
- A guest's ``welcome`` carries no TURN credential: a guest relays only in its session.
- ``joined`` carries the credential for that peer in that session, expiring with the
  join ticket (``T_end`` plus the ticket grace); signalling sends ``joined`` only inside
  the ticket's window, so no credential of a session exists before ``T - lead`` minus
  the grace.
- The secret is never logged and never leaves this process except as HMACs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from common import turn
from signalling import protocol as p

DEFAULT_CHECK_SECONDS = 3600.0


@dataclass(frozen=True, slots=True)
class TurnConfig:
    """``urls``: turn:/turns: URLs, in the deployment's order of preference;
    ``secret``: coturn's static-auth-secret (the one that mints; coturn may accept an
    older one too while it is rotated out)."""

    urls: tuple[str, ...] = ()
    secret: str | None = field(default=None, repr=False)
    check_seconds: float = DEFAULT_CHECK_SECONDS

    @property
    def enabled(self) -> bool:
        return bool(self.urls and self.secret)


def ice_servers_for(
    static: Sequence[p.IceServer],
    config: TurnConfig,
    peer_id: str,
    session_id: str,
    expires: float,
) -> list[p.IceServer]:
    """The static servers, then the TURN URLs with ``peer_id``'s credential for
    ``session_id`` (``common.turn.NO_SESSION`` for a check) until ``expires``."""
    servers = list(static)
    if config.enabled and config.secret is not None:
        username, password = turn.mint(config.secret, expires, session_id, peer_id)
        servers.append(p.IceServer(urls=list(config.urls), username=username, credential=password))
    return servers
