"""The package version, whose one source is ``[project] version`` in pyproject.toml.

A built wheel or sdist install carries ``dropnet/_version.py``, which scikit-build-core writes
from pyproject at build time (``[[tool.scikit-build.generate]]``). A source checkout run with
``PYTHONPATH=python`` has no such file, so the version is read from the checkout's
pyproject.toml. ``importlib.metadata`` is not used: it answers for whichever ``dropnet``
distribution is installed, which need not be the package that was imported.
"""
from __future__ import annotations

import os
import re

_PYPROJECT = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, os.pardir, "pyproject.toml")


def version_from_pyproject(path: str = _PYPROJECT) -> str:
    """``version`` of the ``[project]`` table of the pyproject.toml at ``path``.

    Raises RuntimeError naming the file when it cannot be read or has no such key."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise RuntimeError(f"dropnet: no generated _version.py and no readable {path} ({e}); "
                           "install the package (pip install .) or run from a source checkout") from None
    # The [project] table runs from its header to the next table header.
    table = re.search(r"^\[project\][ \t]*$(.*?)(?=^\[|\Z)", text, re.M | re.S)
    found = table and re.search(r"^version[ \t]*=[ \t]*[\"']([^\"']+)[\"']", table.group(1), re.M)
    if not found:
        raise RuntimeError(f"dropnet: {path} has no [project] version")
    return found.group(1)


def package_version() -> str:
    try:
        from ._version import version  # written by scikit-build-core into wheels
    except ImportError:
        return version_from_pyproject()
    return version
