"""The room agent's timeline: the schedule it keeps, the touch panel's word on it, and
the loop that makes the room do what the schedule says now.

At T - lead the room joins behind the starting card, at T it sends its camera, at
T_end it leaves (room_agents.schedule holds the rules, as pure functions). Every
wake-up (a schedule, a session-state change, a new connection, the next change
coming due, or a second passing) compares the plan with what the room does and
fixes the difference. The timeline and the touch panel's commands take turns
(``act``), so a command never races the timeline's own join or leave.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Protocol

from common.waits import sleep_or_wake
from room_agents.room_control import OK, Outcome
from room_agents.schedule import (
    Command,
    ScheduleCache,
    join_refusal,
    merge_state,
    next_change,
    plan_at,
)
from signalling import protocol as p
from signalling.client import SignallingError

MAX_SLEEP = 1.0  # the wall clock is read again at least this often


class Clock(Protocol):
    def now(self) -> float: ...


class RoomActions(Protocol):
    """What the timeline asks of the room (room_control.RoomControl)."""

    @property
    def sessions(self) -> Mapping[str, object]:
        """The sessions the room is in (or joining), by id."""
        ...

    async def ensure_joined(self, entry: p.ScheduleEntry) -> SignallingError | None: ...

    async def forget_unjoined(self, session_id: str) -> None: ...

    async def leave(self, session_id: str) -> None: ...

    def set_live(self, live: bool, now: float) -> None: ...

    async def publish_state(self) -> None: ...


class Timeline:
    def __init__(self, clock: Clock, cache: ScheduleCache, control: RoomActions) -> None:
        self.clock = clock
        self.cache = cache
        self.control = control
        self.entries: list[p.ScheduleEntry] = cache.load()
        self.commands: dict[str, Command] = {}  # session -> the touch panel's last word on it
        self.act = asyncio.Lock()  # the timeline and the touch panel take turns
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Look at the schedule again now."""
        self._wake.set()

    def entry(self, session_id: str) -> p.ScheduleEntry | None:
        return next((e for e in self.entries if e.session_id == session_id), None)

    # --- what the server says ---------------------------------------------------------

    def on_schedule(self, message: p.Schedule) -> None:
        self.cache.save(message)
        self.entries = list(message.sessions)
        self.wake()

    def on_session_state(self, message: p.SessionState) -> None:
        self.entries = merge_state(self.entries, message)
        self.cache.save_entries(self.entries)
        self.wake()

    # --- the loop ---------------------------------------------------------------------

    async def run(self) -> None:
        """Every wake-up: compare what the schedule says with what we do, and fix it."""
        while True:
            now = self.clock.now()
            async with self.act:
                await self.reconcile(now)
            nxt = next_change(self.entries, now)
            delay = MAX_SLEEP if nxt is None else min(MAX_SLEEP, max(0.0, nxt - self.clock.now()))
            await sleep_or_wake(self._wake, delay)

    async def reconcile(self, now: float) -> None:
        """Join what the plan says the room is in, leave the rest, set the camera."""
        control = self.control
        plans = {
            e.session_id: (e, plan_at(e, now, self.commands.get(e.session_id)))
            for e in self.entries
        }
        for session_id in list(self.commands):
            if session_id not in plans:
                del self.commands[session_id]
        live = False
        for session_id, (entry, plan) in plans.items():
            if plan.in_call:
                await control.ensure_joined(entry)
                live = live or plan.live
            elif session_id in control.sessions:
                await control.leave(session_id)
        for session_id in list(control.sessions):
            if session_id not in plans:
                await control.leave(session_id)  # dropped from the schedule: cancelled or moved
        control.set_live(live, now)
        await control.publish_state()

    # --- the touch panel's join and leave (called under ``act``) -----------------------

    async def join_on_command(self, session_id: str) -> Outcome:
        entry = self.entry(session_id)
        reason = join_refusal(entry, self.clock.now())
        if entry is None or reason is not None:
            return False, p.ErrorCode.NOT_JOINABLE, reason
        previous = self.commands.get(session_id)
        self.commands[session_id] = "join"
        error = await self.control.ensure_joined(entry)
        if error is not None:
            if previous is None:
                del self.commands[session_id]
            else:
                self.commands[session_id] = previous
            await self.control.forget_unjoined(session_id)
            return False, error.code, error.message
        await self.reconcile(self.clock.now())  # the camera, if the session has started
        return OK

    async def leave_on_command(self, session_id: str) -> Outcome:
        if session_id not in self.control.sessions:
            return False, p.ErrorCode.NOT_IN_SESSION, "the room is not in this session"
        self.commands[session_id] = "leave"
        await self.control.leave(session_id)
        await self.reconcile(self.clock.now())
        return OK
