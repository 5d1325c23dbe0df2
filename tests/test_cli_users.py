"""``telecentre user add|list|set-password`` and ``telecentre room panel-link``."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from orchestrator.centres import list_centres
from orchestrator.db import Database
from orchestrator.errors import DomainError
from orchestrator.people import accounts
from orchestrator.sessions import panels
from web.cli import main

NOW = datetime(2030, 1, 1, tzinfo=UTC)


class Cli:
    def __init__(self, data: Path, capsys: pytest.CaptureFixture[str], mp: pytest.MonkeyPatch):
        self.data, self.capsys, self.mp = data, capsys, mp
        # Settings from the environment must not leak into the test.
        for name in ("TELECENTRE_PUBLIC_URL", "TELECENTRE_PORT", "TELECENTRE_HOST"):
            mp.delenv(name, raising=False)

    def __call__(self, *argv: str, stdin: str = "") -> tuple[int, str, str]:
        self.mp.setattr("sys.stdin", io.StringIO(stdin))
        code = main([*argv, "--data-dir", str(self.data)])
        out = self.capsys.readouterr()
        return code, out.out, out.err

    def json(self, *argv: str, stdin: str = "") -> dict[str, object]:
        code, out, err = self(*argv, "--json", stdin=stdin)
        assert code == 0, out + err
        data: dict[str, object] = json.loads(out)
        return data

    def login(self, email: str, password: str) -> str:
        db = Database.for_data_dir(self.data)
        try:
            return db.run_sync(lambda s: accounts.login(s, email, password, "cli-test", NOW))[1]
        finally:
            db.close_sync()


@pytest.fixture
def cli(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Cli:
    return Cli(tmp_path, capsys, monkeypatch)


def test_user_add_prints_a_generated_password_once_and_it_works(cli: Cli) -> None:
    centre = cli.json("centre", "add", "Fontainebleau", "--timezone", "Europe/Paris")["id"]
    assert isinstance(centre, str)
    code, out, _ = cli(
        "user", "add", "Paul@Example.org", "--name", "Paul", "--role", "staff", "--centre", centre
    )
    assert code == 0
    password = out.split("password  ")[1].split()[0]
    assert len(password) >= 16 and "shown only this once" in out
    assert cli.login("paul@example.org", password)
    listed = cli.json("user", "list")["users"]
    assert isinstance(listed, list)
    assert [(u["email"], u["role"], u["centre_id"]) for u in listed] == [
        ("paul@example.org", "staff", centre)
    ]
    assert password not in json.dumps(listed)


def test_user_add_reads_the_password_from_stdin_and_refuses_bad_input(cli: Cli) -> None:
    added = cli.json(
        "user",
        "add",
        "ada@example.org",
        "--name",
        "Ada",
        "--role",
        "admin",
        "--password-stdin",
        stdin="a long admin password\n",
    )
    assert added["role"] == "admin" and "password" not in added
    assert cli.login("ada@example.org", "a long admin password")
    code, out, _ = cli(
        "user", "add", "x@example.org", "--name", "X", "--role", "organiser", "--json"
    )
    assert code == 2 and json.loads(out)["error"]["code"] == "needs-centre"
    code, _, err = cli(
        "user",
        "add",
        "y@example.org",
        "--name",
        "Y",
        "--role",
        "admin",
        "--password-stdin",
        stdin="short\n",
    )
    assert code == 2 and "(weak-password)" in err
    code, _, err = cli("user", "add", "ada@example.org", "--name", "A", "--role", "admin")
    assert code == 2 and "(duplicate)" in err


def test_set_password_replaces_it_and_ends_open_logins(cli: Cli) -> None:
    cli(
        "user",
        "add",
        "ada@example.org",
        "--name",
        "Ada",
        "--role",
        "admin",
        "--password-stdin",
        stdin="the first password\n",
    )
    token = cli.login("ada@example.org", "the first password")
    code, out, _ = cli(
        "user", "set-password", "ADA@example.org", "--password-stdin", stdin="the second password\n"
    )
    assert code == 0 and "changed" in out
    db = Database.for_data_dir(cli.data)
    try:
        assert db.run_sync(lambda s: accounts.session_user(s, token, NOW)) is None
    finally:
        db.close_sync()
    with pytest.raises(DomainError):
        cli.login("ada@example.org", "the first password")
    assert cli.login("ada@example.org", "the second password")
    code, _, err = cli(
        "user", "set-password", "nobody@example.org", "--password-stdin", stdin="x" * 12
    )
    assert code == 2 and "(not-found)" in err


def test_room_panel_link_prints_a_working_url(cli: Cli) -> None:
    centre = cli.json("centre", "add", "Fontainebleau", "--timezone", "Europe/Paris")["id"]
    room = cli.json("room", "add", "--centre", str(centre), "Salle Bleue")["id"]
    code, out, _ = cli("room", "panel-link", str(room))
    assert code == 0
    url = out.splitlines()[0]
    assert url.startswith("http://127.0.0.1:8077/panel/tcp_")
    db = Database.for_data_dir(cli.data)
    try:
        token = url.rsplit("/", 1)[1]
        assert db.run_sync(lambda s: panels.resolve_panel(s, token)).id == room
    finally:
        db.close_sync()
    cli.mp.setenv("TELECENTRE_PUBLIC_URL", "https://rooms.example.org/")
    assert str(cli.json("room", "panel-link", str(room))["url"]).startswith(
        "https://rooms.example.org/panel/tcp_"
    )
    code, _, err = cli("room", "panel-link", "no-such-room")
    assert code == 2 and "(not-found)" in err


def test_the_demo_network_has_one_person_per_role_with_the_demo_password(tmp_path: Path) -> None:
    from web.demo import DEMO_PASSWORD, create_network

    db = Database.for_data_dir(tmp_path)
    try:
        db.migrate()
        create_network(db, tmp_path / "keys")
        centres = {c.name: c.id for c in db.run_sync(list_centres)}
        expected = {
            "admin@telecentre.demo": ("admin", None),
            "staff@telecentre.demo": ("staff", centres["Fontainebleau"]),
            "organiser@telecentre.demo": ("organiser", centres["Amsterdam Bright City"]),
        }
        assert DEMO_PASSWORD == "telecentre-demo"
        for email, (role, centre_id) in expected.items():
            who = db.run_sync(
                lambda s, email=email: accounts.login(s, email, "telecentre-demo", "demo", NOW)[0]
            )
            assert (who.role, who.centre_id) == (role, centre_id)
    finally:
        db.close_sync()
