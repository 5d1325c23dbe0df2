"""The ``netlab`` and ``deployment_lab`` pytest fixtures (made visible to every test by
tests/conftest.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable

import pytest

from tests.netlab.lab import Lab
from tests.netlab.nsops import available
from tests.netlab.plan import CENTRES, DEPLOYMENT_CENTRES, SiteSpec
from tests.requirements import missing


async def _lab(sites: Iterable[SiteSpec]) -> AsyncIterator[Lab]:
    reason = available()
    if reason is not None:
        missing(reason)
    lab = await asyncio.to_thread(Lab.build, sites)
    try:
        yield lab
    finally:
        await lab.aclose()


@pytest.fixture
async def netlab() -> AsyncIterator[Lab]:
    """The issue's lab (``CENTRES``: home NAT ``a``, symmetric NAT behind a 443-only
    firewall ``b``, ``guest``), removed after the test whatever its outcome. Skips on a
    machine that cannot build it; fails under CI."""
    async for lab in _lab(CENTRES):
        yield lab


@pytest.fixture
async def deployment_lab() -> AsyncIterator[Lab]:
    """``netlab`` whose B firewall also lets out HTTPS to the service
    (``DEPLOYMENT_CENTRES``): for tests/netlab/deployment.py's real product."""
    async for lab in _lab(DEPLOYMENT_CENTRES):
        yield lab
