"""Threads, ISA dispatch and device queries."""
from __future__ import annotations

import contextlib
from typing import Dict, Iterator, Union

from . import _core

_c = _core.core

ISA_LEVELS = ("scalar", "avx2", "avx512")


def get_num_threads() -> int:
    """Number of threads the native kernels use."""
    return _c.get_num_threads()


def set_num_threads(n: int) -> None:
    """Set the number of threads the native kernels use (``n >= 1``).

    Results never depend on it: kernels split work over independent outputs only.
    """
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"set_num_threads: n must be an int >= 1, got {type(n).__name__}")
    _c.set_num_threads(n)


def set_isa(name: str) -> None:
    """Force the vector ISA the kernels use: ``'scalar'``, ``'avx2'`` or ``'avx512'``.

    The environment variable ``DROPNET_ISA`` sets the starting level. Asking for more than the
    CPU supports raises ``ValueError``.
    """
    _c.set_isa(name)


@contextlib.contextmanager
def isa(name: str) -> Iterator[None]:
    """Context manager that runs its body with the kernels forced to ISA ``name``."""
    previous = _c.active_isa()
    _c.set_isa(name)
    try:
        yield
    finally:
        _c.set_isa(previous)


def cuda_available() -> bool:
    """True when dropnet was built with CUDA and a CUDA device is usable
    (:func:`dropnet.cuda.is_available`; :func:`dropnet.cuda.unavailable_reason` says why not)."""
    return bool(_c.built_with_cuda) and not _c.cuda_unavailable_reason()


def cpu_features() -> Dict[str, Union[str, bool, int, list, dict]]:
    """Which ISA paths this CPU can run, which one is in use, and the raw CPU flags.

    Returns a dict with keys ``available`` (list of ISA names), ``active``, ``max``,
    ``flags`` (CPUID bits), ``threads``, ``cuda_built`` and ``cuda_devices``.
    """
    max_isa = _c.max_isa()
    available = list(ISA_LEVELS[: ISA_LEVELS.index(max_isa) + 1])
    return {
        "available": available,
        "active": _c.active_isa(),
        "max": max_isa,
        "flags": dict(_c.cpu_flags()),
        "threads": _c.get_num_threads(),
        "cuda_built": bool(_c.built_with_cuda),
        "cuda_devices": int(_c.cuda_device_count()),
    }
