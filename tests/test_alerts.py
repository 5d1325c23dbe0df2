"""Readiness alerts to a webhook: a real HTTP receiver on loopback gets the JSON, a
refusing one is retried, a silent one never holds up the event loop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

from orchestrator.clock import FakeClock
from orchestrator.sessions.readiness import Check, ReadinessNotice
from tests.signalling_fixtures import eventually
from web import alerts
from web.settings import Settings

START = datetime(2030, 6, 3, 9, 0, tzinfo=UTC)
NOTICE = ReadinessNotice(
    kind="failing",
    session_id="s1",
    session_title="Board",
    session_start=START,
    room_id="r1",
    room_name="Salle Bleue",
    centre_id="c1",
    centre_name="Fontainebleau",
    centre_timezone="Europe/Paris",
    checks=(Check("camera", False, "no such device"), Check("clock", True, "offset +0.001 s")),
    checked_at=datetime(2030, 6, 3, 8, 50, tzinfo=UTC),
)


@dataclass
class Receiver:
    """Answers each POST with the next status of ``statuses`` (then 200), after
    ``delay`` seconds; keeps what it got and when."""

    statuses: list[int] = field(default_factory=list)
    delay: float = 0.0
    got: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    hits: int = 0
    url: str = ""
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        self.hits += 1
        body = await request.json()
        if self.delay:
            await asyncio.sleep(self.delay)
        status = self.statuses.pop(0) if self.statuses else 200
        if status == 200:
            self.got.append((asyncio.get_running_loop().time(), body))
            self.arrived.set()
        return web.json_response({}, status=status)


@asynccontextmanager
async def receiver(**kw: Any) -> AsyncIterator[Receiver]:
    rec = Receiver(**kw)
    app = web.Application()
    app.router.add_post("/hook", rec.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    rec.url = str(server.make_url("/hook"))
    try:
        yield rec
    finally:
        await server.close()


def make_alerts(tmp_path: Path, url: str | None, **settings: Any) -> alerts.Alerts:
    values = Settings(data_dir=tmp_path, alert_webhook_url=url, **settings)
    return alerts.Alerts(values, FakeClock(START.timestamp()), retry_base=0.01)


def test_the_payload_names_the_room_the_session_and_what_failed() -> None:
    payload = alerts.webhook_payload(NOTICE, "https://tc.example/")
    assert payload["event"] == "readiness-failing" and payload["ok"] is False
    assert payload["room"] == {"id": "r1", "name": "Salle Bleue"}
    assert payload["centre"]["timezone"] == "Europe/Paris"
    assert payload["session"] == {
        "id": "s1",
        "title": "Board",
        "start": "2030-06-03T09:00:00+00:00",
        "url": "https://tc.example/sessions/s1",
    }
    assert payload["failing"] == ["camera"]
    assert payload["checks"][0] == {"name": "camera", "ok": False, "detail": "no such device"}
    assert "camera: no such device" in payload["text"]
    recovered = alerts.webhook_payload(replace(NOTICE, kind="recovered"))
    assert recovered["event"] == "readiness-recovered" and recovered["ok"] is True
    assert recovered["session"]["url"] is None


def test_the_webhook_url_stays_out_of_repr(tmp_path: Path) -> None:
    # A token no field name contains (a field may be called turn_secret_file).
    settings = Settings(
        data_dir=tmp_path,
        alert_webhook_url="https://hooks.example/T0/hook-token-4f9a",
        turn_secret="turn-shared-7c1e",
    )
    assert "hook-token-4f9a" not in repr(settings)
    assert "turn-shared-7c1e" not in repr(settings)
    env = {
        "TELECENTRE_ALERT_WEBHOOK_URL": "https://h.example/x",
        "TELECENTRE_ALERT_WEBHOOK_ATTEMPTS": "2",
    }
    loaded = Settings.from_env(env)
    assert (loaded.alert_webhook_url, loaded.alert_webhook_attempts) == ("https://h.example/x", 2)


def test_retry_delays_double_up_to_a_cap() -> None:
    assert [alerts.retry_delay(n) for n in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 8.0]
    assert alerts.retry_delay(30) == alerts.RETRY_CAP


async def test_the_webhook_receives_the_alert(tmp_path: Path) -> None:
    async with receiver() as rec:
        sender = make_alerts(tmp_path, rec.url)
        sender.post(NOTICE)
        await asyncio.wait_for(rec.arrived.wait(), 10)
        await sender.close()
    assert rec.got[0][1]["event"] == "readiness-failing"
    assert (sender.delivered, sender.abandoned) == (1, 0)


async def test_a_refusing_receiver_is_retried_until_it_accepts(tmp_path: Path) -> None:
    async with receiver(statuses=[503, 500]) as rec:
        sender = make_alerts(tmp_path, rec.url)
        sender.post(NOTICE)
        await asyncio.wait_for(rec.arrived.wait(), 10)
        await sender.close()
    assert rec.hits == 3 and len(rec.got) == 1
    assert sender.delivered == 1


async def test_a_silent_receiver_never_holds_up_the_event_loop(tmp_path: Path) -> None:
    """Each attempt times out; meanwhile the loop keeps turning (a heartbeat task is
    never late by more than a fraction of the timeout); the delivery gives up after
    its attempts, and closing cancels what is left."""
    async with receiver(delay=30.0) as rec:
        sender = make_alerts(tmp_path, rec.url, alert_webhook_timeout=0.3, alert_webhook_attempts=2)
        loop = asyncio.get_running_loop()
        began = loop.time()
        sender.post(NOTICE)
        assert loop.time() - began < 0.05  # post() returns at once
        worst = 0.0
        while sender.abandoned == 0:
            before = loop.time()
            await asyncio.sleep(0.01)
            worst = max(worst, loop.time() - before)
            assert loop.time() - began < 10, "the delivery never gave up"
        assert rec.hits == 2
        assert worst < 0.25
        sender.post(NOTICE)  # one more under way while closing
        await eventually(lambda: rec.hits == 3, "the second delivery to start")
        closing = loop.time()
        await sender.close()
        assert loop.time() - closing < 3.0


async def test_without_a_webhook_nothing_is_posted(tmp_path: Path) -> None:
    sender = make_alerts(tmp_path, None)
    sender.post(NOTICE)
    await sender.close()
    assert (sender.delivered, sender.abandoned) == (0, 0)


def test_the_mail_says_what_failed_in_the_person_s_language() -> None:
    subject, body = alerts.mail_text(NOTICE, "Paul", "en", "https://tc.example")
    assert subject == "Room not ready: Salle Bleue for “Board”"
    assert body.startswith("Hello Paul,")
    assert "- camera: no such device" in body and "clock" not in body
    assert "(Europe/Paris)" in body and "https://tc.example/sessions/s1" in body
    subject, body = alerts.mail_text(replace(NOTICE, kind="recovered"), "Paul", "en")
    assert subject == "Room ready again: Salle Bleue for “Board”"
    assert "passed its readiness check" in body
