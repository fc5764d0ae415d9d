"""CUDA device queries: whether a GPU is usable, how many, their memory, and what is missing.

The extension links the CUDA runtime statically and loads the driver on first use, so this
module imports, and answers, on a machine with no driver and no GPU. Today the GPU runs
:func:`dropnet.random.uniform_bits` with ``device='cuda'``; training runs on the CPU
(docs/design.md, "Device kernels").
"""
from __future__ import annotations

import operator
from typing import Optional, Tuple

from . import _core

_c = _core.core

__all__ = ["is_available", "device_count", "unavailable_reason", "mem_get_info"]


def is_available() -> bool:
    """True when dropnet was built with CUDA and at least one CUDA device is usable."""
    return unavailable_reason() is None


def device_count() -> int:
    """Number of usable CUDA devices (0 without a CUDA build, a driver or a GPU)."""
    return int(_c.cuda_device_count())


def unavailable_reason() -> Optional[str]:
    """None when a CUDA device is usable; otherwise what is missing: a build without CUDA, no
    CUDA driver, or no CUDA device (with the CUDA runtime's own message)."""
    reason = str(_c.cuda_unavailable_reason())
    return reason or None


def mem_get_info(device: int = 0) -> Tuple[int, int]:
    """``(free, total)`` memory of CUDA device ``device`` in bytes.

    Raises ``RuntimeError`` naming what is missing when no CUDA device is usable, or when
    ``device`` is not one of them; ``TypeError`` when ``device`` is not an int.
    """
    if isinstance(device, bool):
        raise TypeError("device: expected an int device index, got bool")
    try:
        index = operator.index(device)
    except TypeError:
        raise TypeError(f"device: expected an int device index, got {type(device).__name__}") from None
    if not -2**31 <= index < 2**31:
        raise RuntimeError(f"device: expected a CUDA device index in [0, {device_count()}), got {index}")
    free, total = _c.cuda_mem_get_info(index)
    return int(free), int(total)
