"""The availability finder and the booking form over HTTP, the whole service running on
loopback: common slots across Paris and Montreal, booking with a guest (links shown
once, mail queued, approval requested), conflicts explained with privacy and
alternatives, the invitation download, and forms that keep what was typed."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import icalendar
import pytest
from aiohttp import ClientSession
from sqlmodel import col, select

from orchestrator import centres
from orchestrator.booking.recurrence import localize
from orchestrator.db import DbSession
from orchestrator.desk import door, web_booking
from orchestrator.models import Approval, Booking, Guest, OutboxMail
from tests.booking_world import World, logged_in, service_with_world
from tests.ui_support import RunningApp, csrf_of

pytestmark = pytest.mark.wall_clock

Env = tuple[RunningApp, World]


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    async with service_with_world(tmp_path) as (app, world, _clock):
        yield app, world


def text_of(html: str) -> str:
    """The page's visible words, roughly: tags dropped, spaces collapsed."""
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html)))


async def get(http: ClientSession, url: str, status: int = 200) -> str:
    async with http.get(url, allow_redirects=False) as response:
        body = await response.text()
        assert response.status == status, body[:2000]
        return body


def form_fields(world: World, **overrides: Any) -> list[tuple[str, str]]:
    fields: dict[str, Any] = {
        "title": "Comité de pilotage",
        "room": [world.paris_room, world.montreal_room],
        "date": "2026-03-24",
        "start": "14:00",
        "end": "15:00",
        "zone": "Europe/Paris",
        "repeat": "none",
        "connect_mode": "automatic",
        "lead": "1",
        "guest_name": ["Gaëlle Invitée"],
        "guest_email": ["gaelle@example.org"],
        "on_conflict": "reject",
    }
    fields.update(overrides)
    pairs: list[tuple[str, str]] = []
    for name, value in fields.items():
        for item in value if isinstance(value, list) else [value]:
            pairs.append((name, item))
    return pairs


async def post_booking(
    app: RunningApp, http: ClientSession, fields: list[tuple[str, str]], status: int = 303
) -> tuple[str, str]:
    """(the page or the redirect target, the body)."""
    token = await csrf_of(http, app.url + "/bookings/new")
    async with http.post(
        app.url + "/bookings", data=[("csrf_token", token), *fields], allow_redirects=False
    ) as response:
        body = await response.text()
        assert response.status == status, text_of(body)[:3000]
        return response.headers.get("Location", ""), body


async def test_pages_need_a_login(env: Env) -> None:
    app, _ = env
    async with ClientSession() as http:
        for path in ("/availability", "/bookings/new"):
            async with http.get(app.url + path, allow_redirects=False) as response:
                assert response.status == 303
                assert response.headers["Location"].startswith("/login?next=")


async def test_the_finder_proposes_the_shared_afternoon_across_paris_and_montreal(
    env: Env,
) -> None:
    app, world = env
    async with await logged_in(app, world.organiser) as http:
        page = await get(http, app.url + "/availability")
        assert "Fontainebleau" in page and "Montréal" in page  # rooms grouped by centre
        query = (
            f"room={world.paris_room}&room={world.montreal_room}&date=2026-03-24"
            "&span=day&duration=60&zone=Europe/Paris"
        )
        page = await get(http, app.url + "/availability?" + query)
    links = re.findall(r'href="(/bookings/new\?[^"]+)"', page)
    assert len(links) == 5
    first = parse_qs(urlsplit(unescape(links[0])).query)
    # 13:00 in Paris is 08:00 in Montreal, when both sites are open.
    assert first["date"] == ["2026-03-24"] and first["start"] == ["13:00"]
    assert first["end"] == ["14:00"] and first["zone"] == ["Europe/Paris"]
    assert first["room"] == [world.paris_room, world.montreal_room]
    words = text_of(page)
    assert "Montréal 8:00 AM–9:00 AM America/Montreal" in words
    # Header rows: the organiser's time and each site's own hours.
    assert 'class="site-hours"' in page and "America/Montreal" in page
    async with await logged_in(app, world.organiser) as http:
        # Montreal opens at 06:00 this time: 11:00 in Paris becomes common.
        early = await get(
            http,
            f"{app.url}/availability?{query}&from_{world.montreal_centre}=06:00"
            f"&to_{world.montreal_centre}=19:00",
        )
        week = await get(http, app.url + "/availability?" + query.replace("span=day", "span=week"))
        bad = await get(
            http,
            f"{app.url}/availability?{query}&from_{world.montreal_centre}=19:00"
            f"&to_{world.montreal_centre}=06:00",
            status=400,
        )
    first = parse_qs(
        urlsplit(unescape(re.findall(r'href="(/bookings/new\?[^"]+)"', early)[0])).query
    )
    assert first["start"] == ["11:00"]
    assert len(re.findall(r"<caption", week)) == 7
    assert f'id="err-hours_{world.montreal_centre}" role="alert"' in bad


async def test_other_centres_bookings_show_only_as_busy(env: Env) -> None:
    app, world = env
    async with await logged_in(app, world.montreal_organiser) as http:
        fields = form_fields(
            world,
            title="Négociation confidentielle",
            room=[world.montreal_room],
            start="13:00",
            end="14:00",
            guest_name=[],
            guest_email=[],
        )
        await post_booking(app, http, fields)
        query = f"room={world.montreal_room}&date=2026-03-24&duration=60&zone=Europe/Paris"
        own_view = await get(http, app.url + "/availability?" + query)
    assert "Négociation confidentielle" in own_view
    async with await logged_in(app, world.organiser) as http:
        other_view = await get(http, app.url + "/availability?" + query)
    assert "Négociation confidentielle" not in other_view
    assert re.search(r'class="cell busy"[^>]*>\s*<span class="label">busy</span>', other_view)


async def test_booking_with_a_guest_writes_everything_it_sets_off(env: Env) -> None:
    app, world = env
    async with await logged_in(app, world.organiser) as http:
        location, _ = await post_booking(app, http, form_fields(world))
        match = re.fullmatch(r"/bookings/([0-9a-f]{32})/created\?r=[\w-]+", location)
        assert match, location
        booking_id = match.group(1)
        page = await get(http, app.url + location)
        links = re.findall(r'value="(http://127\.0\.0\.1:\d+/join/tcg_[\w-]+)"', page)
        assert len(links) == 1
        words = text_of(page)
        assert "Gaëlle Invitée" in words and "Waiting for approval" in words
        assert "Salle du Fleuve (Montréal)" in words
        # Both sites' local times: 14:00 Paris is 09:00 Montreal.
        assert "Fontainebleau 2:00 PM–3:00 PM Europe/Paris" in words
        assert "Montréal 9:00 AM–10:00 AM America/Montreal" in words
        # The links are shown once.
        again = await get(http, app.url + location)
        assert "/join/tcg_" not in again and "shown only once" in again

    def read(s: DbSession) -> tuple[Booking, list[Approval], list[Guest], list[OutboxMail]]:
        booking = s.get(Booking, booking_id)
        assert booking is not None
        return (
            booking,
            list(s.exec(select(Approval).where(col(Approval.booking_id) == booking_id))),
            list(s.exec(select(Guest).where(col(Guest.booking_id) == booking_id))),
            list(s.exec(select(OutboxMail).order_by(col(OutboxMail.recipient)))),
        )

    booking, approvals, guests, mails = await app.services.db.run(read)
    paris_start = localize(datetime(2026, 3, 24, 14, 0), "Europe/Paris")
    assert booking.start_utc == paris_start and booking.timezone == "Europe/Paris"
    assert booking.owner_centre_id == world.paris_centre and booking.owner_id is not None
    assert [(a.room_id, a.state) for a in approvals] == [(world.montreal_room, "pending")]
    assert [(g.name, g.email) for g in guests] == [("Gaëlle Invitée", "gaelle@example.org")]
    by_recipient = {m.recipient: m for m in mails}
    assert set(by_recipient) == {
        "gaelle@example.org",
        "org@fontainebleau.fr",
        "staff@montreal.ca",
    }
    guest_mail = by_recipient["gaelle@example.org"]
    assert guest_mail.kind == "invitation" and guest_mail.ics_method == "REQUEST"
    assert links[0] in guest_mail.body
    assert links[0] in (guest_mail.ics or "").replace("\r\n ", "")
    organiser_mail = by_recipient["org@fontainebleau.fr"]
    assert organiser_mail.kind == "invitation" and "/join/" not in organiser_mail.body
    calendar = icalendar.Calendar.from_ical(organiser_mail.ics or "")
    [event] = [c for c in calendar.walk("VEVENT")]
    assert event["SUMMARY"] == "Comité de pilotage"
    assert event.decoded("DTSTART") == paris_start
    staff_mail = by_recipient["staff@montreal.ca"]
    assert staff_mail.kind == "approval-request"
    # The staff member's own language (French).
    assert "Comité de pilotage" in staff_mail.body and "Salle du Fleuve" in staff_mail.subject
    assert "approbation" in staff_mail.subject.lower()


async def test_an_overlapping_booking_is_explained_with_alternatives(env: Env) -> None:
    app, world = env
    async with await logged_in(app, world.organiser) as http:
        await post_booking(app, http, form_fields(world, title="Point hebdo"))
        # The same Paris room half an hour later: taken by the organiser's own booking.
        wanted = form_fields(
            world, title="Atelier", start="14:30", end="15:30", guest_name=[], guest_email=[]
        )
        _, page = await post_booking(app, http, wanted, status=409)
    words = text_of(page)
    assert "These rooms are taken at that time." in words
    assert "Salle Bleue (Fontainebleau) is taken by “Point hebdo”" in words
    assert "Salle du Fleuve (Montréal) is taken by “Point hebdo”" in words
    assert "9:00 AM–10:00 AM (America/Montreal)" in words  # the site's own time
    # What was typed stays, and alternatives refill the form.
    assert 'value="Atelier"' in page
    refills = re.findall(r'name="refill" value="([^"]+)"', page)
    # The first common free hours that day: before the booking and right after it.
    assert refills[:2] == ["2026-03-24|13:00|14:00", "2026-03-24|15:00|16:00"]
    async with await logged_in(app, world.organiser) as http:
        token = await csrf_of(http, app.url + "/bookings/new")
        async with http.post(
            app.url + "/bookings",
            data=[("csrf_token", token), *wanted, ("refill", refills[1])],
        ) as response:
            refilled = await response.text()
            assert response.status == 200
    assert 'id="start" value="15:00"' in refilled and 'id="end" value="16:00"' in refilled
    assert 'value="Atelier"' in refilled
    assert "Point hebdo" not in refilled  # nothing was booked, nothing explained


async def test_conflicts_name_other_centres_bookings_only_as_busy(env: Env) -> None:
    app, world = env
    async with await logged_in(app, world.montreal_organiser) as http:
        await post_booking(
            app,
            http,
            form_fields(
                world,
                title="Conseil privé",
                room=[world.montreal_room],
                guest_name=[],
                guest_email=[],
            ),
        )
    async with await logged_in(app, world.organiser) as http:
        _, page = await post_booking(
            app, http, form_fields(world, guest_name=[], guest_email=[]), status=409
        )
    words = text_of(page)
    assert "Conseil privé" not in page
    assert "Salle du Fleuve (Montréal) is busy (another centre's booking)" in words


async def test_a_refused_form_keeps_what_was_typed_and_says_why(env: Env) -> None:
    app, world = env
    async with await logged_in(app, world.organiser) as http:
        fields = form_fields(world, title="", start="15:00", end="14:00")
        _, page = await post_booking(app, http, fields, status=400)
        assert 'id="err-title" role="alert"' in page
        assert 'id="err-end" role="alert"' in page
        assert 'aria-invalid="true"' in page
        assert 'value="Gaëlle Invitée"' in page and 'value="gaelle@example.org"' in page
        assert f'value="{world.montreal_room}" id="room-{world.montreal_room}"' in page
        fields = form_fields(world, connect_mode="reserve-only")
        _, page = await post_booking(app, http, fields, status=400)
        assert "Guests join a call" in text_of(page)
        async with http.post(app.url + "/bookings", data=form_fields(world)) as response:
            assert response.status == 403  # no CSRF token

        def count(s: DbSession) -> int:
            return len(list(s.exec(select(Booking))))

        assert await app.services.db.run(count) == 0


async def test_a_form_sent_twice_books_once(env: Env) -> None:
    app, world = env
    async with await logged_in(app, world.organiser) as http:
        fields = [*form_fields(world), ("form_id", "ab" * 16)]
        first, _ = await post_booking(app, http, fields)
        second, _ = await post_booking(app, http, fields)
    booking_id = first.split("/")[2]
    assert second == f"/bookings/{booking_id}"


async def test_a_weekly_series_skips_a_taken_date_when_asked(env: Env) -> None:
    app, world = env
    async with await logged_in(app, world.organiser) as http:
        single = form_fields(
            world, title="Réunion ponctuelle", date="2026-03-31", guest_name=[], guest_email=[]
        )
        await post_booking(app, http, single)
        weekly = form_fields(
            world,
            title="Suivi",
            repeat="weekly",
            repeat_end="count",
            count="3",
            on_conflict="skip",
            guest_name=[],
            guest_email=[],
        )
        location, _ = await post_booking(app, http, weekly)
        page = await get(http, app.url + location)
    assert "Dates left out" in page
    assert "Tuesday, March 31, 2026, 2:00 PM" in text_of(page)

    def rule(s: DbSession) -> str | None:
        booking = s.exec(select(Booking).where(col(Booking.title) == "Suivi")).one()
        return booking.rrule

    assert await app.services.db.run(rule) == "FREQ=WEEKLY;COUNT=3"


async def test_the_invitation_downloads_only_for_who_may_see_the_booking(env: Env) -> None:
    app, world = env
    async with await logged_in(app, world.organiser) as http:
        location, _ = await post_booking(app, http, form_fields(world))
        booking_id = location.split("/")[2]
        async with http.get(f"{app.url}/bookings/{booking_id}/invitation.ics") as response:
            assert response.status == 200
            assert response.content_type == "text/calendar"
            calendar = icalendar.Calendar.from_ical(await response.read())
    assert calendar["METHOD"] == "REQUEST"
    assert [e["SUMMARY"] for e in calendar.walk("VEVENT")] == ["Comité de pilotage"]
    # Montreal staff: a room of theirs is in it. Another Paris-less stranger: refused.
    async with await logged_in(app, world.montreal_staff) as http:
        await get(http, f"{app.url}/bookings/{booking_id}/invitation.ics")

    def stranger(s: DbSession) -> str:
        from orchestrator.people import accounts

        centre = centres.add_centre(s, "Amsterdam", "Europe/Amsterdam")
        accounts.create_user(
            s, "org@amsterdam.nl", "Anna", "correct horse battery", "organiser", centre.id
        )
        return "org@amsterdam.nl"

    email = await app.services.db.run(stranger)
    async with await logged_in(app, email) as http:
        page = await get(http, f"{app.url}/bookings/{booking_id}/invitation.ics", status=403)
    assert "Comité de pilotage" not in page


async def test_site_times_follow_the_form_and_the_language(env: Env) -> None:
    app, world = env
    async with await logged_in(app, world.organiser) as http:
        query = (
            f"room={world.paris_room}&room={world.montreal_room}"
            "&date=2026-03-24&start=09:00&end=10:00&zone=Europe/Paris"
        )
        fragment = text_of(await get(http, app.url + "/booking-form/site-times?" + query))
        # 09:00 in Paris is 04:00 in Montreal.
        assert "Montréal 4:00 AM–5:00 AM America/Montreal" in fragment
        page = await get(http, app.url + "/bookings/new?" + query)
        assert "Montréal 4:00 AM–5:00 AM America/Montreal" in text_of(page)
    async with await logged_in(app, world.organiser, lang="fr") as http:
        page = text_of(await get(http, app.url + "/bookings/new?" + query))
        assert "Réserver des salles" in page and "Montréal 04:00–05:00" in page
        page = text_of(await get(http, app.url + "/availability?" + query + "&duration=60"))
        assert "Premiers créneaux libres communs" in page


async def test_alternatives_after_a_conflict_are_common_free_slots(env: Env) -> None:
    app, world = env

    def taken(s: DbSession) -> list[tuple[datetime, datetime]]:
        return [
            (slot.start, slot.end)
            for slot in web_booking.alternatives(
                s,
                [world.paris_room, world.montreal_room],
                "Europe/Paris",
                datetime(2026, 3, 24).date(),
                timedelta(hours=1),
                now=datetime(2026, 3, 23, 7, tzinfo=UTC),
                limit=2,
            )
        ]

    assert await app.services.db.run(taken) == [
        (datetime(2026, 3, 24, 12, tzinfo=UTC), datetime(2026, 3, 24, 13, tzinfo=UTC)),
        (datetime(2026, 3, 24, 13, tzinfo=UTC), datetime(2026, 3, 24, 14, tzinfo=UTC)),
    ]


async def test_a_centre_without_staff_has_its_approvals_asked_of_the_administrators(
    env: Env,
) -> None:
    app, world = env

    def ask_approval(s: DbSession) -> None:
        from orchestrator.models import Room

        room = s.get(Room, world.paris_room)
        assert room is not None
        room.requires_approval = True
        s.add(room)

    await app.services.db.run(ask_approval)
    async with await logged_in(app, world.montreal_organiser) as http:
        fields = form_fields(world, room=[world.paris_room], guest_name=[], guest_email=[])
        await post_booking(app, http, fields)

    def requests(s: DbSession) -> list[str]:
        rows = s.exec(select(OutboxMail).where(col(OutboxMail.kind) == "approval-request"))
        return [m.recipient for m in rows]

    assert await app.services.db.run(requests) == [world.admin]


def test_the_form_repetition_becomes_an_rrule() -> None:
    from datetime import date

    from orchestrator.errors import DomainError

    assert door.rrule_for("none") is None
    assert door.rrule_for("weekly", count=6) == "FREQ=WEEKLY;COUNT=6"
    # The last local day ends at 23:59:59 in Montreal: 03:59:59 UTC the next day.
    rule = door.rrule_for("daily", until=date(2026, 4, 3), timezone="America/Montreal")
    assert rule == "FREQ=DAILY;UNTIL=20260404T035959Z"
    for bad in ({"count": 0}, {}, {"count": 2, "until": date(2026, 4, 3)}):
        with pytest.raises(DomainError) as caught:
            door.rrule_for("monthly", **bad)  # type: ignore[arg-type]
        assert caught.value.code == "bad-recurrence"
