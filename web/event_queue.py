"""Signalling's events on their way to the database: bounded, coalesced, prioritised.

``OrchestratorEvents`` (web/adapters.py) hands every event that must be written to an
``EventQueue``; one worker takes jobs from it and runs them on the database threads.
Signalling already merges a peer's media reports to one per second and keeps them to
the session's members (signalling/reports.py); this queue is what holds when the
database is slower than that (a lock held by another process, a slow disk, a
thousand rooms), so that what waits for the database stays bounded and what matters
goes first.

Rules:

- **Precious** events (a room coming online, a room joining or leaving a session,
  a media milestone) are written in arrival order, before anything else, one
  transaction each at ``Priority.EVENTS``. A room coming online is kept once per
  room while it waits (one schedule push is enough).
- **Media stats** are coalesced per (session, room): the reports that wait are
  folded into one ``participation.MediaBatch`` (every report counted once, see
  ``orchestrator.sessions.participation``). **Readiness** reports are coalesced per (room,
  session): the one with the latest ``checked_at`` is kept (on a tie, the later
  arrival), which is the only one ``readiness.record`` would keep anyway; the alert
  rules see the latest outcome of the interval. Each key is written at most once
  per ``interval`` seconds, at ``Priority.STATS``.
- **Bound.** At most ``limit`` jobs wait (precious events, media batches, readiness
  reports). When full, a report for a key that does not wait yet is shed; a
  precious event first evicts the oldest media batch, then the oldest readiness
  report; only when nothing but precious events waits is the new one dropped (and
  logged: the database has been unreachable for that long).
- **Failures.** A precious job refused with ``DatabaseBusy`` is tried again, ahead of
  everything else, up to ``ATTEMPTS`` times; other failures are logged (one line per
  ``log_interval`` per kind of failure, no traceback for a database fault or a
  refused report) and the job is dropped. Reports are never retried: the next one
  carries newer figures.

Intervals are measured on the event loop's monotonic clock: they bound a rate, they
are not a schedule.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Literal, cast

from common.waits import sleep_or_wake
from orchestrator.db import DatabaseBusy, DatabaseFault
from orchestrator.errors import DomainError
from orchestrator.log_limit import DEFAULT_INTERVAL, LogLimiter
from orchestrator.sessions.participation import MediaBatch
from signalling.ports import RoomReadiness

log = logging.getLogger(__name__)

ATTEMPTS = 3
"""Tries of a precious job the database refused as busy."""

Job = Callable[[], Awaitable[object]]
Kind = Literal["precious", "media", "readiness"]
MediaKey = tuple[str, str]  # (session id, room id)
ReadinessKey = tuple[str, str | None]  # (room id, session id)


@dataclass(slots=True)
class Counters:
    """What the queue did, for tests and for a look from outside."""

    written: int = 0
    """Jobs that reached the database and succeeded."""
    merged: int = 0
    """Reports folded into one already waiting for its key."""
    shed_media: int = 0
    shed_readiness: int = 0
    dropped: int = 0
    """Precious events lost: the queue held nothing else, or the database kept failing."""
    failed: int = 0
    """Jobs that failed (refused, database fault, error)."""


@dataclass(slots=True)
class _Precious:
    job: Job
    key: Hashable | None
    attempts: int = 0


@dataclass(slots=True)
class Taken:
    """A job to run, and what it was."""

    kind: Kind
    run: Job
    precious: _Precious | None = None


@dataclass(slots=True)
class EventQueue:
    """The waiting jobs (see the module's rules); no IO, no clock of its own: ``now``
    is handed in, so the rules can be tested directly."""

    limit: int
    interval: float
    write_media: Callable[[MediaKey, MediaBatch], Job]
    write_readiness: Callable[[RoomReadiness], Job]
    counters: Counters = field(default_factory=Counters)
    _precious: deque[_Precious] = field(default_factory=deque)
    _precious_keys: set[Hashable] = field(default_factory=set)
    _media: OrderedDict[MediaKey, MediaBatch] = field(default_factory=OrderedDict)
    _readiness: OrderedDict[ReadinessKey, RoomReadiness] = field(default_factory=OrderedDict)
    # Keys whose write is due (in order) and keys written less than ``interval`` ago.
    _ready: deque[tuple[str, Hashable]] = field(default_factory=deque)
    _in_ready: set[tuple[str, Hashable]] = field(default_factory=set)
    _cooling: deque[tuple[float, tuple[str, Hashable]]] = field(default_factory=deque)
    _cooling_until: dict[tuple[str, Hashable], float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.limit < 1:
            raise ValueError("the event queue holds at least one job")
        if self.interval < 0:
            raise ValueError("the stats write interval is not negative")

    def __len__(self) -> int:
        return len(self._precious) + len(self._media) + len(self._readiness)

    @property
    def waiting(self) -> dict[str, int]:
        return {
            "precious": len(self._precious),
            "media": len(self._media),
            "readiness": len(self._readiness),
        }

    # --- putting ----------------------------------------------------------------------

    def put_precious(self, job: Job, key: Hashable | None = None) -> bool:
        """Queue a precious job (``key``: at most one such job waits); False if the
        queue held nothing but precious jobs and this one was dropped."""
        if key is not None and key in self._precious_keys:
            return True
        if len(self) >= self.limit and not self._evict():
            self.counters.dropped += 1
            return False
        self._precious.append(_Precious(job, key))
        if key is not None:
            self._precious_keys.add(key)
        return True

    def put_media(self, key: MediaKey, add: Callable[[MediaBatch], None], now: float) -> bool:
        """Fold a report into its key's waiting batch (``add`` does the folding);
        False if it was shed."""
        batch = self._media.get(key)
        if batch is not None:
            add(batch)
            self.counters.merged += 1
            return True
        if len(self) >= self.limit:
            self.counters.shed_media += 1
            return False
        batch = MediaBatch()
        add(batch)
        self._media[key] = batch
        self._schedule(("media", key), now)
        return True

    def put_readiness(self, event: RoomReadiness, now: float) -> bool:
        """Keep the key's latest check; False if it was shed."""
        key: ReadinessKey = (event.room_id, event.session_id)
        kept = self._readiness.get(key)
        if kept is not None:
            # Newer or as new replaces; a time that is not a number never replaces one.
            if event.checked_at >= kept.checked_at or math.isnan(kept.checked_at):
                self._readiness[key] = event
            self.counters.merged += 1
            return True
        if len(self) >= self.limit:
            self.counters.shed_readiness += 1
            return False
        self._readiness[key] = event
        self._schedule(("readiness", key), now)
        return True

    def retry(self, item: _Precious) -> bool:
        """Put a precious job back at the head of the queue; False when it has had
        its ``ATTEMPTS``."""
        item.attempts += 1
        if item.attempts >= ATTEMPTS:
            self.counters.dropped += 1
            return False
        self._precious.appendleft(item)
        if item.key is not None:
            self._precious_keys.add(item.key)
        return True

    def _evict(self) -> bool:
        """Make room for a precious job: shed the oldest media batch, else the oldest
        readiness report; False if there is neither."""
        if self._media:
            self._media.popitem(last=False)
            self.counters.shed_media += 1
            return True
        if self._readiness:
            self._readiness.popitem(last=False)
            self.counters.shed_readiness += 1
            return True
        return False

    def _schedule(self, tagged: tuple[str, Hashable], now: float) -> None:
        if self._cooling_until.get(tagged, -math.inf) > now:
            return  # written less than an interval ago: released when it cools down
        if tagged not in self._in_ready:
            self._ready.append(tagged)
            self._in_ready.add(tagged)

    # --- taking -----------------------------------------------------------------------

    def take(self, now: float, *, drain: bool = False) -> Taken | None:
        """The next job: precious first, then the reports whose interval is over, in
        the order they became due (``drain``: every waiting report is due)."""
        if self._precious:
            item = self._precious.popleft()
            if item.key is not None:
                self._precious_keys.discard(item.key)
            return Taken("precious", item.job, item)
        self._cool(math.inf if drain else now)
        while self._ready:
            tagged = self._ready.popleft()
            self._in_ready.discard(tagged)
            kind, key = tagged
            if kind == "media":
                media_key = cast(MediaKey, key)
                batch = self._media.pop(media_key, None)
                if batch is not None:
                    self._written(tagged, now)
                    return Taken("media", self.write_media(media_key, batch))
            else:
                event = self._readiness.pop(cast(ReadinessKey, key), None)
                if event is not None:
                    self._written(tagged, now)
                    return Taken("readiness", self.write_readiness(event))
        return None

    def next_due(self) -> float | None:
        """When the earliest cooling key may be written again (None: none cools)."""
        return self._cooling[0][0] if self._cooling else None

    def _written(self, tagged: tuple[str, Hashable], now: float) -> None:
        if self.interval <= 0:
            return
        until = now + self.interval
        self._cooling.append((until, tagged))
        self._cooling_until[tagged] = until

    def _cool(self, now: float) -> None:
        while self._cooling and self._cooling[0][0] <= now:
            until, tagged = self._cooling.popleft()
            if self._cooling_until.get(tagged) != until:
                continue  # written again since (cannot happen while cooling; kept safe)
            del self._cooling_until[tagged]
            kind, key = tagged
            waiting = key in (self._media if kind == "media" else self._readiness)
            if waiting and tagged not in self._in_ready:
                self._ready.append(tagged)
                self._in_ready.add(tagged)


class EventWriter:
    """One worker task that runs the queue's jobs; owned by whoever calls ``start``
    and ``stop`` (the application's cleanup context)."""

    def __init__(
        self,
        queue: EventQueue,
        *,
        log_interval: float = DEFAULT_INTERVAL,
        now: Callable[[], float] | None = None,
    ) -> None:
        self.queue = queue
        self._now = now
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._worker: asyncio.Task[None] | None = None
        self._draining = False
        self._log = LogLimiter(log, log_interval)

    def now(self) -> float:
        return self._now() if self._now is not None else asyncio.get_running_loop().time()

    def notify(self) -> None:
        """Something was put: wake the worker."""
        self._idle.clear()
        self._wake.set()

    def start(self) -> None:
        self._worker = asyncio.create_task(self._work(), name="event-writer")

    async def stop(self, timeout: float = 5.0) -> None:
        """Write what waits (reports too, their interval notwithstanding) for up to
        ``timeout`` seconds, then stop."""
        if self._worker is None:
            return
        self._draining = True
        self.notify()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.wait_idle(), timeout)
        self._worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._worker
        self._worker = None

    async def wait_idle(self) -> None:
        """Return once nothing is due (reports may still wait for their interval)."""
        await self._idle.wait()

    async def _work(self) -> None:
        while True:
            taken = self.queue.take(self.now(), drain=self._draining)
            if taken is None:
                self._idle.set()
                due = self.queue.next_due()
                # Nothing due: sleep until woken (a put) or until the next report is due.
                await sleep_or_wake(self._wake, math.inf if due is None else due - self.now())
                continue
            await self._run(taken)

    async def _run(self, taken: Taken) -> None:
        try:
            await taken.run()
        except DatabaseBusy as fault:
            self.queue.counters.failed += 1
            if taken.precious is not None and self.queue.retry(taken.precious):
                return
            self._log.log(
                logging.WARNING,
                f"{taken.kind}:{fault.code}",
                "a %s event was not written: %s",
                taken.kind,
                fault,
            )
        except DatabaseFault as fault:
            self.queue.counters.failed += 1
            if taken.precious is not None:
                self.queue.counters.dropped += 1
            self._log.log(
                logging.ERROR,
                f"{taken.kind}:{fault.code}",
                "a %s event was not written: %s",
                taken.kind,
                fault,
            )
        except DomainError as refusal:
            # A report the orchestrator refuses (a room not in the session, a time out
            # of range): the peer's mistake, one line.
            self.queue.counters.failed += 1
            self._log.log(
                logging.WARNING,
                f"{taken.kind}:{refusal.code}",
                "a %s event was refused: %s",
                taken.kind,
                refusal,
            )
        except Exception:
            self.queue.counters.failed += 1
            if self._log.allow(f"{taken.kind}:error") is not None:
                log.exception("recording a signalling event (%s) failed", taken.kind)
        else:
            self.queue.counters.written += 1
