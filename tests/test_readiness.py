"""Readiness checks: the agent's pure rules, the TURN probe against loopback servers,
the protocol message, and how the orchestrator keeps checks and decides alerts."""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import typing
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlmodel import col, select

from orchestrator import centres
from orchestrator.booking import one_off
from orchestrator.db import Database, DbSession
from orchestrator.models import OutboxMail, Participation, Session, SessionReadiness
from orchestrator.people import accounts
from orchestrator.sessions import readiness
from orchestrator.sessions.readiness import MAX_ALERTS, AlertState, Check, alert_step
from room_agents import readiness as r
from signalling import protocol as p
from web import alerts

# --- the agent's rules ------------------------------------------------------------------

CAMERA_OK = {"spec": "v4l2:/dev/video0", "state": "ok", "frames": 90, "last_frame_age": 0.04}


def test_the_camera_passes_only_while_it_delivers() -> None:
    assert r.camera_check({"spec": "synthetic", "state": "ok"}).ok
    assert r.camera_check(CAMERA_OK).ok
    stale = r.camera_check({**CAMERA_OK, "last_frame_age": 7.2})
    assert not stale.ok and "no frame for 7 s" in stale.detail
    missing = r.camera_check(
        {
            "spec": "v4l2:/dev/video0",
            "state": "unavailable",
            "error": "camera v4l2:/dev/video0: no such device or file (unplugged?)",
            "last_frame_age": None,
        }
    )
    assert (missing.name, missing.ok) == ("camera", False)
    assert "no such device" in missing.detail
    assert not r.camera_check({"spec": "v4l2:/dev/video0", "state": "starting"}).ok


def test_the_microphone_passes_only_with_sound() -> None:
    assert r.microphone_check({"spec": "synthetic", "state": "ok"}).ok
    sound = {"spec": "alsa:default", "state": "ok", "level": 0.01, "last_sound_age": 0.1}
    check = r.microphone_check(sound)
    assert check.ok and "-40 dBFS" in check.detail
    silent = r.microphone_check({**sound, "level": 0.0, "last_sound_age": None})
    assert not silent.ok and "silence" in silent.detail
    assert not r.microphone_check({**sound, "last_sound_age": 60.0}).ok
    busy = r.microphone_check(
        {"spec": "alsa:default", "state": "unavailable", "error": "microphone busy"}
    )
    assert not busy.ok and busy.detail == "microphone busy"


def test_signalling_and_clock_checks() -> None:
    assert r.signalling_check(0.0031).detail == "round trip 3 ms"
    assert not r.signalling_check(None, "no answer").ok
    assert r.clock_check(0.002, 0.25).ok
    assert "+0.250 s" in r.clock_check(0.002, 0.25).detail
    assert not r.clock_check(None, 0.0).ok
    assert not r.clock_check(10.0, 3.0).ok  # only the welcome's one-way guess


def test_turn_urls_are_parsed_as_rfc_7065_says() -> None:
    t = r.parse_turn_url
    assert t("turn:turn.example.org") == r.TurnTarget(
        "turn:turn.example.org", "turn.example.org", 3478, "udp", False
    )
    assert t("turn:10.0.0.1:3479?transport=tcp") == r.TurnTarget(
        "turn:10.0.0.1:3479?transport=tcp", "10.0.0.1", 3479, "tcp", False
    )
    assert t("turns:turn.example.org") == r.TurnTarget(
        "turns:turn.example.org", "turn.example.org", 5349, "tcp", True
    )
    assert t("turn:[::1]:3480").host == "::1"  # type: ignore[union-attr]
    for bad in ("stun:stun.example.org", "turn:", "turn:host:port", "turn:h?transport=sctp"):
        assert t(bad) is None, bad
    servers = [
        p.IceServer(urls=["stun:s.example.org"]),
        p.IceServer(urls=["turn:a.example.org", "turns:a.example.org"], username="u"),
    ]
    assert [x.url for x in r.turn_targets(servers)] == ["turn:a.example.org", "turns:a.example.org"]


def test_turn_passes_when_one_server_answers_and_when_none_is_configured() -> None:
    a = r.TurnTarget("turn:a", "a", 3478, "udp", False)
    b = r.TurnTarget("turn:b?transport=tcp", "b", 3478, "tcp", False)
    assert r.turn_check([]) == p.ReadinessCheck("turn", True, "not configured")
    one = r.turn_check([(a, "no answer within 3 s"), (b, None)])
    assert one.ok and "reachable: turn:b" in one.detail and "turn:a: no answer" in one.detail
    none = r.turn_check([(a, "Connection refused")])
    assert not none.ok and none.detail == "unreachable: turn:a: Connection refused"


def _entry(session_id: str, start: float, **kw: object) -> p.ScheduleEntry:
    values: dict[str, object] = {
        "booking_id": "b",
        "title": "t",
        "end": start + 3600,
        "lead": 60,
        "state": "scheduled",
        "ticket": "x",
        "rooms": [],
    }
    values.update(kw)
    return p.ScheduleEntry(session_id=session_id, start=start, **values)  # type: ignore[arg-type]


def test_a_session_is_due_from_start_minus_the_lead_until_its_start() -> None:
    entries = [_entry("s", 10_000)]
    assert r.due_sessions(entries, 9_399.9, 600, {}) == []
    assert r.due_sessions(entries, 9_400, 600, {}) == entries
    assert r.due_sessions(entries, 9_999.9, 600, {}) == entries
    assert r.due_sessions(entries, 10_000, 600, {}) == []  # started: the call itself tells
    skipped = [
        _entry("over", 10_000, state="cancelled"),
        _entry("reserved", 10_000, connect_mode="reserve-only"),
    ]
    assert r.due_sessions(skipped, 9_500, 600, {}) == []


def test_a_failing_session_is_checked_again_sooner_than_a_passing_one() -> None:
    entries = [_entry("s", 10_000)]
    passed = {"s": r.LastCheck(at=9_400, ok=True)}
    failed = {"s": r.LastCheck(at=9_400, ok=False)}
    assert r.due_sessions(entries, 9_400 + r.RECHECK_FAILING - 0.1, 600, failed) == []
    assert r.due_sessions(entries, 9_400 + r.RECHECK_FAILING, 600, failed) == entries
    assert r.due_sessions(entries, 9_400 + r.RECHECK_FAILING, 600, passed) == []
    assert r.due_sessions(entries, 9_400 + r.RECHECK_PASSING, 600, passed) == entries


def test_stun_answers_are_recognised_by_their_transaction() -> None:
    tid = bytes(range(12))
    request = r.stun_binding_request(tid)
    assert request == struct.pack("!HHI", 1, 0, 0x2112A442) + tid
    success = struct.pack("!HHI12s", 0x0101, 0, 0x2112A442, tid)
    error = struct.pack("!HHI12s", 0x0111, 0, 0x2112A442, tid)
    assert r.is_stun_answer(success, tid) and r.is_stun_answer(error, tid)
    assert not r.is_stun_answer(request, tid)  # a request is not an answer
    assert not r.is_stun_answer(success, bytes(12))
    assert not r.is_stun_answer(success[:19], tid)


# --- probing TURN servers on loopback ------------------------------------------------------


class _StunServer(asyncio.DatagramProtocol):
    """Answers every binding request with a bare success response."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = typing.cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        _, _, magic, tid = struct.unpack("!HHI12s", data[:20])
        self.transport.sendto(struct.pack("!HHI12s", 0x0101, 0, magic, tid), addr)


@asynccontextmanager
async def stun_servers() -> AsyncIterator[tuple[int, int]]:
    """A STUN responder on loopback, over UDP and over TCP: (udp port, tcp port)."""

    async def on_tcp(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        header = await reader.readexactly(20)
        _, _, magic, tid = struct.unpack("!HHI12s", header)
        writer.write(struct.pack("!HHI12s", 0x0101, 0, magic, tid))
        await writer.drain()
        writer.close()

    loop = asyncio.get_running_loop()
    udp, _ = await loop.create_datagram_endpoint(_StunServer, local_addr=("127.0.0.1", 0))
    tcp = await asyncio.start_server(on_tcp, "127.0.0.1", 0)
    try:
        yield udp.get_extra_info("sockname")[1], tcp.sockets[0].getsockname()[1]
    finally:
        udp.close()
        tcp.close()
        await tcp.wait_closed()


def _closed_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


async def test_the_turn_probe_gets_an_answer_over_udp_and_tcp() -> None:
    async with stun_servers() as (udp, tcp):
        targets = r.turn_targets(
            [p.IceServer(urls=[f"turn:127.0.0.1:{udp}", f"turn:127.0.0.1:{tcp}?transport=tcp"])]
        )
        assert [await r.probe_turn(t, 2.0) for t in targets] == [None, None]


async def test_the_turn_probe_says_why_a_server_does_not_answer() -> None:
    udp = r.parse_turn_url(f"turn:127.0.0.1:{_closed_port(socket.SOCK_DGRAM)}")
    tcp = r.parse_turn_url(f"turns:127.0.0.1:{_closed_port(socket.SOCK_STREAM)}")
    assert udp is not None and tcp is not None
    loop = asyncio.get_running_loop()
    began = loop.time()
    udp_error, tcp_error = await asyncio.gather(r.probe_turn(udp, 1.0), r.probe_turn(tcp, 1.0))
    assert udp_error is not None and tcp_error is not None
    assert "refused" in tcp_error.lower()
    assert loop.time() - began < 2.0  # bounded by the timeout


# --- the protocol message -------------------------------------------------------------------


def test_a_readiness_message_round_trips_and_its_limits_are_checked() -> None:
    message = p.Readiness(
        ok=False,
        checks=[p.ReadinessCheck("camera", False, "gone"), p.ReadinessCheck("clock", True)],
        at=1773305400.5,
        session_id="s1",
    )
    wire = json.loads(p.encode(message))
    assert wire["type"] == "readiness" and wire["checks"][1] == {
        "name": "clock",
        "ok": True,
        "detail": "",
    }
    assert p.decode_client(p.encode(message)) == message
    p.check_readiness(message)
    for bad in (
        p.Readiness(ok=True, checks=[], at=1.0),
        p.Readiness(ok=True, checks=[p.ReadinessCheck("", True)], at=1.0),
        p.Readiness(ok=True, checks=[p.ReadinessCheck("x" * 41, True)], at=1.0),
        p.Readiness(ok=True, checks=[p.ReadinessCheck("x", True, "d" * 301)], at=1.0),
        p.Readiness(ok=True, checks=[p.ReadinessCheck("x", True)] * 17, at=1.0),
    ):
        with pytest.raises(p.ProtocolError) as err:
            p.check_readiness(bad)
        assert err.value.code == p.ErrorCode.BAD_MESSAGE
    with pytest.raises(p.ProtocolError):
        p.decode_client('{"type": "readiness", "ok": true, "at": 1}')  # checks missing


# --- the orchestrator: alerts -----------------------------------------------------------------


def test_one_alert_per_failure_and_one_recovery_notice() -> None:
    state = AlertState()
    state, notice = alert_step(state, ok=True, session_open=True)
    assert notice is None
    state, notice = alert_step(state, ok=False, session_open=True)
    assert notice == "failing" and state == AlertState(alerts=1, alerting=True)
    state, notice = alert_step(state, ok=False, session_open=True)
    assert notice is None  # still failing: no storm
    state, notice = alert_step(state, ok=True, session_open=True)
    assert notice == "recovered" and state == AlertState(alerts=1, alerting=False)
    state, notice = alert_step(state, ok=True, session_open=True)
    assert notice is None


def test_a_flapping_room_alerts_at_most_max_alerts_times_and_never_after_the_session() -> None:
    state = AlertState()
    notices = []
    for _ in range(10):
        state, failing = alert_step(state, ok=False, session_open=True)
        state, recovered = alert_step(state, ok=True, session_open=True)
        notices += [n for n in (failing, recovered) if n]
    assert notices.count("failing") == MAX_ALERTS
    assert notices.count("recovered") == MAX_ALERTS
    assert alert_step(AlertState(), ok=False, session_open=False) == (AlertState(), None)


# --- the orchestrator: the store -------------------------------------------------------------

START = datetime(2030, 6, 3, 9, 0, tzinfo=UTC)
T = START.timestamp()
FAILING = [Check("camera", False, "no such device"), Check("microphone", True, "tone")]
PASSING = [Check("camera", True, "delivering"), Check("microphone", True, "tone")]


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database.for_data_dir(tmp_path)
    database.migrate()
    yield database
    database.close_sync()


@pytest.fixture
def world(db: Database) -> tuple[str, str, str, str]:
    """(session id, room in the session, room outside it, centre of the first room)."""

    def setup(s: DbSession) -> tuple[str, str, str, str]:
        centre = centres.add_centre(s, "Fontainebleau", "Europe/Paris")
        a = centres.add_room(s, centre.id, "Salle Bleue")[0]
        b = centres.add_room(s, centre.id, "Salle Verte")[0]
        other = centres.add_centre(s, "Amsterdam", "Europe/Amsterdam")
        c = centres.add_room(s, other.id, "Smart Work Room")[0]
        _, session = one_off.book(s, "Board", START, START + timedelta(hours=1), [a.id, c.id])
        accounts.create_user(s, "staff@example.org", "Paul", "pw-long-enough-1", "staff", centre.id)
        accounts.create_user(
            s, "org@example.org", "Olga", "pw-long-enough-1", "organiser", centre.id
        )
        return session.id, a.id, b.id, centre.id

    return db.run_sync(setup)


def _record(
    db: Database, room: str, session: str | None, checks: list[Check], at: float
) -> readiness.ReadinessNotice | None:
    ok = all(c.ok for c in checks)
    return db.run_sync(
        lambda s: readiness.record(
            s, room, session, ok, checks, checked_at=at, received_at=at + 0.1
        )
    )


def test_a_failing_check_is_kept_per_room_and_per_session_and_alerts_once(
    db: Database, world: tuple[str, str, str, str]
) -> None:
    session_id, room, _, centre = world
    notice = _record(db, room, session_id, FAILING, T - 600)
    assert notice is not None and notice.kind == "failing"
    assert (notice.room_name, notice.centre_id, notice.session_title) == (
        "Salle Bleue",
        centre,
        "Board",
    )
    assert [c.name for c in notice.failing] == ["camera"]
    assert _record(db, room, session_id, FAILING, T - 585) is None  # no second alert
    latest = db.run_sync(lambda s: readiness.latest_by_room(s))[room]
    assert not latest.ok and latest.failing == ("camera",) and latest.session_id == session_id
    kept = db.run_sync(lambda s: readiness.for_session(s, session_id))[room]
    assert kept.alerts == 1 and kept.checked_at == datetime.fromtimestamp(T - 585, UTC)
    recovered = _record(db, room, session_id, PASSING, T - 570)
    assert recovered is not None and recovered.kind == "recovered"
    assert db.run_sync(lambda s: readiness.latest_by_room(s))[room].ok


def test_an_older_or_repeated_report_changes_nothing(
    db: Database, world: tuple[str, str, str, str]
) -> None:
    session_id, room, _, _ = world
    assert _record(db, room, session_id, PASSING, T - 300) is None
    assert _record(db, room, session_id, FAILING, T - 400) is None  # arrived late
    assert _record(db, room, session_id, PASSING, T - 300) is None  # again
    assert db.run_sync(lambda s: readiness.for_session(s, session_id))[room].ok
    assert db.run_sync(lambda s: readiness.latest_by_room(s))[room].ok


def test_a_check_for_a_session_the_room_is_not_in_is_kept_for_the_room_only(
    db: Database, world: tuple[str, str, str, str]
) -> None:
    session_id, _, outsider, _ = world
    assert _record(db, outsider, session_id, FAILING, T - 600) is None
    assert _record(db, outsider, "no-such-session", FAILING, T - 590) is None
    assert _record(db, "no-such-room", session_id, FAILING, T - 590) is None
    assert outsider not in db.run_sync(lambda s: readiness.for_session(s, session_id))
    assert not db.run_sync(lambda s: readiness.latest_by_room(s))[outsider].ok
    assert _record(db, outsider, None, PASSING, T - 580) is None  # a check at connection
    assert db.run_sync(lambda s: readiness.latest_by_room(s))[outsider].session_id is None


def test_a_failure_after_the_session_ended_alerts_nobody(
    db: Database, world: tuple[str, str, str, str]
) -> None:
    session_id, room, _, _ = world
    assert _record(db, room, session_id, FAILING, T + 3600) is None


def test_the_staff_of_the_room_s_centre_get_the_alert_by_mail(
    db: Database, world: tuple[str, str, str, str]
) -> None:
    session_id, room, _, _ = world
    notice = _record(db, room, session_id, FAILING, T - 600)
    assert notice is not None
    queued = db.run_sync(
        lambda s: alerts.queue_mail(s, notice, START - timedelta(minutes=10), "https://tc.example")
    )
    assert queued == 1  # the staff person, not the organiser
    mail = db.run_sync(lambda s: s.exec(select(OutboxMail)).one())
    assert (mail.recipient, mail.kind) == ("staff@example.org", "alert")
    assert "Salle Bleue" in mail.subject and "Board" in mail.subject
    assert "camera: no such device" in mail.body
    assert f"https://tc.example/sessions/{session_id}" in mail.body


def test_a_session_s_checks_go_with_the_session(
    db: Database, world: tuple[str, str, str, str]
) -> None:
    """The booking store deletes a rebooked occurrence with plain DELETEs: the session's
    readiness rows must not stand in the way (ON DELETE CASCADE)."""
    session_id, room, _, _ = world
    _record(db, room, session_id, FAILING, T - 600)

    def delete(s: DbSession) -> None:
        conn = s.connection()
        for table in ("session_transition", "participation", "room_slot"):
            conn.execute(sa.text(f"DELETE FROM {table} WHERE session_id = :s"), {"s": session_id})
        conn.execute(sa.delete(Session).where(col(Session.id) == session_id))

    db.run_sync(delete)
    assert db.run_sync(lambda s: s.exec(select(SessionReadiness)).all()) == []
    assert db.run_sync(lambda s: s.exec(select(Participation)).all()) == []
