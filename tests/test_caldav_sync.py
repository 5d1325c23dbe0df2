"""Two-way CalDAV sync against a real Radicale server on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import select

from orchestrator import centres
from orchestrator.booking import commands, one_off
from orchestrator.calendars.caldav.sync import CalDavSync, source_key
from orchestrator.calendars.caldav.transport import CalDavAccount, CalDavTransport
from orchestrator.calendars.ical_in.parse import parse_calendar
from orchestrator.clock import FakeClock
from orchestrator.db import Database, DbSession
from orchestrator.models import Booking, CalDavLink, Session
from orchestrator.sessions.scheduler import Scheduler
from orchestrator.sessions.tickets import TicketSigner
from tests.radicale_server import RadicaleServer, radicale_server
from tests.test_scheduler import FakeControl

pytestmark = pytest.mark.wall_clock

NOW = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
START = NOW + timedelta(hours=2)


def event(uid: str, title: str, seq: int, start: datetime = START) -> bytes:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    s = start.strftime("%Y%m%dT%H%M%SZ")
    e = (start + timedelta(hours=1)).strftime("%Y%m%dT%H%M%SZ")
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//other client//EN\r\nBEGIN:VEVENT\r\n"
        f"UID:{uid}\r\nDTSTAMP:{stamp}\r\nDTSTART:{s}\r\nDTEND:{e}\r\nSUMMARY:{title}\r\n"
        f"SEQUENCE:{seq}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    ).encode()


@pytest.fixture(scope="module")
def radicale(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RadicaleServer]:
    with radicale_server(tmp_path_factory.mktemp("radicale")) as server:
        yield server


class World:
    def __init__(self, tmp: Path, radicale: RadicaleServer) -> None:
        self.db = Database(f"sqlite:///{tmp / 'db.sqlite3'}")
        self.db.migrate()
        self.calendar_url = radicale.new_calendar()
        self.account = CalDavAccount(
            url=radicale.base_url,
            username=radicale.username,
            password=radicale.password,
            calendar_url=self.calendar_url,
        )

        def setup(s: DbSession) -> tuple[str, str, str]:
            paris = centres.add_centre(s, "Fontainebleau", "Europe/Paris")
            adam = centres.add_centre(s, "Amsterdam", "Europe/Amsterdam")
            a = centres.add_room(s, paris.id, "Salle Bleue")[0].id
            b = centres.add_room(s, adam.id, "Smart Work Room")[0].id
            link = CalDavLink(
                room_id=a,
                calendar_url=self.calendar_url,
                username=radicale.username,
                password=radicale.password,
            )
            s.add(link)
            s.flush()
            return a, b, link.id

        self.room_a, self.room_b, self.link_id = self.db.run_sync(setup)

    def sync(self, now: datetime = NOW) -> object:
        return CalDavSync(self.link_id, self.db.run_sync, now=now).sync()

    def other_client(self) -> CalDavTransport:
        return CalDavTransport(self.account, timeout=5.0)

    def remote(self) -> dict[str, tuple[str, str | None, bytes]]:
        """uid -> (href, etag, data) as another client sees the calendar."""
        with self.other_client() as t:
            out = {}
            for item in t.pull(None).items:
                if item.data is None:
                    continue
                uid = parse_calendar(item.data).events[0].spec.uid
                out[uid] = (item.href, item.etag, item.data)
            return out

    def booking(self, source: str, uid: str) -> Booking:
        found = self.db.run_sync(lambda s: commands.find_booking(s, source, uid))
        assert found is not None, (source, uid)
        return found


@pytest.fixture
def world(tmp_path: Path, radicale: RadicaleServer) -> Iterator[World]:
    w = World(tmp_path, radicale)
    yield w
    w.db.close_sync()


async def test_a_booking_made_in_radicale_appears_and_its_session_starts_by_itself(
    world: World,
) -> None:
    with world.other_client() as t:
        t.put(None, "from-radicale", event("from-radicale", "Visite Bright City", 0), None)
    world.sync()
    booking = world.booking(source_key(world.link_id), "from-radicale")
    assert booking.title == "Visite Bright City"
    sessions = world.db.run_sync(
        lambda s: list(s.exec(select(Session).where(Session.booking_id == booking.id)))
    )
    assert [x.state for x in sessions] == ["scheduled"]
    clock = FakeClock(START.timestamp() - 3600)
    scheduler = Scheduler(world.db, FakeControl(), TicketSigner.generate(), clock)
    await scheduler.step()
    await clock.set(START.timestamp() + 1)
    await scheduler.step()
    state = world.db.run_sync(lambda s: s.get(Session, sessions[0].id))
    assert state is not None and state.state == "live"


def test_a_booking_made_in_telecentre_appears_in_radicale(world: World) -> None:
    booking, _ = world.db.run_sync(
        lambda s: one_off.book(
            s, "Délégation", START, START + timedelta(hours=1), [world.room_a, world.room_b]
        )
    )
    world.sync()
    remote = world.remote()
    assert booking.uid in remote
    spec = parse_calendar(remote[booking.uid][2]).events[0].spec
    assert spec.title == "Délégation"
    # A second pass writes nothing new (no echo).
    report = world.sync()
    assert report.pushed == 0 and report.pulled == 0  # type: ignore[attr-defined]


def test_an_edit_on_each_side_propagates(world: World) -> None:
    booking, _ = world.db.run_sync(
        lambda s: one_off.book(
            s, "Comité", START, START + timedelta(hours=1), [world.room_a, world.room_b]
        )
    )
    world.sync()
    href, etag, _ = world.remote()[booking.uid]
    # Edited over there: a new title, SEQUENCE + 1.
    with world.other_client() as t:
        t.put(
            href,
            booking.uid,
            event(booking.uid, "Comité (salle changée)", booking.sequence + 1),
            etag,
        )
    world.sync()
    assert world.db.run_sync(lambda s: s.get(Booking, booking.id)).title == "Comité (salle changée)"  # type: ignore[union-attr]
    # Edited here: the calendar follows.
    spec = world.db.run_sync(lambda s: commands.series_spec(s, booking.id))
    world.db.run_sync(
        lambda s: commands.update_series(s, booking.id, _retitle(spec, "Comité final"), now=NOW)  # type: ignore[arg-type]
    )
    world.sync()
    data = world.remote()[booking.uid][2]
    assert parse_calendar(data).events[0].spec.title == "Comité final"


def _retitle(spec: object, title: str) -> object:
    import dataclasses

    return dataclasses.replace(spec, title=title)  # type: ignore[type-var]


def test_a_concurrent_edit_follows_the_documented_rule(world: World) -> None:
    booking, _ = world.db.run_sync(
        lambda s: one_off.book(
            s, "Atelier", START, START + timedelta(hours=1), [world.room_a, world.room_b]
        )
    )
    world.sync()
    href, etag, _ = world.remote()[booking.uid]
    seq = world.db.run_sync(lambda s: s.get(Booking, booking.id)).sequence  # type: ignore[union-attr]
    # Both sides change it before the next sync, with the same new SEQUENCE: telecentre wins.
    spec = world.db.run_sync(lambda s: commands.series_spec(s, booking.id))
    world.db.run_sync(
        lambda s: commands.update_series(s, booking.id, _retitle(spec, "Atelier (ici)"), now=NOW)  # type: ignore[arg-type]
    )
    local_seq = world.db.run_sync(lambda s: s.get(Booking, booking.id)).sequence  # type: ignore[union-attr]
    assert local_seq == seq + 1
    with world.other_client() as t:
        t.put(href, booking.uid, event(booking.uid, "Atelier (là-bas)", local_seq), etag)
    report = world.sync()
    assert report.conflicts  # type: ignore[attr-defined]
    assert world.db.run_sync(lambda s: s.get(Booking, booking.id)).title == "Atelier (ici)"  # type: ignore[union-attr]
    assert parse_calendar(world.remote()[booking.uid][2]).events[0].spec.title == "Atelier (ici)"
    # With a higher SEQUENCE over there, the remote version wins.
    href, etag, _ = world.remote()[booking.uid]
    spec = world.db.run_sync(lambda s: commands.series_spec(s, booking.id))
    world.db.run_sync(
        lambda s: commands.update_series(s, booking.id, _retitle(spec, "Atelier (ici 2)"), now=NOW)  # type: ignore[arg-type]
    )
    with world.other_client() as t:
        t.put(href, booking.uid, event(booking.uid, "Atelier (là-bas 2)", local_seq + 5), etag)
    world.sync()
    assert world.db.run_sync(lambda s: s.get(Booking, booking.id)).title == "Atelier (là-bas 2)"  # type: ignore[union-attr]
    assert (
        parse_calendar(world.remote()[booking.uid][2]).events[0].spec.title == "Atelier (là-bas 2)"
    )


def test_a_deletion_over_there_cancels_the_booking(world: World) -> None:
    with world.other_client() as t:
        href, etag = t.put(None, "gone", event("gone", "Éphémère", 0), None)
    world.sync()
    assert world.booking(source_key(world.link_id), "gone").status == "confirmed"
    with world.other_client() as t:
        t.delete(href, etag)
    world.sync()
    assert world.booking(source_key(world.link_id), "gone").status == "cancelled"
