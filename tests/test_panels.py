"""Room panels: tokens, what a panel may show of a booking, the session's timing as the
panel sees it, and the room's sessions of today and tomorrow (on a real SQLite file)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import pytest
from sqlmodel import select

from orchestrator import centres
from orchestrator.booking import one_off
from orchestrator.db import Database, DbSession
from orchestrator.errors import DomainError
from orchestrator.models import Booking, PanelToken, Participation, Session
from orchestrator.people import accounts
from orchestrator.sessions import panels
from orchestrator.sessions.panels import PanelSession, session_timing

T0 = datetime(2026, 12, 1, 12, 50, tzinfo=UTC)  # 13:50 in Paris, 05:50 in Montreal
PASSWORD = "correct horse battery"


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database.for_data_dir(tmp_path)
    database.migrate()
    yield database
    database.close_sync()


@dataclass
class World:
    paris: str
    amsterdam: str
    salle: str  # Paris
    verte: str  # Paris
    zaal: str  # Amsterdam
    zaal2: str  # Amsterdam


@pytest.fixture
def world(db: Database) -> World:
    def setup(s: DbSession) -> World:
        paris = centres.add_centre(s, "Fontainebleau", "Europe/Paris")
        amsterdam = centres.add_centre(s, "Amsterdam", "Europe/Amsterdam")
        return World(
            paris=paris.id,
            amsterdam=amsterdam.id,
            salle=centres.add_room(s, paris.id, "Salle Bleue")[0].id,
            verte=centres.add_room(s, paris.id, "Salle Verte")[0].id,
            zaal=centres.add_room(s, amsterdam.id, "Zaal 1")[0].id,
            zaal2=centres.add_room(s, amsterdam.id, "Zaal 2")[0].id,
        )

    return db.run_sync(setup)


def book(
    db: Database,
    rooms: list[str],
    start: datetime,
    minutes: int = 30,
    title: str = "Comité",
    owner_centre: str | None = None,
    owner: str | None = None,
    mode: str = "one-button",
) -> str:
    def write(s: DbSession) -> str:
        booking, session = one_off.book(
            s, title, start, start + timedelta(minutes=minutes), rooms, connect_mode=mode
        )
        booking.owner_centre_id = owner_centre
        booking.owner_id = owner
        s.add(booking)
        return session.id

    return db.run_sync(write)


# --- tokens ---------------------------------------------------------------------------------


def test_a_panel_token_opens_its_room_and_is_kept_hashed(db: Database, world: World) -> None:
    token = db.run_sync(lambda s: panels.create_panel_token(s, world.salle))
    assert token.startswith("tcp_") and len(token) >= 40
    assert db.run_sync(lambda s: panels.resolve_panel(s, token)).id == world.salle
    rows = db.run_sync(lambda s: list(s.exec(select(PanelToken)).all()))
    assert len(rows) == 1 and token not in rows[0].token_hash
    assert rows[0].token_hash == panels.hash_panel_token(token)


def test_several_tokens_per_room_and_revoking_removes_them_all(db: Database, world: World) -> None:
    first = db.run_sync(lambda s: panels.create_panel_token(s, world.salle))
    second = db.run_sync(lambda s: panels.create_panel_token(s, world.salle))
    other = db.run_sync(lambda s: panels.create_panel_token(s, world.zaal))
    assert first != second
    for token in (first, second):
        assert db.run_sync(partial(panels.resolve_panel, token=token)).id == world.salle
    assert db.run_sync(lambda s: panels.revoke_panel_tokens(s, world.salle)) == 2
    for token in (first, second):
        with pytest.raises(DomainError) as err:
            db.run_sync(partial(panels.resolve_panel, token=token))
        assert err.value.code == "panel-link-invalid"
    assert db.run_sync(lambda s: panels.resolve_panel(s, other)).id == world.zaal


@pytest.mark.parametrize("token", ["", "tcp_", "tcc_" + "a" * 43, "tcp_" + "x" * 200, "tcp_nope"])
def test_unknown_or_malformed_tokens_are_panel_link_invalid(
    db: Database, world: World, token: str
) -> None:
    db.run_sync(lambda s: panels.create_panel_token(s, world.salle))
    with pytest.raises(DomainError) as err:
        db.run_sync(lambda s: panels.resolve_panel(s, token))
    assert err.value.code == "panel-link-invalid"


def test_a_token_for_an_unknown_room_is_not_found(db: Database, world: World) -> None:
    with pytest.raises(DomainError) as err:
        db.run_sync(lambda s: panels.create_panel_token(s, "nope"))
    assert err.value.code == "not-found"


# --- what a panel may show ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("owner_id", "owner_centre", "member_centre", "room_centres", "visible"),
    [
        ("u1", "paris", "paris", ["paris", "ams"], True),  # booked by a member
        ("u1", "paris", "ams", ["paris", "ams"], True),  # booked for this centre
        ("u1", "ams", "paris", ["paris", "ams"], True),  # its member, booked elsewhere then
        ("u1", "ams", "ams", ["paris", "ams"], False),  # another centre's booking
        ("u1", None, None, ["paris"], False),  # an admin's booking: not the centre's
        (None, "ams", None, ["paris", "ams"], False),
        (None, None, None, ["paris"], True),  # a calendar of this centre's rooms
        (None, None, None, ["paris", "ams"], False),  # shared with another centre
    ],
)
def test_titles_are_shown_only_for_the_room_s_own_centre(
    owner_id: str | None,
    owner_centre: str | None,
    member_centre: str | None,
    room_centres: list[str],
    visible: bool,
) -> None:
    assert (
        panels.title_visible("paris", owner_id, owner_centre, member_centre, room_centres)
        is visible
    )


# --- timing ---------------------------------------------------------------------------------


START = T0 + timedelta(minutes=10)
END = START + timedelta(minutes=30)


@pytest.mark.parametrize(
    ("at", "phase", "warning", "joinable"),
    [
        (START - timedelta(minutes=2), "scheduled", None, False),
        (START - timedelta(seconds=60), "preparing", None, True),
        (START, "live", None, True),
        (END - timedelta(seconds=301), "live", None, True),
        (END - timedelta(seconds=300), "ending", 5, True),
        (END - timedelta(seconds=61), "ending", 5, True),
        (END - timedelta(seconds=60), "ending", 1, True),
        (END - timedelta(seconds=1), "ending", 1, True),
        (END, "ended", None, False),
    ],
)
def test_phases_and_warnings_follow_the_lifecycle(
    at: datetime, phase: str, warning: int | None, joinable: bool
) -> None:
    timing = session_timing(START, END, 60, "one-button", at)
    assert (timing.phase, timing.warning, timing.joinable) == (phase, warning, joinable)
    assert timing.starts_in == max(0.0, (START - at).total_seconds())
    assert timing.ends_in == max(0.0, (END - at).total_seconds())


def test_only_one_button_sessions_are_joinable_from_the_panel() -> None:
    for mode, joinable in [("automatic", False), ("reserve-only", False), ("manual", True)]:
        assert session_timing(START, END, 60, mode, START).joinable is joinable


def test_a_short_session_warns_from_its_start() -> None:
    end = START + timedelta(minutes=3)
    assert session_timing(START, end, 0, "automatic", START).warning == 5
    assert session_timing(START, end, 0, "automatic", end - timedelta(seconds=30)).warning == 1


def test_current_and_next_sessions() -> None:
    def s(sid: str, start: datetime, minutes: int, lead: int = 60) -> PanelSession:
        return PanelSession(
            sid, "b", "t", start, start + timedelta(minutes=minutes), lead, "scheduled", "x", ()
        )

    first, second = s("a", START, 30), s("b", END + timedelta(minutes=5), 30)
    sessions = [first, second]
    assert panels.current_session(sessions, T0) is None
    assert panels.next_session(sessions, T0) == first
    in_lead = START - timedelta(seconds=30)
    assert panels.current_session(sessions, in_lead) == first
    assert panels.next_session(sessions, in_lead, after=first) == second
    assert panels.current_session(sessions, END) is None
    assert panels.next_session(sessions, END) == second


def test_the_panel_window_ends_at_local_midnight_after_tomorrow() -> None:
    # 23:30 in Paris on 1 December is 22:30 UTC: the window ends on 3 December, 00:00 Paris.
    late = datetime(2026, 12, 1, 22, 30, tzinfo=UTC)
    assert panels.panel_window(late, "Europe/Paris") == datetime(2026, 12, 2, 23, 0, tzinfo=UTC)
    # Across the end of DST (25 October 2026): the local midnight, not 48 hours on.
    before = datetime(2026, 10, 24, 10, 0, tzinfo=UTC)
    assert panels.panel_window(before, "Europe/Paris") == datetime(2026, 10, 25, 23, 0, tzinfo=UTC)


# --- the view -------------------------------------------------------------------------------


def test_the_view_lists_today_and_tomorrow_and_hides_what_is_over_or_released(
    db: Database, world: World
) -> None:
    rooms = [world.salle, world.zaal]
    today = book(db, rooms, START, title="Aujourd'hui", owner_centre=world.paris)
    tomorrow = book(db, rooms, START + timedelta(days=1), owner_centre=world.paris)
    book(db, rooms, START + timedelta(days=2))  # after tomorrow
    book(db, rooms, T0 - timedelta(hours=2))  # over
    book(db, [world.verte, world.zaal2], START)  # other rooms
    cancelled = book(db, rooms, START + timedelta(hours=2))
    released = book(db, rooms, START + timedelta(hours=4))

    def change(s: DbSession) -> None:
        row_session = s.get(Session, cancelled)
        assert row_session is not None
        one_off.cancel_booking(s, row_session.booking_id)
        row = s.get(Participation, (released, world.salle)) or Participation(
            session_id=released, room_id=world.salle
        )
        row.released_at = T0
        s.add(row)

    db.run_sync(change)
    view = db.run_sync(lambda s: panels.panel_view(s, world.salle, T0))
    assert (view.room_name, view.centre_name, view.timezone) == (
        "Salle Bleue",
        "Fontainebleau",
        "Europe/Paris",
    )
    assert [s.session_id for s in view.sessions] == [today, tomorrow]
    first = view.sessions[0]
    assert first.title == "Aujourd'hui" and first.connect_mode == "one-button"
    assert [(x.room_name, x.centre_name, x.timezone) for x in first.sites] == [
        ("Zaal 1", "Amsterdam", "Europe/Amsterdam")
    ]
    # The room released for a no-show is still booked in Amsterdam's view.
    zaal = db.run_sync(lambda s: panels.panel_view(s, world.zaal, T0))
    assert released in [s.session_id for s in zaal.sessions]


def test_the_view_hides_other_centres_titles_and_sites(db: Database, world: World) -> None:
    def users(s: DbSession) -> tuple[str, str]:
        mine = accounts.create_user(s, "a@fb.fr", "A", PASSWORD, "organiser", world.paris)
        theirs = accounts.create_user(s, "b@ams.nl", "B", PASSWORD, "organiser", world.amsterdam)
        return mine.id, theirs.id

    mine, theirs = db.run_sync(users)
    rooms = [world.salle, world.zaal]
    book(db, rooms, START, title="Ours", owner=mine, owner_centre=world.paris)
    book(
        db,
        rooms,
        START + timedelta(hours=1),
        title="Theirs",
        owner=theirs,
        owner_centre=world.amsterdam,
    )
    book(db, rooms, START + timedelta(hours=2), title="Shared calendar")
    book(db, [world.salle, world.verte], START + timedelta(hours=3), title="Local calendar")
    view = db.run_sync(lambda s: panels.panel_view(s, world.salle, T0))
    assert [s.title for s in view.sessions] == ["Ours", None, None, "Local calendar"]
    assert [bool(s.sites) for s in view.sessions] == [True, False, False, True]
    seen = db.run_sync(lambda s: panels.panel_view(s, world.zaal, T0))
    assert [s.title for s in seen.sessions] == [None, "Theirs", None]

    # The owner moving to Amsterdam takes the title along: the member's centre counts.
    def move(s: DbSession) -> None:
        booking = s.exec(select(Booking).where(Booking.title == "Theirs")).one()
        booking.owner_centre_id = None
        s.add(booking)

    db.run_sync(move)
    assert db.run_sync(lambda s: panels.panel_view(s, world.zaal, T0)).sessions[1].title == "Theirs"


def test_room_session_refuses_sessions_of_other_rooms(db: Database, world: World) -> None:
    mine = book(db, [world.salle, world.zaal], START)
    other = book(db, [world.verte, world.zaal2], START)
    session, timing = db.run_sync(lambda s: panels.room_session(s, world.salle, mine, START))
    assert session.session_id == mine and timing.phase == "live"
    for sid, at in [(other, START), ("nope", START), (mine, END)]:
        with pytest.raises(DomainError) as err:
            db.run_sync(partial(panels.room_session, room_id=world.salle, session_id=sid, now=at))
        assert err.value.code == "unknown-session"
