"""Shared fixtures: every ISA level this CPU has, and thread-count restoration."""
from __future__ import annotations

import pytest

import dropnet

ISA_LEVELS = dropnet.cpu_features()["available"]


@pytest.fixture(params=ISA_LEVELS)
def isa_level(request):
    """Runs the test once per ISA path the CPU supports, with the kernels forced to it."""
    with dropnet.isa(request.param):
        yield request.param


@pytest.fixture(autouse=True)
def _restore_threads():
    n = dropnet.get_num_threads()
    yield
    dropnet.set_num_threads(n)
