"""The migrations build the schema the models describe, on SQLite and PostgreSQL.

PostgreSQL is the server at 127.0.0.1:5432, database ``test``, user ``postgres``
(trust auth); override with ``TELECENTRE_TEST_POSTGRES_URL``. Each run works in a
schema of its own, dropped afterwards. Without a reachable server the PostgreSQL
tests skip, except under ``CI=true``, where they fail.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlmodel import SQLModel, select

import orchestrator.models  # noqa: F401  (registers the tables)
from orchestrator import centres
from orchestrator.booking import one_off
from orchestrator.db import Database
from orchestrator.migrations import MIGRATIONS_DIR, alembic_config
from orchestrator.models import Booking

POSTGRES_URL = os.environ.get(
    "TELECENTRE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
TABLES = {
    "alembic_version",
    "api_token",
    "booking",
    "booking_room",
    "centre",
    "meeting_session",
    "participation",
    "room",
    "session_transition",
    "room_slot",
    "feed",
    "calendar_token",
    "caldav_link",
    "caldav_item",
    "app_user",
    "web_session",
    "login_throttle",
    "approval",
    "guest",
    "panel_token",
    "outbox_mail",
    "room_readiness",
    "session_readiness",
}


def _diffs(db: Database) -> list[Any]:
    with db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(context, SQLModel.metadata))


def _check_schema(db: Database) -> None:
    db.migrate()
    assert TABLES <= set(sa.inspect(db.engine).get_table_names())
    assert _diffs(db) == []
    db.migrate()  # a second upgrade is a no-op
    with db.engine.connect() as conn:
        head = ScriptDirectory.from_config(alembic_config()).get_current_head()
        assert MigrationContext.configure(conn).get_current_revision() == head


def _check_round_trip(db: Database) -> None:
    """Aware instants in any zone come back as the same instant in UTC; wall-clock
    times come back naive and unchanged."""
    start = datetime(2027, 10, 31, 2, 30, tzinfo=timezone(timedelta(hours=2)))

    def setup(s: Any) -> str:
        centre = centres.add_centre(s, "C", "Europe/Madrid")
        a = centres.add_room(s, centre.id, "A")[0]
        b = centres.add_room(s, centre.id, "B")[0]
        booking, _ = one_off.book(s, "t", start, start + timedelta(hours=1), [a.id, b.id])
        return booking.id

    booking_id = db.run_sync(setup)
    stored = db.run_sync(lambda s: s.exec(select(Booking).where(Booking.id == booking_id)).one())
    assert stored.start_utc == datetime(2027, 10, 31, 0, 30, tzinfo=UTC)
    assert stored.start_utc.tzinfo == UTC
    assert stored.created_at.tzinfo == UTC
    assert stored.start_local == datetime(2027, 10, 31, 2, 30)  # CEST, before the switch
    assert stored.start_local.tzinfo is None


def test_upgrade_on_a_fresh_sqlite_file_matches_the_models(tmp_path: Path) -> None:
    db = Database.for_data_dir(tmp_path)
    try:
        _check_schema(db)
        _check_round_trip(db)
    finally:
        db.close_sync()


def test_downgrade_to_base_and_back(tmp_path: Path) -> None:
    db = Database.for_data_dir(tmp_path)
    try:
        db.migrate()
        with db.engine.begin() as conn:
            command.downgrade(alembic_config(conn), "base")
        assert set(sa.inspect(db.engine).get_table_names()) == {"alembic_version"}
        _check_schema(db)
    finally:
        db.close_sync()


def test_the_newest_migrations_step_down_and_up_with_sessions_kept(tmp_path: Path) -> None:
    """0007 and 0008 go down and up on a database that holds sessions (rows of other
    tables refer to them: a copy of the table, as batch mode makes, is refused), and
    the overlap triggers come back with 0007."""
    db = Database.for_data_dir(tmp_path)
    try:
        db.migrate()
        start = datetime(2027, 3, 28, 9, tzinfo=UTC)

        def book(s: Any) -> None:
            centre = centres.add_centre(s, "Fontainebleau", "Europe/Paris")
            rooms = [centres.add_room(s, centre.id, n)[0].id for n in ("Bleue", "Verte")]
            one_off.book(s, "Kept", start, start + timedelta(hours=1), rooms)

        db.run_sync(book)

        def triggers() -> set[str]:
            with db.engine.connect() as conn:
                rows = conn.exec_driver_sql(
                    "SELECT name FROM sqlite_master WHERE type = 'trigger'"
                ).all()
            return {r[0] for r in rows}

        def session_columns() -> set[str]:
            return {c["name"] for c in sa.inspect(db.engine).get_columns("meeting_session")}

        assert "tr_room_slot_no_overlap_insert" in triggers()
        with db.engine.begin() as conn:
            command.downgrade(alembic_config(conn), "0006")
        assert not {"failure", "cancelled_by"} & session_columns()
        assert not any(t.startswith("tr_room_slot_no_overlap") for t in triggers())
        with db.engine.begin() as conn:
            command.upgrade(alembic_config(conn), "head")
        assert {"failure", "cancelled_by"} <= session_columns()
        assert {"tr_room_slot_no_overlap_insert", "tr_room_slot_no_overlap_update"} <= triggers()
        with db.engine.connect() as conn:
            kept = conn.exec_driver_sql("SELECT count(*) FROM session_transition").scalar()
        assert kept == 1  # the session's "scheduled" step survived both ways
    finally:
        db.close_sync()


def test_migrations_ship_inside_the_package() -> None:
    assert MIGRATIONS_DIR.parent.name == "orchestrator"
    assert (MIGRATIONS_DIR / "env.py").is_file()
    assert (MIGRATIONS_DIR / "script.py.mako").is_file()
    assert (MIGRATIONS_DIR / "versions" / "0001_initial.py").is_file()
    assert not (Path(__file__).parents[1] / "alembic.ini").exists()


def test_one_head() -> None:
    assert len(ScriptDirectory.from_config(alembic_config()).get_heads()) == 1


# --- PostgreSQL -------------------------------------------------------------------------


def _postgres_or_skip() -> None:
    try:
        engine = sa.create_engine(POSTGRES_URL, connect_args={"connect_timeout": 3})
        try:
            with engine.connect() as conn:
                conn.exec_driver_sql("SELECT 1")
        finally:
            engine.dispose()
    except Exception as exc:  # the driver missing, the server down, auth refused
        reason = f"PostgreSQL not reachable at {POSTGRES_URL}: {type(exc).__name__}: {exc}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason)
        pytest.skip(reason)


@pytest.fixture
def postgres() -> Iterator[Database]:
    """A Database on a fresh schema of its own, dropped afterwards."""
    _postgres_or_skip()
    schema = f"telecentre_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    url = sa.make_url(POSTGRES_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    db = Database(url.render_as_string(hide_password=False))
    try:
        yield db
    finally:
        db.close_sync()
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()


def test_upgrade_on_postgresql_matches_the_models(postgres: Database) -> None:
    _check_schema(postgres)
    _check_round_trip(postgres)
    with postgres.engine.connect() as conn:
        kinds: dict[str, str] = dict(
            conn.exec_driver_sql(
                "SELECT column_name, data_type FROM information_schema.columns"
                " WHERE table_schema = current_schema() AND table_name = 'booking'"
            ).all()
        )
    assert kinds["start_utc"] == "timestamp with time zone"
    assert kinds["start_local"] == "timestamp without time zone"
