"""Fixtures shared by every test module."""

from tests.netlab.fixture import deployment_lab, netlab

__all__ = ["deployment_lab", "netlab"]
