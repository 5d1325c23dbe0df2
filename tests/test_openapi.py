"""The OpenAPI document covers every /api/v1 route, and schemathesis, run with a valid
admin token against the whole service on loopback, finds no server error, no
undocumented status and no response off its schema, and reaches a successful answer
on every operation.

Real ids (centres, rooms, a booking with its session, a calendar token, a CalDAV link
to a closed loopback port) are created first and written into the document as
explicit examples, so the examples phase succeeds where random ids could only find
``404``; then each operation is fuzzed with those ids fixed, and fuzzed again with
everything generated, positive and negative. Time is a fake clock, so the feed and
CalDAV pollers never wake up to fetch the URLs the fuzzer invents.
"""

from __future__ import annotations

import asyncio
import copy
import socket
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import requests

from orchestrator.clock import FakeClock
from orchestrator.people import api_tokens
from tests.ui_support import running_app
from web import openapi
from web.app import create_app
from web.settings import Settings

NOW = datetime(2030, 6, 3, 7, 0, tzinfo=UTC)
CHECKS = ("not_a_server_error", "response_schema_conformance", "status_code_conformance")
EXAMPLES_PER_STRATEGY = 25
"""Hypothesis examples for each of the three fuzzing passes of each operation."""
ICS = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//telecentre tests//EN\r\n"
    "BEGIN:VEVENT\r\nUID:fuzz-import-1@example.org\r\nDTSTAMP:20300601T000000Z\r\n"
    "DTSTART:20300610T080000Z\r\nDTEND:20300610T090000Z\r\nSUMMARY:Imported\r\n"
    "END:VEVENT\r\nEND:VCALENDAR\r\n"
)


def test_every_api_route_is_documented_and_every_documented_route_exists(
    tmp_path: Path,
) -> None:
    app = create_app(Settings(data_dir=tmp_path))
    routes = openapi.api_routes(app)
    doc = openapi.build_document(app)
    documented = {(method.upper(), path) for path, item in doc["paths"].items() for method in item}
    assert ("GET", openapi.OPENAPI_PATH) in routes
    assert routes - documented == set(), "routes without documentation in web/openapi.py"
    assert documented - routes == set(), "documented operations the router does not serve"
    assert set(openapi.OPERATIONS) - routes == set(), "OPERATIONS entries for no route"
    for path, item in doc["paths"].items():
        for op in item.values():
            declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            assert declared == set(openapi._PARAM.findall(path)), path
            assert any(code.startswith("2") for code in op["responses"]), path


def test_a_route_added_without_documentation_is_noticed(tmp_path: Path) -> None:
    app = create_app(Settings(data_dir=tmp_path))

    async def handler(request: aiohttp.web.Request) -> aiohttp.web.Response:
        return aiohttp.web.json_response({})

    app.router.add_put(openapi.API + "/centres/{centre_id}", handler)
    assert openapi.undocumented(app) == {("PUT", openapi.API + "/centres/{centre_id}")}
    assert "put" not in openapi.build_document(app)["paths"].get(
        openapi.API + "/centres/{centre_id}", {}
    )


async def test_the_document_is_served_without_a_token_and_the_rest_needs_one(
    tmp_path: Path,
) -> None:
    async with running_app(Settings(data_dir=tmp_path), clock=FakeClock(NOW.timestamp())) as run:
        async with aiohttp.ClientSession() as http:
            async with http.get(run.url + openapi.OPENAPI_PATH) as r:
                assert r.status == 200
                doc = await r.json()
            async with http.get(run.url + openapi.API + "/centres") as r:
                assert r.status == 401
    assert doc["openapi"].startswith("3.1")
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert doc["paths"][openapi.OPENAPI_PATH]["get"]["security"] == []


# Requests schemathesis found answered with 500 before the fixes in web/api.py; each
# is now a 4xx with a stable code, and the service keeps working after it.
FOUND_BY_SCHEMATHESIS: list[tuple[str, str, Any, int, str]] = [
    ("POST", "/caldav-links/VEVENT/sync", None, 404, "not-found"),
    ("POST", "/feeds", {"url": None}, 400, "bad-request"),
    ("POST", "/centres", {"name": "Nowhere", "timezone": None}, 400, "bad-request"),
    ("POST", "/feeds", {"url": "https://a", "interval_seconds": 2**64}, 400, "bad-request"),
    ("POST", "/feeds", {"url": "https://a", "interval_seconds": 2**40}, 400, "bad-request"),
    ("POST", "/feeds", {"url": "https://a", "interval_seconds": True}, 400, "bad-request"),
    ("PATCH", "/rooms/{room_id}", {"max_duration_seconds": 2**53 - 1}, 400, "invalid-policy"),
    ("PATCH", "/rooms/{room_id}", {"buffer_seconds": 2**63}, 400, "bad-request"),
    ("GET", "/bookings/{booking_id}/invitation.ics?join=https://%0Ax", None, 400, "bad-request"),
]


async def test_requests_that_once_made_server_errors_are_refused_with_a_code(
    tmp_path: Path,
) -> None:
    async with running_app(Settings(data_dir=tmp_path), clock=FakeClock(NOW.timestamp())) as run:
        token = await run.services.db.run(lambda s: api_tokens.create_api_token(s, "t"))
        seeded = await _seed(run.url, token)
        headers = {"Authorization": f"Bearer {token}"}
        async with aiohttp.ClientSession(headers=headers) as http:
            for method, path, body, status, code in FOUND_BY_SCHEMATHESIS:
                url = run.url + openapi.API + path.format(**seeded.ids)
                async with http.request(method, url, json=body) as r:
                    answer = await r.json()
                assert (r.status, answer["error"]["code"]) == (status, code), (path, body, answer)
            async with http.get(run.url + openapi.API + "/feeds") as r:
                assert r.status == 200
                assert all(f["interval_seconds"] <= 7 * 86400 for f in (await r.json())["feeds"])


def _closed_port() -> int:
    """A loopback port nobody listens on (CalDAV sync gets 'connection refused')."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Seeded:
    ids: dict[str, str]
    bodies: dict[tuple[str, str], Any]
    queries: dict[tuple[str, str], dict[str, Any]]


async def _seed(url: str, token: str) -> Seeded:
    """Two centres, two rooms, a booking with its session, a calendar token and a
    CalDAV link, made through the API itself."""
    headers = {"Authorization": f"Bearer {token}"}
    api = url + openapi.API

    async with aiohttp.ClientSession(headers=headers) as http:

        async def post(path: str, body: Any) -> dict[str, Any]:
            async with http.post(api + path, json=body) as r:
                data: dict[str, Any] = await r.json()
                assert r.status == 201, data
                return data

        paris = await post("/centres", {"name": "Seed Paris", "timezone": "Europe/Paris"})
        adam = await post("/centres", {"name": "Seed Amsterdam", "timezone": "Europe/Amsterdam"})
        room_a = await post("/rooms", {"centre_id": paris["id"], "name": "Seed Bleue"})
        room_b = await post("/rooms", {"centre_id": adam["id"], "name": "Seed Smart"})
        start = NOW + timedelta(days=1)
        booked = await post(
            "/bookings",
            {
                "title": "Seed meeting",
                "start": start.isoformat(),
                "end": (start + timedelta(hours=1)).isoformat(),
                "room_ids": [room_a["id"], room_b["id"]],
            },
        )
        token_row = await post(f"/rooms/{room_a['id']}/calendar-token", {})
        dav = f"http://127.0.0.1:{_closed_port()}/dav/room/"
        link = await post("/caldav-links", {"room_id": room_a["id"], "calendar_url": dav})
    later = NOW + timedelta(days=3)
    rooms = [room_a["id"], room_b["id"]]
    return Seeded(
        ids={
            "centre_id": paris["id"],
            "room_id": room_a["id"],
            "booking_id": booked["booking"]["id"],
            "session_id": booked["session_id"],
            "token_id": token_row["id"],
            "link_id": link["id"],
        },
        bodies={
            ("POST", "/centres"): {"name": "Example Colmar", "timezone": "Europe/Paris"},
            ("POST", "/rooms"): {"centre_id": paris["id"], "name": "Example Verte"},
            ("PATCH", "/rooms/{room_id}"): {"buffer_seconds": 300, "aliases": ["Blue room"]},
            ("POST", "/bookings"): {
                "title": "Example meeting",
                "start": later.isoformat(),
                "end": (later + timedelta(hours=1)).isoformat(),
                "room_ids": rooms,
                "rrule": "FREQ=WEEKLY;COUNT=2",
                "on_conflict": "skip",
            },
            ("POST", "/feeds"): {
                "url": f"http://127.0.0.1:{_closed_port()}/room.ics",
                "room_id": room_b["id"],
            },
            ("POST", "/caldav-links"): {"room_id": room_b["id"], "calendar_url": dav},
            ("POST", "/calendars/import"): ICS,
        },
        queries={
            ("POST", "/calendars/import"): {"room_id": [room_a["id"]], "name": "example"},
            ("GET", "/sessions"): {
                "from": NOW.isoformat(),
                "to": (NOW + timedelta(days=7)).isoformat(),
            },
        },
    )


def with_examples(doc: dict[str, Any], seeded: Seeded) -> dict[str, Any]:
    """The served document with the seeded ids and bodies as explicit examples."""
    doc = copy.deepcopy(doc)
    for path, item in doc["paths"].items():
        for method, op in item.items():
            key = (method.upper(), path.removeprefix(openapi.API))
            query = seeded.queries.get(key, {})
            for param in op.get("parameters", []):
                if param["in"] == "path":
                    param["example"] = seeded.ids[param["name"]]
                elif param["name"] in query:
                    param["example"] = query[param["name"]]
            if key in seeded.bodies:
                for media in op["requestBody"]["content"].values():
                    media["example"] = seeded.bodies[key]
    return doc


@dataclass
class Outcome:
    statuses: dict[str, Counter[int]] = field(default_factory=lambda: defaultdict(Counter))
    failures: list[str] = field(default_factory=list)
    examples: int = 0


def fuzz(doc: dict[str, Any], base_url: str, token: str, ids: dict[str, str]) -> Outcome:
    """Every operation: its explicit examples, then fuzzing with real path ids, then
    fuzzing with everything generated (positive and negative). Failures are
    collected (not raised) so one run lists them all."""
    import schemathesis
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import strategies as st
    from hypothesis.errors import Unsatisfiable
    from schemathesis import GenerationMode
    from schemathesis import checks as registry
    from schemathesis.core.failures import Failure, FailureGroup

    checks = [getattr(registry, name) for name in CHECKS]
    schema = schemathesis.openapi.from_dict(doc)
    outcome = Outcome()
    session = requests.Session()
    headers = {"Authorization": f"Bearer {token}"}

    def run(strategy: st.SearchStrategy[Any], label: str, count: int, negative: bool) -> None:
        @settings(
            max_examples=count,
            deadline=None,
            database=None,
            derandomize=True,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(strategy)
        def one(case: Any) -> None:
            outcome.examples += 1
            # Our own call: schemathesis' requests transport trips over urllib3-future
            # (pulled in by caldav's niquests), whose pools it cannot count.
            kwargs = case.as_transport_kwargs(base_url=base_url, headers=headers)
            response = session.request(**kwargs, timeout=30)
            outcome.statuses[label][response.status_code] += 1
            try:
                case.validate_response(
                    response, checks=checks, headers=headers, transport_kwargs=kwargs
                )
            except (Failure, FailureGroup, AssertionError) as exc:
                outcome.failures.append(
                    f"{label} -> {response.status_code}: {exc}\n"
                    f"  {case.as_curl_command(headers=headers)}\n"
                    f"  {response.content[:300]!r}"
                )

        try:
            one()
        except Unsatisfiable:
            # Nothing to negate (an operation without parameters or body).
            if not negative:
                raise

    for result in schema.get_all_operations():
        op = result.ok()
        label = op.label
        path_ids = {p.name: ids[p.name] for p in op.path_parameters}
        for example in op.get_strategies_from_examples():
            run(example, label, 1, False)
        run(op.as_strategy(path_parameters=path_ids), label, EXAMPLES_PER_STRATEGY, False)
        run(op.as_strategy(), label, EXAMPLES_PER_STRATEGY, False)
        negative = op.as_strategy(generation_mode=GenerationMode.NEGATIVE)
        run(negative, label, EXAMPLES_PER_STRATEGY, True)
    session.close()
    return outcome


async def test_schemathesis_finds_no_error_and_every_operation_succeeds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clock = FakeClock(NOW.timestamp())
    async with running_app(Settings(data_dir=tmp_path), clock=clock) as run:
        token = await run.services.db.run(lambda s: api_tokens.create_api_token(s, "fuzz"))
        seeded = await _seed(run.url, token)
        async with aiohttp.ClientSession() as http:
            async with http.get(run.url + openapi.OPENAPI_PATH) as r:
                served = await r.json()
        doc = with_examples(served, seeded)
        job: Callable[[], Outcome] = lambda: fuzz(doc, run.url, token, seeded.ids)  # noqa: E731
        outcome = await asyncio.wait_for(asyncio.to_thread(job), timeout=240)
    operations = {
        f"{method.upper()} {path}" for path, item in served["paths"].items() for method in item
    }
    with capsys.disabled():
        print(
            f"\nschemathesis: {len(operations)} operations, {outcome.examples} examples, "
            f"{len(outcome.failures)} failures"
        )
    assert not outcome.failures, "\n\n".join(outcome.failures)
    assert set(outcome.statuses) == operations
    unsuccessful = {
        label: dict(codes)
        for label, codes in outcome.statuses.items()
        if not any(200 <= code < 300 for code in codes)
    }
    assert not unsuccessful, f"operations that never answered 2xx: {unsuccessful}"
