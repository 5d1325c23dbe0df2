"""Room keys and admin API tokens: random secrets shown once, stored as SHA-256.

Both carry 256 random bits, so a fast hash is as safe as a slow one and costs
nothing when every room authenticates at the top of the hour (a password hash
such as scrypt at ~50 ms each would keep a core busy for minutes). The hash of a
room key is what the signalling plane's credential store compares against.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable

ROOM_KEY_PREFIX = "tck_"
API_TOKEN_PREFIX = "tca_"


def _secret(prefix: str) -> str:
    # 32 bytes of urlsafe base64 are 43 characters without padding.
    return prefix + secrets.token_urlsafe(32)


def _sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def new_room_key() -> str:
    """A fresh room key: ``tck_`` and 43 urlsafe base64 characters (256 bits)."""
    return _secret(ROOM_KEY_PREFIX)


def hash_room_key(key: str) -> str:
    """SHA-256 of the key, hex; the same function the signalling plane uses."""
    return _sha256_hex(key)


def new_api_token() -> str:
    """A fresh admin bearer token: ``tca_`` and 43 urlsafe base64 characters."""
    return _secret(API_TOKEN_PREFIX)


def hash_api_token(token: str) -> str:
    return _sha256_hex(token)


def verify_api_token(token: str, hashes: Iterable[str]) -> bool:
    """Whether ``token`` hashes to one of ``hashes``, comparing every one in constant time."""
    digest = _sha256_hex(token)
    found = False
    for candidate in hashes:
        found |= hmac.compare_digest(digest, candidate)
    return found
