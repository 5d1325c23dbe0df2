"""``telecentre agent``: run (plain ``telecentre agent`` too), devices, config; flags,
environment and file through the real command line; a real agent process started
from a configuration file with lavfi devices and an ALSA null speaker."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from room_agents.cli import _flags, cmd_config, cmd_devices, cmd_run
from tests.e2e_support import ROOT, Managed, Network, base_env, wait_until
from web.cli.service import build_parser


def telecentre(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "web.cli", *args],
        cwd=ROOT,
        env=base_env(**(env or {})),
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def test_plain_agent_and_agent_run_parse_the_same_and_keep_absent_flags_absent() -> None:
    parser = build_parser()
    plain = parser.parse_args(["agent", "--server", "http://x:1", "--fps", "15"])
    run = parser.parse_args(["agent", "run", "--server", "http://x:1", "--fps", "15"])
    for args in (plain, run):
        assert args.func is cmd_run
        assert _flags(args) == {"server": "http://x:1", "fps": "15"}
    assert parser.parse_args(["agent", "devices", "--json"]).func is cmd_devices
    shown = parser.parse_args(["agent", "config", "--config", "a.toml", "--key", "k"])
    assert shown.func is cmd_config and _flags(shown) == {"config": "a.toml", "key": "k"}


def test_flags_beat_the_environment_which_beats_the_file(tmp_path: Path) -> None:
    conf = tmp_path / "agent.toml"
    conf.write_text(
        'server = "http://file:1"\nfps = 25\ncamera = "lavfi:testsrc2"\nlabel = "File"\n'
        'key_file = "room.key"\n'
    )
    proc = telecentre(
        "agent",
        "config",
        "--config",
        str(conf),
        "--fps",
        "15",
        "--json",
        env={"TELECENTRE_AGENT_FPS": "20", "TELECENTRE_AGENT_LABEL": "Env"},
    )
    assert proc.returncode == 0, proc.stderr
    shown = json.loads(proc.stdout)
    assert shown["fps"] == {"value": 15, "from": "flag"}
    assert shown["label"] == {"value": "Env", "from": "env"}
    assert shown["camera"] == {"value": "lavfi:testsrc2", "from": "file"}
    assert shown["key_file"] == {"value": str(tmp_path / "room.key"), "from": "file"}
    assert shown["width"] == {"value": 640, "from": "default"}


def test_configuration_errors_stop_the_agent_with_the_key_named(tmp_path: Path) -> None:
    bad = tmp_path / "agent.toml"
    bad.write_text('server = "http://a:1"\ncamra = "v4l2:/dev/video0"\n')
    proc = telecentre("agent", "run", "--config", str(bad))
    assert proc.returncode == 2
    assert f"error: {bad}: unknown key 'camra'" in proc.stderr
    no_key = telecentre("agent", "--server", "http://127.0.0.1:9")
    assert no_key.returncode == 2 and "no room key" in no_key.stderr
    no_format = telecentre("agent", "--server", "http://a:1", "--camera", "v4l2")
    assert no_format.returncode == 2 and "--camera: camera 'v4l2'" in no_format.stderr


def test_the_agent_module_runs_on_its_own() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "room_agents.cli", "devices", "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "alsa:null" in proc.stdout


# --- a real agent process from a configuration file --------------------------------------


@pytest.fixture
def network(tmp_path: Path) -> Iterator[Network]:
    net = Network.create(tmp_path, [("salle1", "Fontainebleau", "Europe/Paris")])
    net.serve.start()
    try:
        net.serve.wait_ready()
        yield net
    finally:
        net.stop_all()


@pytest.mark.e2e
def test_an_agent_started_from_its_configuration_file_opens_its_devices(
    network: Network, tmp_path: Path
) -> None:
    work = tmp_path / "salle1"
    work.mkdir()
    conf = work / "agent.toml"
    conf.write_text(
        f'server = "{network.serve.url}"\n'
        f'key_file = "{network.key_files["salle1"]}"\n'
        'cache_dir = "cache"\n'
        'status_file = "status.json"\n'
        'camera = "lavfi:testsrc2=size=640x360:rate=15"\n'
        'microphone = "lavfi:sine=frequency=440"\n'
        'speaker = "alsa:null"\n'
        "width = 320\nheight = 180\nfps = 15\n"
    )
    (work / "cache").mkdir()
    agent = Managed(
        argv=[sys.executable, "-m", "web.cli", "agent", "run", "--config", str(conf)],
        log_path=work / "agent.log",
        env=base_env(TELECENTRE_AGENT_LABEL="Salle 1"),
    )
    agent.start()
    try:
        check_running_agent(network, agent, work / "status.json")
    finally:
        agent.stop()


def check_running_agent(network: Network, agent: Managed, status_path: Path) -> None:

    def ready() -> dict[str, Any] | None:
        status: dict[str, Any] = json.loads(status_path.read_text())
        devices = status["devices"]
        ok = (
            status["connected"]
            and devices["camera"]["state"] == "ok"
            and devices["microphone"]["state"] == "ok"
            and devices["speaker"]["state"] == "playing"
        )
        return status if ok else None

    status = wait_until("the agent connected with its devices open", ready, 30)
    assert status["peer_id"] == f"room:{network.rooms['salle1']}"
    assert status["devices"]["camera"]["spec"] == "lavfi:testsrc2=size=640x360:rate=15"
    assert status["devices"]["microphone"]["level"] > 0.05
    started = time.monotonic()
    agent.stop()  # SIGTERM: a clean exit, well within systemd's TimeoutStopSec
    assert agent.proc is not None and agent.proc.returncode == 0
    assert time.monotonic() - started < 5
    log = agent.log()
    assert "camera lavfi:testsrc2=size=640x360:rate=15 delivers" in log
    assert "speaker alsa:null playing" in log
    assert network.key_files["salle1"].read_text().strip() not in log
