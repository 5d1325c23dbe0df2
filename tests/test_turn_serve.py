"""``telecentre serve`` with TURN (real processes, a real coturn on loopback): the rooms'
calls go through coturn with the credentials serve minted for their session, a
``relay`` room (set with ``room set --ice-policy relay``) still gets media, and no log
line of serve, the agents (at DEBUG) or coturn (verbose) carries the shared secret or
a password; a TURN configuration without its secret stops serve with one message."""

from __future__ import annotations

import re
import secrets
import subprocess
import sys
import time
from pathlib import Path

import pytest

from common import turn
from tests.coturn_support import running_coturn
from tests.e2e_support import ROOT, Network, base_env, wait_until
from tests.test_e2e_autostart import CENTRES, assert_clean_logs, online, receiving

pytestmark = pytest.mark.e2e

ROOMS = ["fontainebleau", "amsterdam"]


def test_serve_mints_session_credentials_that_carry_the_call_and_logs_stay_clean(
    tmp_path: Path,
) -> None:
    secret = "turn-" + secrets.token_hex(16)
    with running_coturn(tmp_path / "coturn", [secret]) as coturn:
        net = Network.create(tmp_path, [(r, *CENTRES[r]) for r in ROOMS])
        secret_file = tmp_path / "turn-secret"
        secret_file.write_text(secret + "\n")
        secret_file.chmod(0o600)
        net.serve.env = base_env(
            TELECENTRE_TURN_URLS=f"{coturn.udp_url},{coturn.tcp_url}",
            TELECENTRE_TURN_SECRET_FILE=str(secret_file),
            TELECENTRE_LOG_LEVEL="DEBUG",
        )
        relay_room = net.rooms["fontainebleau"]
        assert net.cli.run("room", "set", relay_room, "--ice-policy", "relay")["ice_policy"] == (
            "relay"
        )
        net.serve.start()
        try:
            net.serve.wait_ready()
            for room in ROOMS:
                agent = net.agent(room, width=320, height=180)
                agent.argv += ["--log-level", "DEBUG"]
                agent.start()
            online(net, *ROOMS)
            start = time.time() + 8
            session_id = net.book(start, start + 30, ROOMS, lead=5)
            wait_until("the session to start", lambda: time.time() > start + 1, 20, interval=0.2)
            for room, sender in (("fontainebleau", "amsterdam"), ("amsterdam", "fontainebleau")):
                assert receiving(net, room, sender, after=start + 0.5)["camera_frames"] > 0
        finally:
            net.stop_all()
        coturn_log = coturn.log_text()
    usernames = set(re.findall(r"username=<([^>]+)>", coturn_log))
    parsed = [p for u in usernames if (p := turn.parse_turn_username(u)) is not None]
    # The relay room allocated with the credential of this session (and its check one).
    assert "ICE policy relay" in net.agents["fontainebleau"].log()
    assert "ICE policy all" in net.agents["amsterdam"].log()
    relay_sessions = {p.session_id for p in parsed if p.peer_id == f"room:{relay_room}"}
    assert session_id in relay_sessions and turn.NO_SESSION in relay_sessions
    assert "ALLOCATE processed, success" in coturn_log
    passwords = {turn.turn_password(secret, u) for u in usernames}
    logs = [net.serve.log(), coturn_log, *(a.log() for a in net.agents.values())]
    for text in logs:
        assert secret not in text
        assert not [pw for pw in passwords if pw in text]
    assert_clean_logs(net)


def test_serve_refuses_turn_urls_without_a_secret_in_one_line(tmp_path: Path) -> None:
    empty = tmp_path / "empty-secret"
    empty.write_text("\n")
    for extra in (
        {"TELECENTRE_TURN_URLS": "turn:127.0.0.1:3478"},
        {"TELECENTRE_TURN_URLS": "turn:127.0.0.1:3478", "TELECENTRE_TURN_SECRET_FILE": str(empty)},
    ):
        proc = subprocess.run(
            [sys.executable, "-m", "web.cli", "serve", "--port", "9", "--data-dir", str(tmp_path)],
            cwd=ROOT,
            env=base_env(**extra),
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
        assert proc.returncode == 2, proc.stderr
        assert "Traceback" not in proc.stderr
        assert re.search(r"error: turn_(urls and turn_secret|secret_file .*: empty)", proc.stderr)
