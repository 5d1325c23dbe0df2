"""The ``netlab`` pytest fixture (made visible to every test by tests/conftest.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from tests.netlab.lab import Lab
from tests.netlab.nsops import available
from tests.requirements import missing


@pytest.fixture
async def netlab() -> AsyncIterator[Lab]:
    """The issue's lab (``CENTRES``: home NAT ``a``, symmetric NAT behind a 443-only
    firewall ``b``, ``guest``), removed after the test whatever its outcome. Skips on a
    machine that cannot build it; fails under CI."""
    reason = available()
    if reason is not None:
        missing(reason)
    lab = await asyncio.to_thread(Lab.build)
    try:
        yield lab
    finally:
        await lab.aclose()
