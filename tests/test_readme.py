"""The README's quick start tells a newcomer what the commands really do: what the test
command installs with apt-get (read from scripts/services.sh), where the demo listens
and when its session prepares (read from the demo command's defaults), how to stop it
and where its data stays."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from web.cli.service import build_parser

ROOT = Path(__file__).resolve().parents[1]


def _quick_start() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return text.split("## Quick start", 1)[1].split("\n## ", 1)[0]


def _apt_packages() -> set[str]:
    script = (ROOT / "scripts" / "services.sh").read_text(encoding="utf-8")
    packages: set[str] = set()
    for call in re.findall(r"apt_install ([^|\n]+)", script):
        packages.update(w for w in call.split() if not w.startswith("-") and w != "||")
    return packages


def _demo_defaults() -> argparse.Namespace:
    return build_parser().parse_args(["demo"])


def test_every_package_the_test_command_installs_is_named() -> None:
    packages = _apt_packages()
    assert {"faketime", "chromium", "postgresql", "redis-server"} <= packages
    missing = sorted(p for p in packages if f"`{p}`" not in _quick_start())
    assert missing == [], f"the quick start does not say scripts/test installs {missing}"


def test_the_demo_url_and_pre_roll_are_the_commands_defaults() -> None:
    defaults = _demo_defaults()
    text = _quick_start()
    assert f"http://{defaults.host}:{defaults.port}/" in text
    assert f"`preparing` {defaults.lead} seconds before its start" in text
    assert f"`T-{defaults.lead} s`" in text


def test_it_says_how_to_stop_the_demo_where_its_data_stays_and_how_long_tests_take() -> None:
    text = _quick_start()
    assert "Ctrl+C" in text
    assert "`/tmp`" in text and "stays there after the demo stops" in text
    assert re.search(r"suite takes about \d+ minutes", text)
