"""Readiness end to end, in one process: the whole service on loopback, two real room
agents (aiortc), one of them with no camera, and a real HTTP webhook receiver.

The room without a camera fails its check when it connects and again at T - lead
(the agent's ``readiness_lead``, short here); the failure shows in GET /api/v1/rooms,
on the dashboard, in the session record, and reaches the webhook and the staff's
mailbox before the session starts. The healthy room passes. The session then runs:
the rooms' stats carry connection and process figures, kept per room while it runs
and summarised in the session record when it ends.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from sqlmodel import select

from orchestrator import centres
from orchestrator.booking import one_off
from orchestrator.db import DbSession
from orchestrator.models import OutboxMail
from orchestrator.people import accounts, api_tokens
from orchestrator.sessions.detail import session_detail
from room_agents.agent import RoomAgent
from room_agents.config import AgentConfig
from room_agents.ice import unpin_host_addresses
from tests.signalling_fixtures import eventually
from tests.test_alerts import receiver
from tests.ui_support import running_app
from web.settings import Settings
from web.ui.dashboard import room_readiness

NO_CAMERA = "v4l2:/dev/telecentre-test-no-camera"
CAMERA = "lavfi:testsrc2=size=320x180:rate=15"
MICROPHONE = "lavfi:sine=frequency=440"
READINESS_LEAD = 8.0


@asynccontextmanager
async def agents(
    url: str, keys: dict[str, str], cameras: dict[str, str]
) -> AsyncIterator[dict[str, RoomAgent]]:
    running: dict[str, RoomAgent] = {}
    tasks = []
    for name, key in keys.items():
        config = AgentConfig(
            server_url=url.replace("http://", "ws://") + "/ws",
            key=key,
            width=320,
            height=180,
            fps=15,
            label=name,
            camera=cameras[name],
            microphone=MICROPHONE,
            readiness_lead=READINESS_LEAD,
        )
        running[name] = RoomAgent(config)
        tasks.append(asyncio.create_task(running[name].run()))
    try:
        for agent in running.values():
            await asyncio.wait_for(agent.connected.wait(), 15)
        yield running
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        unpin_host_addresses()


def ts(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


async def test_a_room_without_a_camera_is_reported_and_alerted_before_the_start(
    tmp_path: Path,
) -> None:
    async with receiver() as hook:
        settings = Settings(data_dir=tmp_path, alert_webhook_url=hook.url, poll_interval=0.2)
        async with running_app(settings) as app:
            services = app.services
            db = services.db

            def setup(s: DbSession) -> dict[str, Any]:
                paris = centres.add_centre(s, "Fontainebleau", "Europe/Paris")
                amsterdam = centres.add_centre(s, "Amsterdam", "Europe/Amsterdam")
                blue, blue_key = centres.add_room(s, paris.id, "Salle Bleue")
                work, work_key = centres.add_room(s, amsterdam.id, "Smart Work Room")
                pw = "a-long-password-1"
                accounts.create_user(s, "paul@example.org", "Paul", pw, "staff", paris.id)
                accounts.create_user(s, "anouk@example.org", "Anouk", pw, "staff", amsterdam.id)
                return {
                    "ids": {"blue": blue.id, "work": work.id},
                    "keys": {"blue": blue_key, "work": work_key},
                    "token": api_tokens.create_api_token(s, "test"),
                }

            world = await db.run(setup)
            ids = world["ids"]
            api = aiohttp.ClientSession(
                app.url, headers={"Authorization": f"Bearer {world['token']}"}
            )

            async def get(path: str) -> Any:
                async with api.get(path) as response:
                    assert response.status == 200, await response.text()
                    return await response.json()

            cameras = {"blue": NO_CAMERA, "work": CAMERA}
            async with api, agents(app.url, world["keys"], cameras):
                # The check at connection: no session yet, no alert.
                await eventually(
                    lambda: set(services.live.readiness) == set(ids.values()), "first checks", 30
                )
                # The live view hears a check at once; the API reads what the event
                # queue wrote, a moment later under load.
                rooms: dict[str, Any] = {}
                for _ in range(150):
                    rooms = {r["id"]: r for r in (await get("/api/v1/rooms"))["rooms"]}
                    if all(rooms[i]["readiness"] is not None for i in ids.values()):
                        break
                    await asyncio.sleep(0.1)
                blue = rooms[ids["blue"]]["readiness"]
                assert blue["ok"] is False and blue["failing"] == ["camera"]
                assert blue["session_id"] is None
                camera = next(c for c in blue["checks"] if c["name"] == "camera")
                assert "no such device" in camera["detail"]
                work = rooms[ids["work"]]["readiness"]
                assert work["ok"] is True, work
                assert {c["name"] for c in work["checks"]} == {
                    "camera", "microphone", "signalling", "turn", "clock"
                }  # fmt: skip
                dashboard = room_readiness(services.live.readiness)
                assert dashboard[ids["blue"]].value == "failing"
                assert dashboard[ids["work"]].value == "ready"

                # A session: the rooms check themselves from T - READINESS_LEAD.
                start = time.time() + READINESS_LEAD + 5
                end = start + 6

                def book(s: DbSession) -> str:
                    _, session = one_off.book(
                        s,
                        "Readiness",
                        datetime.fromtimestamp(start, UTC),
                        datetime.fromtimestamp(end, UTC),
                        list(ids.values()),
                        lead_seconds=4,
                    )
                    return session.id

                session_id = await db.run(book)
                await asyncio.wait_for(hook.arrived.wait(), start - time.time() + 5)
                arrived = time.time()
                assert arrived < start, f"the alert came {arrived - start:.1f} s after the start"
                (_, alert), *others = hook.got
                assert others == []
                assert alert["event"] == "readiness-failing"
                assert alert["room"] == {"id": ids["blue"], "name": "Salle Bleue"}
                assert alert["session"]["id"] == session_id
                assert alert["failing"] == ["camera"]
                assert start - READINESS_LEAD - 1.5 <= ts(alert["checked_at"]) < start

                mails = await db.run(lambda s: list(s.exec(select(OutboxMail)).all()))
                alerts = [m for m in mails if m.kind == "alert"]
                assert [m.recipient for m in alerts] == ["paul@example.org"]

                # The session runs; its rooms report their figures while it does.
                def healthy_report() -> bool:
                    media = services.live.rooms.get(ids["work"])
                    return bool(media and media.process and media.peers)

                await eventually(healthy_report, "the healthy room's stats", end - time.time() + 5)
                room_health = await get(f"/api/v1/rooms/{ids['work']}/health")
                assert room_health["online"] is True and room_health["readiness"]["ok"] is True
                assert room_health["media"]["session_id"] == session_id
                assert room_health["media"]["process"]["rss_bytes"] > 10 * 2**20
                assert room_health["media"]["process"]["cpu_percent"] >= 0

                def ended() -> bool:
                    detail = db.run_sync(lambda s: session_detail(s, session_id))
                    return detail.state == "ended" and all(
                        p.left_at is not None for p in detail.participations
                    )

                await eventually(ended, "the session to end", end - time.time() + 15)
                record = await get(f"/api/v1/sessions/{session_id}")

    by_room = {r["room_id"]: r for r in record["rooms"]}
    blue_record, work_record = by_room[ids["blue"]], by_room[ids["work"]]
    assert blue_record["readiness"]["ok"] is False
    assert blue_record["readiness"]["failing"] == ["camera"]
    assert blue_record["readiness"]["alerts"] == 1
    assert work_record["readiness"]["ok"] is True and work_record["readiness"]["alerts"] == 0
    for r in (blue_record, work_record):
        media = r["media"]
        assert media["bitrate_in_kbps_mean"] > 10, media
        assert media["bitrate_out_kbps_mean"] > 10, media
        assert media["rtt_ms_samples"] > 0 and 0 <= media["rtt_ms_max"] < 1000, media
        assert media["jitter_ms_max"] >= 0 and media["packets_lost_total"] >= 0, media
        assert 0 <= (media["loss_fraction_max"] or 0) <= 1, media
        assert media["cpu_percent_samples"] > 0 and media["cpu_percent_mean"] >= 0, media
        assert media["rss_bytes_max"] > 10 * 2**20, media
    assert work_record["media"]["fps_latest"] > 5
