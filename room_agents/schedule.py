"""A room's local schedule: what it must do and when, and the cache that outlives restarts.

The agent acts on its own copy of the schedule (with tickets), so a room still
connects at T - lead when the scheduler is down, and rejoins a session in
progress after its own restart. All times are on the server's clock; the last
measured offset of the local clock is cached too, so an agent restarted without
a network still acts on the server's time.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from common.sessions import AUTOMATIC, MANUAL, ONE_BUTTON, TERMINAL_STATES
from signalling import protocol as p

# Connect modes in which the room joins by itself (issue: reserve-only never connects).
AUTO_JOIN_MODES = frozenset({AUTOMATIC})
# Connect modes a touch-panel ``join`` command may join: one-button (``manual`` is its
# older name), and automatic, so a room that left on command can come back.
COMMAND_JOIN_MODES = frozenset({ONE_BUTTON, MANUAL, AUTOMATIC})
Command = Literal["join", "leave"]


@dataclass(frozen=True, slots=True)
class Plan:
    """What the room should be doing at one instant for one session."""

    session_id: str
    in_call: bool  # between start - lead and end, and not terminal
    live: bool  # between start and end: send the camera, not the card


def plan_at(entry: p.ScheduleEntry, now: float, command: Command | None = None) -> Plan:
    """In the call between ``start - lead`` and ``end`` unless terminal, if the connect
    mode joins by itself or the touch panel said ``join``, and not after it said
    ``leave``; live (camera) from ``start``."""
    wanted = command == "join" or (command is None and entry.connect_mode in AUTO_JOIN_MODES)
    active = (
        wanted
        and entry.state not in TERMINAL_STATES
        and entry.start - entry.lead <= now < entry.end
    )
    return Plan(entry.session_id, in_call=active, live=active and now >= entry.start)


def join_refusal(entry: p.ScheduleEntry | None, now: float) -> str | None:
    """Why a touch-panel ``join`` of this session cannot be obeyed now; None if it can.

    A room joins on command a session of its schedule whose connect mode allows it
    (``COMMAND_JOIN_MODES``), that is not terminal, from ``start - lead`` to ``end``.
    """
    if entry is None:
        return "the session is not in this room's schedule"
    if entry.connect_mode not in COMMAND_JOIN_MODES:
        return f"the session's connect mode is {entry.connect_mode}: rooms do not connect"
    if entry.state in TERMINAL_STATES:
        return f"the session is {entry.state}"
    if now < entry.start - entry.lead:
        return (
            f"too early: the session can be joined {entry.start - entry.lead - now:.0f} s from now"
        )
    if now >= entry.end:
        return "the session is over"
    return None


def next_change(entries: list[p.ScheduleEntry], now: float) -> float | None:
    """The next instant after ``now`` at which some plan changes."""
    times = [
        t
        for e in entries
        if e.state not in TERMINAL_STATES
        for t in (e.start - e.lead, e.start, e.end)
        if t > now
    ]
    return min(times) if times else None


def merge_state(entries: list[p.ScheduleEntry], state: p.SessionState) -> list[p.ScheduleEntry]:
    """Apply a session-state message (a new state, or times moved by an extension)."""
    out = []
    for e in entries:
        if e.session_id == state.session_id:
            e = dataclasses.replace(e, start=state.start, end=state.end, state=state.state)
        out.append(e)
    return out


class ScheduleCache:
    """The last schedule received (with the session-state changes since), and the
    last measured clock offset (``clock.json`` beside it), in files readable only
    by the agent's user."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.schedule: p.Schedule | None = None

    @property
    def offset_path(self) -> Path | None:
        return self.path.with_name("clock.json") if self.path is not None else None

    def load(self) -> list[p.ScheduleEntry]:
        if self.path is None or not self.path.exists():
            return []
        try:
            message = p.decode_server(self.path.read_text(encoding="utf-8"))
        except (OSError, p.ProtocolError):
            return []  # a damaged cache is no worse than none: the server resends
        if not isinstance(message, p.Schedule):
            return []
        self.schedule = message
        return list(message.sessions)

    def save(self, schedule: p.Schedule) -> None:
        self.schedule = schedule
        if self.path is not None:
            _write_private(self.path, p.encode(schedule))

    def save_entries(self, entries: list[p.ScheduleEntry]) -> None:
        """Keep a session-state change (new state, moved end) across a restart too."""
        if self.schedule is not None:
            self.save(dataclasses.replace(self.schedule, sessions=list(entries)))

    def load_offset(self) -> float | None:
        """The clock offset last measured against the server, if any."""
        path = self.offset_path
        if path is None or not path.exists():
            return None
        try:
            offset = json.loads(path.read_text(encoding="utf-8"))["offset"]
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return float(offset) if isinstance(offset, int | float) else None

    def save_offset(self, offset: float) -> None:
        path = self.offset_path
        if path is not None:
            _write_private(path, json.dumps({"offset": offset}))


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # Write then rename, so a crash never leaves half a file behind.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def status_json(data: dict[str, object]) -> str:
    return json.dumps(data, indent=1, sort_keys=True, default=str)
