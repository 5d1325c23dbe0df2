"""The booking pages and approvals over HTTP, the whole service in-process on loopback:
privacy (404 for another centre, no forms and 403 for someone who may only look),
the session actions through their forms, guests' links, and approvals.

People log in by a login session written in the database, carrying its cookie,
so these tests exercise the pages, not the login form.
"""

from __future__ import annotations

import asyncio
import re
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html import unescape
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession, CookieJar
from sqlmodel import col, select
from yarl import URL

from orchestrator import centres
from orchestrator.booking import commands
from orchestrator.booking.values import SeriesSpec
from orchestrator.clock import FakeClock
from orchestrator.db import Database, DbSession
from orchestrator.models import (
    Approval,
    Booking,
    Guest,
    OutboxMail,
    Room,
    Session,
    User,
    WebSession,
)
from orchestrator.people import accounts
from orchestrator.sessions import guests, participation
from tests.browser_support import browser, new_page, screenshot_path
from tests.session_history_support import hold_ended_session
from tests.ui_support import RunningApp, csrf_of, running_app
from web.keys import SERVICES
from web.settings import Settings
from web.ui.i18n import Formatter

__all__ = ["browser"]  # the fixture

T = datetime(2027, 1, 5, 7, 50, tzinfo=UTC)  # 08:50 in Paris; the meeting is at 09:00
START = T + timedelta(minutes=10)


@dataclass
class World:
    app: RunningApp
    booking_id: str
    session_id: str
    paris_room: str
    amsterdam_room: str
    tokens: dict[str, str]  # person -> login cookie
    clock: FakeClock

    async def client(self, who: str | None) -> ClientSession:
        jar = CookieJar(unsafe=True)  # cookies for 127.0.0.1
        if who is not None:
            jar.update_cookies({"tc_session": self.tokens[who]}, URL(self.app.url))
        return ClientSession(cookie_jar=jar)

    def db(self) -> Database:
        return self.app.app[SERVICES].db


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    clock = FakeClock(T.timestamp())
    async with running_app(Settings(data_dir=tmp_path, poll_interval=0.1), clock=clock) as app:

        def setup(s: DbSession) -> tuple[str, str, str, str, dict[str, str]]:
            paris = centres.add_centre(s, "Paris", "Europe/Paris")
            amsterdam = centres.add_centre(s, "Amsterdam", "Europe/Amsterdam")
            montreal = centres.add_centre(s, "Montréal", "America/Toronto")
            a = centres.add_room(s, paris.id, "Fontainebleau")[0]
            x = centres.add_room(s, amsterdam.id, "Bright City")[0]
            x.requires_approval = True
            s.add(x)
            people = {
                "owner": ("owner@paris.fr", "organiser", paris.id),
                "colleague": ("colleague@paris.fr", "organiser", paris.id),
                "paris-staff": ("staff@paris.fr", "staff", paris.id),
                "amsterdam-staff": ("staff@amsterdam.nl", "staff", amsterdam.id),
                "stranger": ("someone@montreal.ca", "organiser", montreal.id),
            }
            users = {}
            for key, (email, role, centre) in people.items():
                # Written directly: these tests are about the pages, not passwords
                # (argon2 would cost a second per person on a loaded machine).
                users[key] = User(
                    email=email, name=key.title(), password_hash="-", role=role, centre_id=centre
                )
                s.add(users[key])
            s.flush()
            owner_id = users["owner"].id
            spec = SeriesSpec(
                uid="weekly-review",
                title="Weekly review Seine-et-Marne",
                timezone="Europe/Paris",
                start_local=datetime(2027, 1, 5, 9, 0),
                duration=timedelta(hours=1),
                rrules=("FREQ=WEEKLY;COUNT=3",),
            )
            result = commands.create_series(s, spec, [a.id, x.id], now=T)
            booking = s.get(Booking, result.booking_id)
            assert booking is not None
            booking.owner_id, booking.owner_centre_id = owner_id, paris.id
            s.add(booking)
            s.add(Approval(booking_id=booking.id, room_id=x.id, requested_at=T))
            tokens = {}
            for key, user in users.items():
                tokens[key] = secrets.token_urlsafe(32)
                s.add(
                    WebSession(
                        token_hash=accounts.hash_session_token(tokens[key]),
                        user_id=user.id,
                        created_at=T,
                        expires_at=T + accounts.SESSION_LIFETIME,
                    )
                )
            return booking.id, result.session_ids[0], a.id, x.id, tokens

        booking_id, session_id, a, x, tokens = await app.services.db.run(setup)
        yield World(app, booking_id, session_id, a, x, tokens, clock)


async def get(w: World, who: str | None, path: str) -> tuple[int, str]:
    async with await w.client(who) as http:
        async with http.get(w.app.url + path, allow_redirects=False) as r:
            return r.status, await r.text()


async def post(
    w: World, who: str, path: str, data: dict[str, str] | None = None, page: str | None = None
) -> tuple[int, str, str]:
    """POST a form as the person, with the CSRF token of ``page`` (the booking's)."""
    async with await w.client(who) as http:
        token = await csrf_of(http, w.app.url + (page or f"/bookings/{w.booking_id}"))
        form = {"csrf_token": token, **(data or {})}
        async with http.post(w.app.url + path, data=form, allow_redirects=False) as r:
            return r.status, await r.text(), r.headers.get("Location", "")


async def session(w: World, session_id: str | None = None) -> Session:
    found = await w.db().run(lambda s: s.get(Session, session_id or w.session_id))
    assert found is not None
    return found


# --- privacy -------------------------------------------------------------------------------


async def test_the_organiser_sees_rooms_sites_approvals_and_the_forms(world: World) -> None:
    w = world
    status, html = await get(w, "owner", f"/bookings/{w.booking_id}")
    assert status == 200
    assert "Weekly review Seine-et-Marne" in html
    assert "Fontainebleau" in html and "Bright City" in html and "Amsterdam" in html
    assert "Europe/Paris" in html and "Europe/Amsterdam" in html
    assert "pending-mine" in html  # the pending room is highlighted for its organiser
    assert "Waiting for approval: Bright City" in html
    for action in (
        f"/sessions/{w.session_id}/extend",
        f"/sessions/{w.session_id}/cancel",
        f"/bookings/{w.booking_id}/cancel",
        f"/bookings/{w.booking_id}/guests",
    ):
        assert f'action="{action}"' in html
    assert f'id="session-{w.session_id}"' in html
    assert "End the session now" not in html  # it has not begun


async def test_an_organiser_of_another_centre_gets_404_everywhere(world: World) -> None:
    w = world
    assert (await get(w, "stranger", f"/bookings/{w.booking_id}"))[0] == 404
    assert (await get(w, "stranger", f"/sessions/{w.session_id}"))[0] == 404
    status, html = await get(w, "stranger", "/bookings")
    assert status == 200 and "Weekly review" not in html
    status, _, _ = await post(
        w, "stranger", f"/sessions/{w.session_id}/extend", {"minutes": "15"}, page="/bookings"
    )
    assert status == 404
    assert (await session(w)).end_utc == START + timedelta(hours=1)


async def test_someone_who_may_only_look_sees_no_forms_and_is_refused(world: World) -> None:
    w = world
    status, html = await get(w, "colleague", f"/bookings/{w.booking_id}")
    assert status == 200 and "Weekly review Seine-et-Marne" in html
    assert "/extend" not in html and "/cancel" not in html and "/guests" not in html
    for path, data in (
        (f"/sessions/{w.session_id}/extend", {"minutes": "15"}),
        (f"/sessions/{w.session_id}/end", {}),
        (f"/sessions/{w.session_id}/cancel", {}),
        (f"/bookings/{w.booking_id}/cancel", {}),
        (f"/bookings/{w.booking_id}/guests", {"name": "Ada"}),
    ):
        assert (await post(w, "colleague", path, data))[0] == 403, path
    assert (await session(w)).state == "scheduled"
    assert (await session(w)).end_utc == START + timedelta(hours=1)


async def test_pages_need_a_login_and_forms_a_csrf_token(world: World) -> None:
    w = world
    status, _ = await get(w, None, f"/bookings/{w.booking_id}")
    assert status == 303
    async with await w.client("owner") as http:
        async with http.post(
            f"{w.app.url}/sessions/{w.session_id}/cancel", allow_redirects=False
        ) as r:
            assert r.status == 403
    assert (await session(w)).state == "scheduled"


async def test_a_session_address_is_its_page_and_leads_to_its_booking(world: World) -> None:
    w = world
    status, html = await get(w, "owner", f"/sessions/{w.session_id}")
    assert status == 200 and "Weekly review Seine-et-Marne" in html
    assert f'href="/bookings/{w.booking_id}"' in html
    # Each occurrence on the booking's page links to its session's page.
    status, html = await get(w, "owner", f"/bookings/{w.booking_id}")
    ids = await w.db().run(
        lambda s: s.exec(select(Session.id).where(Session.booking_id == w.booking_id)).all()
    )
    assert len(ids) == 3 and all(f'href="/sessions/{i}"' in html for i in ids)


async def _ended_booking(w: World) -> tuple[str, str]:
    """A one-time booking of the owner's that took place three hours ago: (booking id,
    session id)."""
    owner = await w.db().run(
        lambda s: s.exec(select(User).where(col(User.email) == "owner@paris.fr")).one()
    )
    held = await w.db().run(
        hold_ended_session(
            "Morning briefing",
            T - timedelta(hours=3),
            [w.paris_room, w.amsterdam_room],
            owner_id=owner.id,
            organiser="mailto:owner@paris.fr",
        )
    )
    return held.booking_id, held.session_id


async def test_an_ended_booking_shows_its_last_session_as_kept(world: World) -> None:
    """Issue 10: an ended one-time booking's page showed no participants; it shows its
    last session's, with the media they kept, and links to the session's page."""
    w = world
    booking_id, session_id = await _ended_booking(w)
    status, html = await get(w, "owner", f"/bookings/{booking_id}")
    assert status == 200 and "Last session" in html
    assert f'href="/sessions/{session_id}"' in html
    # Fontainebleau's kept figures (30 fps, worst 95 ms), marked as over the session.
    assert "30 fps · 95 ms" in html and "(over the session)" in html
    assert "Organiser</dt>" in html and "Owner · <a" in html  # by name, then the address
    assert "/extend" not in html  # nothing to extend in a session over


async def test_an_ended_booking_takes_no_guest(world: World) -> None:
    """Issue 10: an ended one-time booking still offered "Invite a guest" and made
    links that could never open; the form is gone and a POST is refused."""
    w = world
    booking_id, _ = await _ended_booking(w)

    def invited_while_ahead(s: DbSession) -> str:
        guest = Guest(booking_id=booking_id, name="Ada", token_hash=guests.hash_guest_token("x"))
        s.add(guest)
        s.flush()
        return guest.id

    guest_id = await w.db().run(invited_while_ahead)
    page = f"/bookings/{booking_id}"
    status, html = await get(w, "owner", page)
    assert status == 200 and "Ada" in html
    assert "Invite a guest" not in html and f'action="{page}/guests"' not in html
    assert "/new-link" not in html
    assert "no guest can be invited any more" in html
    for path in (f"{page}/guests", f"{page}/guests/{guest_id}/new-link"):
        status, html, _ = await post(w, "owner", path, {"name": "Grace"}, page=page)
        assert status == 409, path
        assert 'data-code="invitations-closed"' in html and 'role="alert"' in html
    rows = await w.db().run(lambda s: s.exec(select(Guest)).all())
    assert [(g.name, g.revoked_at) for g in rows] == [("Ada", None)]  # none made or revoked
    # The weekly booking, still ahead, takes guests.
    status, html, _ = await post(w, "owner", f"/bookings/{w.booking_id}/guests", {"name": "Grace"})
    assert status == 200 and "Personal link for Grace" in html


# --- actions -------------------------------------------------------------------------------


async def test_extend_through_the_form_and_its_refusal(world: World) -> None:
    w = world
    status, _, location = await post(
        w, "owner", f"/sessions/{w.session_id}/extend", {"minutes": "15"}
    )
    assert status == 303 and location.startswith(f"/bookings/{w.booking_id}?done=extended")
    assert (await session(w)).end_utc == START + timedelta(minutes=75)

    def book_after(s: DbSession) -> None:
        spec = SeriesSpec(
            uid="after",
            title="Private council",
            timezone="Europe/Paris",
            start_local=datetime(2027, 1, 5, 10, 30),
            duration=timedelta(hours=1),
        )
        commands.create_series(s, spec, [w.paris_room], now=T)

    await w.db().run(book_after)
    status, html = await get(w, "owner", f"/bookings/{w.booking_id}")
    assert 'name="minutes" value="15"' in html and 'name="minutes" value="30"' not in html
    status, html, _ = await post(w, "owner", f"/sessions/{w.session_id}/extend", {"minutes": "30"})
    assert status == 409
    assert 'role="alert"' in html and "Fontainebleau is booked from" in html
    assert "Private council" not in html
    assert (await session(w)).end_utc == START + timedelta(minutes=75)


async def booked(w: World, room_id: str, title: str, start_local: datetime, minutes: int) -> str:
    """Another booking of one of the world's rooms (Paris wall clock): its session id."""

    def work(s: DbSession) -> str:
        spec = SeriesSpec(
            uid=title,
            title=title,
            timezone="Europe/Paris",
            start_local=start_local,
            duration=timedelta(minutes=minutes),
        )
        return commands.create_series(s, spec, [room_id], now=T).session_ids[0]

    session_id: str = await w.db().run(work)
    return session_id


def extend_hint(html: str) -> str:
    """The hint beside the Extend buttons, its spaces as a reader sees them."""
    found = re.search(r'<p class="hint" id="extend-hint">(.*?)</p>', html, re.S)
    assert found, "no extend hint"
    return re.sub(r"[ \t\n]+", " ", found.group(1)).strip()  # no-break spaces stay


async def test_the_extend_hint_says_what_is_true_of_the_rooms(world: World) -> None:
    """Issue 10: "Only offered while every room is free." stood beside enabled Extend
    buttons, and with none offered the page did not say why. It says until when every
    room is free, or which room is booked from when to when (in the viewer's zone,
    without the other booking's title), as the room panel does."""
    w = world
    en = Formatter("en")

    def at(hour: int, minute: int) -> str:  # a Paris wall-clock time as the page writes it
        return en.time(datetime(2027, 1, 5, hour - 1, minute, tzinfo=UTC), "Europe/Paris")

    page = f"/bookings/{w.booking_id}"
    html = (await get(w, "owner", page))[1]
    assert 'name="minutes" value="15"' in html and 'name="minutes" value="30"' in html
    assert extend_hint(html) == f"Every room is free at least until {at(10, 30)} (Europe/Paris)."
    assert "Only offered while" not in html
    # Fontainebleau is booked from 10:20: 15 more minutes, not 30.
    await booked(w, w.paris_room, "Private council", datetime(2027, 1, 5, 10, 20), 60)
    html = (await get(w, "owner", page))[1]
    assert 'name="minutes" value="15"' in html and 'name="minutes" value="30"' not in html
    assert extend_hint(html) == (
        f"Every room is free at least until {at(10, 15)} (Europe/Paris). Fontainebleau is"
        f" booked from {at(10, 20)} to {at(11, 20)} (Europe/Paris)."
    )
    # Bright City (Amsterdam) from 10:05: no extension; the first hold in the way is named.
    await booked(w, w.amsterdam_room, "Works council", datetime(2027, 1, 5, 10, 5), 30)
    html = (await get(w, "owner", page))[1]
    assert 'name="minutes"' not in html
    assert extend_hint(html) == (
        f"Not every room is free: Bright City is booked from {at(10, 5)} to {at(10, 35)}"
        " (Europe/Paris)."
    )
    assert "Private council" not in html and "Works council" not in html
    async with await w.client("owner") as http:
        http.cookie_jar.update_cookies({"tc_lang": "fr"}, URL(w.app.url))
        async with http.get(w.app.url + page) as r:
            french = extend_hint(await r.text())
    assert french == (
        "Toutes les salles ne sont pas libres\u00a0: Bright City est réservée de 10:05 à 10:35"
        " (Europe/Paris)."
    )


async def test_an_ending_session_says_when_it_ends_on_the_booking_and_session_pages(
    world: World,
) -> None:
    """Issue 10: from five minutes before the end a bare "Ending" badge said nothing of
    what it meant. It names the end the rooms' screens announce, in the viewer's zone,
    with a tooltip saying so, on the booking's page and the session's; the session's
    history calls the transition what it was, an end warning."""
    w = world
    await w.clock.set((START + timedelta(minutes=56)).timestamp())

    async def ending() -> bool:
        return (await session(w)).state == "ending"

    await _until(ending, "the scheduler to send the first end warning")
    end = Formatter("en").time(START + timedelta(hours=1), "Europe/Paris")  # 10:00 AM
    badge = (
        f'<span class="state state-ending" title="The rooms\' screens warn that the session'
        f' ends at {end}.">Ends at {end}</span>'
    )
    booking_page = unescape((await get(w, "owner", f"/bookings/{w.booking_id}"))[1])
    heading = booking_page.split('id="current-h">')[1].split("</h2>")[0]
    assert "Session under way" in heading and badge in heading
    row = booking_page.split(f'id="session-{w.session_id}"')[1].split("</tr>")[0]
    assert badge in row and ">Ending<" not in booking_page
    session_page = unescape((await get(w, "owner", f"/sessions/{w.session_id}"))[1])
    assert badge in session_page.split("</h1>")[0]
    history = session_page.split('class="transitions"')[1].split("</ol>")[0]
    assert (
        '<span class="state state-ending" title="The rooms\' screens warned that the session'
        ' was about to end.">End warning</span>'
    ) in history
    async with await w.client("owner") as http:
        http.cookie_jar.update_cookies({"tc_lang": "fr"}, URL(w.app.url))
        async with http.get(f"{w.app.url}/sessions/{w.session_id}") as r:
            french = unescape(await r.text()).split("</h1>")[0]
    assert (
        '<span class="state state-ending" title="Les écrans des salles annoncent que la'
        ' session se termine à 10:00.">Se termine à 10:00</span>'
    ) in french


async def test_a_reminder_reads_as_one_and_takes_no_guest(world: World) -> None:
    """Issue 10: an event marked free in its organiser's calendar (a transparent
    booking) has reminders for sessions, which never connect. Its pages listed them as
    scheduled meetings with participants "Not yet" joined, offered Extend, and made
    guest links that could open no call. They read "Reminder — no call", expect no one
    and offer no extension; a guest is refused with ``invitations-closed``."""
    w = world

    def free_time(s: DbSession) -> tuple[str, str]:
        owner = s.exec(select(User).where(col(User.email) == "owner@paris.fr")).one()
        spec = SeriesSpec(
            uid="keys@calendar",
            title="Pick up the keys",
            timezone="Europe/Paris",
            start_local=datetime(2027, 1, 5, 9, 30),  # under way in the meeting's hour
            duration=timedelta(hours=1),
            transparent=True,
        )
        result = commands.create_series(s, spec, [w.paris_room], now=T)
        booking = s.get(Booking, result.booking_id)
        assert booking is not None
        booking.owner_id = owner.id
        s.add(booking)
        return booking.id, result.session_ids[0]

    booking_id, session_id = await w.db().run(free_time)
    await w.clock.set((START + timedelta(minutes=40)).timestamp())  # 09:40 in Paris
    badge = (
        '<span class="state state-reminder" title="Free time in a calendar: no room connects'
        ' and no one joins.">Reminder — no call</span>'
    )
    no_one = "A reminder has no call: no room connects, so no one is expected to join."
    page = f"/bookings/{booking_id}"
    status, booking_page = await get(w, "owner", page)
    assert status == 200
    assert badge in booking_page.split('id="current-h">')[1].split("</h2>")[0]
    assert no_one in booking_page and 'class="participants"' not in booking_page
    assert "Not yet" not in booking_page
    assert "/extend" not in booking_page and "End the session now" not in booking_page
    assert f'action="/sessions/{session_id}/cancel"' in booking_page  # it can still go
    assert "No call: the event is free time in its calendar" in booking_page
    assert f'action="{page}/guests"' not in booking_page
    assert "The sessions ahead are reminders (free time in a calendar)" in booking_page
    status, refused, _ = await post(w, "owner", f"{page}/guests", {"name": "Grace"}, page=page)
    assert status == 409 and 'data-code="invitations-closed"' in refused
    assert "no room connects to them, so no guest can be invited" in refused
    assert await w.db().run(lambda s: s.exec(select(Guest)).all()) == []
    status, session_page = await get(w, "owner", f"/sessions/{session_id}")
    assert status == 200 and badge in session_page.split("</h1>")[0]
    assert no_one in session_page and 'class="session-sites"' not in session_page
    assert "Never" not in session_page
    status, listing = await get(w, "owner", "/bookings")
    line = listing.split(f'href="/bookings/{booking_id}"')[1].split("</tr>")[0]
    assert status == 200 and badge in line
    # The meeting itself, an opaque booking under way beside it, is no reminder.
    assert (
        "state-reminder"
        not in listing.split(f'href="/bookings/{w.booking_id}"')[1].split("</tr>")[0]
    )


async def test_staff_of_a_room_cancel_one_occurrence_and_the_series(world: World) -> None:
    w = world
    ids = await w.db().run(
        lambda s: list(
            s.exec(
                select(Session.id)
                .where(Session.booking_id == w.booking_id)
                .order_by(col(Session.start_utc))
            ).all()
        )
    )
    status, _, _ = await post(w, "paris-staff", f"/sessions/{ids[1]}/cancel")
    assert status == 303
    assert [(await session(w, i)).state for i in ids] == ["scheduled", "cancelled", "scheduled"]
    status, _, location = await post(w, "paris-staff", f"/bookings/{w.booking_id}/cancel")
    assert status == 303 and "done=series-cancelled" in location
    assert {(await session(w, i)).state for i in ids} == {"cancelled"}
    status, html = await get(w, "owner", f"/bookings/{w.booking_id}")
    assert "This booking is cancelled." in html and "/extend" not in html


async def test_a_guest_link_is_shown_once_and_a_new_one_replaces_it(world: World) -> None:
    w = world
    status, html, _ = await post(
        w, "owner", f"/bookings/{w.booking_id}/guests", {"name": "Ada", "email": ""}
    )
    assert status == 200
    first = re.search(r'value="(https?://[^"]+/join/(tcg_[^"]+))"', html)
    assert first, html
    status, html = await get(w, "owner", f"/bookings/{w.booking_id}")
    assert first.group(2) not in html  # shown once
    guest = await w.db().run(lambda s: s.exec(select(Guest)).one())
    status, html, _ = await post(w, "owner", f"/bookings/{w.booking_id}/guests/{guest.id}/new-link")
    second = re.search(r'/join/(tcg_[^"]+)"', html)
    assert status == 200 and second and second.group(1) != first.group(2)
    rows = await w.db().run(lambda s: s.exec(select(Guest).order_by(col(Guest.created_at))).all())
    assert [(g.name, g.revoked_at is not None) for g in rows] == [("Ada", True), ("Ada", False)]
    # Signalling refuses the withdrawn guest's tickets (and ejects it if connected).
    tickets = w.app.app[SERVICES].signalling.tickets
    assert tickets.subject_revoked(f"guest:{guest.id}")
    assert not tickets.subject_revoked(f"guest:{rows[1].id}")
    await post(w, "owner", f"/bookings/{w.booking_id}/guests/{rows[1].id}/revoke")
    assert tickets.subject_revoked(f"guest:{rows[1].id}")
    status, html, _ = await post(w, "owner", f"/bookings/{w.booking_id}/guests", {"name": " "})
    assert status == 400 and 'id="guest-error"' in html


# --- approvals -----------------------------------------------------------------------------


async def test_staff_decline_a_request_and_the_organiser_is_told(world: World) -> None:
    w = world
    status, html = await get(w, "amsterdam-staff", "/approvals")
    assert status == 200 and "Weekly review Seine-et-Marne" in html and "Bright City" in html
    status, html = await get(w, "paris-staff", "/approvals")
    assert status == 200 and "Weekly review" not in html
    assert (await get(w, "owner", "/approvals"))[0] == 403
    path = f"/approvals/{w.booking_id}/{w.amsterdam_room}"
    assert (await post(w, "paris-staff", path, {"decision": "approve"}, "/approvals"))[0] == 403

    status, _, location = await post(
        w,
        "amsterdam-staff",
        path,
        {"decision": "decline", "note": "Closed for works"},
        "/approvals",
    )
    assert status == 303 and location == "/approvals?done=declined"
    mail = await w.db().run(lambda s: s.exec(select(OutboxMail)).one())
    assert mail.recipient == "owner@paris.fr" and mail.kind == "approval-decision"
    assert "Closed for works" in mail.body and f"/bookings/{w.booking_id}" in mail.body
    booking = await w.db().run(lambda s: s.get(Booking, w.booking_id))
    assert booking is not None and booking.connect_mode == "reserve-only"
    status, html = await get(w, "owner", f"/bookings/{w.booking_id}")
    assert "Declined" in html and "Closed for works" in html
    status, html, _ = await post(w, "amsterdam-staff", path, {"decision": "approve"}, "/approvals")
    assert status == 409 and "already decided" in html
    room = await w.db().run(lambda s: s.get(Room, w.amsterdam_room))
    assert room is not None


async def test_a_bad_decision_keeps_the_note(world: World) -> None:
    w = world
    path = f"/approvals/{w.booking_id}/{w.amsterdam_room}"
    status, html, _ = await post(
        w, "amsterdam-staff", path, {"decision": "approve", "note": "x" * 501}, "/approvals"
    )
    assert status == 400 and 'role="alert"' in html and "x" * 501 in html
    approval = await w.db().run(lambda s: s.get(Approval, (w.booking_id, w.amsterdam_room)))
    assert approval is not None and approval.state == "pending"


# --- languages -------------------------------------------------------------------------------

TEMPLATES = Path(__file__).resolve().parent.parent / "web" / "templates"


def test_every_message_of_these_pages_is_translated() -> None:
    from babel.messages.extract import extract_from_file

    from web.ui import approvals as approvals_page
    from web.ui import booking_detail, i18n

    wanted: set[str] = set()
    for template in [
        *(TEMPLATES / "booking_detail").glob("*.html"),
        TEMPLATES / "approvals/list.html",
    ]:
        for _, message, _, _ in extract_from_file(
            "jinja2.ext:babel_extract", template, options={"extensions": "jinja2.ext.i18n"}
        ):
            wanted.add(message if isinstance(message, str) else message[0])
    for module in (booking_detail, approvals_page):
        for _, message, _, _ in extract_from_file(
            "python", module.__file__ or "", keywords={"gettext": (2,), "_": None}
        ):
            wanted.add(message if isinstance(message, str) else message[0])
    for table in (
        booking_detail.NOTICES,
        booking_detail.REFUSALS,
        approvals_page.DONE,
        approvals_page.ERRORS,
    ):
        wanted |= set(table.values())
    assert len(wanted) > 100
    for lang in ("fr", "nl"):
        catalogue = i18n.catalogue(lang)
        found = {m: catalogue.get(m) for m in wanted}
        missing = sorted(m for m, entry in found.items() if entry is None or not entry.string)
        assert missing == [], lang


async def test_the_detail_page_speaks_french(world: World) -> None:
    w = world
    async with await w.client("owner") as http:
        http.cookie_jar.update_cookies({"tc_lang": "fr"}, URL(w.app.url))
        async with http.get(f"{w.app.url}/bookings/{w.booking_id}") as r:
            html = await r.text()
    assert r.headers["Content-Language"] == "fr"
    assert "À propos de cette réservation" in html and "En attente d’approbation" in html
    assert "About this booking" not in html


# --- in Chromium -----------------------------------------------------------------------------


async def _until(check: Any, what: str, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def test_detail_and_approvals_pages_in_chromium(world: World, browser: Any) -> None:
    """The organiser watches the session under way and extends it; Amsterdam's staff
    approve their room. Screenshots of both pages go to the test output."""
    from playwright.async_api import expect

    w = world
    await w.clock.set((START + timedelta(minutes=5)).timestamp())

    async def live() -> bool:
        return (await session(w)).state == "live"

    await _until(live, "the scheduler to take the session live")

    def under_way(s: DbSession) -> None:
        at = (START + timedelta(seconds=20)).timestamp()
        participation.record_joined(s, w.session_id, w.paris_room, at - 50)
        participation.record_milestone(s, w.session_id, w.paris_room, "first-frame", at - 45)
        participation.record_milestone(s, w.session_id, w.paris_room, "live", at)
        guests.add_guest(
            s, w.booking_id, "Ada Lovelace", "ada@example.org", now=START + timedelta(seconds=20)
        )

    await w.db().run(under_way)

    page = await new_page(browser)
    await page.context.add_cookies(
        [{"name": "tc_session", "value": w.tokens["owner"], "url": w.app.url}]
    )
    await page.goto(f"{w.app.url}/bookings/{w.booking_id}")
    await expect(page.get_by_role("heading", name="Session under way")).to_be_visible()
    await expect(page.locator(".pending-mine").first).to_be_visible()
    await page.screenshot(path=str(screenshot_path("booking-detail")), full_page=True)
    await page.get_by_role("button", name="+15 min").click()
    await expect(page.get_by_role("status").first).to_contain_text("The session was extended.")
    assert (await session(w)).end_utc == START + timedelta(minutes=75)

    staff = await new_page(browser, locale="fr-FR")
    await staff.context.add_cookies(
        [{"name": "tc_session", "value": w.tokens["amsterdam-staff"], "url": w.app.url}]
    )
    await staff.goto(f"{w.app.url}/approvals")
    await expect(staff.get_by_role("heading", name="Approbations", exact=True)).to_be_visible()
    await staff.get_by_label("Note pour l’organisateur (facultative)").fill(
        "Bienvenue à Bright City"
    )
    await staff.screenshot(path=str(screenshot_path("approvals")), full_page=True)
    await staff.get_by_role("button", name="Approuver").click()
    await expect(staff.get_by_role("status")).to_contain_text("Approuvée")
    approval = await w.db().run(lambda s: s.get(Approval, (w.booking_id, w.amsterdam_room)))
    assert approval is not None and approval.state == "approved"
