"""Nobody locks a person out by guessing wrong in their name, and guessing from many
addresses is still slowed (issue 9, item 6).

Before, five failures from anywhere locked the account for 15 minutes from every
address: five requests locked a staff member out. Now (``orchestrator.people.accounts``,
``LoginLimits``) failures lock an account for the source address they came from; a
source address is locked for every account after a generous number of failures; and an
account's failures from all addresses together close it, for an hour, to every address
it has not logged in from lately, so its owner still logs in from their usual one.
The clock is injected everywhere: no test waits.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import pytest_asyncio
from aiohttp import ClientSession
from argon2 import PasswordHasher
from sqlmodel import func, select

from orchestrator import centres
from orchestrator.clock import FakeClock
from orchestrator.db import Database, DbSession
from orchestrator.errors import DomainError
from orchestrator.models import LoginThrottle
from orchestrator.people import accounts
from orchestrator.people.accounts import LoginLimits, ThrottleRows
from tests.accounts_support import PARIS_STAFF, add_network, browser_like
from tests.ui_support import PASSWORD, RunningApp, csrf_of, running_app
from web.settings import Settings

NOW = datetime(2030, 3, 17, 9, 0, tzinfo=UTC)
LIMITS = LoginLimits()
OWNER = "anne@example.org"
HOME = "203.0.113.9"


@pytest.fixture(autouse=True)
def cheap_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hundreds of wrong passwords are checked here: argon2 at its smallest cost
    (a hash carries its parameters, so verifying stays as cheap as hashing was)."""
    hasher = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    monkeypatch.setattr(accounts, "_hasher", hasher)
    monkeypatch.setattr(accounts, "_DUMMY_HASH", hasher.hash("not anyone's password"))


# --- the pure rules ------------------------------------------------------------------------


def _row(
    failures: int = 0,
    locked_until: datetime | None = None,
    trusted_until: datetime | None = None,
) -> LoginThrottle:
    return LoginThrottle(
        key="k",
        failures=failures,
        first_failure_at=NOW,
        locked_until=locked_until,
        trusted_until=trusted_until,
    )


LOCKED = _row(failures=5, locked_until=NOW + timedelta(minutes=5))
TRUSTED = _row(trusted_until=NOW + timedelta(days=1))
WAS_TRUSTED = _row(trusted_until=NOW - timedelta(seconds=1))


@pytest.mark.parametrize(
    ("rows", "refused"),
    [
        (ThrottleRows(None, None, None), False),
        (ThrottleRows(LOCKED, None, None), True),
        (ThrottleRows(None, LOCKED, None), True),
        (ThrottleRows(None, None, LOCKED), True),
        (ThrottleRows(TRUSTED, None, LOCKED), False),
        (ThrottleRows(WAS_TRUSTED, None, LOCKED), True),
        (ThrottleRows(TRUSTED, LOCKED, None), True),  # trust does not lift an address's lock
        (ThrottleRows(None, None, _row(failures=49)), False),
        (ThrottleRows(_row(failures=5, locked_until=NOW), None, None), False),  # lock ended
    ],
)
def test_login_refusal(rows: ThrottleRows, refused: bool) -> None:
    assert (accounts.login_refusal(rows, NOW) is not None) is refused


def test_the_latest_lock_that_applies_is_the_answer() -> None:
    later = _row(failures=50, locked_until=NOW + timedelta(hours=1))
    assert accounts.login_refusal(ThrottleRows(LOCKED, None, later), NOW) == NOW + timedelta(
        hours=1
    )


@pytest.mark.parametrize(
    ("address", "key"),
    [
        ("198.51.100.7", "198.51.100.7"),
        ("2001:db8:1:2::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),
        ("2001:db8:1:3::1", "2001:db8:1:3::/64"),
        ("::ffff:198.51.100.7", "198.51.100.7"),
        ("unknown", "unknown"),
    ],
)
def test_an_ipv6_attacker_counts_as_one_address_per_64(address: str, key: str) -> None:
    assert accounts.address_key(address) == key


def test_failures_count_afresh_after_a_success() -> None:
    forgiven = _row(failures=0, trusted_until=NOW + timedelta(days=30))
    forgiven.first_failure_at = NOW - timedelta(minutes=1)
    assert accounts.throttle_after_failure(forgiven, NOW, LIMITS.pair) == (1, NOW, None)


def test_the_figures_keep_their_promises() -> None:
    # One address alone never reaches the account's ceiling within its window: only
    # several addresses together close the account to strangers.
    per_address_per_hour = LIMITS.pair.max_failures * (LIMITS.account.window // LIMITS.pair.lockout)
    assert per_address_per_hour < LIMITS.account.max_failures
    assert LIMITS.pair.max_failures < LIMITS.client.max_failures


# --- the store, with a database --------------------------------------------------------------


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database.for_data_dir(tmp_path)
    database.migrate()

    def setup(s: DbSession) -> None:
        centre = centres.add_centre(s, "Fontainebleau", "Europe/Paris")
        accounts.create_user(s, OWNER, "Anne", PASSWORD, "staff", centre.id)

    database.run_sync(setup)
    yield database
    database.close_sync()


def _attempt(
    db: Database, client: str, when: datetime, password: str = PASSWORD, email: str = OWNER
) -> str:
    """``ok``, or the refusal's code."""

    def go(s: DbSession) -> object:
        return accounts.login(s, email, password, client, when)

    try:
        db.run_sync(go)
    except DomainError as exc:
        return exc.code
    return "ok"


def _account_failures(db: Database) -> int:
    key = accounts.throttle_keys(OWNER, HOME).account
    row = db.run_sync(lambda s: s.get(LoginThrottle, key))
    return 0 if row is None else row.failures


def test_an_attacker_at_one_address_cannot_lock_the_owner_out_at_another(db: Database) -> None:
    attacker = "198.51.100.7"
    for i in range(LIMITS.pair.max_failures):
        when = NOW + timedelta(seconds=i)
        assert _attempt(db, attacker, when, "guess guess") == "login-failed"
    # The attacker is locked out of this account, even with the right password...
    assert _attempt(db, attacker, NOW + timedelta(minutes=1)) == "login-throttled"
    assert _attempt(db, attacker, NOW + timedelta(minutes=1), "guess") == "login-throttled"
    # ...refused attempts are not counted...
    assert _account_failures(db) == LIMITS.pair.max_failures
    # ...and the owner, who never logged in from home before, is not locked out.
    assert _attempt(db, HOME, NOW + timedelta(minutes=1)) == "ok"


def test_the_global_rate_closes_the_account_to_new_addresses_but_not_to_the_owners(
    db: Database,
) -> None:
    assert _attempt(db, HOME, NOW) == "ok"  # the owner's usual address is now trusted
    botnet = [f"198.51.100.{i}" for i in range(1, 100)]
    attempts, last_guess = 0, NOW
    for i, address in enumerate(botnet):
        # Each address guesses a little, never enough to lock itself.
        for j in range(LIMITS.pair.max_failures - 1):
            if attempts == LIMITS.account.max_failures:
                break
            last_guess = NOW + timedelta(minutes=1, seconds=10 * i + j)
            assert _attempt(db, address, last_guess, "guess guess") == "login-failed"
            attempts += 1
    assert attempts == LIMITS.account.max_failures
    during = NOW + timedelta(minutes=30)
    # A fresh address is refused, even with the right password: the guessing stops.
    assert _attempt(db, "192.0.2.50", during, "guess guess") == "login-throttled"
    assert _attempt(db, "192.0.2.50", during) == "login-throttled"
    assert _account_failures(db) == LIMITS.account.max_failures
    # The owner at their usual address logs in.
    assert _attempt(db, HOME, during) == "ok"
    # An hour after the last guess the account is open again from anywhere.
    just_before = last_guess + LIMITS.account.lockout - timedelta(seconds=1)
    assert _attempt(db, "192.0.2.50", just_before) == "login-throttled"
    after = last_guess + LIMITS.account.lockout + timedelta(seconds=1)
    assert _attempt(db, "192.0.2.50", after) == "ok"


def test_one_address_guessing_at_many_accounts_is_stopped_for_every_account(
    db: Database,
) -> None:
    sprayer = "198.51.100.200"
    for i in range(LIMITS.client.max_failures):
        email = f"nobody{i}@example.org"
        assert _attempt(db, sprayer, NOW, "guess guess", email) == "login-failed"
    assert _attempt(db, sprayer, NOW) == "login-throttled"
    assert _attempt(db, HOME, NOW) == "ok"


def test_an_ipv6_attacker_rotating_through_a_64_is_one_address(db: Database) -> None:
    for i in range(LIMITS.pair.max_failures):
        assert _attempt(db, f"2001:db8:1:2::{i + 1:x}", NOW, "guess guess") == "login-failed"
    assert _attempt(db, "2001:db8:1:2::abcd", NOW) == "login-throttled"
    assert _attempt(db, "2001:db8:1:3::1", NOW) == "ok"


def test_stale_counters_are_forgotten_so_guesses_leave_bounded_rows(db: Database) -> None:
    def rows() -> int:
        return db.run_sync(lambda s: s.exec(select(func.count()).select_from(LoginThrottle)).one())

    for hour in range(4):
        for i in range(30):
            when = NOW + timedelta(hours=hour, seconds=i)
            email = f"x{hour}-{i}@example.org"
            assert _attempt(db, f"10.{hour}.0.{i}", when, "guess", email) == "login-failed"
    # Three counters per guess, only for the guesses still within the longest window.
    assert rows() <= 3 * 30 * 2


# --- through the login form, from addresses a trusted proxy names ---------------------------


@pytest_asyncio.fixture
async def site(tmp_path: Path) -> AsyncIterator[tuple[RunningApp, FakeClock]]:
    clock = FakeClock(NOW.timestamp())
    settings = Settings(data_dir=tmp_path, trusted_proxies=("127.0.0.1/32",))
    async with running_app(settings, clock=clock) as app:
        await add_network(app.services.db)
        yield app, clock


async def _log_in_from(http: ClientSession, url: str, address: str, password: str) -> int:
    forwarded = {"X-Forwarded-For": address}
    token = await csrf_of(http, f"{url}/login")
    async with http.post(
        f"{url}/login",
        data={"csrf_token": token, "email": PARIS_STAFF, "password": password},
        headers=forwarded,
        allow_redirects=False,
    ) as response:
        await response.read()
        return response.status


async def test_through_the_form_five_guesses_lock_only_the_guessers_address(
    site: tuple[RunningApp, FakeClock],
) -> None:
    app, _ = site
    async with browser_like() as attacker, browser_like() as owner:
        for _ in range(LIMITS.pair.max_failures):
            assert await _log_in_from(attacker, app.url, "198.51.100.7", "guess guess") == 400
        assert await _log_in_from(attacker, app.url, "198.51.100.7", PASSWORD) == 429
        assert await _log_in_from(owner, app.url, HOME, PASSWORD) == 303


async def test_through_the_form_a_distributed_attack_is_stopped_and_the_owner_gets_in(
    site: tuple[RunningApp, FakeClock],
) -> None:
    app, clock = site
    async with browser_like() as owner:
        assert await _log_in_from(owner, app.url, HOME, PASSWORD) == 303
    async with browser_like() as botnet:
        per_address = LIMITS.pair.max_failures - 1
        for i in range(-(-LIMITS.account.max_failures // per_address)):
            for _ in range(per_address):
                status = await _log_in_from(botnet, app.url, f"198.51.100.{i}", "guess guess")
                assert status in (400, 429)
        token = await csrf_of(botnet, f"{app.url}/login")
        async with botnet.post(
            f"{app.url}/login",
            data={"csrf_token": token, "email": PARIS_STAFF, "password": PASSWORD},
            headers={"X-Forwarded-For": "192.0.2.50"},
            allow_redirects=False,
        ) as response:
            await response.read()
            assert response.status == 429
            assert 0 < int(response.headers["Retry-After"]) <= 3601
    async with browser_like() as owner:
        assert await _log_in_from(owner, app.url, HOME, PASSWORD) == 303
    await clock.advance(LIMITS.account.lockout.total_seconds() + 1)
    async with browser_like() as newcomer:
        assert await _log_in_from(newcomer, app.url, "192.0.2.50", PASSWORD) == 303
