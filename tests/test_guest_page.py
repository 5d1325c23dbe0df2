"""The guest join page over HTTP, the whole service in-process on a fake clock: the
refusal pages and their codes, the page inside the window (each site's local time),
and the ticket: minted only inside the window, only with the CSRF header, made out
to the guest, and accepted by signalling."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import pytest

from orchestrator import centres
from orchestrator.booking import one_off
from orchestrator.clock import FakeClock
from orchestrator.db import DbSession
from orchestrator.models import Booking
from orchestrator.sessions import guests
from orchestrator.sessions.tickets import ticket_window
from signalling.client import SignallingClient, SignallingError
from tests.ui_support import RunningApp, running_app
from web.settings import Settings

START = datetime(2027, 3, 11, 9, 0, tzinfo=UTC)  # 10:00 in Paris, 04:00 in Montreal
END = START + timedelta(hours=1)
OPENS = START - timedelta(minutes=15)
META_CSRF = re.compile(r'<meta name="csrf-token" content="([^"]*)"')


@dataclass
class Meeting:
    app: RunningApp
    clock: FakeClock
    http: aiohttp.ClientSession
    booking_id: str
    session_id: str
    guest_id: str
    token: str

    async def at(self, when: datetime) -> None:
        await self.clock.set(when.timestamp())

    async def page(self, token: str | None = None, **headers: str) -> tuple[int, str]:
        async with self.http.get(
            f"{self.app.url}/join/{token or self.token}", headers=headers
        ) as r:
            return r.status, await r.text()

    async def csrf(self) -> str:
        """The CSRF token a visitor's page carries (any page sets the cookie)."""
        async with self.http.get(f"{self.app.url}/join/tcg_unknown") as r:
            match = META_CSRF.search(await r.text())
        assert match
        return match.group(1)

    async def ticket(
        self, token: str | None = None, csrf: str | None = None
    ) -> tuple[int, dict[str, Any] | str]:
        headers = {"X-CSRF-Token": csrf} if csrf is not None else {}
        async with self.http.post(
            f"{self.app.url}/join/{token or self.token}/ticket", headers=headers
        ) as r:
            if r.content_type == "application/json":
                return r.status, await r.json()
            return r.status, await r.text()


@pytest.fixture
async def meeting(tmp_path: Path) -> AsyncIterator[Meeting]:
    clock = FakeClock((START - timedelta(days=1)).timestamp())
    settings = Settings(data_dir=tmp_path, poll_interval=0.05)
    async with running_app(settings, clock=clock) as app:

        def work(s: DbSession) -> tuple[str, str, str, str]:
            paris = centres.add_centre(s, "IT77 Fontainebleau", "Europe/Paris")
            montreal = centres.add_centre(s, "Montréal Coworking", "America/Montreal")
            rooms = [
                centres.add_room(s, paris.id, "Salle TelePresence")[0].id,
                centres.add_room(s, montreal.id, "Salle du fleuve")[0].id,
            ]
            booking, session = one_off.book(s, "Délégation Québec", START, END, rooms)
            guest, token = guests.add_guest(
                s, booking.id, "Ada Lovelace", now=START - timedelta(days=1)
            )
            return booking.id, session.id, guest.id, token

        ids = await app.services.db.run(work)
        jar = aiohttp.CookieJar(unsafe=True)  # cookies for 127.0.0.1
        async with aiohttp.ClientSession(cookie_jar=jar) as http:
            yield Meeting(app, clock, http, *ids)


async def test_an_unknown_link_is_a_404_page_naming_its_code(meeting: Meeting) -> None:
    await meeting.at(START)
    status, body = await meeting.page("tcg_not-a-real-link")
    assert status == 404
    assert "guest-link-invalid" in body and "This link is not valid" in body
    assert "Délégation" not in body


async def test_before_the_window_the_page_says_when_the_link_opens(meeting: Meeting) -> None:
    await meeting.at(OPENS - timedelta(seconds=1))
    status, body = await meeting.page()
    assert status == 403
    assert "guest-link-outside-window" in body and "not open yet" in body
    assert f'datetime="{OPENS.isoformat()}"' in body
    csrf = await meeting.csrf()
    status, answer = await meeting.ticket(csrf=csrf)
    assert status == 403 and isinstance(answer, dict)
    assert answer["error"]["code"] == "guest-link-outside-window"
    assert answer["error"]["opens_at"] == OPENS.timestamp()
    assert "ticket" not in answer


async def test_inside_the_window_the_page_shows_the_meeting_and_every_site(
    meeting: Meeting,
) -> None:
    await meeting.at(OPENS)
    status, body = await meeting.page()
    assert status == 200
    assert "Délégation Québec" in body and "Ada Lovelace" in body
    # Each site's local time beside its zone: 10:00 in Paris, 04:00 in Montreal
    # (still on standard time: North America moves its clocks on 14 March 2027).
    assert re.search(r"10:00\sAM.{0,4}11:00\sAM.{0,40}Europe/Paris", body, re.S)
    assert re.search(r"4:00\sAM.{0,4}5:00\sAM.{0,40}America/Montreal", body, re.S)
    assert "Salle TelePresence" in body and "Montréal Coworking" in body
    # The browser's own zone is filled in by the page from the instant it carries.
    assert f'datetime="{START.isoformat()}"' in body
    for control in ('id="camera"', 'id="microphone"', 'id="level"', 'id="join"', "guest.js"):
        assert control in body


async def test_the_page_speaks_french_and_dutch(meeting: Meeting) -> None:
    await meeting.at(START)
    _, body = await meeting.page(**{"Accept-Language": "fr-FR,fr;q=0.9"})
    assert 'lang="fr"' in body and "Rejoindre la réunion" in body
    assert "Vérifiez votre caméra et votre micro" in body
    status, body = await meeting.page("tcg_nope", **{"Accept-Language": "nl"})
    assert status == 404 and "Deze link is niet geldig" in body


async def test_the_ticket_is_a_guest_ticket_for_the_session_window(meeting: Meeting) -> None:
    await meeting.at(START + timedelta(minutes=5))
    status, answer = await meeting.ticket(csrf=await meeting.csrf())
    assert status == 200 and isinstance(answer, dict), answer
    nbf, exp = ticket_window(START.timestamp(), END.timestamp(), 60)
    claims = jwt.decode(
        answer["ticket"],
        meeting.app.services.signer.public_key_pem(),
        algorithms=["EdDSA"],
        options={"verify_exp": False, "verify_nbf": False, "verify_iat": False},
    )
    assert claims["sub"] == f"guest:{meeting.guest_id}"
    assert claims["sid"] == meeting.session_id == answer["session_id"]
    assert claims["role"] == "guest" and claims["name"] == "Ada Lovelace"
    assert (claims["nbf"], claims["exp"]) == (nbf, exp)
    assert answer["joinable_at"] == nbf
    assert answer["server_time"] == (START + timedelta(minutes=5)).timestamp()
    assert answer["ws_url"] == meeting.app.url.replace("http://", "ws://") + "/ws"
    assert answer["ice_servers"] == []
    # Signalling admits the guest with it (its clock is the same fake clock).
    client = SignallingClient(meeting.http, answer["ws_url"], ticket=answer["ticket"])
    try:
        welcome = await client.connect()
        assert welcome.peer_id == f"guest:{meeting.guest_id}"
        assert welcome.name == "Ada Lovelace"
        assert welcome.ice_servers == []
        joined = await client.join(meeting.session_id, answer["ticket"])
        assert joined.peer_id == welcome.peer_id
    finally:
        await client.close()


async def test_the_ticket_needs_the_csrf_header(meeting: Meeting) -> None:
    await meeting.at(START)
    for csrf in (None, "forged-token"):
        status, answer = await meeting.ticket(csrf=csrf)
        assert status == 403 and isinstance(answer, str)
        assert "csrf-failed" in answer and "eyJ" not in answer


async def test_the_ticket_is_refused_once_the_link_is_revoked(meeting: Meeting) -> None:
    await meeting.at(START)
    csrf = await meeting.csrf()
    assert (await meeting.ticket(csrf=csrf))[0] == 200
    await meeting.app.services.db.run(lambda s: guests.revoke_guest(s, meeting.guest_id, START))
    status, answer = await meeting.ticket(csrf=csrf)
    assert status == 410 and isinstance(answer, dict)
    assert answer["error"]["code"] == "guest-link-revoked"
    status, body = await meeting.page()
    assert status == 410 and "guest-link-revoked" in body and "withdrawn" in body


async def test_after_the_end_the_link_opens_nothing(meeting: Meeting) -> None:
    await meeting.at(END)
    status, body = await meeting.page()
    assert status == 403 and "guest-link-outside-window" in body
    assert "over or was cancelled" in body and 'id="opens"' not in body
    status, answer = await meeting.ticket(csrf=await meeting.csrf())
    assert status == 403 and isinstance(answer, dict)
    assert "opens_at" not in answer["error"]


async def test_a_reminder_s_link_says_there_is_no_call(meeting: Meeting) -> None:
    """Issue 10: the event was marked free in the organiser's calendar after the guest
    was invited (a re-import turns the booking transparent): its session is a
    reminder, which no room joins. The link said nothing of it and opened a join page
    with nobody to meet; it says there is no call, in the visitor's language."""

    def turn_transparent(s: DbSession) -> None:
        booking = s.get(Booking, meeting.booking_id)
        assert booking is not None
        booking.transparent = True
        s.add(booking)

    await meeting.app.services.db.run(turn_transparent)
    await meeting.at(START)
    status, body = await meeting.page()
    assert status == 403 and "guest-link-no-call" in body
    assert "This meeting has no call" in body and "nothing to join" in body
    assert 'id="join"' not in body
    status, answer = await meeting.ticket(csrf=await meeting.csrf())
    assert status == 403 and isinstance(answer, dict)
    assert answer["error"]["code"] == "guest-link-no-call"
    assert "nothing to join" in answer["error"]["message"]
    status, french = await meeting.page(**{"Accept-Language": "fr"})
    assert status == 403 and "Cette réunion n’a pas d’appel" in french


async def test_a_signalling_refusal_of_a_stale_ticket_is_not_the_page_s_business(
    meeting: Meeting,
) -> None:
    """A ticket minted early is refused by signalling until its window opens."""
    await meeting.at(OPENS)
    status, answer = await meeting.ticket(csrf=await meeting.csrf())
    assert status == 200 and isinstance(answer, dict)
    assert answer["joinable_at"] > OPENS.timestamp()  # 6 min before the start, not 15
    client = SignallingClient(meeting.http, answer["ws_url"], ticket=answer["ticket"])
    try:
        with pytest.raises(SignallingError) as refused:
            await client.connect()
        assert refused.value.code == "ticket-not-yet-valid"
    finally:
        await client.close()


async def test_a_restarted_service_still_refuses_a_guest_revoked_before(tmp_path: Path) -> None:
    """Signalling keeps revocations in memory; the service tells it again at start."""
    clock = FakeClock(START.timestamp())
    settings = Settings(data_dir=tmp_path, poll_interval=0.05)

    def work(s: DbSession) -> tuple[str, str]:
        paris = centres.add_centre(s, "Paris", "Europe/Paris")
        rooms = [centres.add_room(s, paris.id, n)[0].id for n in ("A", "B")]
        booking, _ = one_off.book(s, "Revue", START, END, rooms)
        kept, _ = guests.add_guest(s, booking.id, "Kept", now=START)
        gone, _ = guests.add_guest(s, booking.id, "Gone", now=START)
        guests.revoke_guest(s, gone.id, START)
        return kept.id, gone.id

    async with running_app(settings, clock=clock) as first:
        kept, gone = await first.services.db.run(work)
    async with running_app(settings, clock=clock) as second:
        tickets = second.services.signalling.tickets
        assert tickets.subject_revoked(f"guest:{gone}")
        assert not tickets.subject_revoked(f"guest:{kept}")
