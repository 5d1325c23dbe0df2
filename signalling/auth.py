"""Peer authentication: room keys against the credential store, join tickets by signature.

Signalling nodes hold only the hash of each room key (fed by the orchestrator)
and the orchestrator's *public* ticket keys, so a compromised node cannot mint
tickets or learn keys. Every refusal maps to a stable protocol error code.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from common import tickets
from common.peers import is_guest_peer_id
from common.schedule import RoomRecord
from signalling.protocol import ErrorCode, ProtocolError

TICKET_LEEWAY_SECONDS = 5.0


def hash_key(key: str) -> str:
    """SHA-256, hex: room keys carry 256 random bits, so a fast hash is enough. A key
    that is not valid Unicode (a lone surrogate) hashes as its escaped form: it can
    never match a real key, and hashing it must not raise."""
    return hashlib.sha256(key.encode("utf-8", "backslashreplace")).hexdigest()


@dataclass(frozen=True, slots=True)
class TicketClaims:
    ticket_id: str
    peer_id: str
    session_id: str
    role: str
    not_before: float
    expires: float
    name: str | None = None


class CredentialStore:
    """Room id -> key hash and generation; a higher generation revokes the old key at once."""

    def __init__(self) -> None:
        self._rooms: dict[str, RoomRecord] = {}
        self._by_hash: dict[str, str] = {}  # key hash -> room id
        self._revoked: dict[str, str] = {}  # old key hash -> room id

    def set(self, record: RoomRecord) -> bool:
        """Store ``record``; returns True when it replaced an older generation's key."""
        current = self._rooms.get(record.room_id)
        if current is not None and current.generation > record.generation:
            return False  # stale update arriving late
        self._rooms[record.room_id] = record
        self._by_hash[record.key_hash] = record.room_id
        if current is not None and current.key_hash != record.key_hash:
            self._by_hash.pop(current.key_hash, None)
            self._revoked[current.key_hash] = record.room_id
            return True
        return False

    def get(self, room_id: str) -> RoomRecord | None:
        return self._rooms.get(room_id)

    def verify(self, room_id: str | None, key: str) -> RoomRecord:
        """The room a key belongs to. The key alone identifies its room (it is looked up
        by its hash); a ``room_id`` given beside it must match."""
        digest = hash_key(key)
        found = self._by_hash.get(digest)
        record = self._rooms.get(found) if found is not None else None
        if (
            record is not None
            and hmac.compare_digest(digest, record.key_hash)
            and room_id in (None, record.room_id)
        ):
            return record
        if digest in self._revoked and room_id in (None, self._revoked[digest]):
            raise ProtocolError(ErrorCode.KEY_REVOKED, "this room key was rotated; use the new key")
        raise ProtocolError(ErrorCode.AUTH_FAILED, "unknown room or wrong key")


class TicketVerifier:
    """Checks join tickets (JWT, EdDSA) against the orchestrator's public keys."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._keys: dict[str, Ed25519PublicKey] = {}
        self._revoked: dict[str, float] = {}  # ticket id -> forget after
        self._revoked_subjects: dict[str, float] = {}  # peer id -> forget after

    def add_public_key(self, kid: str, pem: bytes) -> None:
        key = load_pem_public_key(pem)
        if not isinstance(key, Ed25519PublicKey):
            raise ValueError("ticket keys are Ed25519")
        self._keys[kid] = key

    def revoke(self, ticket_ids: tuple[str, ...], until: float) -> None:
        now = self._clock()
        self._revoked = {t: u for t, u in self._revoked.items() if u > now}
        for ticket_id in ticket_ids:
            self._revoked[ticket_id] = until

    def revoke_subject(self, peer_id: str, until: float) -> None:
        """Refuse every ticket made out to ``peer_id`` (a withdrawn guest link) until
        ``until``, whichever ticket id it carries."""
        now = self._clock()
        self._revoked_subjects = {t: u for t, u in self._revoked_subjects.items() if u > now}
        self._revoked_subjects[peer_id] = until

    def subject_revoked(self, peer_id: str) -> bool:
        return self._revoked_subjects.get(peer_id, 0.0) > self._clock()

    def verify(self, token: str, *, peer_id: str | None, session_id: str | None) -> TicketClaims:
        """The ticket's claims, once its signature, window, session (unless
        ``session_id`` is None), peer (unless ``peer_id`` is None) and revocation
        are checked, in that order; the first failure raises its ``ticket-*`` code."""
        try:
            header = jwt.get_unverified_header(token)
        except (jwt.InvalidTokenError, UnicodeError):
            raise ProtocolError(ErrorCode.TICKET_INVALID, "malformed ticket") from None
        key = self._keys.get(str(header.get("kid")))
        if key is None or header.get("alg") != "EdDSA":
            raise ProtocolError(ErrorCode.TICKET_INVALID, "ticket signed by an unknown key")
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=["EdDSA"],
                issuer=tickets.ISSUER,
                options={
                    "require": list(tickets.REQUIRED_CLAIMS),
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                },
            )
        except (jwt.InvalidTokenError, UnicodeError):
            raise ProtocolError(
                ErrorCode.TICKET_INVALID, "ticket signature or claims invalid"
            ) from None
        sid, sub, jti = claims.get(tickets.SESSION_CLAIM), claims.get("sub"), claims.get("jti")
        nbf, exp = claims.get("nbf"), claims.get("exp")
        if not (isinstance(sid, str) and isinstance(sub, str) and isinstance(jti, str)):
            raise ProtocolError(ErrorCode.TICKET_INVALID, "ticket claims malformed")
        if not (isinstance(nbf, int | float) and isinstance(exp, int | float)):
            raise ProtocolError(ErrorCode.TICKET_INVALID, "ticket claims malformed")
        # Time is checked here, on the injected clock, not by PyJWT's wall clock.
        now = self._clock()
        if now > exp + TICKET_LEEWAY_SECONDS:
            raise ProtocolError(ErrorCode.TICKET_EXPIRED, "ticket expired")
        if now < nbf - TICKET_LEEWAY_SECONDS:
            raise ProtocolError(ErrorCode.TICKET_NOT_YET_VALID, "ticket not valid yet")
        if session_id is not None and sid != session_id:
            raise ProtocolError(ErrorCode.TICKET_WRONG_SESSION, "ticket is for another session")
        if peer_id is not None and sub != peer_id:
            raise ProtocolError(ErrorCode.TICKET_WRONG_PEER, "ticket is for another peer")
        if jti in self._revoked or self._revoked_subjects.get(sub, 0.0) > now:
            raise ProtocolError(ErrorCode.TICKET_REVOKED, "ticket revoked")
        role, name = claims.get(tickets.ROLE_CLAIM), claims.get(tickets.NAME_CLAIM)
        return TicketClaims(
            ticket_id=jti,
            peer_id=sub,
            session_id=sid,
            role=role if isinstance(role, str) else tickets.ROOM_ROLE,
            not_before=float(nbf),
            expires=float(exp),
            name=name[: tickets.MAX_NAME_LENGTH]
            if isinstance(name, str) and name.strip()
            else None,
        )

    def verify_guest(self, token: str) -> TicketClaims:
        """A ``hello`` ticket: valid as ``verify`` checks it (for any session) and made
        out to a guest, role ``guest`` and ``sub`` of the form ``guest:<id>``; a
        ticket for a room, or of another role, is ``auth-failed``."""
        claims = self.verify(token, peer_id=None, session_id=None)
        if claims.role != tickets.GUEST_ROLE or not is_guest_peer_id(claims.peer_id):
            raise ProtocolError(ErrorCode.AUTH_FAILED, "this ticket does not admit a guest")
        return claims
