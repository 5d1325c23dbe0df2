"""What a join ticket says, as both sides read it: the orchestrator mints tickets
(orchestrator/sessions/tickets.py), signalling checks them (signalling/auth.py).

A ticket is a JWT (EdDSA) whose claims are listed in docs/protocol.md ("Join tickets").
How long a ticket lives (the minting grace) and how much clock skew a check forgives
(the verifying leeway) belong to either side alone and stay there.
"""

from __future__ import annotations

from typing import Final

ISSUER: Final = "telecentre"
"""The ``iss`` claim of every ticket."""

ROOM_ROLE: Final = "room"
GUEST_ROLE: Final = "guest"
ROLES: Final = frozenset({ROOM_ROLE, GUEST_ROLE})
"""A ticket's ``role``; a ticket without one is read as a room's."""

SESSION_CLAIM: Final = "sid"
"""The private claim naming the session the ticket admits to."""
ROLE_CLAIM: Final = "role"
NAME_CLAIM: Final = "name"
"""A guest's display name, shown to the other peers."""
REQUIRED_CLAIMS: Final = ("exp", "nbf", "sub", "jti", "iss")
"""The registered claims (RFC 7519) a ticket must carry; ``sub`` is the peer id."""

MAX_NAME_LENGTH: Final = 100
"""A display name has 1 to this many characters and is not blank."""
