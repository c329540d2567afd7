"""Every script test gets the fake module tables of fakes.py through the ``rec`` fixture."""

import pytest

from .fakes import install


@pytest.fixture
def rec(monkeypatch):
    """Install the fake module tables; returns the Recorder of their calls."""
    return install(monkeypatch)
