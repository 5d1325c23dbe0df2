"""The README's first command: the demo serves its page and its booking goes live by
itself; the dashboard is watched as staff would, logged in with the credentials the
demo prints."""

from __future__ import annotations

import http.cookiejar
import json
import os
import re
import signal
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.e2e_support import ROOT, base_env, free_port, wait_until

pytestmark = pytest.mark.e2e

DEMO_EMAIL = "admin@telecentre.demo"
DEMO_PASSWORD = "telecentre-demo"


def log_in(base: str) -> urllib.request.OpenerDirector:
    """Log in through the login form, as a browser would (CSRF token and cookies)."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    with opener.open(f"{base}/login", timeout=5) as r:
        form = r.read().decode()
    token = re.search(r'name="csrf_token" value="([^"]+)"', form)
    assert token, form[-1500:]
    body = urllib.parse.urlencode(
        {"csrf_token": token.group(1), "email": DEMO_EMAIL, "password": DEMO_PASSWORD, "next": "/"}
    ).encode()
    with opener.open(f"{base}/login", data=body, timeout=10) as r:
        assert r.status == 200 and r.url == f"{base}/", r.url  # followed the 303 to the dashboard
    assert any(c.name == "tc_session" for c in jar), "the login set no session cookie"
    return opener


def test_the_demo_command_serves_its_page_and_the_booking_goes_live(tmp_path: Path) -> None:
    port = free_port()
    data = tmp_path / "demo"
    log = tmp_path / "demo.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                "bash",
                str(ROOT / "scripts" / "demo"),
                "--start-in",
                "20",
                "--lead",
                "8",
                "--duration",
                "400",
                "--port",
                str(port),
                "--data-dir",
                str(data),
            ],
            cwd=ROOT,
            env=base_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}/"
    try:

        def printed_url() -> bool:
            assert proc.poll() is None, log.read_text()[-3000:]
            return f"open {url}" in log.read_text()

        wait_until("the demo to print its URL", printed_url, 120)
        token = wait_until(
            "the API token file", lambda: (data / "api-token").read_text().strip(), 10
        )

        log_text = log.read_text()
        assert DEMO_EMAIL in log_text and DEMO_PASSWORD in log_text, log_text[-2000:]
        base = url.rstrip("/")
        staff = log_in(base)

        def page() -> str:
            with staff.open(url, timeout=5) as r:
                return str(r.read().decode())

        def state() -> dict[str, Any]:
            with staff.open(f"{base}/dashboard/state", timeout=5) as r:
                data: dict[str, Any] = json.loads(r.read())
                return data

        assert "Fontainebleau" in page() and "Montréal" in page()
        try:
            wait_until(
                "the dashboard to show the session live",
                lambda: any(s["state"] == "live" for s in state()["sessions"]),
                40,
            )
        except AssertionError:
            raise AssertionError(json.dumps(state())[-2500:] + log.read_text()[-2500:]) from None

        def api(path: str) -> dict[str, object]:
            req = urllib.request.Request(
                f"http://127.0.0.1:{port}/api/v1{path}",
                headers={"Authorization": f"Bearer {token}"},
            )
            with urllib.request.urlopen(req, timeout=5) as r:
                data: dict[str, object] = json.loads(r.read())
                return data

        # Someone watching the terminal sees the session move, without opening a page.
        wait_until(
            "the demo to print that its session is live",
            lambda: "is live (T+" in log.read_text(),
            10,
        )
        printed = log.read_text()
        assert re.search(r"is preparing \(T-\d s\): the rooms connect", printed), printed[-2000:]
        assert "Ctrl+C" in printed and f"{data} (kept after the demo stops)" in printed

        rooms = api("/rooms")["rooms"]
        assert isinstance(rooms, list) and len(rooms) >= 4
        assert all(r["online"] for r in rooms)
        sessions = api("/sessions")["sessions"]
        assert isinstance(sessions, list)
        session_id = sessions[0]["id"]

        def all_live() -> bool:
            detail = api(f"/sessions/{session_id}")
            rooms = detail["rooms"]
            assert isinstance(rooms, list) and len(rooms) == 3
            return all(r["live_at"] for r in rooms)

        wait_until("every booked room to report live", all_live, 20)

        def sites_live_with_figures() -> bool:
            live = next(s for s in state()["sessions"] if s["id"] == session_id)
            return all(x["media"] == "live" and x["fps"] for x in live["sites"])

        wait_until(
            "the dashboard to show each site's media and frame rate", sites_live_with_figures, 20
        )
        centres = {c["name"]: c["timezone"] for c in api("/centres")["centres"]}  # type: ignore[union-attr]
        assert len(set(centres.values())) >= 3
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
