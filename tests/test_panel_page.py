"""The room panel over HTTP: the page, its state and its commands, with the whole
service in-process on a fake clock and, where a room must answer, a scripted room
connected through the real signalling protocol."""

from __future__ import annotations

import asyncio
import html
import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from babel.messages.pofile import read_po

from orchestrator import centres
from orchestrator.booking import one_off
from orchestrator.clock import FakeClock
from orchestrator.db import DbSession
from orchestrator.models import Session
from orchestrator.people import accounts, api_tokens
from orchestrator.sessions import panels
from signalling import protocol as p
from signalling.client import SignallingClient
from tests.ui_support import PASSWORD, RunningApp, running_app
from web.settings import Settings
from web.ui import panel as panel_ui

pytestmark = pytest.mark.wall_clock

T0 = datetime(2026, 12, 1, 12, 50, tzinfo=UTC)  # 13:50 in Paris
START = T0 + timedelta(minutes=10)
END = START + timedelta(minutes=30)
ROOT = Path(__file__).resolve().parents[1]
META_CSRF = re.compile(r'<meta name="csrf-token" content="([^"]+)"')


@dataclass
class World:
    app: RunningApp
    clock: FakeClock
    rooms: dict[str, str]
    keys: dict[str, str]
    token: str
    api_token: str
    sessions: dict[str, str] = field(default_factory=dict)

    @property
    def base(self) -> str:
        return f"{self.app.url}/panel/{self.token}"


@asynccontextmanager
async def world(tmp_path: Path, **overrides: Any) -> AsyncIterator[World]:
    clock = FakeClock(T0.timestamp())
    settings = replace(Settings(data_dir=tmp_path, no_show_seconds=3600), **overrides)
    async with running_app(settings, clock=clock) as app:

        def setup(db: DbSession) -> World:
            paris = centres.add_centre(db, "Fontainebleau", "Europe/Paris")
            ams = centres.add_centre(db, "Amsterdam", "Europe/Amsterdam")
            salle, salle_key = centres.add_room(db, paris.id, "Salle Bleue")
            zaal, zaal_key = centres.add_room(db, ams.id, "Zaal 1")
            mine = accounts.create_user(db, "ana@fb.fr", "Ana", PASSWORD, "organiser", paris.id)
            theirs = accounts.create_user(db, "bas@ams.nl", "Bas", PASSWORD, "organiser", ams.id)
            w = World(
                app,
                clock,
                {"salle": salle.id, "zaal": zaal.id},
                {"salle": salle_key, "zaal": zaal_key},
                panels.create_panel_token(db, salle.id),
                api_tokens.create_api_token(db, "test"),
            )
            for name, start, owner, title in [
                ("ours", START, mine, "Comité de pilotage"),
                ("theirs", END + timedelta(minutes=20), theirs, "Amsterdam secret plan"),
            ]:
                booking, session = one_off.book(
                    db,
                    title,
                    start,
                    start + timedelta(minutes=30),
                    [salle.id, zaal.id],
                    connect_mode="one-button",
                )
                booking.owner_id, booking.owner_centre_id = owner.id, owner.centre_id
                db.add(booking)
                w.sessions[name] = session.id
            return w

        w = await app.services.db.run(setup)
        await app.services.scheduler.step()  # the rooms' credentials reach signalling
        yield w


def http(lang: str = "en-GB") -> aiohttp.ClientSession:
    # The service is on 127.0.0.1: aiohttp keeps cookies of IP hosts only when unsafe.
    return aiohttp.ClientSession(
        cookie_jar=aiohttp.CookieJar(unsafe=True), headers={"Accept-Language": lang}
    )


async def open_page(client: aiohttp.ClientSession, w: World) -> tuple[str, str]:
    async with client.get(w.base) as response:
        assert response.status == 200
        text = await response.text()
    match = META_CSRF.search(text)
    assert match
    return text, match.group(1)


async def state(client: aiohttp.ClientSession, w: World) -> dict[str, Any]:
    async with client.get(w.base + "/state") as response:
        assert response.status == 200
        assert response.headers["Cache-Control"] == "no-store"
        data: dict[str, Any] = await response.json()
        return data


async def command(
    client: aiohttp.ClientSession, w: World, csrf: str | None, body: object
) -> tuple[int, Any]:
    headers = {"X-CSRF-Token": csrf} if csrf is not None else {}
    data = body if isinstance(body, str) else json.dumps(body)
    async with client.post(w.base + "/command", data=data, headers=headers) as response:
        try:
            return response.status, await response.json(content_type=None)
        except ValueError:
            return response.status, await response.text()


# --- a scripted room --------------------------------------------------------------------


@dataclass
class ScriptedRoom:
    """A room connected with its key that reports its state and obeys (or refuses)."""

    client: SignallingClient
    state: p.RoomControlState
    received: list[p.Control] = field(default_factory=list)

    async def serve(self) -> None:
        await self.client.send(p.RoomState(state=self.state))
        while True:
            message = await self.client.recv()
            if not isinstance(message, p.Control):
                continue
            self.received.append(message)
            ok, code = True, None
            if message.command == "privacy":
                self.state = replace(self.state, privacy=bool(message.args["on"]))
            elif message.command == "content-share" and message.args["on"]:
                ok, code = False, "no-content-source"
            elif message.command == "join":
                self.state = replace(self.state, session_id=str(message.args["session_id"]))
            elif message.command == "leave":
                self.state = replace(self.state, session_id=None)
            await self.client.send(
                p.ControlResult(
                    request_id=message.request_id,
                    ok=ok,
                    state=self.state,
                    error_code=code,
                    message=None if ok else "no source here",
                )
            )


@asynccontextmanager
async def scripted_room(w: World, name: str) -> AsyncIterator[ScriptedRoom]:
    hub = w.app.services.signalling.hub
    room_id = w.rooms[name]
    async with aiohttp.ClientSession() as session:
        client = SignallingClient(session, w.app.url + "/ws", room_id=room_id, key=w.keys[name])
        await client.connect()
        room = ScriptedRoom(client, p.RoomControlState(False, False, False))
        task = asyncio.create_task(room.serve())
        try:
            for _ in range(200):
                if hub.room_state(room_id) is not None:
                    break
                await asyncio.sleep(0.02)
            assert hub.room_state(room_id) is not None
            yield room
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await client.close()


# --- the page and its state ---------------------------------------------------------------


async def test_an_invalid_panel_link_is_404_with_its_code(tmp_path: Path) -> None:
    async with world(tmp_path) as w, http("fr-FR") as client:
        _, csrf = await open_page(client, w)
        bad = f"{w.app.url}/panel/tcp_{'x' * 43}"
        async with client.get(bad) as response:
            assert response.status == 404
            text = await response.text()
        assert "panel-link-invalid" in text and "Ce lien de panneau n’est pas valide" in text
        async with client.get(bad + "/state") as response:
            assert response.status == 404
            assert (await response.json())["error"]["code"] == "panel-link-invalid"
        headers = {"X-CSRF-Token": csrf}
        body = json.dumps({"command": "privacy", "args": {"on": True}})
        async with client.post(bad + "/command", data=body, headers=headers) as response:
            assert response.status == 404
            assert (await response.json())["error"]["code"] == "panel-link-invalid"

        # A revoked link is refused the same way.
        await w.app.services.db.run(lambda s: panels.revoke_panel_tokens(s, w.rooms["salle"]))
        async with client.get(w.base + "/state") as response:
            assert response.status == 404


async def test_the_page_shows_the_room_clock_and_bookings_and_the_state_counts_down(
    tmp_path: Path,
) -> None:
    async with world(tmp_path) as w, http() as client:
        text, _ = await open_page(client, w)
        for expected in (
            "Salle Bleue",
            "Fontainebleau",
            "Europe/Paris (UTC+01:00)",
            "Comité de pilotage",
        ):
            assert expected in text
        assert 'role="alert"' in text and 'id="warning"' in text
        first = await state(client, w)
        assert first["server_time"] == T0.isoformat()
        assert first["room"]["name"] == "Salle Bleue" and first["room"]["centre"] == "Fontainebleau"
        assert first["clock"]["timezone"] == "Europe/Paris"
        assert first["online"] is False and first["agent"] is None
        assert first["current"] is None
        assert first["next"]["session_id"] == w.sessions["ours"]
        assert first["next"]["starts_in"] == 600
        assert [s["start_local"] for s in first["sessions"]] == ["2:00\u202fPM", "2:50\u202fPM"]
        assert first["sessions"][0]["sites"] == [
            {
                "room": "Zaal 1",
                "centre": "Amsterdam",
                "timezone": "Europe/Amsterdam",
                "start_local": "2:00\u202fPM",
            }
        ]

        await w.clock.advance(1)
        assert (await state(client, w))["next"]["starts_in"] == 599
        await w.clock.set((START - timedelta(seconds=30)).timestamp())
        preparing = (await state(client, w))["current"]
        assert preparing["session_id"] == w.sessions["ours"]
        assert (preparing["phase"], preparing["starts_in"], preparing["joinable"]) == (
            "preparing",
            30,
            True,
        )
        await w.clock.set((END - timedelta(minutes=5)).timestamp())
        ending = (await state(client, w))["current"]
        assert (ending["phase"], ending["warning"], ending["extendable"]) == ("ending", 5, True)
        await w.clock.set((END - timedelta(seconds=10)).timestamp())
        assert (await state(client, w))["current"]["warning"] == 1


def element_text(page: str, element_id: str) -> str:
    """The text of the element with ``element_id`` as the page is served."""
    match = re.search(rf'id="{element_id}"[^>]*>(.*?)</(?:p|div)>', page, flags=re.S)
    assert match, element_id
    return html.unescape(re.sub(r"<[^>]+>", "", match.group(1))).strip()


async def test_the_end_warning_and_the_phase_agree_with_the_countdown(tmp_path: Path) -> None:
    # Issue 10: 1 min 46 s before the end the panel said "This session ends in 5
    # minutes." beside a countdown of 01:46, under a bare "Ending soon" badge.
    async with world(tmp_path) as w, http() as client:
        await w.clock.set((END - timedelta(seconds=106)).timestamp())
        page, _ = await open_page(client, w)
        current = (await state(client, w))["current"]
        assert (current["phase"], current["ends_in"], current["warning"]) == ("ending", 106, 5)
        assert element_text(page, "now-phase") == "Ends in 01:46"
        assert element_text(page, "warning") == "Ending soon: this session ends at 2:30\u202fPM."
        assert "5 minutes" not in page and "5 minutes" not in json.dumps(panel_ui.MESSAGES)
        await w.clock.set((END - timedelta(seconds=59)).timestamp())
        page, _ = await open_page(client, w)
        assert element_text(page, "now-phase") == "Ends in 00:59"
        assert element_text(page, "warning") == "Last minute: this session ends at 2:30\u202fPM."
    # Every message that counts time down takes the live figure or the end time.
    for key in ("phase_ending", "warning_first", "warning_final"):
        assert "{time}" in panel_ui.MESSAGES[key]


async def test_the_extend_hint_shows_only_when_a_room_is_taken_and_says_which(
    tmp_path: Path,
) -> None:
    # Issue 10: "Extend: only offered while every room is free" sat beside buttons
    # that were enabled; the hint is shown only when extending is refused, and why.
    async with world(tmp_path) as w, http() as client:
        await w.clock.set((START + timedelta(minutes=5)).timestamp())
        page, _ = await open_page(client, w)
        live = (await state(client, w))["current"]
        assert (live["extendable"], live["extend_blocked"]) == (True, None)
        assert element_text(page, "extend-hint") == ""

        # Salle Bleue (not Zaal 1) is booked from 10 minutes after the end, with a room
        # of its own centre: 15 more minutes do not fit.
        def book_salle(db: DbSession) -> None:
            salle = centres.get_room(db, w.rooms["salle"])
            verte, _ = centres.add_room(db, salle.centre_id, "Salle Verte")
            later = END + timedelta(minutes=10)
            one_off.book(db, "Later", later, later + timedelta(minutes=5), [salle.id, verte.id])

        await w.app.services.db.run(book_salle)
        page, _ = await open_page(client, w)
        blocked = (await state(client, w))["current"]
        assert blocked["extendable"] is False
        assert blocked["extend_blocked"] == {
            "room": "Salle Bleue",
            "start_local": "2:40\u202fPM",
            "end_local": "2:45\u202fPM",
        }
        assert element_text(page, "extend-hint") == (
            "Cannot extend: Salle Bleue is booked from 2:40\u202fPM to 2:45\u202fPM."
        )
        # The command says the same as the hint: refused, the session unchanged.
        _, csrf = await open_page(client, w)
        extend = {"command": "extend", "args": {"session_id": w.sessions["ours"]}}
        status, answer = await command(client, w, csrf, extend)
        assert (status, answer["error"]["code"]) == (409, "conflict")

        # Amsterdam's panel does not show the session's title (a Paris booking), so it
        # does not name the other room either; in French.
        token = await w.app.services.db.run(lambda s: panels.create_panel_token(s, w.rooms["zaal"]))
        async with http("fr-FR") as french:
            async with french.get(f"{w.app.url}/panel/{token}") as response:
                page = await response.text()
            async with french.get(f"{w.app.url}/panel/{token}/state") as response:
                theirs = (await response.json())["current"]
        assert theirs["private"] is True and theirs["extend_blocked"]["room"] is None
        assert element_text(page, "extend-hint") == (
            "Prolongation impossible\u00a0: une autre salle de cette réunion est réservée "
            "de 14:40 à 14:45."
        )


async def test_other_centres_titles_never_reach_the_panel(tmp_path: Path) -> None:
    async with world(tmp_path) as w, http("fr-FR") as client:
        text, _ = await open_page(client, w)
        data = await state(client, w)
        raw = json.dumps(data, ensure_ascii=False)
        for shown in (text, raw):
            assert "Comité de pilotage" in shown
            assert "Amsterdam secret plan" not in shown
            assert "Bas" not in shown
        assert "Réservé" in text
        theirs = data["sessions"][1]
        assert theirs["title"] is None and theirs["private"] is True and theirs["sites"] == []
        # Amsterdam's own panel shows its title and hides Paris's.
        token = await w.app.services.db.run(lambda s: panels.create_panel_token(s, w.rooms["zaal"]))
        async with client.get(f"{w.app.url}/panel/{token}/state") as response:
            titles = [s["title"] for s in (await response.json())["sessions"]]
        assert titles == [None, "Amsterdam secret plan"]


async def test_the_panel_speaks_the_browser_s_language_and_the_switch_wins(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        for lang, words in [
            (
                "fr-FR,fr;q=0.9",
                ["Prochaines réservations", "Mode confidentiel", "Panneau de salle"],
            ),
            ("en-GB", ["Next bookings", "Privacy mute", "Room panel"]),
            ("nl-NL", ["Volgende reserveringen", "Privacymodus", "Ruimtepaneel"]),
        ]:
            async with http(lang) as client:
                text, _ = await open_page(client, w)
                for word in words:
                    assert word in text, (lang, word)
        async with http("nl-NL") as client:
            async with client.get(
                f"{w.app.url}/lang/fr?next=/panel/{w.token}", allow_redirects=True
            ) as response:
                assert response.status == 200
                assert "Prochaines réservations" in await response.text()
            assert "heure" not in (await state(client, w))["clock"]["date"]  # a date, in French
            assert "décembre" in (await state(client, w))["clock"]["date"]


# --- commands -----------------------------------------------------------------------------


async def test_commands_without_the_csrf_token_are_refused(tmp_path: Path) -> None:
    async with world(tmp_path) as w, http() as client, scripted_room(w, "salle") as room:
        _, csrf = await open_page(client, w)
        body = {"command": "privacy", "args": {"on": True}}
        for token in (None, "forged", csrf[:-1]):
            status, answer = await command(client, w, token, body)
            assert status == 403 and "csrf-failed" in answer
        assert room.received == []
        status, answer = await command(client, w, csrf, body)
        assert status == 200 and answer["ok"] is True


BAD_COMMANDS: list[tuple[object, int, str]] = [
    ("{not json", 400, "bad-json"),
    ([], 400, "bad-command"),
    ({"command": "reboot", "args": {}}, 400, "bad-command"),
    ({"command": "privacy", "args": []}, 400, "bad-command"),
    ({"command": "privacy", "args": {"on": "yes"}}, 400, "bad-command"),
    ({"command": "join", "args": {}}, 400, "bad-command"),
    ({"command": "extend", "args": {"session_id": "x", "minutes": 7}}, 400, "bad-command"),
    ({"command": "extend", "args": {"session_id": "x", "minutes": True}}, 400, "bad-command"),
    ({"command": "join", "args": {"session_id": "nope"}}, 400, "unknown-session"),
    ({"command": "privacy", "args": {"on": True}}, 503, "room-offline"),
]


async def test_bad_commands_get_a_stable_code(tmp_path: Path) -> None:
    async with world(tmp_path) as w, http() as client:
        _, csrf = await open_page(client, w)
        for body, status, code in BAD_COMMANDS:
            got, answer = await command(client, w, csrf, body)
            assert (got, answer["ok"], answer["error"]["code"]) == (status, False, code), body
            assert answer["error"]["message"]


async def test_commands_reach_the_room_and_answer_its_new_state(tmp_path: Path) -> None:
    async with world(tmp_path) as w, http() as client, scripted_room(w, "salle") as room:
        _, csrf = await open_page(client, w)
        before = await state(client, w)
        assert before["online"] is True
        assert before["agent"] == {
            "privacy": False,
            "content_share": False,
            "content_available": False,
            "session_id": None,
        }

        status, answer = await command(
            client, w, csrf, {"command": "privacy", "args": {"on": True}}
        )
        assert status == 200
        assert answer == {
            "ok": True,
            "command": "privacy",
            "state": {
                "privacy": True,
                "content_share": False,
                "content_available": False,
                "session_id": None,
            },
            "error": None,
        }
        assert (room.received[-1].command, room.received[-1].args) == ("privacy", {"on": True})
        assert (await state(client, w))["agent"]["privacy"] is True

        # The room's refusal is its answer: 200, ok false, its code.
        status, answer = await command(
            client, w, csrf, {"command": "content-share", "args": {"on": True}}
        )
        assert (status, answer["ok"], answer["error"]["code"]) == (200, False, "no-content-source")
        assert answer["state"]["content_share"] is False

        # Join: refused by the server before the window opens, obeyed inside it.
        join = {"command": "join", "args": {"session_id": w.sessions["ours"]}}
        status, answer = await command(client, w, csrf, join)
        assert (status, answer["error"]["code"]) == (409, "not-joinable")
        assert [c.command for c in room.received] == ["privacy", "content-share"]
        await w.clock.set((START - timedelta(seconds=30)).timestamp())
        status, answer = await command(client, w, csrf, join)
        assert status == 200 and answer["state"]["session_id"] == w.sessions["ours"]
        assert room.received[-1].args == {"session_id": w.sessions["ours"]}
        assert (await state(client, w))["current"]["joined"] is True
        leave = {"command": "leave", "args": {"session_id": w.sessions["ours"]}}
        status, answer = await command(client, w, csrf, leave)
        assert status == 200 and answer["state"]["session_id"] is None


async def test_extend_lengthens_the_session_unless_a_room_is_taken(tmp_path: Path) -> None:
    async with world(tmp_path) as w, http("fr-FR") as client:
        _, csrf = await open_page(client, w)
        await w.clock.set((END - timedelta(minutes=5)).timestamp())
        extend = {"command": "extend", "args": {"session_id": w.sessions["ours"]}}
        status, answer = await command(client, w, csrf, extend)
        assert status == 200 and answer["ok"] is True and answer["command"] == "extend"
        new_end = END + timedelta(minutes=15)
        assert answer["session"] == {
            "id": w.sessions["ours"],
            "end": new_end.isoformat(),
            "end_local": "14:45",
        }
        row = await w.app.services.db.run(lambda s: s.get(Session, w.sessions["ours"]))
        assert row.end_utc == new_end
        assert (await state(client, w))["current"]["warning"] is None

        # Another 15 minutes would run into Amsterdam's booking of both rooms at 13:50 UTC.
        status, answer = await command(client, w, csrf, extend)
        assert (status, answer["ok"], answer["error"]["code"]) == (409, False, "conflict")
        assert "Amsterdam secret plan" not in json.dumps(answer)
        row = await w.app.services.db.run(lambda s: s.get(Session, w.sessions["ours"]))
        assert row.end_utc == new_end


async def test_the_api_issues_panel_links(tmp_path: Path) -> None:
    async with world(tmp_path, public_url="https://panel.example.test/") as w, http() as client:
        url = f"{w.app.url}/api/v1/rooms/{w.rooms['zaal']}/panel-token"
        async with client.post(url) as response:
            assert response.status == 401
        auth = {"Authorization": f"Bearer {w.api_token}"}
        async with client.post(url, headers=auth) as response:
            assert response.status == 201
            link = (await response.json())["url"]
        assert link.startswith("https://panel.example.test/panel/tcp_")
        token = link.rsplit("/", 1)[1]
        room = await w.app.services.db.run(lambda s: panels.resolve_panel(s, token))
        assert room.id == w.rooms["zaal"]
        async with client.post(
            f"{w.app.url}/api/v1/rooms/nope/panel-token", headers=auth
        ) as response:
            assert response.status == 404
            assert (await response.json())["error"]["code"] == "not-found"


# --- translations -------------------------------------------------------------------------


def panel_msgids() -> set[str]:
    template = (ROOT / "web/templates/panel/panel.html").read_text()
    found = set(re.findall(r"""pgettext\(["']panel["'], ["']([^"']+)["']""", template))
    assert len(found) >= 8  # the pattern still matches the template
    return found | set(panel_ui.MESSAGES.values())


@pytest.mark.parametrize("lang", ["fr", "nl"])
def test_every_panel_message_is_translated(lang: str) -> None:
    path = ROOT / f"web/locale/{lang}/LC_MESSAGES/panel.po"
    with path.open("rb") as fh:
        catalogue = read_po(fh, locale=lang)
    translated = {
        m.id for m in catalogue if m.id and m.string and m.context == "panel" and not m.fuzzy
    }
    assert panel_msgids() - translated == set()
    for message in catalogue:
        if message.id and "{" in str(message.id):
            fields = set(re.findall(r"\{\w+\}", str(message.id)))
            assert fields == set(re.findall(r"\{\w+\}", str(message.string))), message.id
