"""Admin API bearer tokens: shown once, kept as hashes (``orchestrator.credentials``)."""

from __future__ import annotations

from sqlmodel import select

from orchestrator.centres import check_name
from orchestrator.credentials import hash_api_token, new_api_token, verify_api_token
from orchestrator.db import DbSession
from orchestrator.models import ApiToken


def create_api_token(db: DbSession, name: str) -> str:
    """A new admin bearer token, shown once; only its hash is kept."""
    token = new_api_token()
    db.add(ApiToken(name=check_name(name, "token"), token_hash=hash_api_token(token)))
    db.flush()
    return token


def check_api_token(db: DbSession, token: str) -> bool:
    hashes = db.exec(select(ApiToken.token_hash)).all()
    return verify_api_token(token, hashes)
