"""The demo prints a line as its session goes preparing, live and ended (web/demo_watch.py)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from orchestrator import centres, lifecycle, transitions
from orchestrator.booking import one_off
from orchestrator.db import Database, DbSession
from orchestrator.models import Session
from web.demo_watch import Step, new_steps, offset_text, step_line, watch_session

START = datetime(2027, 3, 28, 9, 0, tzinfo=UTC)


def test_offsets_read_against_the_booked_start() -> None:
    assert offset_text(START - timedelta(seconds=60), START) == "T-60 s"
    assert offset_text(START + timedelta(milliseconds=300), START) == "T+0 s"
    assert offset_text(START + timedelta(minutes=45), START) == "T+45 min"
    assert offset_text(START + timedelta(hours=2, minutes=5), START) == "T+2 h 5 min"


def test_each_step_is_one_line_saying_what_the_rooms_do() -> None:
    line = step_line(Step(2, lifecycle.LIVE, START), "Delegation", START)
    assert "\n" not in line
    assert "Delegation is live (T+0 s)" in line
    assert "cameras and screens are on" in line
    # The clock is the machine's local time of the step.
    assert START.astimezone().strftime("%H:%M:%S") in line


def test_only_steps_not_yet_printed_come_out_in_order() -> None:
    steps = [Step(3, "ending", START), Step(1, "preparing", START), Step(2, "live", START)]
    assert [s.seq for s in new_steps(steps, 1)] == [2, 3]


def _session_and_steps(db: Database) -> str:
    def book(s: DbSession) -> str:
        centre = centres.add_centre(s, "Fontainebleau", "Europe/Paris")
        rooms = [centres.add_room(s, centre.id, name)[0] for name in ("Bleue", "Verte")]
        _, session = one_off.book(
            s, "Delegation", START, START + timedelta(hours=1), [r.id for r in rooms]
        )
        return session.id

    return db.run_sync(book)


def _move(db: Database, session_id: str, state: str, at: datetime) -> None:
    def move(s: DbSession) -> None:
        session = s.get(Session, session_id)
        assert session is not None
        assert transitions.record_transition(s, session, state, at, now=at)

    db.run_sync(move)


async def test_the_watcher_prints_preparing_live_and_ended_then_stops(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'demo.sqlite3'}")
    db.migrate()
    try:
        session_id = _session_and_steps(db)
        printed: list[str] = []
        changed = asyncio.Event()

        def out(line: str) -> None:
            printed.append(line)
            changed.set()

        async def next_line() -> str:
            await asyncio.wait_for(changed.wait(), 10)
            changed.clear()
            return printed[-1]

        watcher = asyncio.create_task(
            watch_session(db, session_id, "Delegation", START, out, poll=0.01)
        )
        assert "Delegation is scheduled" in await next_line()  # booked, before the watch
        _move(db, session_id, lifecycle.PREPARING, START - timedelta(seconds=60))
        assert "Delegation is preparing (T-60 s)" in await next_line()
        _move(db, session_id, lifecycle.LIVE, START)
        assert "Delegation is live (T+0 s)" in await next_line()
        _move(db, session_id, lifecycle.ENDED, START + timedelta(hours=1))
        assert "Delegation is ended (T+60 min): the rooms leave" in await next_line()
        await asyncio.wait_for(watcher, 10)  # a terminal state ends the watch
        assert len(printed) == 4
    finally:
        await db.close()
