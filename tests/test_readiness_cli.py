"""``telecentre session show`` tells each room's readiness check for the session."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from orchestrator import centres
from orchestrator.booking import one_off
from orchestrator.db import Database, DbSession
from orchestrator.models import SessionReadiness
from web.cli import main
from web.settings import Settings

T = datetime(2027, 2, 2, 9, 0, tzinfo=UTC)


def test_session_show_prints_each_room_s_readiness(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = Database(Settings(data_dir=tmp_path).effective_database_url)
    db.migrate()

    def setup(s: DbSession) -> tuple[str, str, str]:
        centre = centres.add_centre(s, "Paris", "Europe/Paris")
        a = centres.add_room(s, centre.id, "Salle A")[0].id
        b = centres.add_room(s, centre.id, "Salle B")[0].id
        _, session = one_off.book(s, "Revue", T, T + timedelta(hours=1), [a, b])
        checks = [{"name": "camera", "ok": False, "detail": "no frames"}]
        s.add(
            SessionReadiness(
                session_id=session.id,
                room_id=a,
                ok=False,
                checks=json.dumps(checks),
                checked_at=T - timedelta(minutes=10),
                received_at=T - timedelta(minutes=10),
            )
        )
        return session.id, a, b

    session_id, a, b = db.run_sync(setup)
    db.close_sync()

    assert main(["session", "show", session_id, "--data-dir", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert "Salle A:" in text and "readiness failing camera" in text
    assert "Salle B:" in text and "readiness not checked" in text

    assert main(["session", "show", session_id, "--data-dir", str(tmp_path), "--json"]) == 0
    rooms = {r["room_id"]: r for r in json.loads(capsys.readouterr().out)["rooms"]}
    assert rooms[a]["readiness"]["ok"] is False
    assert rooms[b]["readiness"] is None
