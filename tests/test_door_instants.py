"""The one door keeps the instants a request gives (the API, the CLI, the demo), even in
the autumn night when one wall-clock hour happens twice in the room's zone."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from orchestrator import centres
from orchestrator.db import Database, DbSession
from orchestrator.desk import door
from orchestrator.models import Session

PARIS = "Europe/Paris"
# 2027-10-31: at 01:00 UTC Paris goes from 03:00 CEST back to 02:00 CET, so the wall
# times 02:00-03:00 name two instants each: 00:xx UTC (CEST) and 01:xx UTC (CET).
FIRST_0210 = datetime(2027, 10, 31, 0, 10, tzinfo=UTC)
SECOND_0210 = datetime(2027, 10, 31, 1, 10, tzinfo=UTC)
NOW = datetime(2027, 10, 30, 12, 0, tzinfo=UTC)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database.for_data_dir(tmp_path)
    database.migrate()
    yield database
    database.close_sync()


def _rooms(s: DbSession) -> list[str]:
    paris = centres.add_centre(s, "Paris", PARIS)
    return [centres.add_room(s, paris.id, name)[0].id for name in ("Salle A", "Salle B")]


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (FIRST_0210, SECOND_0210),  # 02:10 CEST to 02:10 CET: one hour, same wall time
        (SECOND_0210, SECOND_0210 + timedelta(hours=1)),  # starts at the second 02:10
        (FIRST_0210 - timedelta(hours=1), FIRST_0210 + timedelta(minutes=30)),
    ],
)
def test_a_one_off_booking_keeps_the_instants_it_was_given(
    db: Database, start: datetime, end: datetime
) -> None:
    def run(s: DbSession) -> tuple[datetime, datetime]:
        rooms = _rooms(s)
        request = door.at_instants("Night shift", rooms, start, end, PARIS)
        assert (request.start, request.end) == (start, end)
        outcome = door.book(s, request, None, now=NOW)
        session = s.get(Session, outcome.session_ids[0])
        assert session is not None
        return session.start_utc.replace(tzinfo=UTC), session.end_utc.replace(tzinfo=UTC)

    assert db.run_sync(run) == (start, end)


def test_a_series_reads_an_ambiguous_wall_time_as_its_first_instant() -> None:
    """RFC 5545: a series is kept in wall-clock time, so its repeated hour is the first."""
    request = door.at_instants(
        "Weekly",
        ["r1", "r2"],
        SECOND_0210,
        SECOND_0210 + timedelta(hours=1),
        PARIS,
        rrule="FREQ=WEEKLY;COUNT=2",
    )
    assert request.timezone == PARIS
    assert request.start_local == datetime(2027, 10, 31, 2, 10)
