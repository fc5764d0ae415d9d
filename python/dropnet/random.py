"""Counter-based random numbers: Philox4x32-10 and dropnet's stream contract.

Element ``i`` of stream ``s`` under seed ``k`` draws word ``i % 4`` of
``philox4x32_10([lo32(i//4), hi32(i//4), lo32(s), hi32(s)], [lo32(k), hi32(k)])``. A value
depends only on ``(seed, stream, i)``: never on threads, ISA or device.
"""
from __future__ import annotations

import numpy as np

from . import _core

_r = _core.random

_U64 = 1 << 64


def philox4x32_10(counter: np.ndarray, key: np.ndarray) -> np.ndarray:
    """Philox4x32-10 on a batch.

    counter: uint32, shape (..., 4); key: uint32, shape (..., 2) with the same leading shape.
    Returns uint32 of shape (..., 4).
    """
    return _r.philox4x32_10(counter, key)


def uniform_bits(n: int, seed: int, stream: int, *, start: int = 0, device: str = "cpu") -> np.ndarray:
    """The uint32 word each element ``start .. start + n - 1`` of stream ``(seed, stream)`` draws.

    Returns uint32 of shape (n,). ``device='cuda'`` computes on the GPU (bit-identical).
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"n: expected an int >= 0, got {type(n).__name__}")
    return _r.uniform_bits(int(n), seed, stream, start, device)


def _check_u64(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name}: expected an int in [0, 2**64), got {type(value).__name__}")
    value = int(value)
    if not 0 <= value < _U64:
        raise ValueError(f"{name}: expected an int in [0, 2**64), got {value}")
    return value


class Generator:
    """A seed and an offset. Each random op takes the current offset as its stream and
    advances it by one, so a sequence of ops is reproducible from the seed alone.

    >>> g = Generator(42)
    >>> g.next_stream(), g.next_stream()
    (0, 1)
    """

    __slots__ = ("_seed", "_offset")

    def __init__(self, seed: int = 0, offset: int = 0) -> None:
        self._seed = _check_u64(seed, "seed")
        self._offset = _check_u64(offset, "offset")

    @property
    def seed(self) -> int:
        return self._seed

    @property
    def offset(self) -> int:
        return self._offset

    @offset.setter
    def offset(self, value: int) -> None:
        self._offset = _check_u64(value, "offset")

    def next_stream(self) -> int:
        """Return the current offset as a stream id and advance the offset by one."""
        if self._offset >= _U64 - 1:
            raise OverflowError("Generator: stream offset exhausted 2**64 - 1 streams")
        stream = self._offset
        self._offset += 1
        return stream

    def state(self) -> dict:
        return {"seed": self._seed, "offset": self._offset}

    def __repr__(self) -> str:
        return f"Generator(seed={self._seed}, offset={self._offset})"
