"""Fixtures shared by every test module."""

from tests.netlab.fixture import netlab

__all__ = ["netlab"]
