"""The scheduler: turns the booking tables into lifecycle transitions and room schedules.

Each step reads the database afresh (so a booking written by another process, such
as the CLI, reaches the rooms within one poll), applies the lifecycle steps that are
due, and tells the real-time plane through ``SessionControl``:

1. room credentials for rooms that are new or whose key generation changed (the
   first step after a start sends them all);
2. session transitions, in order, each persisted before it is sent, and the
   cancellations (or failures) that other processes wrote;
3. the schedule of every room whose schedule changed (sessions, times, states; not
   tickets, which are minted once per room and session and re-minted only when the
   session moves);
4. revocations of the tickets of sessions that were cancelled, moved, or lost a room.

The final warning one minute before the end is sent as a second ``ending``
transition (see ``lifecycle``); it changes no schedule.

Every transition to an open state carries the session's planned topology
(``sessions.topology.planned_topology`` over its rooms, its guests not revoked and its
rooms' small-uplink policy, against ``mesh_limit`` and ``sfu_available``), read with
the session's rooms in the same query: signalling places a session planned on the SFU
there when it is prepared. A terminal transition carries none.

No room ever holds two overlapping calls (``calls``): a room's schedule holds only
the sessions whose slot it holds, a transparent booking's session (a reminder) goes
from ``scheduled`` to ``ended`` without a call, and a session not begun whose rooms
are not all held for it fails (``room-not-held``) before it reaches a schedule.

Time also acts on bookings (``booking.horizon``): each step first releases the rooms
that missed their session's no-show deadline (logged, and handed to every callable
in ``release_hooks``: where a centre's notification plugs in), so their schedules
drop the session in the same step; and every ``roll_interval`` seconds the booking
horizon rolls forward, writing the sessions of occurrences that entered it (the
first roll after a start looks at the whole horizon, later ones at what entered
since). Either failing is logged and does not hold the lifecycle back.

The scheduler's database work runs at ``Priority.SCHEDULER``: ahead of requests and
of signalling's events and stats, so a flood of media reports never delays a
transition by more than one (small) transaction. A database that is locked by
another process or damaged (``DatabaseFault``) ends the step early; the step is
retried at the next poll, and the log says so once per ``log_interval`` seconds,
not once per step.

A transition is recorded at its planned time when it is taken within ``tolerance``
(``max(1 s, 2 poll intervals)``) of it, else at the time it was actually taken (a
restart, a stalled process): the record says when the rooms were told. Sends that
fail are logged; transitions are retried next step, and a room whose schedule or
credential could not be pushed is pushed again next step.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any

import sqlalchemy as sa
from sqlmodel import col, select

from common.schedule import RoomRecord, ScheduleEntry
from common.sessions import OPEN_STATES, Topology
from orchestrator import lifecycle
from orchestrator.booking.horizon import release_no_shows, roll_horizon
from orchestrator.booking.one_off import MAX_LEAD_SECONDS
from orchestrator.booking.policy import BookingSettings
from orchestrator.booking.series import horizon_end
from orchestrator.clock import Clock
from orchestrator.db import Database, DatabaseBusy, DatabaseFault, DbSession, Priority
from orchestrator.log_limit import DEFAULT_INTERVAL, LogLimiter
from orchestrator.models import Booking, Session, SessionTransitionRecord
from orchestrator.ports import (
    RoomCredential,
    SessionControl,
    SessionTransition,
    TicketRevocation,
)
from orchestrator.sessions import calls
from orchestrator.sessions.schedules import (
    SCHEDULE_HORIZON,
    Departed,
    Members,
    load_departed,
    load_rooms,
    members_of_sessions,
    mint_room_ticket,
    room_schedule,
    schedule_entries,
)
from orchestrator.sessions.tickets import TicketSigner, ticket_window
from orchestrator.sessions.topology import planned_topology
from orchestrator.transitions import record_transition

log = logging.getLogger(__name__)

ROLL_INTERVAL = 600.0
"""Seconds between two rolls of the booking horizon (it moves by a day in 86,400)."""


def _dt(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


def _ts(d: datetime) -> float:
    return d.timestamp()


@dataclass(frozen=True, slots=True)
class Transition:
    """A persisted lifecycle step, to be sent as a ``SessionTransition``; ``guests`` and
    ``small_uplink`` as ``Members`` has them, for the topology it plans."""

    session_id: str
    state: str
    at: float
    start: float
    end: float
    room_ids: tuple[str, ...]
    guests: int = 0
    small_uplink: bool = False


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What one step read and wrote, in one transaction."""

    transitions: list[Transition]
    next_wake: float | None
    rooms: list[RoomRecord]
    schedules: dict[str, tuple[ScheduleEntry, ...]]
    departed: dict[str, Departed]


# --- reading and writing the tables (synchronous, one transaction) -------------------


def apply_due_transitions(
    db: DbSession, now: float, tolerance: float, horizon: float = 0.0
) -> tuple[list[Transition], float | None]:
    """Persist every lifecycle step due at ``now``, in order; returns them and the
    earliest planned step still ahead (None if nothing loaded has one).

    First the sessions not begun whose rooms are not all held for them fail
    (``calls.refuse_unheld``), those starting within ``horizon`` seconds (at least
    the longest lead): so none of them reaches a schedule or a call. A reminder (a
    transparent booking's session) goes from ``scheduled`` to ``ended`` only.
    """
    reach = now + max(horizon, MAX_LEAD_SECONDS + 1)
    refused = calls.refuse_unheld(db, _dt(now), _dt(reach))
    rows = db.exec(
        select(Session, col(Booking.transparent))
        .join(Booking, col(Booking.id) == col(Session.booking_id))
        .where(
            col(Session.state).in_(OPEN_STATES),
            col(Session.start_utc) <= _dt(now + MAX_LEAD_SECONDS + 1),
        )
    ).all()
    sessions = [session for session, _ in rows]
    # Warnings already sent for each session's current end: an extension moves the
    # end, and the warnings sent for the old one no longer count.
    ending_at: dict[str, list[float]] = {}
    for session_id, recorded in db.connection().execute(
        sa.select(col(SessionTransitionRecord.session_id), col(SessionTransitionRecord.at)).where(
            col(SessionTransitionRecord.session_id).in_(
                [s.id for s in sessions if s.state == lifecycle.ENDING]
            ),
            col(SessionTransitionRecord.state) == lifecycle.ENDING,
        )
    ):
        ending_at.setdefault(session_id, []).append(_ts(recorded))
    applied: list[tuple[Session, str, float]] = [(s, lifecycle.FAILED, now) for s, _ in refused]
    wake: float | None = None
    for session, transparent in rows:
        call = not calls.is_reminder(transparent, session.state)
        start, end = _ts(session.start_utc), _ts(session.end_utc)
        lead = float(session.lead_seconds)
        first = lifecycle.first_warning_at(start, end)
        warnings = sum(t >= first for t in ending_at.get(session.id, ()))
        try:
            due = lifecycle.due_transitions(
                session.state,
                start,
                end,
                lead,
                now,
                final_warning_sent=warnings >= 2,
                first_warning_sent=warnings >= 1 or session.state != lifecycle.ENDING,
                call=call,
            )
        except ValueError:
            # A row no command could have written (end before start, an unknown state):
            # fail that session rather than every step of the scheduler.
            log.exception("session %s cannot be scheduled; marking it failed", session.id)
            due = [(lifecycle.FAILED, now)]
        for state, planned in due:
            at = lifecycle.transition_time(planned, now, tolerance)
            if state == lifecycle.FAILED:
                written = calls.fail_session(db, session, calls.UNSCHEDULABLE, _dt(at))
            else:
                written = record_transition(db, session, state, _dt(at), now=_dt(now))
            if not written:
                break  # changed by another process meanwhile; the next step re-reads it
            applied.append((session, state, at))
            warnings += state == lifecycle.ENDING
        if session.state in lifecycle.TERMINAL_STATES or due[:1] == [(lifecycle.FAILED, now)]:
            continue
        upcoming = lifecycle.next_wake(
            session.state,
            start,
            end,
            lead,
            final_warning_sent=warnings >= 2,
            first_warning_sent=warnings >= 1 or session.state != lifecycle.ENDING,
            call=call,
        )
        if upcoming is not None and upcoming > now and (wake is None or upcoming < wake):
            wake = upcoming
    members = members_of_sessions(db, {s.id for s, _, _ in applied})
    transitions = []
    for s, state, at in applied:
        m = members.get(s.id, Members(room_ids=()))
        start, end = _ts(s.start_utc), _ts(s.end_utc)
        transitions.append(
            Transition(s.id, state, at, start, end, m.room_ids, m.guests, m.small_uplink)
        )
    return transitions, wake


def load_snapshot(
    db: DbSession, now: float, tolerance: float, horizon: float, watched: frozenset[str]
) -> Snapshot:
    """One step's reads and writes; ``watched`` are the sessions tickets were minted for."""
    transitions, wake = apply_due_transitions(db, now, tolerance, horizon)
    schedules = schedule_entries(db, now, horizon)
    present = {e.session_id for entries in schedules.values() for e in entries}
    departed = load_departed(db, set(watched - present))
    return Snapshot(transitions, wake, load_rooms(db), schedules, departed)


# --- the running scheduler ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Ticket:
    nbf: int
    exp: int
    token: str
    jti: str


class Scheduler:
    """Drives sessions through their lifecycle and keeps rooms' schedules current.

    ``run()`` is owned by the caller (a task it cancels and awaits on shutdown);
    ``step()`` does one pass and may be called directly by tests.
    """

    def __init__(
        self,
        db: Database,
        control: SessionControl,
        signer: TicketSigner,
        clock: Clock,
        poll_interval: float = 0.5,
        *,
        horizon: float = SCHEDULE_HORIZON,
        seq: Iterator[int] | None = None,
        booking_settings: BookingSettings | None = None,
        roll_interval: float = ROLL_INTERVAL,
        log_interval: float = DEFAULT_INTERVAL,
        mesh_limit: int = 4,
        sfu_available: bool = False,
    ) -> None:
        """``mesh_limit``: the most peers a session planned as a mesh has (signalling's
        mesh cap); ``sfu_available``: the deployment has an SFU pool."""
        if poll_interval <= 0:
            raise ValueError("poll_interval is positive")
        self._db = db
        self._control = control
        self._signer = signer
        self._clock = clock
        self.poll_interval = poll_interval
        self.tolerance = max(1.0, 2 * poll_interval)
        self.horizon = horizon
        self._seq = seq if seq is not None else itertools.count(1)
        self._step_lock = asyncio.Lock()
        self._fingerprints: dict[str, tuple[ScheduleEntry, ...]] = {}
        self._generations: dict[str, int] = {}
        self._policies: dict[str, str] = {}  # room id -> ICE policy last sent
        self._tickets: dict[tuple[str, str], _Ticket] = {}  # (room id, session id)
        self._revoke: list[_Ticket] = []
        self._unsent: list[SessionTransition] = []
        self._next_wake: float | None = None
        self._sleeping = False
        self._slept = asyncio.Event()
        self.booking_settings = booking_settings or BookingSettings()
        self.roll_interval = roll_interval
        self.release_hooks: list[Callable[[list[tuple[str, str]]], None]] = []
        self._rolled_until: datetime | None = None
        self._next_roll = float("-inf")
        self._faults = LogLimiter(log, log_interval)
        self.mesh_limit = mesh_limit
        self.sfu_available = sfu_available

    async def run(self) -> None:
        """Step, then sleep until the next poll or the next planned step, forever."""
        while True:
            try:
                await self.step()
            except DatabaseFault as fault:
                level = logging.WARNING if isinstance(fault, DatabaseBusy) else logging.ERROR
                self._faults.log(level, fault.code, "scheduler step failed, retrying: %s", fault)
            except Exception:
                log.exception("scheduler step failed; retrying at the next poll")
            now = self._clock.now()
            delay = self.poll_interval
            if self._next_wake is not None and self._next_wake > now:
                delay = min(delay, self._next_wake - now)
            self._sleeping = True
            self._slept.set()
            try:
                await self._clock.sleep(delay)
            finally:
                self._sleeping = False

    async def wait_idle(self) -> None:
        """Return once ``run()`` has finished a step and sleeps (tests on a fake clock:
        ``await clock.advance(...)`` then ``await scheduler.wait_idle()``)."""
        while not self._sleeping:
            self._slept.clear()
            await self._slept.wait()

    async def step(self) -> None:
        async with self._step_lock:
            now = self._clock.now()
            await self._release_no_shows(now)
            watched = frozenset(session_id for _, session_id in self._tickets)
            snapshot = await self._db.run(
                partial(
                    load_snapshot,
                    now=now,
                    tolerance=self.tolerance,
                    horizon=self.horizon,
                    watched=watched,
                ),
                priority=Priority.SCHEDULER,
            )
            self._next_wake = snapshot.next_wake
            await self._push_credentials(snapshot.rooms)
            for t in snapshot.transitions:
                self._unsent.append(
                    self._transition(
                        t.session_id, t.state, t.at, t.start, t.end, t.room_ids, self._planned(t)
                    )
                )
            self._forget_departed(snapshot)
            await self._send_transitions()
            for room in snapshot.rooms:
                entries = snapshot.schedules.get(room.room_id, ())
                if self._fingerprints.get(room.room_id) != entries:
                    await self._push_schedule(room.room_id, entries, now)
            self._drop_stale_tickets(snapshot)
            await self._send_revocations()
            if now >= self._next_roll:
                await self._roll_horizon(now)

    async def room_connected(self, room_id: str) -> None:
        """Push the room's schedule now (it may have missed pushes while offline)."""
        # Under the step lock: a step must not judge tickets minted from a newer read.
        async with self._step_lock:
            now = self._clock.now()
            entries = await self._db.run(
                lambda db: schedule_entries(db, now, self.horizon, room_id=room_id)[room_id],
                priority=Priority.SCHEDULER,
            )
            await self._push_schedule(room_id, entries, now)

    # --- helpers -----------------------------------------------------------------------

    async def _release_no_shows(self, now: float) -> None:
        try:
            released = await self._db.run(
                partial(release_no_shows, now=_dt(now), settings=self.booking_settings),
                priority=Priority.SCHEDULER,
            )
        except DatabaseFault:
            raise  # the whole step waits for the database (see the module's doc)
        except Exception:
            log.exception("no-show release failed; retrying next step")
            return
        for session_id, room_id in released:
            log.info("room %s released from session %s: it never joined", room_id, session_id)
        for hook in self.release_hooks if released else ():
            try:
                hook(released)
            except Exception:
                log.exception("a no-show release hook failed")

    async def _roll_horizon(self, now: float) -> None:
        settings = self.booking_settings
        try:
            since = self._rolled_until
            created = await self._db.run(
                lambda db: (
                    roll_horizon(db, _dt(now), settings, since=since),
                    horizon_end(db, _dt(now), settings),
                ),
                priority=Priority.SCHEDULER,
            )
        except DatabaseFault:
            raise
        except Exception:
            log.exception("rolling the booking horizon failed; retrying next step")
            return
        count, self._rolled_until = created
        self._next_roll = now + self.roll_interval
        if count:
            log.info("booking horizon rolled: %d new sessions", count)

    def _planned(self, t: Transition) -> Topology | None:
        """The topology a transition to an open state carries; a terminal one, none."""
        if t.state in lifecycle.TERMINAL_STATES:
            return None
        return planned_topology(
            len(t.room_ids), t.guests, t.small_uplink, self.mesh_limit, self.sfu_available
        )

    def _transition(
        self,
        session_id: str,
        state: str,
        at: float,
        start: float,
        end: float,
        rooms: tuple[str, ...],
        topology: Topology | None = None,
    ) -> SessionTransition:
        return SessionTransition(
            seq=next(self._seq),
            session_id=session_id,
            state=state,
            at=at,
            start=start,
            end=end,
            room_ids=rooms,
            topology=topology,
        )

    async def _send(self, call: Callable[[Any], Awaitable[None]], message: object) -> bool:
        try:
            await call(message)
        except Exception:
            log.exception("SessionControl refused %r", message)
            return False
        return True

    async def _push_credentials(self, rooms: list[RoomRecord]) -> None:
        for room in rooms:
            if self._generations.get(room.room_id) == room.generation and (
                self._policies.get(room.room_id) == room.ice_policy
            ):
                continue
            credential = RoomCredential(
                seq=next(self._seq),
                room_id=room.room_id,
                name=room.name,
                centre=room.centre,
                key_hash=room.key_hash,
                generation=room.generation,
                ice_policy=room.ice_policy,
            )
            if await self._send(self._control.set_room_credential, credential):
                self._generations[room.room_id] = room.generation
                self._policies[room.room_id] = room.ice_policy

    async def _send_transitions(self) -> None:
        pending, self._unsent = self._unsent, []
        for index, transition in enumerate(pending):
            if not await self._send(self._control.session_transition, transition):
                self._unsent = pending[index:]  # keep the order; try again next step
                return

    def _forget_departed(self, snapshot: Snapshot) -> None:
        """Sessions that left every schedule: a cancellation (or failure) is sent on as
        a transition, and the tickets of every session that did not simply end (it was
        cancelled, moved beyond the horizon, lost its rooms or was deleted) are revoked."""
        sent = {(t.session_id, t.state) for t in snapshot.transitions}
        for session_id, gone in snapshot.departed.items():
            terminal = gone.state in (lifecycle.CANCELLED, lifecycle.FAILED)
            if terminal and (session_id, gone.state) not in sent:
                self._unsent.append(
                    self._transition(
                        session_id, gone.state, gone.at, gone.start, gone.end, gone.room_ids
                    )
                )
            for key in [k for k in self._tickets if k[1] == session_id]:
                ticket = self._tickets.pop(key)
                if gone.state != lifecycle.ENDED:
                    self._revoke.append(ticket)

    def _drop_stale_tickets(self, snapshot: Snapshot) -> None:
        """Revoke a room's ticket for a session it is no longer booked into."""
        current = {
            (room_id, e.session_id)
            for room_id, entries in snapshot.schedules.items()
            for e in entries
        }
        for key in [k for k in self._tickets if k not in current]:
            self._revoke.append(self._tickets.pop(key))

    async def _send_revocations(self) -> None:
        if not self._revoke:
            return
        revocation = TicketRevocation(
            seq=next(self._seq),
            ticket_ids=tuple(t.jti for t in self._revoke),
            until=float(max(t.exp for t in self._revoke)),
        )
        if await self._send(self._control.revoke_tickets, revocation):
            self._revoke = []

    def _ticket(self, room_id: str, entry: ScheduleEntry, now: float) -> str:
        """The room's ticket for the session, re-minted only when its window moved
        (the old one is then revoked), so pushing the same schedule twice is a no-op."""
        key = (room_id, entry.session_id)
        nbf, exp = ticket_window(entry.start, entry.end, entry.lead)
        cached = self._tickets.get(key)
        if cached is not None and (cached.nbf, cached.exp) == (nbf, exp):
            return cached.token
        if cached is not None:
            self._revoke.append(cached)
        token, jti, nbf, exp = mint_room_ticket(self._signer, room_id, entry, now)
        self._tickets[key] = _Ticket(nbf, exp, token, jti)
        return token

    async def _push_schedule(
        self, room_id: str, entries: tuple[ScheduleEntry, ...], now: float
    ) -> None:
        schedule = room_schedule(
            room_id,
            entries,
            lambda r, e: self._ticket(r, e, now),
            seq=next(self._seq),
            now=now,
        )
        if await self._send(self._control.push_schedule, schedule):
            self._fingerprints[room_id] = entries
