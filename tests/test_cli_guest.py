"""``telecentre booking guest``: a guest's personal link from the command line, made by
the rule the booking page's form applies (``guests.add_guest``, tested on its own in
tests/test_guest_links.py and test_invitations.py), shown once under the service's
public address.

The CLI runs in this process (``web.cli.main``) on a fresh data directory; the
bookings are at instants relative to now, far from any window edge."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from orchestrator.db import Database
from orchestrator.sessions import guests
from web.cli import main


def cli(capsys: pytest.CaptureFixture[str], data: Path, *args: str) -> tuple[int, dict[str, Any]]:
    code = main([*args, "--data-dir", str(data), "--json"])
    out = capsys.readouterr().out.strip().splitlines()
    return code or 0, json.loads(out[-1]) if out else {}


def booked(capsys: pytest.CaptureFixture[str], data: Path, start: datetime) -> str:
    _, centre = cli(capsys, data, "centre", "add", "Paris", "--timezone", "Europe/Paris")
    _, room = cli(capsys, data, "room", "add", "--centre", centre["id"], "Salle")
    end = start + timedelta(hours=1)
    _, made = cli(
        capsys, data, "book", "--title", "t", "--room", room["id"],
        "--start", start.isoformat(), "--end", end.isoformat(),
    )  # fmt: skip
    booking_id: str = made["booking_id"]
    return booking_id


def test_a_guest_link_is_printed_once_under_the_public_address(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TELECENTRE_PUBLIC_URL", "https://tc.example.org/")
    now = datetime.now(UTC)
    booking_id = booked(capsys, tmp_path, now + timedelta(minutes=5))
    code, out = cli(capsys, tmp_path, "booking", "guest", booking_id, "Ada Lovelace")
    assert code == 0 and out["booking_id"] == booking_id
    prefix = "https://tc.example.org/join/"
    assert out["url"].startswith(prefix)
    token = out["url"][len(prefix) :]
    db = Database.for_data_dir(tmp_path)
    try:
        access = db.run_sync(lambda s: guests.resolve_link(s, token, now + timedelta(minutes=5)))
        assert (access.guest_id, access.name) == (out["guest_id"], "Ada Lovelace")
        stored = db.run_sync(lambda s: guests.list_guests(s, booking_id))
        assert [g.token_hash for g in stored] == [guests.hash_guest_token(token)]
        assert token not in json.dumps([g.model_dump() for g in stored], default=str)
    finally:
        db.close_sync()


def test_an_unknown_booking_invites_nobody(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    booked(capsys, tmp_path, datetime.now(UTC) + timedelta(minutes=5))
    code, out = cli(capsys, tmp_path, "booking", "guest", "nope", "Nobody")
    assert code == 2 and out["error"]["code"] == "not-found"
