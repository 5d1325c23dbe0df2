"""What a test needs from the machine: skip with a reason on a developer laptop that
lacks it, fail under CI (``CI=true``), where a missing part is a broken setup."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def under_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def missing(reason: str) -> NoReturn:
    if under_ci():
        pytest.fail(f"CI needs this: {reason}", pytrace=False)
    pytest.skip(reason)
