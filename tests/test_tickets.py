"""Join tickets, room keys and API tokens."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_pem_public_key,
)

from common.peers import guest_peer_id, room_peer_id
from orchestrator.credentials import (
    hash_api_token,
    hash_room_key,
    new_api_token,
    new_room_key,
    verify_api_token,
)
from orchestrator.sessions.tickets import TicketSigner, ticket_window

START = 1_800_000_000.0


def test_ticket_window_covers_lead_and_grace() -> None:
    assert ticket_window(START, START + 3600, 60) == (int(START) - 360, int(START) + 3900)
    # Fractions round outwards, never shrinking the window.
    assert ticket_window(START + 0.5, START + 10.5, 0) == (int(START) - 300, int(START) + 311)
    with pytest.raises(ValueError):
        ticket_window(START, START, 60)
    with pytest.raises(ValueError):
        ticket_window(START, START + 1, -1)


def test_minted_ticket_decodes_with_the_public_key() -> None:
    signer = TicketSigner.generate()
    nbf, exp = ticket_window(START, START + 3600, 60)
    token, jti = signer.mint(room_peer_id("r1"), "s1", "room", nbf, exp, issued_at=START - 10)

    header = jwt.get_unverified_header(token)
    assert header["alg"] == "EdDSA"
    assert header["kid"] == signer.kid
    claims = jwt.decode(
        token,
        signer.public_key_pem(),
        algorithms=["EdDSA"],
        issuer="telecentre",
        # The times are in 2027; windows are checked on an injected clock, not here.
        options={"verify_exp": False, "verify_nbf": False, "verify_iat": False},
    )
    assert claims == {
        "iss": "telecentre",
        "sub": "room:r1",
        "sid": "s1",
        "role": "room",
        "nbf": nbf,
        "exp": exp,
        "iat": int(START - 10),
        "jti": jti,
    }
    assert all(isinstance(claims[k], int) for k in ("nbf", "exp", "iat"))


def test_a_guest_ticket_carries_the_guest_s_peer_id_and_display_name() -> None:
    signer = TicketSigner.generate()
    token, _ = signer.mint(guest_peer_id("7f3a90"), "s1", "guest", START, START + 60, name="Inès")
    claims = jwt.decode(token, options={"verify_signature": False})
    assert (claims["sub"], claims["role"], claims["name"]) == ("guest:7f3a90", "guest", "Inès")
    unnamed, _ = signer.mint(guest_peer_id("g"), "s1", "guest", START, START + 60)
    assert "name" not in jwt.decode(unnamed, options={"verify_signature": False})
    for bad_name in ("", "   ", "x" * 101):
        with pytest.raises(ValueError):
            signer.mint("guest:g", "s1", "guest", START, START + 60, name=bad_name)
    for bad_id in ("", "a b", "x" * 65, "g:1"):
        with pytest.raises(ValueError):
            guest_peer_id(bad_id)


def test_ticket_signed_by_another_key_is_rejected() -> None:
    ours, theirs = TicketSigner.generate(), TicketSigner.generate()
    token, _ = theirs.mint("guest:x", "s1", "guest", START, START + 60)
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(
            token,
            ours.public_key_pem(),
            algorithms=["EdDSA"],
            options={"verify_exp": False, "verify_nbf": False},
        )


def test_each_ticket_has_its_own_id() -> None:
    signer = TicketSigner.generate()
    ids = {signer.mint("room:r", "s", "room", START, START + 60)[1] for _ in range(50)}
    assert len(ids) == 50


def test_mint_refuses_unknown_role_and_empty_window() -> None:
    signer = TicketSigner.generate()
    with pytest.raises(ValueError):
        signer.mint("room:r", "s", "admin", START, START + 60)
    with pytest.raises(ValueError):
        signer.mint("room:r", "s", "room", START, START)


def test_kid_is_a_digest_of_the_raw_public_key() -> None:
    signer = TicketSigner.generate()
    public = load_pem_public_key(signer.public_key_pem())
    raw = public.public_bytes(Encoding.Raw, PublicFormat.Raw)
    assert signer.kid == hashlib.sha256(raw).hexdigest()[:16]


def test_key_file_is_created_private_and_reloaded(tmp_path: Path) -> None:
    path = tmp_path / "data" / "ticket-signing-key.pem"
    first = TicketSigner.load_or_create(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    again = TicketSigner.load_or_create(path)
    assert again.kid == first.kid
    assert again.public_key_pem() == first.public_key_pem()


def test_key_file_of_another_type_is_refused(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import NoEncryption, PrivateFormat

    path = tmp_path / "key.pem"
    key = ec.generate_private_key(ec.SECP256R1())
    path.write_bytes(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    with pytest.raises(ValueError, match="Ed25519"):
        TicketSigner.load_or_create(path)


def test_room_keys_are_256_bit_and_hashed_with_sha256() -> None:
    key = new_room_key()
    assert key.startswith("tck_") and len(key) == 4 + 43
    assert new_room_key() != key
    assert hash_room_key(key) == hashlib.sha256(key.encode()).hexdigest()


def test_api_tokens_verify_against_their_hash_only() -> None:
    token, other = new_api_token(), new_api_token()
    assert token.startswith("tca_") and len(token) == 4 + 43
    hashes = [hash_api_token(other), hash_api_token(token)]
    assert verify_api_token(token, hashes)
    assert not verify_api_token(token, [hash_api_token(other)])
    assert not verify_api_token(token, [])
    assert not verify_api_token(token + "x", hashes)
