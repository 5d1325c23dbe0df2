"""TURN credentials of the TURN REST API scheme (coturn's ``use-auth-secret``).

What signalling mints and the room agent checks, said once:

- The username is ``<expires>:<session id>:<peer id>``: ``expires`` is the Unix time
  (whole seconds, UTC) after which coturn refuses it; ``session id`` is the session
  the credential was minted for, empty for the room's own readiness check (no
  session); the peer id (``room:<id>``, ``guest:<id>``) may hold colons itself and
  runs to the end. coturn reads the digits before the first colon as the expiry and
  treats the rest as opaque.
- The password is ``base64(HMAC-SHA1(secret, username))``, the shared secret being
  coturn's ``static-auth-secret`` (RFC 2104 HMAC over the UTF-8 username).
- What coturn enforces: the HMAC (one of its ``static-auth-secret`` lines) and the
  expiry. What it cannot know: the session, and the start of the window. Those are
  ours: signalling mints a session's credential only in its ``joined`` reply, which it
  sends only inside the join ticket's window (from ``T - lead`` minus the ticket
  grace) and with the ticket's own expiry (``T_end`` plus the grace), and the room
  agent uses a credential only for the session its username names
  (``usable_for_session``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
from dataclasses import dataclass
from typing import Final

ICE_POLICIES: Final = ("all", "relay")
"""A room's ICE policy: ``relay`` rooms (a network that forbids direct UDP, or lets out
only TCP 443) offer and use only TURN relay candidates; ``all`` is the default."""
SEPARATOR: Final = ":"
NO_SESSION: Final = ""
"""The session field of a credential for the room's own checks (readiness)."""
MAX_USERNAME_BYTES: Final = 512
"""STUN's USERNAME attribute is under 513 bytes (RFC 8489 §14.3)."""


@dataclass(frozen=True, slots=True)
class TurnUsername:
    expires: int
    session_id: str
    peer_id: str


def turn_username(expires: float, session_id: str, peer_id: str) -> str:
    """The username for ``peer_id`` in ``session_id`` (``NO_SESSION``: a check),
    expiring at ``expires`` (rounded up to a whole second, as the window only grows)."""
    if SEPARATOR in session_id:
        raise ValueError("a session id holds no colon")
    if not peer_id:
        raise ValueError("a TURN username names its peer")
    name = f"{math.ceil(expires)}{SEPARATOR}{session_id}{SEPARATOR}{peer_id}"
    if len(name.encode()) > MAX_USERNAME_BYTES:
        raise ValueError("a TURN username is at most 512 bytes")
    return name


def parse_turn_username(username: str) -> TurnUsername | None:
    """The parts of a username of ours; None for anything else."""
    expires, sep, rest = username.partition(SEPARATOR)
    session_id, sep2, peer_id = rest.partition(SEPARATOR)
    if not (sep and sep2 and expires.isascii() and expires.isdigit() and peer_id):
        return None
    return TurnUsername(int(expires), session_id, peer_id)


def turn_password(secret: str, username: str) -> str:
    """coturn's password for ``username``: base64 of HMAC-SHA1 keyed with the secret."""
    if not secret:
        raise ValueError("the TURN shared secret is empty")
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def mint(secret: str, expires: float, session_id: str, peer_id: str) -> tuple[str, str]:
    """``(username, password)`` for a peer in a session (or a check: ``NO_SESSION``)."""
    username = turn_username(expires, session_id, peer_id)
    return username, turn_password(secret, username)


def usable_for_session(username: str, session_id: str, peer_id: str, now: float) -> str | None:
    """None when the credential may carry this peer's calls in ``session_id`` at
    ``now`` (server clock); otherwise why not (a stable phrase, without the username)."""
    parts = parse_turn_username(username)
    if parts is None:
        return "not a TURN username of ours"
    if parts.session_id != session_id:
        return "minted for another session"
    if parts.peer_id != peer_id:
        return "minted for another peer"
    if now >= parts.expires:
        return "expired"
    return None
