"""What the real-time plane reports, taken by the orchestrator and the live view
without a traceback whatever float or string they are handed (issue 9, item 3):
instants far outside any sane range (participation.py:29 and web/app.py:88 raised
OverflowError, ValueError or OSError in ``datetime.fromtimestamp``) and lone
surrogates in a readiness check (readiness.py:187 raised UnicodeEncodeError when
the check was stored). The rules are ``orchestrator.reported``'s: instants outside
[2000, 2100) are refused with ``invalid-time``; text is made safe.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from orchestrator import centres
from orchestrator.booking import one_off
from orchestrator.db import Database, DbSession
from orchestrator.errors import DomainError
from orchestrator.models import Participation, RoomReadinessRecord, SessionReadiness
from orchestrator.sessions import participation, readiness
from orchestrator.sessions.participation import MAX_PEERS, MediaBatch
from signalling import protocol as p
from signalling.ports import MediaMilestone, MediaReport, PeerJoinedSession, RoomReadiness
from web.adapters import OrchestratorEvents
from web.alerts import mail_text
from web.services import MAX_LIVE_KEYS, LiveView
from web.ui.dashboard import room_readiness

START = datetime(2030, 6, 3, 9, 0, tzinfo=UTC)
T0 = START.timestamp()
FAR_INSTANTS: list[Any] = [
    1e300,
    -1e300,
    float("inf"),
    float("-inf"),
    float("nan"),
    10**400,
    -(10**400),
    0.0,
    datetime(1999, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp(),
    datetime(2100, 1, 1, tzinfo=UTC).timestamp(),
    True,
]
SURROGATES = "\ud800camera\udfff"
INJECTION = "lost\udfff\r\nBcc: everyone@example.org\x00\u2028"


@dataclass
class World:
    db: Database
    session_id: str
    rooms: list[str]


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    db = Database.for_data_dir(tmp_path)
    db.migrate()

    def setup(s: DbSession) -> World:
        paris = centres.add_centre(s, "Paris", "Europe/Paris")
        rooms = [centres.add_room(s, paris.id, f"Salle {i}")[0].id for i in range(2)]
        _, session = one_off.book(s, "Weekly", START, START + timedelta(hours=1), rooms)
        return World(db, session.id, rooms)

    yield db.run_sync(setup)
    db.close_sync()


def _code(world: World, write: Any) -> str:
    with pytest.raises(DomainError) as refused:
        world.db.run_sync(write)
    return refused.value.code


@pytest.mark.parametrize("at", FAR_INSTANTS, ids=repr)
def test_participation_refuses_far_instants_with_invalid_time(world: World, at: Any) -> None:
    sid, room = world.session_id, world.rooms[0]
    peer = f"room:{world.rooms[1]}"
    writes = [
        lambda s: participation.record_joined(s, sid, room, at),
        lambda s: participation.record_left(s, sid, room, at),
        lambda s: participation.record_milestone(s, sid, room, "live", at),
        lambda s: participation.record_media(s, sid, room, {"peer_id": peer, "fps": 30.0}, at=at),
        lambda s: participation.record_process(s, sid, room, {"cpu_percent": 5.0}, at=at),
    ]
    for write in writes:
        assert _code(world, write) == "invalid-time"
    batch = MediaBatch()
    batch.add(at, [{"peer_id": peer, "fps": 30.0}], {"cpu_percent": 5.0})
    assert batch.peers == {} and batch.process is None  # a waiting batch ignores it
    row = world.db.run_sync(lambda s: s.get(Participation, (sid, room)))
    assert row is not None and row.joined_at is None and row.media_summary is None


@pytest.mark.parametrize("at", FAR_INSTANTS, ids=repr)
def test_readiness_refuses_far_instants_with_invalid_time(world: World, at: Any) -> None:
    room = world.rooms[0]
    check = [readiness.Check("camera", True)]
    for kwargs in ({"checked_at": at, "received_at": T0}, {"checked_at": T0, "received_at": at}):
        code = _code(world, lambda s, k=kwargs: readiness.record(s, room, None, True, check, **k))
        assert code == "invalid-time"
    assert world.db.run_sync(lambda s: s.get(RoomReadinessRecord, room)) is None


def test_figures_that_are_not_finite_numbers_are_skipped(world: World) -> None:
    sid, room, peer = world.session_id, world.rooms[0], f"room:{world.rooms[1]}"
    report = {
        "peer_id": peer,
        "fps": float("nan"),
        "freezes": float("inf"),
        "packets_lost": 10**400,
        "rtt_ms": float("-inf"),
        "loss_fraction": 10**400,
    }
    world.db.run_sync(lambda s: participation.record_media(s, sid, room, report, at=T0))
    world.db.run_sync(
        lambda s: participation.record_process(
            s, sid, room, {"cpu_percent": float("nan"), "rss_bytes": 10**400}, at=T0
        )
    )
    row = world.db.run_sync(lambda s: s.get(Participation, (sid, room)))
    assert row is not None and row.media_summary is not None
    assert "NaN" not in row.media_summary and "Infinity" not in row.media_summary


def test_lone_surrogates_and_line_breaks_in_a_check_are_kept_safe_and_mailed(
    world: World,
) -> None:
    sid, room = world.session_id, world.rooms[0]
    checks = [readiness.Check(SURROGATES, False, INJECTION), readiness.Check("clock", True)]
    notice = world.db.run_sync(
        lambda s: readiness.record(s, room, sid, False, checks, checked_at=T0, received_at=T0)
    )
    assert notice is not None and notice.kind == "failing"
    stored = world.db.run_sync(lambda s: s.get(SessionReadiness, (sid, room)))
    assert stored is not None
    kept = readiness.decode_checks(stored.checks)
    assert kept[0].name == "\ufffdcamera\ufffd"
    assert "\n" not in kept[0].detail and "\r" not in kept[0].detail
    assert kept[0].detail.startswith("lost\ufffd")
    subject, body = mail_text(notice, "Paul", "fr")
    (subject + body).encode("utf-8")  # what the outbox and SMTP need
    assert "\nBcc:" not in body
    # A session id the room named with a surrogate: kept for the room, matches nothing.
    world.db.run_sync(
        lambda s: readiness.record(
            s, room, "\ud800" * 100, True, [], checked_at=T0 + 1, received_at=T0 + 1
        )
    )
    latest = world.db.run_sync(lambda s: s.get(RoomReadinessRecord, room))
    assert latest is not None and latest.session_id == "\ufffd" * readiness.MAX_ID
    # A room id that is not text names no room: nothing kept, nothing raised.
    assert (
        world.db.run_sync(
            lambda s: readiness.record(s, "\udfff", None, True, [], checked_at=T0, received_at=T0)
        )
        is None
    )


# --- the live view (web/app.py) ----------------------------------------------------------


def _readiness(room: str, checked_at: Any, at: Any = T0, **more: Any) -> RoomReadiness:
    checks = more.pop("checks", (p.ReadinessCheck("camera", True),))
    return RoomReadiness(1, room, more.pop("session_id", None), True, checks, checked_at, at)


@pytest.mark.parametrize("at", FAR_INSTANTS, ids=repr)
def test_the_live_view_ignores_a_check_with_a_far_instant(at: Any) -> None:
    live = LiveView()
    live.listen(_readiness("room-a", T0))
    live.listen(_readiness("room-a", at))
    live.listen(_readiness("room-a", T0 + 5, at=at))
    assert live.readiness["room-a"].checked_at == START
    assert room_readiness(live.readiness)["room-a"].value == "ready"


def test_the_live_view_keeps_surrogates_out_of_the_pages() -> None:
    live = LiveView()
    checks = (p.ReadinessCheck(SURROGATES, False, INJECTION),)
    live.listen(_readiness("room-a", T0, checks=checks, session_id="\ud800"))
    view = live.readiness["room-a"]
    assert view.checks[0].name == "\ufffdcamera\ufffd" and view.session_id == "\ufffd"
    detail = room_readiness(live.readiness)["room-a"].detail
    assert detail is not None
    detail.encode("utf-8")


def test_the_live_view_does_not_grow_with_session_ids_or_peer_ids() -> None:
    live = LiveView()
    peers = tuple(p.MediaStats(peer_id=f"x{i}\ud800", fps=30.0) for i in range(1000))
    for i in range(MAX_LIVE_KEYS + 500):
        live.listen(MediaReport(i, f"session-{i}", "room:a", "a", T0, peers))
        live.listen(_readiness(f"room-{i}", T0))
    assert len(live.media) == MAX_LIVE_KEYS
    assert len(live.readiness) == MAX_LIVE_KEYS
    newest = live.media[(f"session-{MAX_LIVE_KEYS + 499}", "a")]
    kept = newest.peers
    assert isinstance(kept, tuple) and len(kept) == MAX_PEERS
    assert all("\ud800" not in peer.peer_id for peer in kept)
    assert ("session-0", "a") not in live.media  # the least recently reported went first


# --- through the event writer: one line, no traceback, and the next event served ------


async def test_refused_reports_are_logged_once_and_the_next_event_is_written(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    sid, room = world.session_id, world.rooms[0]
    events = OrchestratorEvents(world.db, _no_room_online, interval=0.0)
    events.start()
    try:
        for i in range(50):
            await events.media_milestone(MediaMilestone(i, sid, "room:x", room, "live", 1e300))
            await events.room_readiness(_readiness(room, float("nan")))
        await events.peer_joined(PeerJoinedSession(99, sid, f"room:{room}", room, T0))
        await events.writer.wait_idle()
    finally:
        await events.stop()
    row = world.db.run_sync(lambda s: s.get(Participation, (sid, room)))
    assert row is not None and row.joined_at == START
    refused = [r for r in caplog.records if "invalid-time" in r.getMessage()]
    assert len(refused) == 2  # milestones and readiness, one line each
    assert all(r.exc_info is None for r in caplog.records)
    assert caplog.records and max(r.levelno for r in caplog.records) <= logging.WARNING


async def _no_room_online(room_id: str) -> None:
    return None
