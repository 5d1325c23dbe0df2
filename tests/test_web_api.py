"""The composed service in-process: the JSON API, the dashboard page, and key rotation
reaching signalling through the ports."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiohttp.test_utils import TestClient, TestServer

from orchestrator.clock import FakeClock, instant
from orchestrator.db import Database
from orchestrator.people import api_tokens
from signalling import protocol as p
from signalling.client import SignallingClient, SignallingError
from web.app import create_app
from web.keys import SERVICES
from web.settings import Settings

pytestmark = pytest.mark.wall_clock


@dataclass
class Service:
    client: TestClient[Any, Any]
    token: str
    data_dir: Path

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def now(self) -> datetime:
        """The service's now (its clock may be a fake one)."""
        return instant(self.client.app[SERVICES].clock)  # type: ignore[index]

    async def post(self, path: str, body: Any, status: int = 201) -> dict[str, Any]:
        r = await self.client.post("/api/v1" + path, json=body, headers=self.auth)
        data: dict[str, Any] = await r.json()
        assert r.status == status, data
        return data

    async def get(self, path: str, status: int = 200) -> dict[str, Any]:
        r = await self.client.get("/api/v1" + path, headers=self.auth)
        data: dict[str, Any] = await r.json()
        assert r.status == status, data
        return data


# Mid-morning in Paris and Amsterdam (10:00 CET): a booking two hours away is on
# today's dashboard, which no real hour after 22:00 UTC allows.
MID_MORNING = datetime(2026, 12, 8, 9, 0, tzinfo=UTC)


@pytest.fixture
async def svc(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Service]:
    """The service on the real clock, or on a fake one at ``request.param`` (an aware
    datetime) when a test parametrizes ``svc`` indirectly."""
    clock = FakeClock(request.param.timestamp()) if hasattr(request, "param") else None
    db = Database(Settings(data_dir=tmp_path).effective_database_url)
    db.migrate()
    token = db.run_sync(lambda s: api_tokens.create_api_token(s, "test"))
    db.close_sync()
    app = create_app(Settings(data_dir=tmp_path, poll_interval=0.1), clock=clock)
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    try:
        yield Service(client, token, tmp_path)
    finally:
        await client.close()


async def dashboard_page(svc: Service) -> str:
    """The dashboard as an administrator sees it: it needs a login."""
    from orchestrator.people import accounts

    def admin(s: Any) -> str:
        accounts.create_user(s, "admin@example.org", "Admin", "correct horse battery", "admin")
        now = svc.now()
        return accounts.login(s, "admin@example.org", "correct horse battery", "test", now)[1]

    token = await svc.client.app[SERVICES].db.run(admin)  # type: ignore[index]
    response = await svc.client.get("/", cookies={"tc_session": token})
    assert response.status == 200
    return await response.text()


async def network(svc: Service) -> tuple[str, str, str, str]:
    paris = await svc.post("/centres", {"name": "Fontainebleau", "timezone": "Europe/Paris"})
    adam = await svc.post("/centres", {"name": "Amsterdam", "timezone": "Europe/Amsterdam"})
    a = await svc.post("/rooms", {"centre_id": paris["id"], "name": "Salle Bleue"})
    b = await svc.post("/rooms", {"centre_id": adam["id"], "name": "Smart Work Room"})
    return a["id"], a["key"], b["id"], b["key"]


async def test_the_api_needs_the_admin_token(svc: Service) -> None:
    for headers in ({}, {"Authorization": "Bearer tca_wrong"}, {"Authorization": "Basic x"}):
        r = await svc.client.get("/api/v1/centres", headers=headers)
        assert r.status == 401
        assert (await r.json())["error"]["code"] == "unauthorised"


@pytest.mark.parametrize("svc", [MID_MORNING], indirect=True)
async def test_centres_rooms_bookings_and_sessions_through_the_api(svc: Service) -> None:
    room_a, key_a, room_b, _ = await network(svc)
    assert key_a.startswith("tck_")
    rooms = (await svc.get("/rooms"))["rooms"]
    assert {r["id"] for r in rooms} == {room_a, room_b}
    assert all(r["online"] is False and "key" not in r for r in rooms)
    start = svc.now() + timedelta(hours=2)
    out = await svc.post(
        "/bookings",
        {
            "title": "Delegation",
            "start": start.isoformat(),
            "end": (start + timedelta(hours=1)).isoformat(),
            "room_ids": [room_a, room_b],
            "lead_seconds": 30,
        },
    )
    assert out["booking"]["timezone"] == "Europe/Paris"
    detail = await svc.get(f"/sessions/{out['session_id']}")
    assert detail["state"] == "scheduled" and detail["lead_seconds"] == 30
    assert [t["state"] for t in detail["transitions"]] == ["scheduled"]
    assert {r["room_id"] for r in detail["rooms"]} == {room_a, room_b}
    listed = (await svc.get("/sessions"))["sessions"]
    assert [s["id"] for s in listed] == [out["session_id"]]
    # The page shows the network.
    page = await dashboard_page(svc)
    assert "Salle Bleue" in page and "Delegation" in page and "Europe/Amsterdam" in page


async def test_the_key_is_stored_hashed_only(svc: Service) -> None:
    _, key_a, _, key_b = await network(svc)
    raw = (svc.data_dir / "telecentre.sqlite3").read_bytes()
    wal = svc.data_dir / "telecentre.sqlite3-wal"
    raw += wal.read_bytes() if wal.exists() else b""
    assert key_a.encode() not in raw and key_b.encode() not in raw
    with sqlite3.connect(svc.data_dir / "telecentre.sqlite3") as conn:
        hashes = [row[0] for row in conn.execute("SELECT key_hash FROM room")]
    assert all(len(h) == 64 for h in hashes)


async def test_bad_requests_get_stable_codes_and_change_nothing(svc: Service) -> None:
    room_a, _, room_b, _ = await network(svc)
    r = await svc.client.post("/api/v1/centres", data=b"{nope", headers=svc.auth)
    assert r.status == 400 and (await r.json())["error"]["code"] == "bad-json"
    bad_zone = await svc.post("/centres", {"name": "Mars", "timezone": "Mars/Olympus"}, 400)
    assert bad_zone["error"]["code"] == "unknown-timezone"
    missing = await svc.post("/rooms", {"centre_id": "nope", "name": "X"}, 404)
    assert missing["error"]["code"] == "not-found"
    naive = await svc.post(
        "/bookings",
        {
            "title": "x",
            "start": "2030-01-01T09:00",
            "end": "2030-01-01T10:00",
            "room_ids": [room_a, room_b],
        },
        400,
    )
    assert naive["error"]["code"] == "invalid-time"
    backwards = await svc.post(
        "/bookings",
        {
            "title": "x",
            "start": "2030-01-01T10:00Z",
            "end": "2030-01-01T09:00Z",
            "room_ids": [room_a, room_b],
        },
        400,
    )
    assert backwards["error"]["code"] == "invalid-time"
    assert (await svc.get("/sessions/nope", 404))["error"]["code"] == "not-found"
    assert (await svc.get("/bookings"))["bookings"] == []
    assert len((await svc.get("/centres"))["centres"]) == 2


async def test_rotating_a_key_disconnects_the_room_and_refuses_the_old_key(svc: Service) -> None:
    room_a, key_a, _, _ = await network(svc)
    url = str(svc.client.make_url("/ws"))
    scheduler = svc.client.app[SERVICES].scheduler  # type: ignore[union-attr]
    await scheduler.step()  # the credentials of rooms made through the API
    agent = SignallingClient(svc.client.session, url, key=key_a)
    welcome = await agent.connect()
    assert welcome.peer_id == f"room:{room_a}"
    rooms = (await svc.get("/rooms"))["rooms"]
    assert [r["online"] for r in rooms if r["id"] == room_a] == [True]
    new_key = (await svc.post(f"/rooms/{room_a}/rotate-key", {}, 200))["key"]
    await scheduler.step()
    await asyncio.wait_for(agent.closed.wait(), 5)
    assert agent.close_reason == p.ErrorCode.KEY_REVOKED
    stale = SignallingClient(svc.client.session, url, key=key_a)
    with pytest.raises(SignallingError) as err:
        await stale.connect()
    assert err.value.code == p.ErrorCode.KEY_REVOKED
    fresh = SignallingClient(svc.client.session, url, key=new_key)
    assert (await fresh.connect()).peer_id == f"room:{room_a}"
    await asyncio.gather(agent.close(), stale.close(), fresh.close())


async def test_an_overlapping_booking_is_refused_with_the_conflicting_room_and_booking(
    svc: Service,
) -> None:
    room_a, _, room_b, _ = await network(svc)
    centre = (await svc.get("/centres"))["centres"][0]["id"]
    room_c = (await svc.post("/rooms", {"centre_id": centre, "name": "Salle Verte"}))["id"]
    start = datetime.now(UTC) + timedelta(days=2)
    body = {
        "title": "First",
        "start": start.isoformat(),
        "end": (start + timedelta(hours=1)).isoformat(),
        "room_ids": [room_a, room_b],
    }
    first = await svc.post("/bookings", body)
    clash = await svc.post(
        "/bookings",
        {
            **body,
            "title": "Second",
            "start": (start + timedelta(minutes=30)).isoformat(),
            "end": (start + timedelta(hours=2)).isoformat(),
            "room_ids": [room_a, room_c],
        },
        409,
    )
    assert clash["error"]["code"] == "conflict"
    assert {c["booking_id"] for c in clash["error"]["conflicts"]} == {first["booking"]["id"]}
    assert {c["room_id"] for c in clash["error"]["conflicts"]} == {room_a}
    assert len((await svc.get("/bookings"))["bookings"]) == 1


async def test_a_room_buffer_refuses_a_booking_too_close_and_its_policy_is_kept(
    svc: Service,
) -> None:
    room_a, _, room_b, _ = await network(svc)
    room = await svc.client.patch(
        f"/api/v1/rooms/{room_a}",
        json={"buffer_seconds": 900, "max_duration_seconds": 7200, "aliases": ["IT77 Salle"]},
        headers=svc.auth,
    )
    assert room.status == 200
    assert (await room.json())["aliases"] == ["IT77 Salle"]
    start = datetime.now(UTC) + timedelta(days=3)
    hour = timedelta(hours=1)

    def booking(offset: timedelta, length: timedelta = hour) -> dict[str, Any]:
        return {
            "title": "x",
            "start": (start + offset).isoformat(),
            "end": (start + offset + length).isoformat(),
            "room_ids": [room_a, room_b],
        }

    await svc.post("/bookings", booking(timedelta(0)))
    # Ten minutes after the end: inside the 15-minute buffer.
    too_close = await svc.post("/bookings", booking(hour + timedelta(minutes=10)), 409)
    assert too_close["error"]["code"] == "conflict"
    await svc.post("/bookings", booking(hour + timedelta(minutes=15)))
    too_long = await svc.post("/bookings", booking(timedelta(hours=5), timedelta(hours=3)), 400)
    assert too_long["error"]["code"] == "too-long"
    bad = await svc.client.patch(
        f"/api/v1/rooms/{room_a}", json={"buffer_seconds": -5}, headers=svc.auth
    )
    assert bad.status == 400 and (await bad.json())["error"]["code"] == "invalid-policy"


async def test_a_weekly_series_through_the_api_with_reject_or_skip(svc: Service) -> None:
    room_a, _, room_b, _ = await network(svc)
    # The series repeats at 10:00 in Paris (its first room's zone). Python adds weeks
    # to a Paris time on the wall clock too, so the blocker meets the third occurrence
    # even when a DST change falls between them (as it does from 7 to 21 days before).
    paris = ZoneInfo("Europe/Paris")
    start = datetime.combine(
        (svc.now() + timedelta(days=7)).astimezone(paris).date(), time(10), paris
    )
    hour = timedelta(hours=1)
    blocker = await svc.post(
        "/bookings",
        {
            "title": "Blocker",
            "start": (start + timedelta(weeks=2)).isoformat(),
            "end": (start + timedelta(weeks=2) + hour).isoformat(),
            "room_ids": [room_a, room_b],
        },
    )
    series = {
        "title": "Weekly",
        "start": start.isoformat(),
        "end": (start + hour).isoformat(),
        "room_ids": [room_a, room_b],
        "rrule": "FREQ=WEEKLY;COUNT=4",
    }
    refused = await svc.post("/bookings", series, 409)
    assert {c["booking_id"] for c in refused["error"]["conflicts"]} == {blocker["booking"]["id"]}
    made = await svc.post("/bookings", {**series, "on_conflict": "skip"})
    assert len(made["session_ids"]) == 3 and len(made["skipped"]) == 2  # one date, two rooms
    bad = await svc.post("/bookings", {**series, "rrule": "FREQ=SOMETIMES"}, 400)
    assert bad["error"]["code"] in ("bad-rrule", "invalid-rrule")


async def test_a_room_that_never_joined_is_released_and_staff_see_it(svc: Service) -> None:
    room_a, _, room_b, _ = await network(svc)
    start = datetime.now(UTC) - timedelta(minutes=20)
    made = await svc.post(
        "/bookings",
        {
            "title": "Missed",
            "start": start.isoformat(),
            "end": (start + timedelta(hours=1)).isoformat(),
            "room_ids": [room_a, room_b],
        },
    )
    scheduler = svc.client.app[SERVICES].scheduler  # type: ignore[union-attr]
    await scheduler.step()  # the session goes live (late: it started 20 min ago)
    await scheduler.step()  # past T + 10 min and nobody joined: released
    detail = await svc.get(f"/sessions/{made['session_id']}")
    assert all(r["released_at"] for r in detail["rooms"]), detail["rooms"]
    page = await dashboard_page(svc)
    assert "Released (no-show)" in page
