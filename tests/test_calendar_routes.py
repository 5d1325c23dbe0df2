"""The calendar routes in-process: feeds behind secret tokens with conditional GETs,
free/busy, invitations, and the admin routes that issue and revoke tokens."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from icalendar import Calendar

from orchestrator.db import Database
from orchestrator.people import api_tokens
from web import calendars
from web.app import create_app
from web.settings import Settings

pytestmark = pytest.mark.wall_clock


def _with_calendar_routes(app: web.Application) -> web.Application:
    """Register the routes unless web.app already does."""
    known = {getattr(r, "canonical", "") for r in app.router.resources()}
    if not any(path.startswith("/calendars/") for path in known):
        app.add_routes(calendars.routes)
    return app


@dataclass
class Service:
    client: TestClient[Any, Any]
    token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def post(self, path: str, body: Any, status: int = 201) -> dict[str, Any]:
        r = await self.client.post("/api/v1" + path, json=body, headers=self.auth)
        data: dict[str, Any] = await r.json()
        assert r.status == status, data
        return data


@pytest.fixture
async def svc(tmp_path: Path) -> AsyncIterator[Service]:
    db = Database(Settings(data_dir=tmp_path).effective_database_url)
    db.migrate()
    token = db.run_sync(lambda s: api_tokens.create_api_token(s, "test"))
    db.close_sync()
    app = _with_calendar_routes(create_app(Settings(data_dir=tmp_path, poll_interval=0.1)))
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    try:
        yield Service(client, token)
    finally:
        await client.close()


@dataclass
class Network:
    paris: str
    montreal: str
    bleue: str
    verte: str
    mtl: str


async def network(svc: Service) -> Network:
    paris = await svc.post("/centres", {"name": "Fontainebleau", "timezone": "Europe/Paris"})
    mtl = await svc.post("/centres", {"name": "Montréal", "timezone": "America/Toronto"})
    bleue = await svc.post("/rooms", {"centre_id": paris["id"], "name": "Salle Bleue"})
    verte = await svc.post("/rooms", {"centre_id": paris["id"], "name": "Salle Verte"})
    laurent = await svc.post("/rooms", {"centre_id": mtl["id"], "name": "Salle Saint-Laurent"})
    return Network(paris["id"], mtl["id"], bleue["id"], verte["id"], laurent["id"])


def _hour(hours: float) -> datetime:
    """A whole hour ``hours`` from now (UTC)."""
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    return now + timedelta(hours=hours)


async def book(svc: Service, title: str, start: datetime, rooms: list[str]) -> dict[str, Any]:
    end = start + timedelta(hours=1)
    body = {"title": title, "start": start.isoformat(), "end": end.isoformat(), "room_ids": rooms}
    return await svc.post("/bookings", body)


def parse(data: bytes) -> Calendar:
    cal = Calendar.from_ical(data)
    assert isinstance(cal, Calendar)
    assert cal.to_ical() == data
    return cal


def path_of(url: str) -> str:
    return "/" + url.split("//", 1)[1].split("/", 1)[1]


def periods(freebusy: Any) -> list[tuple[datetime, datetime]]:
    value = freebusy.get("FREEBUSY", [])
    return [(p.start, p.end) for p in (value if isinstance(value, list) else [value])]


async def test_a_room_feed_behind_its_token_with_conditional_gets(svc: Service) -> None:
    net = await network(svc)
    await book(svc, "Délégation", _hour(26), [net.bleue, net.mtl])
    issued = await svc.post(f"/rooms/{net.bleue}/calendar-token", {})
    assert set(issued) == {"id", "token", "url", "freebusy_url"}
    assert issued["url"].endswith(f"/calendars/{issued['token']}.ics")
    path = path_of(issued["url"])

    r = await svc.client.get(path)  # no admin token: the URL is the credential
    assert r.status == 200
    assert r.headers["Content-Type"] == "text/calendar; charset=utf-8"
    assert "no-cache" in r.headers["Cache-Control"]
    body = await r.read()
    cal = parse(body)
    assert str(cal["X-WR-CALNAME"]) == "Salle Bleue (Fontainebleau)"
    assert [str(e["SUMMARY"]) for e in cal.walk("VEVENT")] == ["Délégation"]
    etag, modified = r.headers["ETag"], r.headers["Last-Modified"]

    r = await svc.client.get(path, headers={"If-None-Match": etag})
    assert r.status == 304 and r.headers["ETag"] == etag and await r.read() == b""
    r = await svc.client.get(path, headers={"If-None-Match": f'"other", W/{etag}'})
    assert r.status == 304
    r = await svc.client.get(path, headers={"If-Modified-Since": modified})
    assert r.status == 304
    r = await svc.client.get(
        path, headers={"If-None-Match": '"stale"', "If-Modified-Since": modified}
    )
    assert r.status == 200  # If-None-Match wins (RFC 9110 §13.2.2)

    await book(svc, "Suite", _hour(50), [net.bleue, net.mtl])
    r = await svc.client.get(path, headers={"If-None-Match": etag})
    assert r.status == 200 and r.headers["ETag"] != etag
    assert len(parse(await r.read()).walk("VEVENT")) == 2


async def test_a_centre_feed_and_free_busy(svc: Service) -> None:
    net = await network(svc)
    first = _hour(3)
    await book(svc, "Bleue", first, [net.bleue, net.mtl])
    await book(svc, "Verte", first + timedelta(hours=3), [net.verte, net.mtl])
    await book(svc, "Loin", first + timedelta(days=9), [net.verte, net.mtl])
    centre = await svc.post(f"/centres/{net.paris}/calendar-token", {})
    r = await svc.client.get(path_of(centre["url"]))
    cal = parse(await r.read())
    assert str(cal["X-WR-TIMEZONE"]) == "Europe/Paris"
    assert sorted(str(e["SUMMARY"]) for e in cal.walk("VEVENT")) == ["Bleue", "Loin", "Verte"]

    room = await svc.post(f"/rooms/{net.bleue}/calendar-token", {})
    r = await svc.client.get(path_of(room["freebusy_url"]))
    assert r.status == 200
    assert r.headers["Content-Type"] == "text/calendar; charset=utf-8; method=PUBLISH"
    [fb] = parse(await r.read()).walk("VFREEBUSY")
    assert fb["DTEND"].dt - fb["DTSTART"].dt == timedelta(days=7)  # the default window
    assert periods(fb) == [(first, first + timedelta(hours=1))]

    # A centre's free/busy has one VFREEBUSY per room; an explicit window counts.
    since = first + timedelta(hours=2)
    query = {"from": since.isoformat(), "to": (since + timedelta(days=10)).isoformat()}
    r = await svc.client.get(path_of(centre["freebusy_url"]), params=query)
    busy = parse(await r.read()).walk("VFREEBUSY")
    assert [str(b["ORGANIZER"].params["CN"]) for b in busy] == ["Salle Bleue", "Salle Verte"]
    assert periods(busy[0]) == []
    assert len(periods(busy[1])) == 2

    for bad, code in (
        ({"from": "2030-01-01T00:00Z", "to": "2029-01-01T00:00Z"}, "invalid-time"),
        ({"from": "2030-01-01T00:00"}, "invalid-time"),
        ({"from": "2030-01-01T00:00Z", "to": "2032-01-01T00:00Z"}, "window-too-large"),
    ):
        r = await svc.client.get(path_of(room["freebusy_url"]), params=bad)
        assert r.status == 400 and (await r.json())["error"]["code"] == code


async def test_unknown_and_revoked_tokens_are_not_found(svc: Service) -> None:
    net = await network(svc)
    issued = await svc.post(f"/rooms/{net.bleue}/calendar-token", {})
    for path in (
        "/calendars/tcc_nope.ics",
        "/calendars/nope.ics",
        "/calendars/tcc_nope/freebusy.ics",
        f"/calendars/{issued['token']}x.ics",
        f"/calendars/{net.bleue}.ics",  # a room id is not a token
    ):
        r = await svc.client.get(path)
        assert r.status == 404, path
        error = (await r.json())["error"]
        assert error["code"] == "not-found" and net.bleue not in error["message"]
    r = await svc.client.delete(f"/api/v1/calendar-tokens/{issued['id']}", headers=svc.auth)
    assert r.status == 204
    for url in (issued["url"], issued["freebusy_url"]):
        r = await svc.client.get(path_of(url))
        assert r.status == 404 and (await r.json())["error"]["code"] == "not-found"
    r = await svc.client.delete(f"/api/v1/calendar-tokens/{issued['id']}", headers=svc.auth)
    assert r.status == 404


async def test_issuing_tokens_needs_the_admin_token_and_a_real_scope(svc: Service) -> None:
    net = await network(svc)
    r = await svc.client.post(f"/api/v1/rooms/{net.bleue}/calendar-token")
    assert r.status == 401
    assert (await svc.post("/rooms/nope/calendar-token", {}, 404))["error"]["code"] == "not-found"
    assert (await svc.post(f"/centres/{net.bleue}/calendar-token", {}, 404))["error"][
        "code"
    ] == "not-found"
    one = await svc.post(f"/rooms/{net.bleue}/calendar-token", {})
    two = await svc.post(f"/rooms/{net.bleue}/calendar-token", {})
    assert one["token"] != two["token"]  # each subscriber can get, and lose, its own


async def test_invitations_and_cancellations_of_a_booking(svc: Service) -> None:
    net = await network(svc)
    start = _hour(30)
    out = await book(svc, "Délégation", start, [net.bleue, net.mtl])
    booking_id = out["booking"]["id"]
    path = f"/api/v1/bookings/{booking_id}/invitation.ics"
    assert (await svc.client.get(path)).status == 401

    join = "https://telecentre.example/j/abc"
    r = await svc.client.get(path, params={"join": join, "sequence": "1"}, headers=svc.auth)
    assert r.status == 200
    assert r.headers["Content-Type"] == "text/calendar; charset=utf-8; method=REQUEST"
    cal = parse(await r.read())
    assert str(cal["METHOD"]) == "REQUEST"
    [event] = cal.walk("VEVENT")
    assert str(event["URL"]) == join and event["SEQUENCE"] == 1
    assert f"Join: {join}" in str(event["DESCRIPTION"])
    assert "Fontainebleau" in str(event["DESCRIPTION"]) and "(America/Toronto)" in str(
        event["DESCRIPTION"]
    )
    rooms = [a.params["CUTYPE"] for a in event["ATTENDEE"]]
    assert rooms == ["ROOM", "ROOM"]
    assert {str(tz["TZID"]) for tz in cal.walk("VTIMEZONE")} == {
        "Europe/Paris",
        "America/Toronto",
    }

    r = await svc.client.get(path, params={"method": "cancel", "sequence": "2"}, headers=svc.auth)
    cal = parse(await r.read())
    assert str(cal["METHOD"]) == "CANCEL"
    [event] = cal.walk("VEVENT")
    assert str(event["STATUS"]) == "CANCELLED" and event["SEQUENCE"] == 2

    for params, code in (
        ({"join": "javascript:alert(1)"}, "bad-request"),
        ({"sequence": "-1"}, "bad-request"),
        ({"method": "publish"}, "bad-request"),
        ({"occurrence": start.isoformat()}, "bad-request"),
        ({"method": "cancel", "occurrence": "yesterday"}, "invalid-time"),
    ):
        r = await svc.client.get(path, params=params, headers=svc.auth)
        assert r.status == 400 and (await r.json())["error"]["code"] == code, params
    r = await svc.client.get("/api/v1/bookings/nope/invitation.ics", headers=svc.auth)
    assert r.status == 404
