"""People and rules: accounts (argon2, login throttle, profile, password change,
disabling), the pure access rules (cross-centre privacy, staff-only pages,
approvals) and the email outbox (retries with backoff, permanent refusals)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from orchestrator import outbox
from orchestrator.centres import add_centre
from orchestrator.db import Database, DbSession
from orchestrator.errors import DomainError
from orchestrator.models import LoginThrottle, OutboxMail, User, WebSession
from orchestrator.people import access, accounts
from orchestrator.people.accounts import Principal, ThrottlePolicy

NOW = datetime(2027, 5, 3, 8, 0, tzinfo=UTC)
PASSWORD = "correct horse battery"


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database.for_data_dir(tmp_path)
    database.migrate()
    yield database
    database.close_sync()


@pytest.fixture
def centres(db: Database) -> tuple[str, str]:
    def setup(s: DbSession) -> tuple[str, str]:
        paris = add_centre(s, "Fontainebleau", "Europe/Paris")
        amsterdam = add_centre(s, "Amsterdam", "Europe/Amsterdam")
        return paris.id, amsterdam.id

    return db.run_sync(setup)


def _person(role: str, centre_id: str | None, id_: str = "u1") -> Principal:
    return Principal(id_, f"{id_}@example.org", id_, role, centre_id, None, None)


def _code(fn: object) -> str:
    assert callable(fn)
    with pytest.raises(DomainError) as caught:
        fn()
    return caught.value.code


# --- accounts: creating people ---------------------------------------------------------


def test_create_user_hashes_the_password_with_argon2_and_normalises_the_email(
    db: Database, centres: tuple[str, str]
) -> None:
    user = db.run_sync(
        lambda s: accounts.create_user(
            s, "  Anne@Example.ORG ", "Anne", PASSWORD, "staff", centres[0]
        )
    )
    assert user.email == "anne@example.org"
    assert user.password_hash.startswith("$argon2id$")
    assert PASSWORD not in user.password_hash
    assert "password_hash" not in repr(user)


@pytest.mark.parametrize(
    ("email", "name", "password", "role", "centre", "code"),
    [
        ("not-an-address", "X", PASSWORD, "organiser", 0, "invalid-email"),
        ("x@example.org", "X", "short", "organiser", 0, "weak-password"),
        ("x@example.org", "X", PASSWORD, "root", 0, "invalid-role"),
        ("x@example.org", "X", PASSWORD, "staff", None, "needs-centre"),
        ("x@example.org", "  ", PASSWORD, "staff", 0, "invalid-name"),
    ],
)
def test_create_user_refuses_bad_input_with_a_stable_code(
    db: Database,
    centres: tuple[str, str],
    email: str,
    name: str,
    password: str,
    role: str,
    centre: int | None,
    code: str,
) -> None:
    centre_id = None if centre is None else centres[centre]
    assert (
        _code(
            lambda: db.run_sync(
                lambda s: accounts.create_user(s, email, name, password, role, centre_id)
            )
        )
        == code
    )


def test_create_user_refuses_a_duplicate_address_and_an_unknown_centre(
    db: Database, centres: tuple[str, str]
) -> None:
    db.run_sync(lambda s: accounts.create_user(s, "a@example.org", "A", PASSWORD, "admin"))
    again = lambda: db.run_sync(  # noqa: E731
        lambda s: accounts.create_user(s, "A@example.org", "A", PASSWORD, "admin")
    )
    assert _code(again) == "duplicate"
    ghost = lambda: db.run_sync(  # noqa: E731
        lambda s: accounts.create_user(s, "b@example.org", "B", PASSWORD, "staff", "nope")
    )
    assert _code(ghost) == "unknown-centre"


# --- accounts: logging in and the throttle --------------------------------------------


def _add_anne(db: Database, centre_id: str) -> User:
    return db.run_sync(
        lambda s: accounts.create_user(s, "anne@example.org", "Anne", PASSWORD, "staff", centre_id)
    )


def _login(db: Database, password: str, now: datetime, client: str = "10.0.0.1") -> str:
    def go(s: DbSession) -> str:
        return accounts.login(s, "anne@example.org", password, client, now)[1]

    return db.run_sync(go)


def test_login_opens_a_session_that_logout_ends(db: Database, centres: tuple[str, str]) -> None:
    _add_anne(db, centres[0])
    token = _login(db, PASSWORD, NOW)
    who = db.run_sync(lambda s: accounts.session_user(s, token, NOW))
    assert who is not None and who.email == "anne@example.org" and who.is_staff_of(centres[0])
    # The cookie value itself is never stored, only its hash.
    rows = db.run_sync(lambda s: s.get(WebSession, accounts.hash_session_token(token)))
    assert rows is not None
    db.run_sync(lambda s: accounts.logout(s, token))
    assert db.run_sync(lambda s: accounts.session_user(s, token, NOW)) is None


def test_a_session_expires_after_its_lifetime(db: Database, centres: tuple[str, str]) -> None:
    _add_anne(db, centres[0])
    token = _login(db, PASSWORD, NOW)
    later = NOW + accounts.SESSION_LIFETIME
    assert db.run_sync(lambda s: accounts.session_user(s, token, later - timedelta(seconds=1)))
    assert db.run_sync(lambda s: accounts.session_user(s, token, later)) is None


def test_failed_logins_are_counted_even_though_the_login_is_refused(
    db: Database, centres: tuple[str, str]
) -> None:
    """Regression: the refusal rolled back the transaction that counted the failure,
    so the throttle never locked anything."""
    _add_anne(db, centres[0])
    assert _code(lambda: _login(db, "wrong password!", NOW)) == "login-failed"
    for key in accounts.throttle_keys("anne@example.org", "10.0.0.1"):
        row = db.run_sync(lambda s, key=key: s.get(LoginThrottle, key))  # type: ignore[misc]
        assert row is not None and row.failures == 1, key


def test_five_failures_lock_the_account_for_that_address_only_until_the_lockout_ends(
    db: Database, centres: tuple[str, str]
) -> None:
    _add_anne(db, centres[0])
    policy = accounts.LoginLimits().pair
    for i in range(policy.max_failures):
        attempt = lambda: _login(db, "wrong password!", NOW + timedelta(seconds=i), "10.0.1.1")  # noqa: E731, B023
        assert _code(attempt) == "login-failed"
    locked = lambda: _login(db, PASSWORD, NOW + timedelta(minutes=1), "10.0.1.1")  # noqa: E731
    assert _code(locked) == "login-throttled"
    # Another address is not locked out of the account by those failures.
    assert _login(db, PASSWORD, NOW + timedelta(minutes=1), "10.0.2.1")
    after = NOW + timedelta(seconds=policy.max_failures - 1) + policy.lockout + timedelta(seconds=1)
    assert _login(db, PASSWORD, after, "10.0.1.1")
    # A success forgives that address's failures for the account.
    pair = accounts.throttle_keys("anne@example.org", "10.0.1.1").pair
    row = db.run_sync(lambda s: s.get(LoginThrottle, pair))
    assert row is not None and row.failures == 0 and row.locked_until is None


def test_failures_from_one_client_at_many_accounts_lock_that_client_for_every_account(
    db: Database, centres: tuple[str, str]
) -> None:
    _add_anne(db, centres[0])
    for i in range(accounts.LoginLimits().client.max_failures):

        def guess(s: DbSession, i: int = i) -> object:
            return accounts.login(s, f"nobody{i}@example.org", "guess guess", "10.9.9.9", NOW)

        assert _code(lambda: db.run_sync(guess)) == "login-failed"
    assert _code(lambda: _login(db, PASSWORD, NOW, "10.9.9.9")) == "login-throttled"
    assert _login(db, PASSWORD, NOW, "10.9.9.10")


def test_failures_older_than_the_window_are_forgotten() -> None:
    policy = ThrottlePolicy()
    row = LoginThrottle(key="k", failures=4, first_failure_at=NOW)
    assert accounts.throttle_after_failure(row, NOW + timedelta(minutes=1), policy)[2] is not None
    failures, first, locked = accounts.throttle_after_failure(
        row, NOW + policy.window + timedelta(seconds=1), policy
    )
    assert (failures, locked) == (1, None) and first > NOW


def test_a_disabled_person_cannot_log_in_and_loses_open_sessions(
    db: Database, centres: tuple[str, str]
) -> None:
    anne = _add_anne(db, centres[0])
    token = _login(db, PASSWORD, NOW)
    db.run_sync(lambda s: accounts.set_disabled(s, anne.id, True))
    assert db.run_sync(lambda s: accounts.session_user(s, token, NOW)) is None
    assert _code(lambda: _login(db, PASSWORD, NOW, "10.0.0.2")) == "login-failed"
    db.run_sync(lambda s: accounts.set_disabled(s, anne.id, False))
    assert _login(db, PASSWORD, NOW, "10.0.0.3")


# --- accounts: own settings and passwords ------------------------------------------------


def test_update_profile_checks_the_name_and_the_time_zone(
    db: Database, centres: tuple[str, str]
) -> None:
    anne = _add_anne(db, centres[0])
    me = db.run_sync(
        lambda s: accounts.update_profile(
            s, anne.id, name=" Anne D. ", locale="fr", timezone="America/Toronto"
        )
    )
    assert (me.name, me.locale, me.timezone) == ("Anne D.", "fr", "America/Toronto")
    bad_zone = lambda: db.run_sync(  # noqa: E731
        lambda s: accounts.update_profile(s, anne.id, name="A", locale=None, timezone="Mars/Base")
    )
    assert _code(bad_zone) == "unknown-timezone"
    no_name = lambda: db.run_sync(  # noqa: E731
        lambda s: accounts.update_profile(s, anne.id, name=" ", locale=None, timezone=None)
    )
    assert _code(no_name) == "invalid-name"


def test_change_password_needs_the_current_one_and_ends_other_logins(
    db: Database, centres: tuple[str, str]
) -> None:
    anne = _add_anne(db, centres[0])
    elsewhere = _login(db, PASSWORD, NOW)
    wrong = lambda: db.run_sync(  # noqa: E731
        lambda s: accounts.change_password(s, anne.id, "not the password", "a new password 1", NOW)
    )
    assert _code(wrong) == "wrong-password"
    weak = lambda: db.run_sync(  # noqa: E731
        lambda s: accounts.change_password(s, anne.id, PASSWORD, "short", NOW)
    )
    assert _code(weak) == "weak-password"
    same = lambda: db.run_sync(  # noqa: E731
        lambda s: accounts.change_password(s, anne.id, PASSWORD, PASSWORD, NOW)
    )
    assert _code(same) == "same-password"
    fresh = db.run_sync(
        lambda s: accounts.change_password(s, anne.id, PASSWORD, "a new password 1", NOW)
    )
    assert db.run_sync(lambda s: accounts.session_user(s, elsewhere, NOW)) is None
    assert db.run_sync(lambda s: accounts.session_user(s, fresh, NOW)) is not None
    assert _code(lambda: _login(db, PASSWORD, NOW)) == "login-failed"
    assert _login(db, "a new password 1", NOW)


def test_user_by_email_ignores_case_and_says_not_found(
    db: Database, centres: tuple[str, str]
) -> None:
    _add_anne(db, centres[0])
    assert db.run_sync(lambda s: accounts.user_by_email(s, " ANNE@example.org")).name == "Anne"
    assert _code(lambda: db.run_sync(lambda s: accounts.user_by_email(s, "x@y.org"))) == (
        "not-found"
    )


# --- access rules ---------------------------------------------------------------------


def test_booking_titles_are_visible_to_members_of_a_centre_involved_only() -> None:
    paris, amsterdam, strasbourg = "c-paris", "c-ams", "c-stras"
    admin = _person("admin", None, "root")
    owner = _person("organiser", strasbourg, "own")
    paris_staff = _person("staff", paris, "ps")
    ams_organiser = _person("organiser", amsterdam, "ao")
    stras_colleague = _person("organiser", strasbourg, "sc")
    rooms = [paris]
    assert access.can_see_booking(admin, "own", strasbourg, rooms)
    assert access.can_see_booking(owner, "own", strasbourg, rooms)
    assert access.can_see_booking(paris_staff, "own", strasbourg, rooms)
    assert access.can_see_booking(stras_colleague, "own", strasbourg, rooms)
    assert not access.can_see_booking(ams_organiser, "own", strasbourg, rooms)
    assert not access.can_see_booking(None, "own", strasbourg, rooms)
    # An imported booking (no owner, no centre) is seen by the rooms' centres only.
    assert not access.can_see_booking(ams_organiser, None, None, rooms)
    assert access.can_see_booking(paris_staff, None, None, rooms)
    assert access.BUSY == "busy"


def test_managing_a_booking_is_for_its_owner_admins_and_staff_of_its_rooms() -> None:
    owner = _person("organiser", "c-a", "own")
    colleague = _person("organiser", "c-b", "col")
    staff_b = _person("staff", "c-b", "sb")
    staff_c = _person("staff", "c-c", "sc")
    rooms = ["c-b"]
    assert access.can_manage_booking(owner, "own", rooms)
    assert access.can_manage_booking(_person("admin", None, "root"), "own", rooms)
    assert access.can_manage_booking(staff_b, "own", rooms)
    assert not access.can_manage_booking(colleague, "own", rooms)
    assert not access.can_manage_booking(staff_c, "own", rooms)
    assert not access.can_manage_booking(None, "own", rooms)


def test_staff_only_pages_and_approvals_belong_to_staff_of_that_centre() -> None:
    for rule in (access.can_manage_centre, access.can_approve):
        assert rule(_person("admin", None), "c-a")
        assert rule(_person("staff", "c-a"), "c-a")
        assert not rule(_person("staff", "c-b"), "c-a")
        assert not rule(_person("organiser", "c-a"), "c-a")
        assert not rule(None, "c-a")
    assert access.can_book(_person("organiser", "c-a"))
    assert not access.can_book(None)


def test_approval_is_needed_only_for_bookers_from_elsewhere() -> None:
    assert access.needs_approval(True, "c-a", "c-b")
    assert access.needs_approval(True, "c-a", None)
    assert not access.needs_approval(True, "c-a", "c-a")
    assert not access.needs_approval(False, "c-a", "c-b")


# --- outbox ---------------------------------------------------------------------------


def test_outbox_retries_with_growing_delays_and_gives_up(db: Database) -> None:
    mail = db.run_sync(
        lambda s: outbox.enqueue(s, "a@example.org", "Hi", "Body", now=NOW, kind="invitation")
    )
    assert [m.id for m in db.run_sync(lambda s: outbox.due(s, NOW))] == [mail.id]
    db.run_sync(lambda s: outbox.mark_failed(s, mail.id, NOW, "connection refused"))
    assert db.run_sync(lambda s: outbox.due(s, NOW + timedelta(seconds=29))) == []
    assert db.run_sync(lambda s: outbox.due(s, NOW + timedelta(seconds=30)))
    assert [outbox.retry_delay(n).total_seconds() for n in (1, 2, 3, 20)] == [30, 60, 120, 3600]
    for _ in range(outbox.MAX_ATTEMPTS - 1):
        db.run_sync(lambda s: outbox.mark_failed(s, mail.id, NOW, "connection refused"))
    assert db.run_sync(lambda s: outbox.due(s, NOW + timedelta(days=1))) == []
    assert [m.id for m in db.run_sync(outbox.failed)] == [mail.id]


def test_a_permanent_refusal_is_never_retried_and_keeps_its_error(db: Database) -> None:
    mail = db.run_sync(lambda s: outbox.enqueue(s, "x@example.org", "Hi", "Body", now=NOW))
    db.run_sync(lambda s: outbox.mark_failed(s, mail.id, NOW, "550 no such user", permanent=True))
    assert db.run_sync(lambda s: outbox.due(s, NOW + timedelta(days=2))) == []
    row = db.run_sync(lambda s: s.get(OutboxMail, mail.id))
    assert row is not None and row.last_error == "550 no such user" and row.sent_at is None


def test_a_sent_mail_is_not_due_again(db: Database) -> None:
    mail = db.run_sync(lambda s: outbox.enqueue(s, "a@example.org", "Hi", "Body", now=NOW))
    db.run_sync(lambda s: outbox.mark_sent(s, mail.id, NOW))
    assert db.run_sync(lambda s: outbox.due(s, NOW + timedelta(hours=1))) == []


def test_outbox_refuses_header_injection_and_unknown_kinds(db: Database) -> None:
    with pytest.raises(ValueError, match="line breaks"):
        db.run_sync(lambda s: outbox.enqueue(s, "a@example.org", "Hi\nBcc: x@y", "B", now=NOW))
    with pytest.raises(ValueError, match="kind"):
        db.run_sync(lambda s: outbox.enqueue(s, "a@example.org", "Hi", "B", now=NOW, kind="spam"))
