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


def new_secret(prefix: str) -> str:
    """``prefix`` and 43 URL-safe base64 characters (256 random bits): safe in a URL
    path. Room keys, API tokens and the secret URLs (calendar, panel, guest) and
    login cookies all use it."""
    return prefix + secrets.token_urlsafe(32)


def hash_secret(value: str) -> str:
    """SHA-256 of a secret, hex: what the database keeps instead of the secret."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def new_room_key() -> str:
    """A fresh room key: ``tck_`` and 43 urlsafe base64 characters (256 bits)."""
    return new_secret(ROOM_KEY_PREFIX)


def hash_room_key(key: str) -> str:
    """SHA-256 of the key, hex; the same function the signalling plane uses."""
    return hash_secret(key)


def new_api_token() -> str:
    """A fresh admin bearer token: ``tca_`` and 43 urlsafe base64 characters."""
    return new_secret(API_TOKEN_PREFIX)


def hash_api_token(token: str) -> str:
    return hash_secret(token)


def verify_api_token(token: str, hashes: Iterable[str]) -> bool:
    """Whether ``token`` hashes to one of ``hashes``, comparing every one in constant time."""
    digest = hash_secret(token)
    found = False
    for candidate in hashes:
        found |= hmac.compare_digest(digest, candidate)
    return found
