"""The package rules of DESIGN.md, as import-linter contracts (pyproject.toml), and
the promise that a room PC needs none of the server's packages."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_linter_contracts_hold() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    proc = subprocess.run(
        [str(lint), str(ROOT / "pyproject.toml"), "--no-cache"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Contracts: 9 kept, 0 broken." in proc.stdout


def test_the_agent_command_loads_no_server_code() -> None:
    """`telecentre agent` on a room PC: no sqlmodel, jinja2, icalendar, orchestrator."""
    code = (
        "import sys; from web import cli; from room_agents import agent; "
        "bad = [m for m in ('sqlmodel', 'sqlalchemy', 'jinja2', 'icalendar', 'alembic', "
        "'orchestrator', 'signalling.server') if m in sys.modules]; print(bad)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_running_telecentre_agent_loads_no_server_code() -> None:
    """The command itself, not just its import: ``telecentre agent config`` through
    ``web.cli.main`` prints the settings and leaves the server's packages unloaded."""
    code = (
        "import sys; from web.cli import main; "
        "status = main(['agent', 'config', '--server', 'http://x:1', '--json']); "
        "bad = [m for m in ('sqlmodel', 'sqlalchemy', 'jinja2', 'icalendar', 'alembic', "
        "'orchestrator', 'signalling.server', 'web.cli.service') if m in sys.modules]; "
        "print(status, bad, file=sys.stderr)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert '"server": {"value": "ws://x:1/ws", "from": "flag"}' in proc.stdout
    assert proc.stderr.strip() == "0 []"


def test_a_service_command_loads_only_its_own_subject() -> None:
    """``telecentre centre ...`` loads the centre commands, not the web application,
    the signalling server or aiortc that ``serve`` needs; ``--help`` still lists all."""
    code = (
        "import sys; from web.cli import main\n"
        "try:\n    main(['centre', 'add', '--help'])\nexcept SystemExit as e:\n    status = e.code\n"
        "bad = [m for m in ('web.app', 'web.cli.serve', 'web.cli.sessions', 'signalling.server', "
        "'aiortc', 'jinja2') if m in sys.modules]\n"
        "print(status, bad, file=sys.stderr)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert "usage: telecentre centre add" in proc.stdout
    assert proc.stderr.strip() == "0 []"
    listed = subprocess.run(
        [sys.executable, "-m", "web.cli", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert listed.returncode == 0, listed.stderr
    for command in ("serve", "centre", "room", "user", "book", "calendar", "feed", "caldav"):
        assert f"    {command} " in listed.stdout or f"{{{command}," in listed.stdout


def test_the_agent_extra_declares_no_server_package() -> None:
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    agent = " ".join(project["dependencies"] + project["optional-dependencies"]["agent"])
    for name in ("sqlmodel", "jinja2", "icalendar", "alembic", "sqlalchemy"):
        assert name not in agent
