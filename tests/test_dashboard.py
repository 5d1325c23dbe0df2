"""The network dashboard over HTTP: who may see it, whose titles they see, and what
its JSON state says about rooms and sites."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import ClientSession
from sqlmodel import col, select

from orchestrator.booking import commands, one_off
from orchestrator.booking.values import SeriesSpec
from orchestrator.clock import FakeClock
from orchestrator.db import DbSession
from orchestrator.models import User
from orchestrator.people.accounts import Principal
from orchestrator.sessions import guests, participation
from signalling.client import SignallingClient
from signalling.ports import MediaReport
from signalling.protocol import MediaStats
from tests.dashboard_support import (
    ADMIN,
    AMSTERDAM_STAFF,
    PARIS_ORGANISER,
    Network,
    logged_in,
    make_network,
)
from tests.session_history_support import hold_ended_session
from tests.ui_support import RunningApp, running_app
from web.settings import Settings
from web.ui.dashboard_state import day_window, viewer_zone
from web.ui.i18n import Formatter

pytestmark = pytest.mark.wall_clock

SECRET = "Board of Amsterdam: merger talks"
ORGANISER = "cfo@amsterdam.example"
OWNER = "Sanne"  # the Amsterdam staff member who owns the private booking
GUEST = "Ms Secret Guest"

# The dashboard lists the viewer's day. The tests that book around "now" run on a fake
# clock at mid-morning in Paris and Amsterdam (10:00 CET), so that a session a few
# hours away falls on the viewer's today whatever the hour the suite runs at.
NOW = datetime(2026, 12, 8, 9, 0, tzinfo=UTC)


def at_mid_morning(tmp_path: Path) -> AbstractAsyncContextManager[RunningApp]:
    return running_app(Settings(data_dir=tmp_path), clock=FakeClock(NOW.timestamp()))


async def get_state(http: ClientSession, app: RunningApp) -> dict[str, Any]:
    async with http.get(app.url + "/dashboard/state") as r:
        assert r.status == 200, await r.text()
        assert r.headers["Cache-Control"] == "no-store"
        data: dict[str, Any] = await r.json()
        return data


async def test_anonymous_visitors_are_sent_to_the_login_page(tmp_path: Path) -> None:
    async with running_app(Settings(data_dir=tmp_path)) as app, ClientSession() as http:
        async with http.get(app.url + "/", allow_redirects=False) as r:
            assert r.status == 303
            assert r.headers["Location"] in ("/login?next=%2F", "/login?next=/")
        for path in ("/dashboard/state", "/dashboard/fragment"):
            async with http.get(app.url + path, allow_redirects=False) as r:
                assert r.status == 401, path
                assert (await r.json())["error"]["code"] == "login-required"


def book_private(net: Network, start: datetime) -> Callable[[DbSession], tuple[str, str, str]]:
    """Amsterdam staff book their own room; a Paris person has no rights on it."""

    def run(s: DbSession) -> tuple[str, str, str]:
        staff = s.exec(select(User).where(col(User.email) == AMSTERDAM_STAFF)).one()
        booking, session = one_off.book(
            s, SECRET, start, start + timedelta(hours=1), [net.smart_work_room, net.studio]
        )
        booking.owner_id, booking.owner_centre_id = staff.id, net.amsterdam
        booking.organiser = ORGANISER
        s.add(booking)
        guest, _ = guests.add_guest(s, booking.id, GUEST, now=start)
        return booking.id, session.id, guest.id

    return run


async def test_titles_organisers_and_guests_are_shown_only_to_those_with_rights(
    tmp_path: Path,
) -> None:
    async with at_mid_morning(tmp_path) as app:
        db = app.services.db
        net = await db.run(make_network)
        start = NOW - timedelta(minutes=2)
        _, session_id, guest_id = await db.run(book_private(net, start))
        shared_start = start + timedelta(hours=3)
        await db.run(
            lambda s: one_off.book(
                s,
                "Delegation Amsterdam – Seine-et-Marne",
                shared_start,
                shared_start + timedelta(hours=1),
                [net.salle_bleue, net.smart_work_room],
            )
        )
        await app.services.scheduler.step()  # the private session goes live
        # The Amsterdam room reports the guest's media: the guest's name is private too.
        app.services.live.listen(
            MediaReport(
                seq=1,
                session_id=session_id,
                peer_id=f"room:{net.smart_work_room}",
                room_id=net.smart_work_room,
                at=app.services.clock.now(),
                media=(MediaStats(peer_id=f"guest:{guest_id}", fps=24.0, latency_p50_ms=80.0),),
            )
        )
        seen: dict[str, tuple[dict[str, Any], str]] = {}
        for email in (PARIS_ORGANISER, AMSTERDAM_STAFF, ADMIN):
            async with await logged_in(app, email) as http:
                state = await get_state(http, app)
                async with http.get(app.url + "/") as r:
                    assert r.status == 200
                    page = await r.text()
                seen[email] = (state, page)

    state, page = seen[PARIS_ORGANISER]
    private = next(s for s in state["sessions"] if s["id"] == session_id)
    assert private["visible"] is False and private["title"] == "Session"
    assert private["organiser"] is None and private["state"] == "live"
    room = next(r for r in state["rooms"] if r["id"] == net.smart_work_room)
    assert room["activity"] == "in-session" and room["activity_label"] == "In session (busy)"
    assert private["sites"][0]["stats_detail"].startswith("from Guest: 24 fps")
    for text in (str(state), page):
        assert SECRET not in text and ORGANISER not in text and GUEST not in text
        assert OWNER not in text
    assert f"/sessions/{session_id}" not in page  # no link to a page they may not see
    # A session using a room of their own centre shows its title.
    assert "Delegation Amsterdam – Seine-et-Marne" in page

    for email in (AMSTERDAM_STAFF, ADMIN):
        state, page = seen[email]
        private = next(s for s in state["sessions"] if s["id"] == session_id)
        assert private["visible"] is True and private["title"] == SECRET
        # The booking page's organiser: the owner's name before the calendar's address.
        assert private["organiser"] == OWNER
        assert private["sites"][0]["stats_detail"].startswith(f"from {GUEST}: 24 fps")
        assert SECRET in page and f"Organiser: {OWNER}" in page
        assert f'href="/sessions/{session_id}"' in page
        room = next(r for r in state["rooms"] if r["id"] == net.smart_work_room)
        assert room["activity_label"] == f"In session: {SECRET}"


async def test_the_state_shows_presence_sites_media_and_releases(tmp_path: Path) -> None:
    async with at_mid_morning(tmp_path) as app:
        db = app.services.db
        net = await db.run(make_network)
        start = NOW - timedelta(seconds=30)
        _, session = await db.run(
            lambda s: one_off.book(
                s,
                "Delegation",
                start,
                start + timedelta(hours=1),
                [net.salle_bleue, net.smart_work_room],
            )
        )
        await app.services.scheduler.step()
        t = start.timestamp()

        def cdr(s: DbSession) -> None:
            participation.record_joined(s, session.id, net.salle_bleue, t - 40)
            participation.record_milestone(s, session.id, net.salle_bleue, "first-frame", t - 20)
            participation.record_milestone(s, session.id, net.salle_bleue, "live", t + 0.25)
            participation.record_left(s, session.id, net.salle_bleue, t + 5)
            participation.record_joined(s, session.id, net.salle_bleue, t + 9)

        await db.run(cdr)
        app.services.live.listen(
            MediaReport(
                seq=1,
                session_id=session.id,
                peer_id=f"room:{net.salle_bleue}",
                room_id=net.salle_bleue,
                at=app.services.clock.now(),
                media=(
                    MediaStats(
                        peer_id=f"room:{net.smart_work_room}",
                        fps=29.5,
                        latency_p50_ms=81.0,
                        latency_p95_ms=133.0,
                        live=True,
                    ),
                ),
            )
        )
        async with aiohttp.ClientSession() as ws_http:
            room = SignallingClient(
                ws_http, app.url + "/ws", room_id=net.salle_bleue, key=net.salle_bleue_key
            )
            await room.connect()
            try:
                async with await logged_in(app, ADMIN) as http:
                    state = await get_state(http, app)
                    async with http.get(
                        app.url + "/dashboard/fragment", headers={"Accept-Language": "fr"}
                    ) as r:
                        fragment = await r.text()
            finally:
                await room.close()

    rooms = {r["id"]: r for r in state["rooms"]}
    assert rooms[net.salle_bleue]["online"] is True
    assert rooms[net.salle_bleue]["presence_label"] == "Online"
    assert rooms[net.smart_work_room]["presence"] == "offline"
    assert all(r["readiness"] == "unknown" for r in rooms.values())
    assert [c["name"] for c in state["centres"]] == ["Amsterdam Bright City", "Fontainebleau"]
    (live,) = state["sessions"]
    assert live["state"] == "live" and live["state_label"] == "Live"
    assert live["when_label"].endswith("Europe/Paris")
    sites = {s["room_id"]: s for s in live["sites"]}
    bleue = sites[net.salle_bleue]
    assert bleue["joined"] is True and bleue["media"] == "live"
    assert bleue["joined_offset"] == "T-40.00 s"
    assert (bleue["fps"], bleue["latency_p50_ms"], bleue["latency_p95_ms"]) == (29.5, 81.0, 133.0)
    assert bleue["fps_label"] == "29.5 fps" and bleue["latency_label"] == "81 ms / 133 ms"
    assert bleue["rejoins"] == 1 and bleue["stats_fresh"] is True
    assert bleue["announce"] == "Salle Bleue: media live"
    swr = sites[net.smart_work_room]
    assert swr["joined"] is False and swr["media"] == "none" and swr["fps"] is None
    assert swr["announce"] == "Smart Work Room: not joined"
    # The fragment speaks the visitor's language.
    assert "En ligne" in fragment and "Hors ligne" in fragment and "En direct" in fragment


async def test_a_room_released_as_a_no_show_says_so(tmp_path: Path) -> None:
    async with at_mid_morning(tmp_path) as app:
        db = app.services.db
        net = await db.run(make_network)
        start = NOW - timedelta(minutes=20)
        await db.run(
            lambda s: one_off.book(
                s,
                "Missed",
                start,
                start + timedelta(hours=1),
                [net.salle_bleue, net.smart_work_room],
            )
        )
        await app.services.scheduler.step()  # live, late
        await app.services.scheduler.step()  # nobody joined within 10 minutes: released
        async with await logged_in(app, ADMIN) as http:
            state = await get_state(http, app)
            async with http.get(app.url + "/") as r:
                page = await r.text()
    (missed,) = state["sessions"]
    assert all(s["released"] for s in missed["sites"])
    assert all(s["end_label"].startswith("Released (no-show)") for s in missed["sites"])
    assert "Released (no-show)" in page
    rooms = {r["id"]: r for r in state["rooms"]}
    assert rooms[net.salle_bleue]["activity"] == "free"


def test_today_is_the_viewer_s_day_in_their_zone_and_dst_days_are_short_or_long() -> None:
    person = Principal("u", "e@example.org", "E", "staff", "c1", None, None)
    assert viewer_zone(person, {"c1": "Europe/Paris"}) == "Europe/Paris"
    assert viewer_zone(replace(person, timezone="America/Toronto"), {}) == "America/Toronto"
    assert viewer_zone(replace(person, timezone="Not/AZone"), {"c1": "Europe/Paris"}) == (
        "Europe/Paris"
    )
    assert viewer_zone(replace(person, role="admin", centre_id=None), {}) == "UTC"
    start, end = day_window(datetime(2025, 3, 30, 12, 0, tzinfo=UTC), "Europe/Paris")
    assert (start, end - start) == (datetime(2025, 3, 29, 23, 0, tzinfo=UTC), timedelta(hours=23))
    # 01:30 UTC on 26 October is still the 26th in Paris, a 25-hour day.
    start, end = day_window(datetime(2025, 10, 26, 1, 30, tzinfo=UTC), "Europe/Paris")
    assert (start, end - start) == (datetime(2025, 10, 25, 22, 0, tzinfo=UTC), timedelta(hours=25))


async def test_an_ended_session_shows_the_media_its_sites_kept(tmp_path: Path) -> None:
    """Issue 10: once a session ended, its sites said "No media" although the database
    keeps each one's media summary; they show it, and the session links to its page."""
    async with at_mid_morning(tmp_path) as app:
        db = app.services.db
        net = await db.run(make_network)
        held = await db.run(
            hold_ended_session(
                "Delegation", NOW - timedelta(hours=2), [net.salle_bleue, net.smart_work_room]
            )
        )
        async with await logged_in(app, ADMIN) as http:
            state = await get_state(http, app)
            async with http.get(app.url + "/") as r:
                page = await r.text()
            async with http.get(
                app.url + "/dashboard/fragment", headers={"Accept-Language": "fr"}
            ) as r:
                fragment = await r.text()

    (ended,) = state["sessions"]
    assert ended["state"] == "ended" and ended["url"] == f"/sessions/{held.session_id}"
    sites = {s["room_id"]: s for s in ended["sites"]}
    bleue = sites[net.salle_bleue]  # reported its media, left a minute before the end
    assert bleue["media"] == "kept"
    assert bleue["media_label"] == "Live from 8:00:00\u202fAM to 8:09:00\u202fAM"  # Paris
    assert bleue["fps_label"] == "29.6 fps (mean)"
    assert bleue["latency_label"] == "95 ms (worst p50)"
    assert bleue["stats_detail"] == (
        "Over the session: mean 29.6 fps · worst p50 latency 95 ms · freezes: 1"
        " · worst loss 0.4% · RTT 18 ms (worst 30 ms)"
    )
    assert bleue["kept"]["fps_mean"] == pytest.approx(29.6)
    assert bleue["kept"]["packets_lost"] == 3 and bleue["kept"]["reports"] == 3
    assert bleue["fps"] is None and bleue["stats_fresh"] is False  # no live figure
    swr = sites[net.smart_work_room]  # went live, reported nothing, left with the session
    assert swr["media"] == "kept" and swr["kept"] is None
    assert swr["media_label"] == "Live from 8:00:00\u202fAM to 8:10:00\u202fAM"
    assert swr["fps_label"] == "–" and swr["announce"] == "Smart Work Room: joined"
    assert "No media" not in page and "29.6 fps (mean)" in page
    assert f'href="/sessions/{held.session_id}"' in page
    assert "29,6 i/s (moyenne)" in fragment and "En direct de 08:00:00 à 08:09:00" in fragment


async def test_a_booking_from_the_form_shows_its_organiser_by_name(tmp_path: Path) -> None:
    """Issue 10: the dashboard said "Organiser: mailto:admin@..." for a booking made in
    the web form; it names the organiser as the booking page does."""
    async with at_mid_morning(tmp_path) as app:
        db = app.services.db
        net = await db.run(make_network)
        start = NOW + timedelta(hours=1)

        def book(s: DbSession) -> None:
            admin = s.exec(select(User).where(col(User.email) == ADMIN)).one()
            formed, _ = one_off.book(
                s, "From the form", start, start + timedelta(hours=1), [net.salle_bleue, net.studio]
            )
            formed.owner_id, formed.organiser = admin.id, f"mailto:{ADMIN}"
            imported, _ = one_off.book(
                s,
                "From a calendar",
                start + timedelta(hours=2),
                start + timedelta(hours=3),
                [net.salle_bleue, net.studio],
            )
            imported.organiser = "MAILTO:cfo@amsterdam.example"
            s.add_all([formed, imported])

        await db.run(book)
        async with await logged_in(app, ADMIN) as http:
            state = await get_state(http, app)
            async with http.get(app.url + "/") as r:
                page = await r.text()
    organisers = {s["title"]: s["organiser"] for s in state["sessions"]}
    assert organisers == {"From the form": "Ada Admin", "From a calendar": "cfo@amsterdam.example"}
    assert "Organiser: Ada Admin" in page and "Organiser: cfo@amsterdam.example" in page
    assert "mailto:" not in page.lower()


async def test_a_reminder_reads_as_one_and_an_ending_session_says_when_it_ends(
    tmp_path: Path,
) -> None:
    """Issue 10: a transparent booking's session (a reminder, which never connects) was
    listed as a scheduled session whose rooms had "Not joined", and made its room
    "booked"; it reads "Reminder — no call" with no sites, and its room is free. A
    session five minutes from its end read a bare "Ending": it names the end the
    rooms' screens announce, in the viewer's zone, and says so in its tooltip."""
    async with at_mid_morning(tmp_path) as app:
        db = app.services.db
        net = await db.run(make_network)
        end = NOW + timedelta(minutes=4)

        def book(s: DbSession) -> tuple[str, str]:
            _, call = one_off.book(
                s, "Delegation", end - timedelta(hours=1), end, [net.smart_work_room, net.studio]
            )
            spec = SeriesSpec(
                uid="keys@calendar",
                title="Pick up the keys",
                timezone="Europe/Paris",
                start_local=datetime(2026, 12, 8, 11, 0),  # 10:00 UTC, today
                duration=timedelta(hours=1),
                transparent=True,
            )
            return call.id, commands.create_series(s, spec, [net.salle_bleue], now=NOW).session_ids[
                0
            ]

        call_id, reminder_id = await db.run(book)
        await app.services.scheduler.step()  # the call goes up to its first end warning
        seen: dict[str, tuple[dict[str, Any], str]] = {}
        for email in (ADMIN, PARIS_ORGANISER):
            async with await logged_in(app, email) as http:
                state = await get_state(http, app)
                async with http.get(app.url + "/") as r:
                    seen[email] = (state, await r.text())
        async with await logged_in(app, ADMIN) as http:
            async with http.get(
                app.url + "/dashboard/fragment", headers={"Accept-Language": "fr"}
            ) as r:
                french = await r.text()
            await app.services.clock.set((NOW + timedelta(hours=2)).timestamp())
            await app.services.scheduler.step()  # the reminder's end has passed
            later = await get_state(http, app)

    english = Formatter("en")
    for email, zone in ((ADMIN, "UTC"), (PARIS_ORGANISER, "Europe/Paris")):
        state, page = seen[email]
        sessions = {s["id"]: s for s in state["sessions"]}
        call, reminder = sessions[call_id], sessions[reminder_id]
        at = english.time(end, zone)  # 9:04 AM for the administrator, 10:04 AM in Paris
        assert (call["state"], call["badge"], call["state_label"]) == (
            "ending",
            "ending",
            f"Ends at {at}",
        )
        assert call["state_title"] == f"The rooms' screens warn that the session ends at {at}."
        assert call["announce"].endswith(f"Ends at {at}")
        assert (reminder["state"], reminder["badge"], reminder["reminder"]) == (
            "scheduled",
            "reminder",
            True,
        )
        assert reminder["state_label"] == "Reminder — no call" and reminder["sites"] == []
        assert reminder["note"] == "No call: the rooms stay free (Salle Bleue)."
        assert reminder["under_way"] is False and call["reminder"] is False
        bleue = next(r for r in state["rooms"] if r["id"] == net.salle_bleue)
        assert (bleue["activity"], bleue["activity_label"]) == ("free", "Free")
        # The page the server renders says the same before any script runs.
        article = page.split(f'data-key="session:{reminder_id}"')[1].split("</article>")[0]
        assert 'class="state state-reminder"' in article and "Reminder — no call" in article
        assert "Not joined" not in article and "No call: the rooms stay free" in article
        badge = page.split(f'data-key="session:{call_id}"')[1].split("</h3>")[0]
        assert f'title="The rooms&#39; screens warn that the session ends at {at}."' in badge
        assert 'data-title-field="state_title"' in badge and 'data-class-field="badge"' in badge
    assert "Se termine à 09:04" in french and "Rappel — aucun appel" in french
    over = next(s for s in later["sessions"] if s["id"] == reminder_id)
    assert (over["state"], over["badge"], over["sites"]) == ("ended", "reminder", [])
