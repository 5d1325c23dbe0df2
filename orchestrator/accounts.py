"""People who log in: users with a role, argon2 password hashes, login sessions and
throttling of failed logins.

The throttle rule is a pure function (``throttle_after_failure``); the store
functions each run in one transaction (``Database.run``).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlmodel import col, delete, select

from orchestrator.credentials import hash_secret, new_secret
from orchestrator.db import DbSession
from orchestrator.inputs import one_line
from orchestrator.models import Centre, LoginThrottle, User, WebSession
from orchestrator.service import DomainError, zone

ROLES = ("admin", "staff", "organiser")
"""``admin``: everything; ``staff``: their centre's rooms, bookings and approvals;
``organiser``: books sessions."""
MIN_PASSWORD = 10
_ADDRESS_SYNTAX = frozenset('<>()[]\\,;:"')
SESSION_LIFETIME = timedelta(hours=12)

_hasher = PasswordHasher()
# Verifying against this when the email is unknown costs the same time as a real
# check, so response times do not tell which addresses have accounts.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


@dataclass(frozen=True, slots=True)
class ThrottlePolicy:
    """Five failures within 15 minutes lock the key for 15 minutes."""

    max_failures: int = 5
    window: timedelta = timedelta(minutes=15)
    lockout: timedelta = timedelta(minutes=15)


class LoginThrottled(DomainError):
    """``login-throttled``, with the seconds until the lock ends."""

    def __init__(self, retry_after: int) -> None:
        super().__init__("login-throttled", f"too many failed logins; try again in {retry_after} s")
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class Principal:
    """The logged-in person as the web layer sees them (no password hash)."""

    id: str
    email: str
    name: str
    role: str
    centre_id: str | None
    locale: str | None
    timezone: str | None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def has_rights_on(self, centre_id: str | None) -> bool:
        """Rights on a centre: an administrator, or a member (staff or organiser)."""
        return self.is_admin or (centre_id is not None and centre_id == self.centre_id)

    def is_staff_of(self, centre_id: str | None) -> bool:
        return self.is_admin or (
            self.role == "staff" and centre_id is not None and centre_id == self.centre_id
        )


def principal(user: User) -> Principal:
    return Principal(
        user.id, user.email, user.name, user.role, user.centre_id, user.locale, user.timezone
    )


# --- pure rules -----------------------------------------------------------------------


def normalise_email(email: str) -> str:
    """An address as kept (a login, a recipient of mail): trimmed and lower-case,
    ``local@domain`` with one ``@``, a dotted domain without empty labels, at most 64
    characters before the ``@`` and 254 in all (RFC 5321 §4.5.3.1), and nothing a mail
    header reads as something else: no space, control character, line break or
    unpaired surrogate (``"a@b.org\\r\\nBcc: c@d.org"`` would add a recipient), none of
    ``<>()[]\\,;:"`` (address-list syntax, RFC 5322 §3.4); ``invalid-email``."""
    value = email.strip().lower()
    local, at, domain = value.partition("@")
    labels = domain.split(".")
    if (
        not at
        or not local
        or len(local) > 64
        or len(value) > 254
        or len(labels) < 2
        or not all(labels)
        or "@" in domain
        or " " in value
        or not value.isprintable()
        or _ADDRESS_SYNTAX.intersection(value)
    ):
        raise DomainError("invalid-email", f"not an email address: {email[:60]!r}")
    return value


def person_name(name: str) -> str:
    """A person's name: one line of 1 to 200 characters (``inputs.one_line``: it is
    written into mail headers, ``To: Name <address>``), ``invalid-name``."""
    return one_line(name, code="invalid-name", what="a name")


def check_password_strength(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise DomainError("weak-password", f"a password has at least {MIN_PASSWORD} characters")


def throttle_after_failure(
    row: LoginThrottle | None, now: datetime, policy: ThrottlePolicy
) -> tuple[int, datetime, datetime | None]:
    """(failures, first failure, locked until) after one more failure."""
    if row is None or now - row.first_failure_at > policy.window:
        failures, first = 1, now
    else:
        failures, first = row.failures + 1, row.first_failure_at
    locked = now + policy.lockout if failures >= policy.max_failures else None
    return failures, first, locked


def locked_until(row: LoginThrottle | None, now: datetime) -> datetime | None:
    if row is None or row.locked_until is None or row.locked_until <= now:
        return None
    return row.locked_until


def _password_matches(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def hash_session_token(token: str) -> str:
    return hash_secret(token)


# --- store ----------------------------------------------------------------------------


def create_user(
    db: DbSession,
    email: str,
    name: str,
    password: str,
    role: str,
    centre_id: str | None = None,
    *,
    locale: str | None = None,
) -> User:
    email = normalise_email(email)
    if role not in ROLES:
        raise DomainError("invalid-role", f"role is one of {', '.join(ROLES)}")
    if role != "admin" and centre_id is None:
        raise DomainError("needs-centre", f"a {role} belongs to a centre")
    if centre_id is not None and db.get(Centre, centre_id) is None:
        raise DomainError("unknown-centre", f"no centre {centre_id}")
    name = person_name(name)
    check_password_strength(password)
    if db.exec(select(User).where(col(User.email) == email)).first() is not None:
        raise DomainError("duplicate", f"a user with email {email} exists")
    user = User(
        email=email,
        name=name,
        password_hash=_hasher.hash(password),
        role=role,
        centre_id=centre_id,
        locale=locale,
    )
    db.add(user)
    db.flush()
    return user


def set_password(db: DbSession, user_id: str, password: str) -> None:
    check_password_strength(password)
    user = db.get(User, user_id)
    if user is None:
        raise DomainError("not-found", f"no user {user_id}")
    user.password_hash = _hasher.hash(password)
    db.add(user)
    # A new password ends every open login of that person.
    db.exec(delete(WebSession).where(col(WebSession.user_id) == user_id))


def list_users(db: DbSession) -> list[User]:
    return list(db.exec(select(User).order_by(col(User.email))).all())


def user_by_email(db: DbSession, email: str) -> User:
    """The user with that address, or ``DomainError("not-found")``."""
    found = db.exec(select(User).where(col(User.email) == email.strip().lower())).first()
    if found is None:
        raise DomainError("not-found", f"no user {email.strip()[:60]!r}")
    return found


def _user(db: DbSession, user_id: str) -> User:
    user = db.get(User, user_id)
    if user is None:
        raise DomainError("not-found", f"no user {user_id}")
    return user


def update_profile(
    db: DbSession, user_id: str, *, name: str, locale: str | None, timezone: str | None
) -> Principal:
    """A person's own settings: their name, language (None: the browser's) and time
    zone (None: each centre's own)."""
    user = _user(db, user_id)
    name = person_name(name)
    if timezone is not None:
        zone(timezone)
    user.name, user.locale, user.timezone = name, locale, timezone
    db.add(user)
    db.flush()
    return principal(user)


def change_password(db: DbSession, user_id: str, current: str, new: str, now: datetime) -> str:
    """A person changes their own password, proving the current one. Every open
    login of theirs ends (a stolen cookie dies with the old password); the token of
    a fresh login session for the caller is returned."""
    user = _user(db, user_id)
    if not _password_matches(user.password_hash, current):
        raise DomainError("wrong-password", "the current password is not right")
    if new == current:
        raise DomainError("same-password", "the new password is the same as the current one")
    set_password(db, user_id, new)
    return _open_session(db, user.id, now)


def set_disabled(db: DbSession, user_id: str, disabled: bool) -> User:
    """A disabled person cannot log in; their open logins end at once."""
    user = _user(db, user_id)
    user.disabled = disabled
    db.add(user)
    if disabled:
        db.exec(delete(WebSession).where(col(WebSession.user_id) == user_id))
    db.flush()
    return user


def _open_session(db: DbSession, user_id: str, now: datetime) -> str:
    token = new_secret("")
    db.add(
        WebSession(
            token_hash=hash_session_token(token),
            user_id=user_id,
            created_at=now,
            expires_at=now + SESSION_LIFETIME,
        )
    )
    return token


def _throttle_rows(db: DbSession, keys: tuple[str, ...]) -> list[LoginThrottle | None]:
    return [db.get(LoginThrottle, k) for k in keys]


def login(
    db: DbSession,
    email: str,
    password: str,
    client: str,
    now: datetime,
    policy: ThrottlePolicy = ThrottlePolicy(),
) -> tuple[Principal, str]:
    """Check the password and open a login session: (principal, cookie token).

    Failures count per email address and per client address; a locked key is
    refused with ``login-throttled`` before the password is even checked.
    """
    key_email = "email:" + email.strip().lower()[:254]
    keys = (key_email, "client:" + client)
    for row in _throttle_rows(db, keys):
        until = locked_until(row, now)
        if until is not None:
            raise LoginThrottled(int((until - now).total_seconds()) + 1)
    user = db.exec(select(User).where(col(User.email) == email.strip().lower())).first()
    ok = _password_matches(user.password_hash if user else _DUMMY_HASH, password)
    if not ok or user is None or user.disabled:
        for key, row in zip(keys, _throttle_rows(db, keys), strict=True):
            failures, first, locked = throttle_after_failure(row, now, policy)
            if row is None:
                row = LoginThrottle(key=key, failures=failures, first_failure_at=first)
            row.failures, row.first_failure_at, row.locked_until = failures, first, locked
            db.add(row)
        # The refusal below rolls the transaction back (``Database.run``); the failure
        # must outlive it, or the throttle would never count anything.
        db.commit()
        raise DomainError("login-failed", "wrong email address or password")
    for key in keys:
        if (row := db.get(LoginThrottle, key)) is not None:
            db.delete(row)
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
        db.add(user)
    return principal(user), _open_session(db, user.id, now)


def session_user(db: DbSession, token: str, now: datetime) -> Principal | None:
    row = db.get(WebSession, hash_session_token(token))
    if row is None or row.expires_at <= now:
        return None
    user = db.get(User, row.user_id)
    if user is None or user.disabled:
        return None
    return principal(user)


def logout(db: DbSession, token: str) -> None:
    if (row := db.get(WebSession, hash_session_token(token))) is not None:
        db.delete(row)
