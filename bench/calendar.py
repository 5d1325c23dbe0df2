"""Benchmark: importing a 10,000-occurrence calendar, and free/busy over 200 rooms for 7 days.

Usage (from anywhere; the launcher cds to the repository root)::

    bench/calendar [--repeats N] [--now ISO] [--seed N] [--postgres] [--profile N] [--quick]

One JSON document goes to stdout, progress to stderr. Run it through the launcher (or
``python -m bench.calendar`` from the repository root), never as ``python
bench/calendar.py``: with ``bench/`` first on the path this file would shadow the
standard library's ``calendar``. For the same reason mypy checks it as a module:
``mypy -m bench.calendar`` (``mypy bench/calendar.py`` maps it to ``calendar``).

The calendar (bench/calendar_ics.py)
------------------------------------
Generated in memory, deterministically from ``--seed`` and ``--now`` (default
2026-10-05T00:00Z, a Monday, so the 180-day horizon crosses the October and March DST
changes of Europe and of America/Toronto): 1,000 VEVENTs over 200 rooms (``Room 001`` ..
``Room 200``, named by ``ATTENDEE;CUTYPE=ROOM;CN=...`` and/or ``LOCATION``), 800
one-room and 200 two-room events, mostly weekly or daily series ending with COUNT or
UNTIL, with EXDATEs and RECURRENCE-ID overrides that move one occurrence, a few
single events; TZID times in Europe/Paris, Europe/Amsterdam and America/Toronto with a
VTIMEZONE each. About 10,000 occurrences overlap ``[now, now + 180 days)``; no two
occurrences of one room overlap, so every one of them should become a session.

Per round (``--repeats``, default 3; floor and telecentre interleaved so that drift on
a shared machine hits both alike)
------------------------------------------------------------------------------------
Floors, the raw libraries:

- ``parse_s``: ``icalendar.Calendar.from_ical(data)``;
- ``expand_s``: ``recurring_ical_events.of(calendar).between(now, now + 180 days)``,
  and how many occurrences it returns.

telecentre, on a fresh database (SQLite in a temporary directory, migrated; three
centres, one per zone, and the 200 rooms, made with ``add_centre/add_room``,
not timed):

- ``parse_s``: ``calendars.ical_in.parse.parse_calendar(data)`` (icalendar plus our value objects);
- ``apply_s``: ``db.run_sync(lambda s: importer.import_calendar(s, parsed, ImportSource("file:bench"),
  now=now, settings=BookingSettings()))``: plan, expansion, conflict checks and writes,
  one transaction, commit included;
- ``total_s`` = parse + apply, and ``ratio`` = total over the round's floor (parse +
  expansion);
- ``reimport``: the same file parsed and applied again (should be all ``unchanged``),
  timed the same way;
- the import report's counts and the rows written (bookings, sessions, participations,
  room slots).

``checks`` says whether every event was created, nothing skipped, no conflict, the
re-import all ``unchanged`` with the same rows, recurring-ical-events found the
generator's own count of occurrences, and the sessions are that count plus the
overrides that fall past the horizon (telecentre keeps a session for every occurrence
an override names, wherever it falls; recurring-ical-events only returns the window).

Free/busy (after the first round's import, on its database), window ``[now + 14 days,
now + 21 days)``, all 200 rooms, each call in its own transaction (``db.run_sync``),
``--fb-repeats`` times (default 20):

- ``busy``: ``booking_busy.busy(s, room_ids, since, until, detail=False)``; ``call_ms``
  is the call alone, ``transaction_ms`` the whole ``run_sync``; with the number of
  busy intervals; ``busy_detail`` the same with ``detail=True`` (the join for titles);
- ``vfreebusy``: ``export.load_freebusy(s, room_ids, since, until)`` and then
  ``freebusy_ics(rooms, since, until, stamp=now)`` (the bytes an HTTP handler would
  send), each timed, with the document's size and FREEBUSY line count.

Goals (/work/shared/PERFORMANCE.md): import total <= 2x the floor (parse + expansion),
read on the medians of the rounds and on the per-round ratios; free/busy 200 rooms x
7 days <= 50 ms, read on the p50 of ``busy`` in its transaction (the VFREEBUSY
document is held to the same 50 ms for information).

``other_cpu_s_per_s`` per round is what the rest of the machine used meanwhile
(/proc/stat busy time minus this process); above 0.25 s/s (of 2 CPUs) the round is
flagged ``contended``: another test or benchmark on the machine perturbs the figures.

``--postgres`` repeats the telecentre import rounds on PostgreSQL
(``--postgres-url``, default postgresql+psycopg://postgres@127.0.0.1:5432/test), each
round in a throwaway schema (``-csearch_path``), dropped afterwards; free/busy as well.
The PostgreSQL server is another process: its work shows in ``other_cpu_s_per_s``.
``--profile N`` adds one more SQLite import (parse + apply) run under cProfile and
lists its top N functions by own time, by cumulative time, and orchestrator's own by
cumulative time, with the SQL statements the import and a re-import send (not part of
the timings).
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import functools
import gc
import hashlib
import io
import os
import platform
import pstats
import shutil
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa

from bench import measure
from bench.calendar_ics import CENTRES, HORIZON_DAYS, ROOMS, Generated, generate
from bench.calendar_ics import room_name as bench_room_name
from bench.calendar_ics import room_zone as bench_room_zone
from bench.measure import compact_json, machine_busy_seconds, own_cpu_seconds, ratio
from orchestrator.booking import busy as booking_busy
from orchestrator.booking.policy import BookingSettings
from orchestrator.calendars.ical_in import importer
from orchestrator.calendars.ical_in.parse import ParsedCalendar, parse_calendar
from orchestrator.calendars.ical_in.plan import ImportReport, ImportSource
from orchestrator.calendars.ical_out import export
from orchestrator.centres import add_centre, add_room
from orchestrator.db import Database, DbSession
from orchestrator.models import Booking, BookingRoom, Participation, RoomSlot, Session

DEFAULT_NOW = "2026-10-05T00:00:00+00:00"
DEFAULT_SEED = 20261128
DEFAULT_REPEATS = 3
FREEBUSY_OFFSET_DAYS = 14
FREEBUSY_DAYS = 7
FREEBUSY_REPEATS = 20
SOURCE_KEY = "file:bench"
DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
CONTENDED_OTHER_CPU = 0.25

GOAL_IMPORT_RATIO = 2.0
GOAL_FREEBUSY_MS = 50.0
DOCUMENTED_FLOORS = {
    "calendar_import_10k_occurrences_s": "icalendar parse 0.36 + recurring-ical-events "
    "expansion 1.08",
    "freebusy_200_rooms_7_days_ms": None,
}

Json = dict[str, Any]
T = TypeVar("T")


def log(message: str) -> None:
    print(f"[calendar {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- small helpers ----------------------------------------------------------------------


def summary(values: Iterable[float | None], digits: int = 4) -> Json:
    """This benchmark's figures keep 4 digits, raw values included."""
    return measure.summary(values, digits, round_values=True)


def timed(fn: Callable[[], T]) -> tuple[T, float]:
    """``fn()`` and the seconds it took (a collection first, so garbage left by the
    step before is not charged to this one)."""
    gc.collect()
    began = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - began


class OtherCpu:
    """What the rest of the machine used while a block ran, in CPU seconds per second."""

    def __init__(self) -> None:
        self.machine = machine_busy_seconds()
        self.own = own_cpu_seconds()
        self.began = time.monotonic()

    def per_second(self) -> float:
        wall = time.monotonic() - self.began
        own = own_cpu_seconds() - self.own
        other = machine_busy_seconds() - self.machine - own
        return round(max(other, 0.0) / wall, 3) if wall > 0 else 0.0


def versions() -> Json:
    found: Json = {"python": platform.python_version(), "cpus": os.cpu_count()}
    for dist in ("icalendar", "recurring-ical-events", "sqlalchemy", "sqlmodel", "psycopg"):
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            found[dist] = None
    return found


# --- databases --------------------------------------------------------------------------


@contextlib.contextmanager
def sqlite_database() -> Iterator[Database]:
    """A fresh, migrated SQLite database in a temporary directory, removed afterwards."""
    work = Path(tempfile.mkdtemp(prefix="bench-calendar-"))
    db = Database(f"sqlite:///{work / 'telecentre.sqlite3'}")
    try:
        db.migrate()
        yield db
    finally:
        db.close_sync()
        shutil.rmtree(work, ignore_errors=True)


def postgres_database(url: str) -> Callable[[], contextlib.AbstractContextManager[Database]]:
    """Fresh, migrated databases on PostgreSQL, each a schema of its own, dropped
    afterwards (as tests/test_migrations.py does)."""

    @contextlib.contextmanager
    def make() -> Iterator[Database]:
        schema = f"telecentre_bench_{uuid.uuid4().hex[:12]}"
        admin = sa.create_engine(url, connect_args={"connect_timeout": 5})
        with admin.begin() as conn:
            conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
        scoped = sa.make_url(url).update_query_dict({"options": f"-csearch_path={schema}"})
        db = Database(scoped.render_as_string(hide_password=False))
        try:
            db.migrate()
            yield db
        finally:
            db.close_sync()
            with admin.begin() as conn:
                conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
            admin.dispose()

    return make


def add_rooms(db: Database) -> list[str]:
    """Three centres (one per zone) and the 200 rooms, ids in room order."""

    def run(s: DbSession) -> list[str]:
        centres = {zone: add_centre(s, name, zone).id for zone, name in CENTRES.items()}
        return [
            add_room(s, centres[bench_room_zone(r)], bench_room_name(r))[0].id for r in range(ROOMS)
        ]

    return db.run_sync(run)


def row_counts(db: Database) -> Json:
    def run(s: DbSession) -> Json:
        conn = s.connection()
        counts: Json = {}
        for label, model in (
            ("bookings", Booking),
            ("booking_rooms", BookingRoom),
            ("sessions", Session),
            ("participations", Participation),
            ("room_slots", RoomSlot),
        ):
            counts[label] = conn.execute(sa.select(sa.func.count()).select_from(model)).scalar()
        return counts

    return db.run_sync(run)


def report_counts(report: ImportReport) -> Json:
    reasons: dict[str, int] = {}
    for skip in report.skipped:
        reasons[skip.code] = reasons.get(skip.code, 0) + 1
    return {
        "created": report.created,
        "updated": report.updated,
        "unchanged": report.unchanged,
        "cancelled": report.cancelled,
        "skipped": len(report.skipped),
        "skipped_by_reason": reasons,
        "skipped_first": [
            {"uid": s.uid, "code": s.code, "reason": s.reason} for s in report.skipped[:5]
        ],
        "conflicts": len(report.conflicts),
        "conflicts_first": report.conflicts[:5],
        "held_back": None if report.held_back is None else report.held_back.code,
    }


# --- the measured steps -----------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    calendar: Generated
    now: datetime
    horizon: timedelta
    settings: BookingSettings

    @property
    def until(self) -> datetime:
        return self.now + self.horizon


def floor_round(scenario: Scenario) -> Json:
    import icalendar
    import recurring_ical_events  # type: ignore[import-untyped]

    cal, parse_s = timed(lambda: icalendar.Calendar.from_ical(scenario.calendar.data))
    occurrences, expand_s = timed(
        lambda: recurring_ical_events.of(cal).between(scenario.now, scenario.until)
    )
    return {
        "parse_s": round(parse_s, 4),
        "expand_s": round(expand_s, 4),
        "total_s": round(parse_s + expand_s, 4),
        "occurrences": len(occurrences),
    }


def apply_timed(db: Database, parsed: ParsedCalendar, scenario: Scenario) -> tuple[Json, float]:
    def run(s: DbSession) -> ImportReport:
        return importer.import_calendar(
            s, parsed, ImportSource(SOURCE_KEY), now=scenario.now, settings=scenario.settings
        )

    report, seconds = timed(lambda: db.run_sync(run))
    return report_counts(report), seconds


def import_once(db: Database, scenario: Scenario) -> Json:
    """Parse and apply (timed apart), then count what was written."""
    parsed, parse_s = timed(lambda: parse_calendar(scenario.calendar.data))
    report, apply_s = apply_timed(db, parsed, scenario)
    return {
        "parse_s": round(parse_s, 4),
        "apply_s": round(apply_s, 4),
        "total_s": round(parse_s + apply_s, 4),
        "parsed_events": len(parsed.events),
        "parse_skipped": len(parsed.skipped),
        "report": report,
        "rows": row_counts(db),
    }


def telecentre_round(
    make_db: Callable[[], contextlib.AbstractContextManager[Database]],
    scenario: Scenario,
    after: Callable[[Database, list[str]], Json] | None = None,
) -> Json:
    with make_db() as db:
        room_ids = add_rooms(db)
        first = import_once(db, scenario)
        again = import_once(db, scenario)
        result: Json = {**first, "reimport": again}
        if after is not None:
            result["freebusy"] = after(db, room_ids)
        return result


def freebusy(db: Database, room_ids: list[str], scenario: Scenario, repeats: int) -> Json:
    since = scenario.now + timedelta(days=FREEBUSY_OFFSET_DAYS)
    until = since + timedelta(days=FREEBUSY_DAYS)

    def busy_figures(detail: bool) -> Json:
        calls: list[float] = []
        transactions: list[float] = []
        intervals: list[int] = []
        rooms_busy: list[int] = []

        def run(s: DbSession) -> None:
            began = time.perf_counter()
            found = booking_busy.busy(s, room_ids, since, until, detail=detail)
            calls.append(time.perf_counter() - began)
            intervals.append(sum(len(v) for v in found.values()))
            rooms_busy.append(sum(1 for v in found.values() if v))

        for _ in range(repeats):
            _, seconds = timed(lambda: db.run_sync(run))
            transactions.append(seconds)
        return {
            "call_ms": summary((c * 1000 for c in calls), 2),
            "transaction_ms": summary((t * 1000 for t in transactions), 2),
            "intervals": sorted(set(intervals)),
            "rooms_with_busy": sorted(set(rooms_busy)),
        }

    def vfreebusy() -> Json:
        loads: list[float] = []
        builds: list[float] = []
        sizes: list[int] = []
        lines: list[int] = []
        for _ in range(repeats):
            rooms, load_s = timed(
                lambda: db.run_sync(lambda s: export.load_freebusy(s, room_ids, since, until))
            )
            body, build_s = timed(
                functools.partial(export.freebusy_ics, rooms, since, until, stamp=scenario.now)
            )
            loads.append(load_s)
            builds.append(build_s)
            sizes.append(len(body))
            lines.append(body.count(b"\r\nFREEBUSY;"))
        return {
            "load_freebusy_ms": summary((v * 1000 for v in loads), 2),
            "freebusy_ics_ms": summary((v * 1000 for v in builds), 2),
            "total_ms": summary(((a + b) * 1000 for a, b in zip(loads, builds, strict=True)), 2),
            "document_bytes": sorted(set(sizes)),
            "freebusy_lines": sorted(set(lines)),
        }

    log(f"free/busy: {len(room_ids)} rooms, {since.date()} .. {until.date()}, x{repeats}")
    result: Json = {
        "since": since.isoformat(),
        "until": until.isoformat(),
        "rooms": len(room_ids),
        "repeats": repeats,
        "busy": busy_figures(False),
        "busy_detail": busy_figures(True),
    }
    try:
        result["vfreebusy"] = vfreebusy()
    except Exception as exc:  # report, do not sink the run: the module may be in flux
        result["vfreebusy"] = {"error": f"{type(exc).__name__}: {exc}"}
    return result


def profile_import(scenario: Scenario, top: int) -> Json:
    """One more import (parse + apply) on a fresh SQLite database, under cProfile, and
    the SQL statements it and a re-import send (counted apart, not profiled)."""
    statements = [0]

    def count(*_args: Any) -> None:
        statements[0] += 1

    def apply(db: Database, parsed: ParsedCalendar) -> None:
        db.run_sync(
            lambda s: importer.import_calendar(
                s, parsed, ImportSource(SOURCE_KEY), now=scenario.now, settings=scenario.settings
            )
        )

    with sqlite_database() as db:
        add_rooms(db)
        sa.event.listen(db.engine, "before_cursor_execute", count)
        profiler = cProfile.Profile()
        began = time.perf_counter()
        profiler.enable()
        parsed = parse_calendar(scenario.calendar.data)
        apply(db, parsed)
        profiler.disable()
        elapsed = time.perf_counter() - began
        first_statements = statements[0]
        apply(db, parse_calendar(scenario.calendar.data))
        again_statements = statements[0] - first_statements
    stats = pstats.Stats(profiler, stream=io.StringIO())
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    total = sum(tt for _cc, _nc, tt, _ct, _callers in raw.values())

    def where(key: tuple[str, int, str]) -> str:
        path, line, name = key
        for marker in ("site-packages/", "/work/main/", "lib/python3.11/"):
            if marker in path:
                path = path.split(marker, 1)[1]
                break
        return f"{path}:{line}({name})" if line else name

    def rows(index: int, keep: Callable[[str], bool] = lambda _: True) -> list[Json]:
        ranked = sorted(raw.items(), key=lambda kv: kv[1][index], reverse=True)
        return [
            {
                "function": where(key),
                "calls": nc,
                "own_s": round(tt, 3),
                "cumulative_s": round(ct, 3),
            }
            for key, (_cc, nc, tt, ct, _callers) in ranked
            if keep(where(key))
        ][:top]

    return {
        "elapsed_under_profiler_s": round(elapsed, 2),
        "profiled_s": round(total, 2),
        "sql_statements": {"import": first_statements, "reimport": again_statements},
        "by_own_time": rows(2),
        "by_cumulative_time": rows(3),
        "orchestrator_by_cumulative_time": rows(
            3, lambda f: f.startswith("orchestrator/") and "run_sync" not in f
        ),
    }


# --- aggregation ------------------------------------------------------------------------


def aggregate(floors: list[Json], ours: list[Json], calendar: Generated) -> Json:
    floor_total = summary(f["total_s"] for f in floors)
    total = summary(r["total_s"] for r in ours)
    paired = [ratio(r["total_s"], f["total_s"]) for r, f in zip(ours, floors, strict=False)]
    by_medians = ratio(total["p50"], floor_total["p50"])
    sessions = sorted({r["rows"]["sessions"] for r in ours})
    first = ours[0]
    checks = {
        "created_all_events": all(
            r["report"]["created"] == r["parsed_events"] == first["parsed_events"] for r in ours
        ),
        "nothing_skipped": all(
            r["report"]["skipped"] == 0 and r["parse_skipped"] == 0 for r in ours
        ),
        "no_conflicts": all(r["report"]["conflicts"] == 0 for r in ours),
        "floor_occurrences_equal_expected": all(
            f["occurrences"] == calendar.expected_occurrences for f in floors
        ),
        "sessions_equal_expected_plus_overrides_beyond_horizon": sessions
        == [calendar.expected_occurrences + calendar.overrides_beyond_horizon],
        "reimport_all_unchanged": all(
            r["reimport"]["report"]["unchanged"] == r["parsed_events"]
            and not any(
                r["reimport"]["report"][k] for k in ("created", "updated", "cancelled", "skipped")
            )
            for r in ours
        ),
        "reimport_rows_unchanged": all(r["reimport"]["rows"] == r["rows"] for r in ours),
    }
    return {
        "floor": {
            "parse_s": summary(f["parse_s"] for f in floors),
            "expand_s": summary(f["expand_s"] for f in floors),
            "total_s": floor_total,
            "occurrences": sorted({f["occurrences"] for f in floors}),
        },
        "telecentre": {
            "parse_s": summary(r["parse_s"] for r in ours),
            "apply_s": summary(r["apply_s"] for r in ours),
            "total_s": total,
            "reimport_parse_s": summary(r["reimport"]["parse_s"] for r in ours),
            "reimport_apply_s": summary(r["reimport"]["apply_s"] for r in ours),
            "reimport_total_s": summary(r["reimport"]["total_s"] for r in ours),
            "sessions": sessions,
            "rows": first["rows"],
            "report": first["report"],
            "reimport_report": first["reimport"]["report"],
        },
        "ratios": {
            "total_p50_over_floor_p50": by_medians,
            "per_round": paired,
            "parse_p50_over_floor_parse_p50": ratio(
                summary(r["parse_s"] for r in ours)["p50"],
                summary(f["parse_s"] for f in floors)["p50"],
            ),
            "apply_p50_over_floor_expand_p50": ratio(
                summary(r["apply_s"] for r in ours)["p50"],
                summary(f["expand_s"] for f in floors)["p50"],
            ),
            "reimport_total_p50_over_floor_p50": ratio(
                summary(r["reimport"]["total_s"] for r in ours)["p50"], floor_total["p50"]
            ),
        },
        "checks": checks,
    }


def goals(result: Json, freebusy_result: Json | None) -> list[Json]:
    by_medians = result["ratios"]["total_p50_over_floor_p50"]
    per_round = [r for r in result["ratios"]["per_round"] if r is not None]
    out: list[Json] = [
        {
            "goal": "calendar import (parse + apply, database writes included) <= 2x floor "
            "(icalendar parse + recurring-ical-events expansion)",
            "total_p50_s": result["telecentre"]["total_s"]["p50"],
            "floor_p50_s": result["floor"]["total_s"]["p50"],
            "ratio": by_medians,
            "ratio_per_round_max": max(per_round) if per_round else None,
            "met": None if by_medians is None else by_medians <= GOAL_IMPORT_RATIO,
        }
    ]
    if freebusy_result is not None:
        p50 = freebusy_result["busy"]["transaction_ms"]["p50"]
        out.append(
            {
                "goal": "free/busy 200 rooms x 7 days <= 50 ms (booking_busy.busy, "
                "detail=False, in its own transaction, p50)",
                "p50_ms": p50,
                "max_ms": freebusy_result["busy"]["transaction_ms"]["max"],
                "met": None if p50 is None else p50 <= GOAL_FREEBUSY_MS,
            }
        )
        vfb = freebusy_result.get("vfreebusy", {})
        if "total_ms" in vfb:
            p50 = vfb["total_ms"]["p50"]
            out.append(
                {
                    "goal": "(for information) the same 50 ms for the VFREEBUSY document: "
                    "load_freebusy + freebusy_ics, p50",
                    "p50_ms": p50,
                    "max_ms": vfb["total_ms"]["max"],
                    "met": None if p50 is None else p50 <= GOAL_FREEBUSY_MS,
                }
            )
    return out


# --- main -------------------------------------------------------------------------------


def run_rounds(
    label: str,
    make_db: Callable[[], contextlib.AbstractContextManager[Database]],
    scenario: Scenario,
    repeats: int,
    fb_repeats: int,
    with_floor: bool,
) -> tuple[list[Json], list[Json], Json | None]:
    floors: list[Json] = []
    ours: list[Json] = []
    fb: Json | None = None
    for index in range(1, repeats + 1):
        other = OtherCpu()
        load_before = os.getloadavg()[0]
        if with_floor:
            floor = floor_round(scenario)
            floors.append(floor)
            log(
                f"{label} round {index}/{repeats}: floor parse {floor['parse_s']:.3f} s + "
                f"expansion {floor['expand_s']:.3f} s, {floor['occurrences']} occurrences"
            )
        after = None
        if index == 1:

            def after(db: Database, room_ids: list[str]) -> Json:
                return freebusy(db, room_ids, scenario, fb_repeats)

        result = telecentre_round(make_db, scenario, after)
        if "freebusy" in result:
            fb = result.pop("freebusy")
            log(
                f"{label} free/busy: busy() p50 {fb['busy']['transaction_ms']['p50']} ms, "
                f"{fb['busy']['intervals']} intervals"
            )
        result["round"] = index
        result["other_cpu_s_per_s"] = other.per_second()
        result["contended"] = result["other_cpu_s_per_s"] > CONTENDED_OTHER_CPU
        result["loadavg_1m"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
        ours.append(result)
        log(
            f"{label} round {index}/{repeats}: parse {result['parse_s']:.3f} s + apply "
            f"{result['apply_s']:.3f} s; created {result['report']['created']}, "
            f"sessions {result['rows']['sessions']}, skipped {result['report']['skipped']}, "
            f"conflicts {result['report']['conflicts']}; re-import "
            f"{result['reimport']['total_s']:.3f} s, unchanged "
            f"{result['reimport']['report']['unchanged']}; other CPU "
            f"{result['other_cpu_s_per_s']} s/s"
        )
    return floors, ours, fb


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/calendar",
        description="Import a generated 10,000-occurrence calendar into telecentre and read "
        "free/busy for 200 rooms over 7 days, with icalendar / recurring-ical-events floors "
        "from the same invocation.",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=DEFAULT_REPEATS,
        help=f"floor + import rounds (default {DEFAULT_REPEATS})",
    )
    parser.add_argument(
        "--fb-repeats",
        type=int,
        default=FREEBUSY_REPEATS,
        help=f"free/busy calls of each kind (default {FREEBUSY_REPEATS})",
    )
    parser.add_argument(
        "--now", default=DEFAULT_NOW, help=f"the import's now, ISO with offset ({DEFAULT_NOW})"
    )
    parser.add_argument(
        "--seed", type=int, default=DEFAULT_SEED, help=f"generator seed ({DEFAULT_SEED})"
    )
    parser.add_argument(
        "--postgres", action="store_true", help="also run the import rounds on PostgreSQL"
    )
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL)
    parser.add_argument(
        "--profile",
        type=int,
        default=0,
        metavar="N",
        help="add one cProfile'd SQLite import and list its top N functions",
    )
    parser.add_argument(
        "--save-ics", metavar="PATH", help="also write the generated calendar to PATH"
    )
    parser.add_argument("--quick", action="store_true", help="1 round, 5 free/busy calls")
    args = parser.parse_args(argv)
    if args.quick:
        args.repeats, args.fb_repeats = 1, 5
    if args.repeats < 1 or args.fb_repeats < 1:
        parser.error("--repeats and --fb-repeats must be at least 1")
    now = datetime.fromisoformat(args.now.replace("Z", "+00:00"))
    if now.tzinfo is None:
        parser.error("--now needs an offset (e.g. 2026-10-05T00:00:00+00:00)")
    args.now = now.astimezone(UTC)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwind: temp dirs, schemas
    began = time.monotonic()
    settings = BookingSettings()
    log(f"generating the calendar (seed {args.seed}, now {args.now.isoformat()})")
    calendar = generate(args.now, seed=args.seed, horizon_days=HORIZON_DAYS)
    if args.save_ics:
        Path(args.save_ics).write_bytes(calendar.data)
    scenario = Scenario(calendar, args.now, timedelta(days=HORIZON_DAYS), settings)
    log(
        f"{calendar.events} events (+{calendar.overrides} overrides), {len(calendar.data)} "
        f"bytes, {calendar.expected_occurrences} occurrences expected in the horizon"
    )
    floors, ours, fb = run_rounds(
        "sqlite", sqlite_database, scenario, args.repeats, args.fb_repeats, True
    )
    sqlite_result = aggregate(floors, ours, calendar)
    results: Json = {
        "sqlite": {
            **sqlite_result,
            "goals": goals(sqlite_result, fb),
            "freebusy": fb,
            "contended_rounds": [r["round"] for r in ours if r["contended"]],
            "other_cpu_s_per_s": [r["other_cpu_s_per_s"] for r in ours],
            "raw_rounds": {"floor": floors, "telecentre": ours},
        }
    }
    if args.postgres:
        try:
            _, pg_ours, pg_fb = run_rounds(
                "postgres",
                postgres_database(args.postgres_url),
                scenario,
                args.repeats,
                args.fb_repeats,
                False,
            )
            pg_result = aggregate(floors, pg_ours, calendar)
            results["postgres"] = {
                **pg_result,
                "note": "floors are the SQLite rounds' (the same libraries, same process); "
                "other_cpu_s_per_s includes the PostgreSQL server's own work",
                "goals": goals(pg_result, pg_fb),
                "freebusy": pg_fb,
                "contended_rounds": [r["round"] for r in pg_ours if r["contended"]],
                "other_cpu_s_per_s": [r["other_cpu_s_per_s"] for r in pg_ours],
                "raw_rounds": {"telecentre": pg_ours},
            }
        except Exception as exc:  # the server down, the driver missing: say so, keep SQLite
            log(f"postgres FAILED: {type(exc).__name__}: {exc}")
            results["postgres"] = {"error": f"{type(exc).__name__}: {exc}"}
    profile = None
    if args.profile > 0:
        log(f"profiling one more SQLite import (top {args.profile})")
        profile = profile_import(scenario, args.profile)
    document: Json = {
        "benchmark": "calendar",
        "scenario": {
            "now": args.now.isoformat(),
            "horizon_days": HORIZON_DAYS,
            "seed": args.seed,
            "rooms": ROOMS,
            "centres": CENTRES,
            "calendar": {
                "bytes": len(calendar.data),
                "sha256_16": hashlib.sha256(calendar.data).hexdigest()[:16],
                "events": calendar.events,
                "override_vevents": calendar.overrides,
                "two_room_events": calendar.two_room_events,
                "exdates": calendar.exdates,
                "kinds": calendar.kinds,
                "terminations": calendar.terminations,
                "expected_occurrences_in_horizon": calendar.expected_occurrences,
                "overrides_beyond_horizon": calendar.overrides_beyond_horizon,
                "expected_sessions": calendar.expected_occurrences
                + calendar.overrides_beyond_horizon,
            },
            "settings": {
                "horizon_days": settings.horizon_days,
                "max_occurrences": settings.max_occurrences,
            },
            "repeats": args.repeats,
            "freebusy_window_days": [FREEBUSY_OFFSET_DAYS, FREEBUSY_OFFSET_DAYS + FREEBUSY_DAYS],
        },
        "environment": {**versions(), "loadavg": [round(v, 2) for v in os.getloadavg()]},
        "documented_floors": DOCUMENTED_FLOORS,
        "results": results,
    }
    if profile is not None:
        document["profile"] = profile
    document["elapsed_s"] = round(time.monotonic() - began, 1)
    print(compact_json(document, flat_scalar_lists=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
