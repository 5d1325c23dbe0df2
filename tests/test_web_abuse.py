"""Bad values never crash a handler: the JSON API and the forms answer each with 400
(404 for an id that names nothing) and a stable code, the log holds no traceback,
and the request that follows is served.

One table per door: every JSON API route (web/api.py, web/calendars.py, the panel's
command) with deeply nested JSON, unpaired surrogates, numbers of 400 digits and
beyond float range, instants in years 1 and 9999 with offsets of ±23:59, the zone
"../../etc/passwd", line breaks and NUL in titles, names, aliases, URLs; and every
form (web/ui) with line breaks in titles, names and guest emails (a mail header
injection), dates in years 1 and 9999, unknown zones. Each was a 500, a traceback,
or a stored value that would break a mail header, before (issue 9, items 3 and 7).
"""

from __future__ import annotations

import html
import json
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
import sqlalchemy as sa
from multidict import MultiDict
from sqlmodel import select

from orchestrator import inputs
from orchestrator.booking import one_off
from orchestrator.booking.recurrence import localize
from orchestrator.calendars import tokens
from orchestrator.clock import FakeClock
from orchestrator.db import DbSession
from orchestrator.errors import DomainError
from orchestrator.models import Booking, Centre, Guest, OutboxMail, Room, User
from orchestrator.people import api_tokens
from orchestrator.sessions import panels
from tests.accounts_support import ADMIN, Network, add_network, browser_like, log_in
from tests.test_migrations import POSTGRES_URL, _postgres_or_skip
from tests.ui_support import RunningApp, csrf_of, running_app
from web.api import parse_json
from web.live_media import LiveMedia
from web.settings import Settings

NOW = datetime(2030, 6, 3, 7, 0, tzinfo=UTC)
NESTED_ARRAY = "[" * 20_000 + "]" * 20_000
NESTED_OBJECT = '{"a":' * 10_000 + "1" + "}" * 10_000
DIGITS_400 = "9" * 400
FAR_PAST = "0001-01-01T00:00:00+23:59"
FAR_FUTURE = "9999-12-31T23:59:59-23:59"
FAR_PAST_QUERY = FAR_PAST.replace("+", "%2B")  # a bare "+" in a query string is a space
SURROGATE = '"\\ud800"'  # JSON text for an unpaired surrogate
GOOD_START = "2030-06-10T09:00:00+02:00"
GOOD_END = "2030-06-10T10:00:00+02:00"


@dataclass
class World:
    app: RunningApp
    network: Network
    ids: dict[str, str]
    auth: dict[str, str] = field(default_factory=dict)


@pytest_asyncio.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    clock = FakeClock(NOW.timestamp())
    async with running_app(Settings(data_dir=tmp_path), clock=clock) as app:
        network = await add_network(app.services.db)

        def setup(s: DbSession) -> dict[str, str]:
            start = NOW + timedelta(days=1)
            rooms = [network.paris_room, network.amsterdam_room]
            booking, session = one_off.book(s, "Comité", start, start + timedelta(hours=1), rooms)
            return {
                "booking": booking.id,
                "session": session.id,
                "room": network.paris_room,
                "centre": network.paris,
                "panel": panels.create_panel_token(s, network.paris_room),
                "calendar": tokens.create_room_token(s, network.paris_room).token,
                "api": api_tokens.create_api_token(s, "abuse"),
            }

        ids = await app.services.db.run(setup)
        yield World(app, network, ids, {"Authorization": f"Bearer {ids['api']}"})


def _booking(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"title": "Delegation", "start": GOOD_START, "end": GOOD_END}
    body.update(changes)
    return body


@dataclass(frozen=True, slots=True)
class ApiCase:
    name: str
    method: str
    path: str
    body: str | dict[str, Any] | None
    status: int
    code: str


# {room}, {booking}, {calendar}, {panel} are replaced by the world's ids. A body given
# as a string is sent as is (JSON text); a dict is encoded, and "@ROOMS" becomes the
# two room ids.
API_CASES = [
    ApiCase("nested array", "POST", "/api/v1/centres", NESTED_ARRAY, 400, "bad-json"),
    ApiCase("nested object", "POST", "/api/v1/bookings", NESTED_OBJECT, 400, "bad-json"),
    ApiCase("deep but parseable", "POST", "/api/v1/centres", "[" * 40 + "]" * 40, 400, "bad-json"),
    ApiCase(
        "surrogate in a name",
        "POST",
        "/api/v1/centres",
        '{"name": "X' + SURROGATE[1:-1] + '", "timezone": "UTC"}',
        400,
        "bad-json",
    ),
    ApiCase(
        "surrogate in a key",
        "POST",
        "/api/v1/rooms",
        "{" + SURROGATE + ': 1, "centre_id": "c", "name": "n"}',
        400,
        "bad-json",
    ),
    ApiCase(
        "surrogate in an alias",
        "PATCH",
        "/api/v1/rooms/{room}",
        '{"aliases": [' + SURROGATE + "]}",
        400,
        "bad-json",
    ),
    ApiCase(
        "surrogate in a title",
        "POST",
        "/api/v1/bookings",
        '{"title": ' + SURROGATE + ', "start": "x", "end": "y", "room_ids": []}',
        400,
        "bad-json",
    ),
    ApiCase(
        "400 digits",
        "PATCH",
        "/api/v1/rooms/{room}",
        '{"buffer_seconds": ' + DIGITS_400 + "}",
        400,
        "bad-request",
    ),
    ApiCase(
        "400 digits as a lead",
        "POST",
        "/api/v1/bookings",
        '{"title": "t", "start": "'
        + GOOD_START
        + '", "end": "'
        + GOOD_END
        + '", "room_ids": [], "lead_seconds": '
        + DIGITS_400
        + "}",
        400,
        "bad-request",
    ),
    ApiCase("5000 digits", "POST", "/api/v1/centres", '{"x": ' + "9" * 5000 + "}", 400, "bad-json"),
    ApiCase("float overflow", "POST", "/api/v1/centres", '{"name": 1e400}', 400, "bad-json"),
    ApiCase("NaN", "POST", "/api/v1/centres", '{"name": NaN}', 400, "bad-json"),
    ApiCase("not UTF-8", "POST", "/api/v1/centres", None, 400, "bad-json"),
    ApiCase(
        "zone is a path",
        "POST",
        "/api/v1/centres",
        {"name": "Evil", "timezone": "../../etc/passwd"},
        400,
        "unknown-timezone",
    ),
    ApiCase(
        "booking zone is a path",
        "POST",
        "/api/v1/bookings",
        _booking(room_ids="@ROOMS", timezone="../../etc/passwd"),
        400,
        "unknown-timezone",
    ),
    ApiCase(
        "booking zone is a directory",
        "POST",
        "/api/v1/bookings",
        _booking(room_ids="@ROOMS", timezone="Europe/"),
        400,
        "unknown-timezone",
    ),
    ApiCase(
        "year 1 with +23:59",
        "POST",
        "/api/v1/bookings",
        _booking(room_ids="@ROOMS", start=FAR_PAST),
        400,
        "invalid-time",
    ),
    ApiCase(
        "year 9999 with -23:59",
        "POST",
        "/api/v1/bookings",
        _booking(room_ids="@ROOMS", end=FAR_FUTURE),
        400,
        "invalid-time",
    ),
    ApiCase(
        "year 1 in UTC",
        "POST",
        "/api/v1/bookings",
        _booking(room_ids="@ROOMS", start="0001-01-01T00:00:00Z"),
        400,
        "invalid-time",
    ),
    ApiCase(
        "line break in a title",
        "POST",
        "/api/v1/bookings",
        _booking(room_ids="@ROOMS", title="Hi\r\nBcc: victim@example.org"),
        400,
        "invalid-name",
    ),
    ApiCase(
        "NUL in a title",
        "POST",
        "/api/v1/bookings",
        _booking(room_ids="@ROOMS", title="Hi\x00"),
        400,
        "bad-json",
    ),
    ApiCase(
        "line separator in a title",
        "POST",
        "/api/v1/bookings",
        _booking(room_ids="@ROOMS", title="Hi\u2028there"),
        400,
        "invalid-name",
    ),
    ApiCase(
        "line break in a centre's name",
        "POST",
        "/api/v1/centres",
        {"name": "A\nB", "timezone": "UTC"},
        400,
        "invalid-name",
    ),
    ApiCase(
        "NUL in a room's name",
        "POST",
        "/api/v1/rooms",
        {"centre_id": "{centre}", "name": "R\x00"},
        400,
        "bad-json",
    ),
    ApiCase(
        "line break in an alias",
        "PATCH",
        "/api/v1/rooms/{room}",
        {"aliases": ["Salle\r\nBleue"]},
        400,
        "invalid-alias",
    ),
    ApiCase(
        "line break in a feed URL",
        "POST",
        "/api/v1/feeds",
        {"url": "https://cal.example.org/\r\nHost: evil"},
        400,
        "bad-request",
    ),
    ApiCase(
        "line break in a CalDAV user",
        "POST",
        "/api/v1/caldav-links",
        {"room_id": "{room}", "calendar_url": "https://dav.example.org/", "username": "a\nb"},
        400,
        "bad-request",
    ),
    ApiCase(
        "a CalDAV URL that is not http",
        "POST",
        "/api/v1/caldav-links",
        {"room_id": "{room}", "calendar_url": "file:///etc/passwd"},
        400,
        "bad-request",
    ),
    ApiCase(
        "far from", "GET", "/api/v1/sessions?from=" + FAR_PAST_QUERY, None, 400, "invalid-time"
    ),
    ApiCase("far to", "GET", "/api/v1/sessions?to=" + FAR_FUTURE, None, 400, "invalid-time"),
    ApiCase(
        "long instant text", "GET", "/api/v1/sessions?from=" + "2" * 5000, None, 400, "invalid-time"
    ),
    ApiCase(
        "far occurrence",
        "GET",
        "/api/v1/bookings/{booking}/invitation.ics?method=cancel&occurrence=" + FAR_FUTURE,
        None,
        400,
        "invalid-time",
    ),
    ApiCase(
        "line break in a join link",
        "GET",
        "/api/v1/bookings/{booking}/invitation.ics?join=https://x.test/%0D%0AATTENDEE:x",
        None,
        400,
        "bad-request",
    ),
    ApiCase(
        "NUL in an import's name",
        "POST",
        "/api/v1/calendars/import?name=a%00",
        "BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n",
        400,
        "bad-request",
    ),
    ApiCase(
        "far free/busy start",
        "GET",
        "/calendars/{calendar}/freebusy.ics?from=" + FAR_PAST_QUERY,
        None,
        400,
        "invalid-time",
    ),
    ApiCase(
        "far free/busy end",
        "GET",
        "/calendars/{calendar}/freebusy.ics?to=" + FAR_FUTURE,
        None,
        400,
        "invalid-time",
    ),
    ApiCase(
        "year 9999 free/busy",
        "GET",
        "/calendars/{calendar}/freebusy.ics?from=9999-12-31T00:00:00Z",
        None,
        400,
        "invalid-time",
    ),
    ApiCase(
        # Under the panel's 4 KiB cap, still deeper than Python's parser recurses.
        "nested panel command",
        "POST",
        "/panel/{panel}/command",
        "[" * 2000 + "]" * 2000,
        400,
        "bad-json",
    ),
    ApiCase(
        "surrogate in a panel command",
        "POST",
        "/panel/{panel}/command",
        '{"command": ' + SURROGATE + "}",
        400,
        "bad-json",
    ),
]


def _fill(text: str, w: World) -> str:
    for name, value in w.ids.items():
        text = text.replace("{" + name + "}", value)
    return text


def _payload(case: ApiCase, w: World) -> tuple[bytes | None, dict[str, str]]:
    if case.body is None:
        if case.name == "not UTF-8":
            return b'{"name": "\xff\xfe"}', {"Content-Type": "application/json"}
        return None, {}
    if isinstance(case.body, str):
        return _fill(case.body, w).encode(), {"Content-Type": "application/json"}
    body = {
        k: [w.network.paris_room, w.network.amsterdam_room]
        if v == "@ROOMS"
        else _fill(v, w)
        if isinstance(v, str)
        else v
        for k, v in case.body.items()
    }
    return json.dumps(body).encode(), {"Content-Type": "application/json"}


def tracebacks(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        f"{r.name}: {r.getMessage()}"
        for r in caplog.records
        if r.exc_info is not None or r.levelno >= logging.ERROR
    ]


async def _served_after(http: aiohttp.ClientSession, w: World) -> None:
    async with http.get(w.app.url + "/api/v1/centres", headers=w.auth) as response:
        assert response.status == 200
        assert len((await response.json())["centres"]) == 2


@pytest.mark.parametrize("case", API_CASES, ids=[c.name for c in API_CASES])
async def test_every_bad_value_on_the_api_is_a_400_with_its_code_and_no_traceback(
    world: World, case: ApiCase, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    body, headers = _payload(case, world)
    url = world.app.url + _fill(case.path, world)
    async with browser_like() as http:
        if case.path.startswith("/panel/"):  # a page: its commands need the CSRF token
            page = url.removesuffix("/command")
            headers["X-CSRF-Token"] = await csrf_of(http, page)
        async with http.request(
            case.method, url, data=body, headers={**world.auth, **headers}
        ) as response:
            answer = await response.json()
        assert (response.status, answer["error"]["code"]) == (case.status, case.code), answer
        assert tracebacks(caplog) == []
        await _served_after(http, world)

    def stored(s: DbSession) -> list[str]:
        rows = [*s.exec(select(Centre.name)), *s.exec(select(Room.name))]
        return [*rows, *s.exec(select(Booking.title)), *s.exec(select(Room.aliases))]

    for text in await world.app.services.db.run(stored):
        assert inputs.text_problem(text) is None, text


# --- forms ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FormCase:
    name: str
    path: str
    page: str
    fields: tuple[tuple[str, str], ...]
    message: str


BOOKING = (
    ("title", "Delegation"),
    ("date", "2030-06-10"),
    ("start", "09:00"),
    ("end", "10:00"),
    ("zone", "Europe/Paris"),
    ("lead", "1"),
    ("connect_mode", "automatic"),
    ("room", "{room}"),
    ("room", "{other_room}"),
)


def _booking_form(**changes: str) -> tuple[tuple[str, str], ...]:
    kept = tuple((k, v) for k, v in BOOKING if k not in changes)
    return kept + tuple(changes.items())


FORM_CASES = [
    FormCase(
        "line break in a centre's name",
        "/admin/centres",
        "/admin/centres",
        (("name", "A\r\nB"), ("timezone", "UTC")),
        "Enter a name.",
    ),
    FormCase(
        "zone is a path",
        "/admin/centres",
        "/admin/centres",
        (("name", "Evil"), ("timezone", "../../etc/passwd")),
        "Choose a time zone from the list.",
    ),
    FormCase(
        "NUL in a room's name",
        "/admin/centres/{centre}/rooms",
        "/admin/centres/{centre}",
        (("name", "R\x00"),),
        "The form holds a character no field accepts (NUL).",
    ),
    FormCase(
        "line break in an alias",
        "/admin/centres/{centre}/rooms/{room}",
        "/admin/centres/{centre}",
        (("buffer", "0"), ("max_advance", "180"), ("max_duration", ""), ("aliases", "a\nb")),
        "Each alias is a name on one line, at most 200 characters.",
    ),
    FormCase(
        "400 digits as a buffer",
        "/admin/centres/{centre}/rooms/{room}",
        "/admin/centres/{centre}",
        (("buffer", DIGITS_400), ("max_advance", "180"), ("max_duration", "")),
        "A buffer is between 0 and 240 minutes.",
    ),
    FormCase(
        "header injection in a user's email",
        "/admin/users",
        "/admin/users",
        (("email", "x@example.org\r\nBcc:victim@example.org"), ("name", "X"), ("role", "admin")),
        "Enter an email address such as name@example.org.",
    ),
    FormCase(
        "line break in a user's name",
        "/admin/users",
        "/admin/users",
        (("email", "x@example.org"), ("name", "X\r\nY"), ("role", "admin")),
        "Enter a name.",
    ),
    FormCase(
        "NUL in one's own name",
        "/account",
        "/account",
        (("name", "Ada\x00"), ("locale", ""), ("timezone", "")),
        "The form holds a character no field accepts (NUL).",
    ),
    FormCase(
        "one's own zone is a path",
        "/account",
        "/account",
        (("name", "Ada"), ("locale", ""), ("timezone", "../../etc/passwd")),
        "Choose a time zone from the list.",
    ),
    FormCase(
        "header injection in a title",
        "/bookings",
        "/bookings/new",
        _booking_form(title="Hi\r\nBcc: victim@example.org"),
        "Give the booking a title (at most 200 characters).",
    ),
    FormCase(
        "header injection in a guest's email",
        "/bookings",
        "/bookings/new",
        _booking_form(guest_name="Eve", guest_email="eve@example.org\r\nBcc:victim@example.org"),
        "A guest's email address is not valid.",
    ),
    FormCase(
        "line break in a guest's name",
        "/bookings",
        "/bookings/new",
        _booking_form(guest_name="Eve\nBcc: x", guest_email="eve@example.org"),
        "Each guest needs a name of at most 100 characters.",
    ),
    FormCase(
        "year 9999",
        "/bookings",
        "/bookings/new",
        _booking_form(date="9999-12-31", start="23:00", end="23:59", zone="America/Adak"),
        "Give a date.",
    ),
    FormCase(
        "year 1 east of UTC",
        "/bookings",
        "/bookings/new",
        _booking_form(date="0001-01-01", start="00:00", end="01:00", zone="Pacific/Kiritimati"),
        "Give a date.",
    ),
    FormCase(
        "a series until year 9999",
        "/bookings",
        "/bookings/new",
        _booking_form(repeat="daily", repeat_end="until", until="9999-12-31"),
        "Give the date of the last meeting.",
    ),
    FormCase(
        "booking zone is a path",
        "/bookings",
        "/bookings/new",
        _booking_form(zone="../../etc/passwd"),
        "Choose a time zone from the list.",
    ),
    FormCase(
        "400 digits as a lead",
        "/bookings",
        "/bookings/new",
        _booking_form(lead=DIGITS_400),
        "The lead time is between 0 and 60 minutes.",
    ),
    FormCase(
        "header injection in a guest added later",
        "/bookings/{booking}/guests",
        "/bookings/{booking}",
        (("name", "Eve"), ("email", "eve@example.org\r\nBcc:victim@example.org")),
        "Enter an email address such as name@example.org.",
    ),
    FormCase(
        "line break in a guest added later",
        "/bookings/{booking}/guests",
        "/bookings/{booking}",
        (("name", "Eve\r\nMallory"), ("email", "")),
        "Enter the guest's name (at most 100 characters).",
    ),
]


def _form_ids(w: World) -> World:
    w.ids.setdefault("other_room", w.network.amsterdam_room)
    return w


@pytest.mark.parametrize("case", FORM_CASES, ids=[c.name for c in FORM_CASES])
async def test_every_bad_value_in_a_form_is_shown_on_the_page_with_400(
    world: World, case: FormCase, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    w = _form_ids(world)
    async with browser_like() as http:
        assert await log_in(http, w.app.url, ADMIN) == 303
        page = w.app.url + _fill(case.page, w)
        token = await csrf_of(http, page)
        data = MultiDict([("csrf_token", token), *((k, _fill(v, w)) for k, v in case.fields)])
        async with http.post(
            w.app.url + _fill(case.path, w), data=data, allow_redirects=False
        ) as response:
            text = html.unescape(await response.text())
        assert response.status == 400, text[:2000]
        assert case.message in text
        assert tracebacks(caplog) == []
        async with http.get(page) as response:
            assert response.status == 200

    def mail_and_people(s: DbSession) -> list[str]:
        mail = [(m.recipient, m.subject) for m in s.exec(select(OutboxMail))]
        people = [(u.email, u.name) for u in s.exec(select(User))]
        invited = [(g.email or "", g.name) for g in s.exec(select(Guest))]
        return [x for pair in [*mail, *people, *invited] for x in pair]

    for text in await w.app.services.db.run(mail_and_people):
        assert inputs.text_problem(text) is None, text


@pytest.mark.parametrize(
    "query",
    [
        "date=9999-12-31&span=week&zone=UTC",
        "date=0001-01-01&zone=Pacific/Kiritimati",
        "date=9999-12-31&zone=America/Adak",
        "zone=../../etc/passwd",
    ],
)
async def test_the_availability_finder_refuses_far_dates_and_strange_zones(
    world: World, query: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with browser_like() as http:
        assert await log_in(http, world.app.url, ADMIN) == 303
        url = f"{world.app.url}/availability?room={world.network.paris_room}&{query}"
        async with http.get(url) as response:
            assert response.status == 400
        assert tracebacks(caplog) == []
        for path in ("/bookings/new", "/booking-form/site-times"):
            async with http.get(f"{world.app.url}{path}?{query}") as response:
                assert response.status == 200
        assert tracebacks(caplog) == []


@pytest_asyncio.fixture
async def on_postgresql(tmp_path: Path) -> AsyncIterator[World]:
    """The service on a PostgreSQL schema of its own (dropped afterwards): PostgreSQL,
    unlike SQLite, refuses NUL in text, so an id or a name holding one reaching a
    query would be a 500."""
    _postgres_or_skip()
    schema = f"telecentre_abuse_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    url = sa.make_url(POSTGRES_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    settings = Settings(data_dir=tmp_path, database_url=url.render_as_string(hide_password=False))
    try:
        async with running_app(settings, clock=FakeClock(NOW.timestamp())) as app:
            network = await add_network(app.services.db)
            token = await app.services.db.run(lambda s: api_tokens.create_api_token(s, "pg"))
            yield World(app, network, {"api": token}, {"Authorization": f"Bearer {token}"})
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()


async def test_nul_in_ids_and_names_never_reaches_postgresql(
    on_postgresql: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    w = on_postgresql
    api = [
        ("GET", "/api/v1/rooms/a%00b/health", None, 404, "not-found"),
        ("GET", "/api/v1/sessions/%00", None, 404, "not-found"),
        ("POST", "/api/v1/rooms/a%00/calendar-token", None, 404, "not-found"),
        ("POST", "/api/v1/centres", {"name": "A\x00", "timezone": "UTC"}, 400, "bad-json"),
        ("POST", "/api/v1/rooms", {"centre_id": "\x00", "name": "R"}, 400, "bad-json"),
        ("POST", "/api/v1/feeds", {"url": "https://x.test/", "room_id": "a\x00"}, 400, "bad-json"),
        ("POST", "/api/v1/calendars/import?room_id=%00", None, 400, "bad-request"),
        ("GET", "/api/v1/sessions?from=%00", None, 400, "bad-request"),
    ]
    async with browser_like() as http:
        for method, path, body, status, code in api:
            async with http.request(method, w.app.url + path, json=body, headers=w.auth) as r:
                answer = await r.json()
            assert (r.status, answer["error"]["code"]) == (status, code), (path, answer)
        assert await log_in(http, w.app.url, ADMIN) == 303
        for path in ("/bookings/a%00b", "/admin/centres/%00"):
            async with http.get(w.app.url + path) as response:
                assert response.status == 404, path
                assert "not-found" in await response.text()
        token = await csrf_of(http, w.app.url + "/account")
        posts = [
            ("/account", {"name": "Ada\x00", "locale": "", "timezone": ""}),
            ("/bookings", {"title": "T", "room": "a\x00", "date": "2030-06-10"}),
            ("/login", {"email": "a\x00@example.org", "password": "guess guess"}),
        ]
        for path, fields in posts:
            async with http.post(
                w.app.url + path, data={"csrf_token": token, **fields}, allow_redirects=False
            ) as response:
                assert response.status == 400, path
                assert "bad-request" in await response.text()
        await _served_after(http, w)
    assert tracebacks(caplog) == []


# --- the domain's rules, which every door calls -----------------------------------------


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("Comité de pilotage", True),
        ("Réunion 👩\u200d💻", True),
        ("a\nb", False),
        ("a\r", False),
        ("a\tb", False),
        ("a\x00", False),
        ("a\x85", False),
        ("a\u2028", False),
        ("a\u2029", False),
        ("a\ud800", False),
        ("\udfff", False),
        ("a\x7f", False),
    ],
)
def test_one_line_text(text: str, ok: bool) -> None:
    assert (inputs.text_problem(text) is None) is ok


@pytest.mark.parametrize(
    "text",
    [FAR_PAST, FAR_FUTURE, "0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "1899-12-31T23:59Z"],
)
def test_instants_outside_the_range_are_refused_not_overflowed(text: str) -> None:
    with pytest.raises(DomainError) as refused:
        inputs.parse_instant(text)
    assert refused.value.code == "invalid-time"


def test_the_range_leaves_room_for_any_offset_and_zone() -> None:
    earliest = inputs.parse_instant("1900-01-01T00:00:00Z")
    latest = inputs.parse_instant("2999-12-31T23:59:59Z")
    assert inputs.check_instant(earliest) == earliest
    assert inputs.check_instant(latest) == latest
    for wall in (inputs.EARLIEST_WALL, inputs.LATEST_WALL - timedelta(microseconds=1)):
        inputs.check_wall_time(wall)
        for zone in ("Pacific/Kiritimati", "Pacific/Pago_Pago", "America/Adak"):
            inputs.check_instant(localize(wall, zone))  # no OverflowError, still in range


def test_parse_json_refuses_what_json_loads_would_crash_on_or_let_through() -> None:
    for text in (NESTED_ARRAY, NESTED_OBJECT, "[" * 40 + "]" * 40, "1e400", "-Infinity", SURROGATE):
        with pytest.raises(DomainError) as refused:
            parse_json(text)
        assert refused.value.code == "bad-json"
    assert parse_json('{"a": [1, {"b": "\\ud83d\\ude00"}]}') == {"a": [1, {"b": "😀"}]}


def test_a_calendar_summary_over_several_lines_becomes_one_line_title() -> None:
    assert inputs.fold_line("Budget\r\n review\x00") == "Budget review"
    assert len(inputs.fold_line("x" * 500)) == inputs.MAX_NAME


@pytest.mark.parametrize("at", [1e300, -1e300, float("nan"), 2**63])
async def test_a_rooms_health_survives_a_report_time_that_is_no_instant(
    world: World, at: float, caplog: pytest.LogCaptureFixture
) -> None:
    """A room agent's stats report is input too: its time reaches the health route."""
    caplog.set_level(logging.INFO)
    room = world.network.paris_room
    world.app.services.live.rooms[room] = LiveMedia(session_id="session", at=at)
    async with browser_like() as http:
        url = f"{world.app.url}/api/v1/rooms/{room}/health"
        async with http.get(url, headers=world.auth) as response:
            assert response.status == 200
            assert (await response.json())["media"]["at"] is None
        await _served_after(http, world)
    assert tracebacks(caplog) == []
