"""What ``telecentre demo`` prints as its session moves: one line per lifecycle step
(preparing, live, ending, ended...), so someone watching the terminal sees the rooms
connect and go live by themselves without opening a page.

The lines are made by a pure function from the session's transition records; the
watcher reads new records every second on the demo's own database handle (the
scheduler writes them; the demo only reads) and stops at a terminal state.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import col, select

from orchestrator import lifecycle
from orchestrator.db import Database, DatabaseFault, DbSession, Priority
from orchestrator.models import SessionTransitionRecord

# What each state means to someone watching the rooms.
MEANING: dict[str, str] = {
    lifecycle.SCHEDULED: "the rooms are booked and will connect by themselves",
    lifecycle.PREPARING: "the rooms connect; cameras and screens wait for the booked second",
    lifecycle.LIVE: "cameras and screens are on in every room",
    lifecycle.ENDING: "the rooms' screens warn that the meeting ends soon",
    lifecycle.ENDED: "the rooms leave",
    lifecycle.CANCELLED: "the session was cancelled",
    lifecycle.FAILED: "the session failed",
}
POLL_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class Step:
    seq: int
    state: str
    at: datetime


def offset_text(at: datetime, start: datetime) -> str:
    """``T-60 s``, ``T+0 s``, ``T+1 h 5 min``: where ``at`` falls against the booked start."""
    seconds = round((at - start).total_seconds())
    sign = "-" if seconds < 0 else "+"
    seconds = abs(seconds)
    if seconds < 120:
        return f"T{sign}{seconds} s"
    minutes, _ = divmod(seconds, 60)
    if minutes < 120:
        return f"T{sign}{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"T{sign}{hours} h {minutes} min"


def step_line(step: Step, title: str, start: datetime) -> str:
    """One terminal line for one step, in the machine's local time."""
    clock = step.at.astimezone().strftime("%H:%M:%S")
    meaning = MEANING.get(step.state, "")
    tail = f": {meaning}" if meaning else ""
    return f"  {clock}  {title} is {step.state} ({offset_text(step.at, start)}){tail}"


def new_steps(records: Sequence[Step], seen: int) -> list[Step]:
    """The steps after ``seen`` (a sequence number), in order."""
    return sorted((r for r in records if r.seq > seen), key=lambda r: r.seq)


def _steps_after(session_id: str, seen: int) -> Callable[[DbSession], list[Step]]:
    def read(s: DbSession) -> list[Step]:
        rows = s.exec(
            select(SessionTransitionRecord)
            .where(
                col(SessionTransitionRecord.session_id) == session_id,
                col(SessionTransitionRecord.seq) > seen,
            )
            .order_by(col(SessionTransitionRecord.seq))
        )
        return [Step(r.seq, r.state, r.at) for r in rows]

    return read


async def watch_session(
    db: Database,
    session_id: str,
    title: str,
    start: datetime,
    out: Callable[[str], None],
    *,
    poll: float = POLL_SECONDS,
) -> None:
    """Print each new step of the session until it reaches a terminal state. A read the
    database refuses (busy) is tried again at the next poll: the demo's watcher never
    stops the demo."""
    seen = 0
    while True:
        try:
            steps = await db.run(_steps_after(session_id, seen), priority=Priority.STATS)
        except DatabaseFault as exc:
            out(f"  (cannot read the session's progress: {exc})")
            steps = []
        for step in new_steps(steps, seen):
            out(step_line(step, title, start))
            seen = step.seq
            if step.state in lifecycle.TERMINAL_STATES:
                return
        await asyncio.sleep(poll)
