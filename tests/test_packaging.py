"""The project installs quietly: its metadata builds without a warning from the build backend.

An install that prints a deprecation on every run teaches people to ignore the output; the
same backend pip uses (setuptools, from ``[build-system]``) builds the metadata here with
every warning shown, and the test fails on any of them.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_BUILD = """
import sys, warnings
warnings.simplefilter("always")
from setuptools import build_meta
getattr(build_meta, sys.argv[1])(sys.argv[2])
"""


def _build(hook: str, out: Path) -> str:
    """Run one PEP 517 hook of the backend with every warning shown; its stderr."""
    proc = subprocess.run(
        [sys.executable, "-W", "always", "-c", _BUILD, hook, str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stderr


def _warnings(stderr: str) -> list[str]:
    """Lines of warnings: setuptools' deprecations, and the notes pip shows as
    ``BuildBackendWarning`` (``InformationOnly`` in the process that emits them)."""
    return [
        line for line in stderr.splitlines() if "Warning:" in line or "InformationOnly:" in line
    ]


def test_metadata_builds_without_a_warning(tmp_path: Path) -> None:
    assert _warnings(_build("prepare_metadata_for_build_wheel", tmp_path)) == []
    (info,) = tmp_path.glob("*.dist-info")
    metadata = (info / "METADATA").read_text(encoding="utf-8")
    assert "License-Expression: AGPL-3.0-or-later" in metadata


def test_the_editable_install_of_the_quick_start_builds_without_a_warning(
    tmp_path: Path,
) -> None:
    """scripts/setup.sh installs with ``pip install -e``: a plain .pth file, no finder
    hook and no "Editable installation" warning."""
    assert _warnings(_build("build_editable", tmp_path)) == []
    (wheel,) = tmp_path.glob("*.whl")
    with zipfile.ZipFile(wheel) as built:
        (pth,) = [n for n in built.namelist() if n.endswith(".pth")]
        assert built.read(pth).decode().strip() == str(ROOT)


def test_the_build_backend_reads_spdx_licences() -> None:
    """``license = "<SPDX>"`` needs setuptools 77; an older backend would refuse the file."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert isinstance(project["project"]["license"], str)
    assert "setuptools>=77" in project["build-system"]["requires"]
