"""The project installs quietly: its metadata builds without a warning from the build backend.

An install that prints a deprecation on every run teaches people to ignore the output; the
same backend pip uses (setuptools, from ``[build-system]``) builds the metadata here with
every warning shown, and the test fails on any of them.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_BUILD_METADATA = """
import sys, warnings
warnings.simplefilter("always")
from setuptools import build_meta
build_meta.prepare_metadata_for_build_wheel(sys.argv[1])
"""


def test_metadata_builds_without_a_warning(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-W", "always", "-c", _BUILD_METADATA, str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if "Warning" in line]
    assert warnings == [], "\n".join(warnings)
    (info,) = tmp_path.glob("*.dist-info")
    metadata = (info / "METADATA").read_text(encoding="utf-8")
    assert "License-Expression: AGPL-3.0-or-later" in metadata


def test_the_build_backend_reads_spdx_licences() -> None:
    """``license = "<SPDX>"`` needs setuptools 77; an older backend would refuse the file."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert isinstance(project["project"]["license"], str)
    assert "setuptools>=77" in project["build-system"]["requires"]
