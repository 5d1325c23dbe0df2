"""Join tickets: JWTs signed with the orchestrator's Ed25519 key (alg EdDSA, header kid).

A ticket says "peer P may join session S with role R between nbf and exp". Signalling
nodes hold only the public key, so they can check tickets but never mint them.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import secrets
import time
from pathlib import Path

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
)

from common import tickets

log = logging.getLogger(__name__)

TICKET_GRACE_SECONDS = 300
"""Slack on both sides of a ticket's window: agents cache tickets and clocks drift."""
DEFAULT_KEY_FILENAME = "ticket-signing-key.pem"


def ticket_window(start: float, end: float, lead: float) -> tuple[int, int]:
    """``(nbf, exp)`` for a session: from ``start - lead - 300 s`` to ``end + 300 s``.

    Rounded outwards to whole seconds (JWT NumericDate), so the window never shrinks.
    """
    if end <= start:
        raise ValueError("a session ends after it starts")
    if lead < 0:
        raise ValueError("lead is not negative")
    return (
        math.floor(start - lead - TICKET_GRACE_SECONDS),
        math.ceil(end + TICKET_GRACE_SECONDS),
    )


class TicketSigner:
    """Mints join tickets with one Ed25519 key."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._key = private_key
        raw = private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.kid = hashlib.sha256(raw).hexdigest()[:16]

    @classmethod
    def generate(cls) -> TicketSigner:
        """A signer with a fresh key held only in memory (tests, ephemeral demos)."""
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def load_or_create(cls, path: str | os.PathLike[str]) -> TicketSigner:
        """The key in the PEM file at ``path``, created (mode 0600) if it does not exist.

        Creation is exclusive, so two processes starting together end up sharing
        whichever key was written first.
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return cls._load(path)
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
            f.flush()
            os.fsync(f.fileno())
        log.info("created ticket signing key %s", path)
        return cls(key)

    @classmethod
    def _load(cls, path: Path) -> TicketSigner:
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            log.warning("ticket signing key %s is readable by others (mode %o)", path, mode)
        data = path.read_bytes()
        if not data:
            # Another process created the file and has not written it yet.
            for _ in range(50):
                time.sleep(0.01)
                data = path.read_bytes()
                if data:
                    break
        key = load_pem_private_key(data, password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(f"{path} does not hold an Ed25519 private key")
        return cls(key)

    def public_key_pem(self) -> bytes:
        return self._key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)

    def mint(
        self,
        peer_id: str,
        session_id: str,
        role: str,
        not_before: float,
        expires: float,
        *,
        issued_at: float | None = None,
        name: str | None = None,
    ) -> tuple[str, str]:
        """A signed ticket and its id (``jti``), for revocation.

        ``name``, when given, becomes the ``name`` claim: the display name
        signalling shows for a guest (at most 100 characters, not blank).
        """
        if role not in tickets.ROLES:
            raise ValueError(f"unknown ticket role {role!r}")
        if name is not None and not (name.strip() and len(name) <= tickets.MAX_NAME_LENGTH):
            raise ValueError(
                f"a display name is 1 to {tickets.MAX_NAME_LENGTH} characters, not blank"
            )
        if expires <= not_before:
            raise ValueError("a ticket expires after it becomes valid")
        jti = secrets.token_urlsafe(16)
        claims: dict[str, str | int] = {
            "iss": tickets.ISSUER,
            "sub": peer_id,
            tickets.SESSION_CLAIM: session_id,
            tickets.ROLE_CLAIM: role,
            "nbf": math.floor(not_before),
            "exp": math.ceil(expires),
            "iat": math.floor(time.time() if issued_at is None else issued_at),
            "jti": jti,
        }
        if name is not None:
            claims[tickets.NAME_CLAIM] = name
        token = jwt.encode(claims, self._key, algorithm="EdDSA", headers={"kid": self.kid})
        return token, jti
