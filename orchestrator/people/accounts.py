"""People who log in: users with a role, argon2 password hashes, login sessions and
throttling of failed logins.

The throttle's rules are pure functions (``login_refusal``, ``throttle_after_failure``,
``throttle_keys``; the figures in ``LoginLimits``): failures lock an account for one
source address, not for everyone, so nobody locks a person out by guessing wrong in
their name. The store functions each run in one transaction (``Database.run``).
"""

from __future__ import annotations

import ipaddress
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlmodel import col, delete, or_, select

from orchestrator.centres import zone
from orchestrator.credentials import hash_secret, new_secret
from orchestrator.db import DbSession
from orchestrator.errors import DomainError
from orchestrator.inputs import one_line
from orchestrator.models import Centre, LoginThrottle, User, WebSession

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
    """``max_failures`` failures within ``window`` of the first lock the key for
    ``lockout`` (by default five in 15 minutes lock for 15 minutes)."""

    max_failures: int = 5
    window: timedelta = timedelta(minutes=15)
    lockout: timedelta = timedelta(minutes=15)


@dataclass(frozen=True, slots=True)
class LoginLimits:
    """The figures of the login throttle (the rule is ``login_refusal``).

    - ``pair``: an account from one source address: 5 failures in 15 minutes lock
      that address out of that account for 15 minutes. Someone guessing from
      another address locks only themselves out, never the account's owner.
    - ``client``: one source address, whatever the accounts: 20 failures in 15
      minutes lock the address for 15 minutes (password spraying: a few guesses at
      many accounts). Generous, so that a centre behind one NAT address has room
      for several people mistyping at once.
    - ``account``: an account from every address together: 50 failures in an hour
      close the account for an hour to every address not ``trusted`` for it, i.e.
      from which it logged in within the last 30 days. Many addresses guessing
      together get at most about 50 guesses an hour (1 200 a day) at one account,
      while its owner still logs in from their usual address; someone logging in
      from a new address during such an attack waits up to an hour.
    """

    pair: ThrottlePolicy = ThrottlePolicy(5, timedelta(minutes=15), timedelta(minutes=15))
    client: ThrottlePolicy = ThrottlePolicy(20, timedelta(minutes=15), timedelta(minutes=15))
    account: ThrottlePolicy = ThrottlePolicy(50, timedelta(hours=1), timedelta(hours=1))
    trust: timedelta = timedelta(days=30)

    @property
    def longest(self) -> timedelta:
        """How long a counter matters at most (a row older than this is forgotten)."""
        policies = (self.pair, self.client, self.account)
        return max(max(p.window, p.lockout) for p in policies)


@dataclass(frozen=True, slots=True)
class ThrottleKeys:
    """The ``LoginThrottle`` keys one attempt counts under (``throttle_keys``)."""

    pair: str
    client: str
    account: str

    def __iter__(self) -> Iterator[str]:
        return iter((self.pair, self.client, self.account))


@dataclass(frozen=True, slots=True)
class ThrottleRows:
    """The rows of one attempt's keys as stored (None: no row)."""

    pair: LoginThrottle | None
    client: LoginThrottle | None
    account: LoginThrottle | None


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


def address_key(client: str) -> str:
    """A source address as the throttle counts it: IPv4 as is (an IPv4-mapped IPv6
    address too), IPv6 by its /64 (one subscriber's share: a single attacker holds
    2^64 addresses of it), anything else (a proxy's odd header) as given, cut short."""
    try:
        address = ipaddress.ip_address(client.strip())
    except ValueError:
        return client[:100]
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def throttle_keys(email: str, client: str) -> ThrottleKeys:
    """The keys one attempt at ``email`` from source address ``client`` counts under;
    the address need not belong to an account (guesses at unknown ones count too)."""
    account = email.strip().lower()[:254]
    address = address_key(client)
    return ThrottleKeys(f"pair:{account} {address}", f"client:{address}", f"account:{account}")


def throttle_after_failure(
    row: LoginThrottle | None, now: datetime, policy: ThrottlePolicy
) -> tuple[int, datetime, datetime | None]:
    """(failures, first failure, locked until) after one more failure."""
    if row is None or row.failures == 0 or now - row.first_failure_at > policy.window:
        failures, first = 1, now
    else:
        failures, first = row.failures + 1, row.first_failure_at
    locked = now + policy.lockout if failures >= policy.max_failures else None
    return failures, first, locked


def locked_until(row: LoginThrottle | None, now: datetime) -> datetime | None:
    if row is None or row.locked_until is None or row.locked_until <= now:
        return None
    return row.locked_until


def is_trusted(row: LoginThrottle | None, now: datetime) -> bool:
    return row is not None and row.trusted_until is not None and row.trusted_until > now


def login_refusal(rows: ThrottleRows, now: datetime) -> datetime | None:
    """Until when an attempt is refused before its password is even checked, or None.

    Refused while the account is locked for this source address (``pair``), while
    the address is locked for every account (``client``), and while the account is
    over its ceiling from all addresses (``account``) unless this address is trusted
    for it (the account logged in from here lately): the figures are
    ``LoginLimits``'. The latest of the locks that apply is the answer.
    """
    locks = [locked_until(rows.pair, now), locked_until(rows.client, now)]
    if not is_trusted(rows.pair, now):
        locks.append(locked_until(rows.account, now))
    found = [until for until in locks if until is not None]
    return max(found) if found else None


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


def _throttle_rows(db: DbSession, keys: ThrottleKeys) -> ThrottleRows:
    return ThrottleRows(
        db.get(LoginThrottle, keys.pair),
        db.get(LoginThrottle, keys.client),
        db.get(LoginThrottle, keys.account),
    )


def _count_failure(db: DbSession, keys: ThrottleKeys, now: datetime, limits: LoginLimits) -> None:
    rows = _throttle_rows(db, keys)
    for key, row, policy in (
        (keys.pair, rows.pair, limits.pair),
        (keys.client, rows.client, limits.client),
        (keys.account, rows.account, limits.account),
    ):
        failures, first, locked = throttle_after_failure(row, now, policy)
        if row is None:
            row = LoginThrottle(key=key, failures=failures, first_failure_at=first)
        row.failures, row.first_failure_at, row.locked_until = failures, first, locked
        db.add(row)
    # Counters nobody needs any more go, so guesses from many addresses at many
    # names leave no more rows than the last hour's (and the trusted addresses).
    stale = now - limits.longest
    db.exec(
        delete(LoginThrottle).where(
            col(LoginThrottle.first_failure_at) < stale,
            col(LoginThrottle.key).not_in(list(keys)),
            or_(col(LoginThrottle.locked_until).is_(None), col(LoginThrottle.locked_until) < now),
            or_(col(LoginThrottle.trusted_until).is_(None), col(LoginThrottle.trusted_until) < now),
        )
    )


def _trust(db: DbSession, keys: ThrottleKeys, now: datetime, limits: LoginLimits) -> None:
    """A login that succeeded: the address is trusted for the account, and its
    failures there are forgiven. The address's and the account's counters stay:
    a success of one's own must not reset what other addresses or accounts did."""
    row = db.get(LoginThrottle, keys.pair) or LoginThrottle(key=keys.pair, first_failure_at=now)
    row.failures, row.first_failure_at, row.locked_until = 0, now, None
    row.trusted_until = now + limits.trust
    db.add(row)


def login(
    db: DbSession,
    email: str,
    password: str,
    client: str,
    now: datetime,
    limits: LoginLimits = LoginLimits(),
) -> tuple[Principal, str]:
    """Check the password and open a login session: (principal, cookie token).

    Failures count for the account from this source address, for the address and for
    the account (``throttle_keys``); an attempt ``login_refusal`` refuses is
    ``login-throttled`` before the password is even checked, and is not counted.
    """
    keys = throttle_keys(email, client)
    until = login_refusal(_throttle_rows(db, keys), now)
    if until is not None:
        raise LoginThrottled(int((until - now).total_seconds()) + 1)
    user = db.exec(select(User).where(col(User.email) == email.strip().lower())).first()
    ok = _password_matches(user.password_hash if user else _DUMMY_HASH, password)
    if not ok or user is None or user.disabled:
        _count_failure(db, keys, now, limits)
        # The refusal below rolls the transaction back (``Database.run``); the failure
        # must outlive it, or the throttle would never count anything.
        db.commit()
        raise DomainError("login-failed", "wrong email address or password")
    _trust(db, keys, now, limits)
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
