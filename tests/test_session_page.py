"""Issue 10: a session's page (``GET /sessions/{id}``) keeps its history after it
ended: its sites, when each joined and left, the media each kept, its transitions,
with the booking's access rules. Pure parts (kept figures, the organiser's name,
when a booking takes guests) are tested directly."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiohttp import ClientSession
from sqlmodel import col, select

from orchestrator.clock import FakeClock
from orchestrator.models import User
from orchestrator.sessions import participation
from orchestrator.sessions.history import kept_media, parse_summary
from orchestrator.sessions.invitations import invitations_open
from tests.dashboard_support import (
    AMSTERDAM_STAFF,
    PARIS_ORGANISER,
    logged_in,
    make_network,
)
from tests.session_history_support import REPORTS, Held, hold_ended_session
from tests.ui_support import running_app
from web.settings import Settings
from web.ui.organiser import organiser_label

NOW = datetime(2026, 12, 8, 9, 0, tzinfo=UTC)  # 10:00 in Paris and Amsterdam
START = NOW - timedelta(hours=2)


def test_kept_media_reads_the_summary_the_reports_were_folded_into() -> None:
    summary: dict[str, object] = {}
    for after, figures in REPORTS:
        folded = participation.summarise_media(summary, {"peer_id": "room:x", **figures}, after)
        assert folded is not None
        summary = folded
    kept = kept_media(summary)
    assert kept is not None
    assert (kept.reports, kept.freezes, kept.packets_lost) == (3, 1, 3)
    assert kept.fps_mean == pytest.approx(29.6) and kept.fps_latest == 29.7
    assert kept.latency_p50_ms_max == 95.0 and kept.loss_fraction_max == 0.004
    assert kept.rtt_ms_mean == pytest.approx(18.0) and kept.rtt_ms_max == 30.0
    # No media report counted (only the agent's process), or nothing kept: no figures.
    assert kept_media({"process_last_at": 5.0, "cpu_percent_mean": 12.0}) is None
    assert kept_media(parse_summary(None)) is None
    assert parse_summary("not json") == {} and parse_summary("[1]") == {}
    # A summary written by another version: what is not a finite number is unknown.
    odd = kept_media({"reports": 2, "fps_mean": "fast", "rtt_ms_max": float("inf")})
    assert odd is not None and odd.fps_mean is None and odd.rtt_ms_max is None


def test_the_organiser_is_named_as_on_the_booking_page() -> None:
    assert organiser_label("Ada Admin", "mailto:admin@telecentre.demo") == "Ada Admin"
    assert organiser_label(None, "mailto:admin@telecentre.demo") == "admin@telecentre.demo"
    assert organiser_label(None, "MAILTO:cfo@example.org") == "cfo@example.org"
    assert organiser_label("  ", " cfo@example.org ") == "cfo@example.org"
    assert organiser_label(None, "mailto:") is None and organiser_label(None, None) is None


def test_a_booking_takes_guests_while_an_occurrence_is_ahead_or_under_way() -> None:
    soon, gone = NOW + timedelta(minutes=1), NOW - timedelta(minutes=1)

    def open_(occurrences: list[tuple[str, datetime]]) -> bool:
        return invitations_open(occurrences, NOW, transparent=False, connect_mode="automatic")

    assert open_([("scheduled", soon)])
    assert open_([("live", soon), ("ended", gone)])
    assert not open_([("ended", gone)])
    assert not open_([("ended", soon), ("cancelled", soon), ("failed", soon)])
    assert not open_([("scheduled", gone)])  # past its end, state aside
    assert not open_([])


async def _page(http: ClientSession, url: str) -> tuple[int, str]:
    async with http.get(url, allow_redirects=False) as r:
        return r.status, await r.text()


async def test_the_session_page_keeps_sites_media_and_transitions(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    async with running_app(settings, clock=FakeClock(NOW.timestamp())) as app:
        db = app.services.db
        net = await db.run(make_network)
        staff = await db.run(
            lambda s: s.exec(select(User).where(col(User.email) == AMSTERDAM_STAFF)).one()
        )
        # Amsterdam's own meeting, owned by its staff: no business of Paris.
        held: Held = await db.run(
            hold_ended_session(
                "Board of Amsterdam",
                START,
                [net.smart_work_room, net.studio],
                owner_id=staff.id,
                owner_centre_id=net.amsterdam,
                organiser=f"mailto:{AMSTERDAM_STAFF}",
            )
        )
        url = f"{app.url}/sessions/{held.session_id}"
        async with await logged_in(app, AMSTERDAM_STAFF) as http:
            status, html = await _page(http, url)
            missing, _ = await _page(http, f"{app.url}/sessions/{'0' * 32}")
            http.cookie_jar.update_cookies({"tc_lang": "fr"})
            status_fr, french = await _page(http, url)
        async with await logged_in(app, PARIS_ORGANISER) as http:
            refused, hidden = await _page(http, url)
        async with ClientSession() as http:
            anonymous, _ = await _page(http, url)

    assert status == 200 and status_fr == 200
    assert "Board of Amsterdam" in html and f'href="/bookings/{held.booking_id}"' in html
    assert "Sanne" in html and "mailto:" not in html  # the organiser, by name
    assert "Smart Work Room" in html and "Studio" in html
    # Smart Work Room joined 50 s before 08:00 (Amsterdam), first frame 5 s later, went
    # live at the start and left at 08:09; its media over the session.
    assert "<dd>Europe/Amsterdam</dd>" in html  # the booking's zone: Sanne has none
    row = html.split('data-room="' + net.smart_work_room + '"')[1].split("</tr>")[0]
    for text in ("7:59:10", "7:59:15", "8:00:00", "8:09:00", "29.6 fps", "95 ms", "0.4%"):
        assert text in row, text
    assert "18 ms (worst 30 ms)" in row and ">1</td>" in row  # one freeze
    studio = html.split('data-room="' + net.studio + '"')[1].split("</tr>")[0]
    assert "No media figures were kept." in studio
    transitions = html.split('class="transitions"')[1].split("</ol>")[0]
    assert [t in transitions for t in ("T-60 s", "T+0 s", "T+300 s", "T+600 s")] == [True] * 4
    assert transitions.index("Connecting") < transitions.index("Ended")
    # In French: decimal commas and the French names.
    assert "29,6 i/s" in french and "Transitions" in french and "Aller-retour" in french
    # Someone without rights on the booking: nothing of it, as for the booking page.
    assert refused == 404 and "Board of Amsterdam" not in hidden and "Sanne" not in hidden
    assert missing == 404
    assert anonymous == 303
