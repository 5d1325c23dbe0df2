"""The docs name files that exist: every path written in backticks in the architecture,
protocol and glossary documents is found at the root of the repository or, where a
section speaks inside a package (``booking/conflicts.py`` in the orchestrator's), under
one of the packages."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ("docs/architecture.md", "docs/protocol.md", "docs/glossary.md", "README.md")
PACKAGES = (
    "",
    "common",
    "orchestrator",
    "orchestrator/calendars",
    "signalling",
    "room_agents",
    "web",
    "web/ui",
    "tests",
    "docs",
)
TOKEN = re.compile(r"`([A-Za-z0-9_.\-]+(?:/[A-Za-z0-9_.\-]+)+/?)(?::[A-Za-z0-9_.]+)?`")
FILE_LIKE = re.compile(r"(\.(py|md|html|js|css|toml|ini|sh|po|svg)|/)$")


def named_paths(text: str) -> set[str]:
    """Backticked tokens that are repository paths: a slash, and a file ending or a
    trailing slash (``/api/v1/...`` routes and ``a/b`` fractions are not)."""
    return {m.group(1) for m in TOKEN.finditer(text) if FILE_LIKE.search(m.group(1))}


def test_named_paths_reads_paths_and_leaves_routes_out() -> None:
    text = "`orchestrator/desk/door.py:book`, `web/cli/`, `/api/v1/bookings`, `a/b`"
    assert named_paths(text) == {"orchestrator/desk/door.py", "web/cli/"}


@pytest.mark.parametrize("doc", DOCS)
def test_every_path_a_document_names_exists(doc: str) -> None:
    paths = named_paths((ROOT / doc).read_text(encoding="utf-8"))
    assert paths or doc != "docs/architecture.md"
    missing = sorted(p for p in paths if not any((ROOT / base / p).exists() for base in PACKAGES))
    assert not missing, f"{doc} names paths that do not exist: {missing}"
