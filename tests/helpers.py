"""Small helpers shared by the kernel tests."""
from __future__ import annotations

import contextlib

import dropnet


@contextlib.contextmanager
def threads(n: int):
    """Run the body with the kernels on n threads, restoring the previous count after."""
    before = dropnet.get_num_threads()
    dropnet.set_num_threads(n)
    try:
        yield
    finally:
        dropnet.set_num_threads(before)
