"""The dropout family: one pass over memory, masks from the Philox stream contract.

Element ``i`` (flat C-order index) of stream ``(seed, stream)`` is kept iff
``uniform_bits(i) < threshold`` with ``threshold = min(floor((1 - p) * 2**32), 2**32 - 1)``
computed in double precision from the ``p`` given (so ``np.float32(0.7)`` and ``0.7`` give
different masks). Kept values are scaled by ``1 / (1 - p)`` (inverted dropout); dropped ones
are exactly zero (also when the input is NaN or inf). The mask depends only on
``(seed, stream, i)``: never on threads, ISA path or device.

Masks travel as *bits*: ``mask_bits`` is a uint64 array of ``ceil(n / 64)`` words, bit ``e % 64``
of word ``e // 64`` is the keep of element ``e``; bits past ``n`` are zero. ``unpack_mask``
turns them into a bool array.

All functions take float32, C-contiguous numpy arrays of any shape and an optional ``out=``
array (same shape, float32, C-contiguous; it may be the input itself: in place). ``p = 0`` and
``training=False`` are the identity (a copy, or ``out`` filled). Kernels flush denormals to zero.

CUDA arrays (``__cuda_array_interface__`` or ``__dlpack__``: CuPy, PyTorch, JAX, or a
:class:`dropnet.cuda.DeviceArray`) run on their device without a copy, with the same masks and
the same bits; results and masks come back as :class:`dropnet.cuda.DeviceArray` on that device
(or in ``out``). All array arguments of one call must be on one device.
"""
from __future__ import annotations

import numbers
import operator
from typing import Literal, Optional, Sequence, Tuple, Union, overload

import numpy as np

from .. import _core
from ..sparse import CSRMatrix
from . import _device
from ._device import Placement

_ops = _core.ops

__all__ = [
    "alpha_dropout",
    "alpha_dropout_backward",
    "alpha_dropout_coeffs",
    "drop_connect",
    "dropout",
    "dropout_backward",
    "dropout_mask",
    "mc_dropout",
    "spatial_dropout",
    "spatial_dropout_backward",
    "unpack_mask",
]

ALPHA_PRIME = -1.7580993408473766  # -scale * alpha of SELU: the value AlphaDropout drops to

Shape = Union[int, Sequence[int]]


def _prob(p: object, name: str = "p") -> float:
    """p as a double, keeping float32 inputs exact (their threshold differs from the decimal's).
    Only real numbers: str, bool and arrays (even 0-d) are a TypeError."""
    if isinstance(p, (bool, np.bool_)) or not isinstance(p, (numbers.Real, np.floating, np.integer)):
        raise TypeError(f"{name}: expected a float probability, got {type(p).__name__}")
    return float(p)


def _u64(value: object) -> object:
    """numpy integers become Python ints; the core checks the type and the range [0, 2**64)."""
    return int(value) if isinstance(value, np.integer) else value


@overload
def dropout(x: np.ndarray, p: float, *, seed: int, stream: int, training: bool = ..., return_mask: Literal[False] = ..., out: Optional[np.ndarray] = ...) -> np.ndarray: ...


@overload
def dropout(x: np.ndarray, p: float, *, seed: int, stream: int, training: bool = ..., return_mask: Literal[True], out: Optional[np.ndarray] = ...) -> Tuple[np.ndarray, np.ndarray]: ...


@overload
def dropout(x: np.ndarray, p: float, *, seed: int, stream: int, training: bool = ..., return_mask: bool = ..., out: Optional[np.ndarray] = ...) -> Union[np.ndarray, Tuple[np.ndarray, np.ndarray]]: ...


def dropout(x: np.ndarray, p: float, *, seed: int, stream: int, training: bool = True,
            return_mask: bool = False, out: Optional[np.ndarray] = None
            ) -> Union[np.ndarray, Tuple[np.ndarray, np.ndarray]]:
    """Inverted dropout in one pass: ``y = x * keep / (1 - p)``.

    x: float32, any shape. Returns y (x.shape), or ``(y, mask_bits)`` with ``return_mask=True``
    (mask_bits: uint64, ``(ceil(x.size / 64),)``). Use it on inputs too (same kernel).
    """
    at = Placement({}, x=x, out=out)
    if at.device is not None:
        return _device.forward("element", at, _prob(p), _u64(seed), _u64(stream), bool(training), bool(return_mask))
    return _ops.dropout_forward(at["x"], _prob(p), _u64(seed), _u64(stream), bool(training), at["out"],
                                bool(return_mask))


def dropout_backward(grad: np.ndarray, p: float, *, seed: Optional[int] = None, stream: Optional[int] = None,
                     mask_bits: Optional[np.ndarray] = None, out: Optional[np.ndarray] = None) -> np.ndarray:
    """Gradient of :func:`dropout`: ``dx = grad * keep / (1 - p)``.

    Pass exactly one of ``mask_bits`` (from ``dropout(..., return_mask=True)``) or both ``seed``
    and ``stream`` (the mask is regenerated; nothing was stored). grad: float32, any shape.
    """
    at = Placement({"mask_bits": np.uint64}, grad=grad, mask_bits=mask_bits, out=out)
    if at.device is not None:
        return _device.backward("element", at, _prob(p), _u64(seed), _u64(stream))
    return _ops.dropout_backward(at["grad"], _prob(p), _u64(seed), _u64(stream), at["mask_bits"], at["out"])


def dropout_mask(shape: Shape, p: float, *, seed: int, stream: int) -> np.ndarray:
    """The keep mask :func:`dropout` applies to an array of ``shape``, as bool of that shape."""
    shape = _shape(shape)
    n = int(np.prod(shape, dtype=np.int64))
    return unpack_mask(_ops.dropout_mask_bits(n, _prob(p), _u64(seed), _u64(stream)), shape)


@_device.host_only
def unpack_mask(mask_bits: np.ndarray, n: Shape) -> np.ndarray:
    """Bits -> bool. ``n``: element count (returns shape ``(n,)``) or a shape to reshape to."""
    shape = _shape(n)
    count = int(np.prod(shape, dtype=np.int64))
    if not isinstance(mask_bits, np.ndarray) or mask_bits.dtype != np.uint64:
        got = mask_bits.dtype if isinstance(mask_bits, np.ndarray) else type(mask_bits).__name__
        raise TypeError(f"mask_bits: expected a numpy uint64 array, got {got}")
    words = (count + 63) // 64
    if mask_bits.shape != (words,):
        raise ValueError(f"mask_bits: expected shape ({words},) for {count} elements, got {mask_bits.shape}")
    # Bit e % 64 of word e // 64 is bit e % 8 of byte e // 8 of the little-endian words.
    as_bytes = np.ascontiguousarray(mask_bits).astype("<u8", copy=False).view(np.uint8)
    return np.unpackbits(as_bytes, count=count, bitorder="little").astype(bool).reshape(shape)


@overload
def spatial_dropout(x: np.ndarray, p: float, *, seed: int, stream: int, training: bool = ..., return_mask: Literal[False] = ..., out: Optional[np.ndarray] = ...) -> np.ndarray: ...


@overload
def spatial_dropout(x: np.ndarray, p: float, *, seed: int, stream: int, training: bool = ..., return_mask: Literal[True], out: Optional[np.ndarray] = ...) -> Tuple[np.ndarray, np.ndarray]: ...


@overload
def spatial_dropout(x: np.ndarray, p: float, *, seed: int, stream: int, training: bool = ..., return_mask: bool = ..., out: Optional[np.ndarray] = ...) -> Union[np.ndarray, Tuple[np.ndarray, np.ndarray]]: ...


def spatial_dropout(x: np.ndarray, p: float, *, seed: int, stream: int, training: bool = True,
                    return_mask: bool = False, out: Optional[np.ndarray] = None
                    ) -> Union[np.ndarray, Tuple[np.ndarray, np.ndarray]]:
    """Dropout of whole channels: x is (N, C, ...) (NCHW, NCL, or (N, C)); channel ``(n, c)``
    is element ``i = n*C + c`` of the stream. Returns y (x.shape) or ``(y, mask_bits)`` with
    ``ceil(N*C / 64)`` words.
    """
    at = Placement({}, x=x, out=out)
    if at.device is not None:
        return _device.forward("spatial", at, _prob(p), _u64(seed), _u64(stream), bool(training), bool(return_mask))
    return _ops.spatial_dropout_forward(at["x"], _prob(p), _u64(seed), _u64(stream), bool(training), at["out"],
                                        bool(return_mask))


def spatial_dropout_backward(grad: np.ndarray, p: float, *, seed: Optional[int] = None,
                             stream: Optional[int] = None, mask_bits: Optional[np.ndarray] = None,
                             out: Optional[np.ndarray] = None) -> np.ndarray:
    """Gradient of :func:`spatial_dropout`; exactly one of ``mask_bits`` or ``seed``/``stream``."""
    at = Placement({"mask_bits": np.uint64}, grad=grad, mask_bits=mask_bits, out=out)
    if at.device is not None:
        return _device.backward("spatial", at, _prob(p), _u64(seed), _u64(stream))
    return _ops.spatial_dropout_backward(at["grad"], _prob(p), _u64(seed), _u64(stream), at["mask_bits"], at["out"])


@overload
def alpha_dropout(x: np.ndarray, p: float, *, seed: int, stream: int, training: bool = ..., return_mask: Literal[False] = ..., out: Optional[np.ndarray] = ...) -> np.ndarray: ...


@overload
def alpha_dropout(x: np.ndarray, p: float, *, seed: int, stream: int, training: bool = ..., return_mask: Literal[True], out: Optional[np.ndarray] = ...) -> Tuple[np.ndarray, np.ndarray]: ...


@overload
def alpha_dropout(x: np.ndarray, p: float, *, seed: int, stream: int, training: bool = ..., return_mask: bool = ..., out: Optional[np.ndarray] = ...) -> Union[np.ndarray, Tuple[np.ndarray, np.ndarray]]: ...


def alpha_dropout(x: np.ndarray, p: float, *, seed: int, stream: int, training: bool = True,
                  return_mask: bool = False, out: Optional[np.ndarray] = None
                  ) -> Union[np.ndarray, Tuple[np.ndarray, np.ndarray]]:
    """AlphaDropout for SELU networks: dropped units become ``alpha' = -1.7580993408473766``,
    then ``y = a * v + b`` with ``a = ((1-p)(1 + p alpha'^2))**-0.5``, ``b = -a alpha' p``, so a
    standard-normal input keeps mean 0 and variance 1. Kept: ``y = fma(a, x, b)`` in float32.
    Same mask contract as :func:`dropout`. x: float32, any shape.
    """
    at = Placement({}, x=x, out=out)
    if at.device is not None:
        return _device.forward("alpha", at, _prob(p), _u64(seed), _u64(stream), bool(training), bool(return_mask))
    return _ops.alpha_dropout_forward(at["x"], _prob(p), _u64(seed), _u64(stream), bool(training), at["out"],
                                      bool(return_mask))


def alpha_dropout_backward(grad: np.ndarray, p: float, *, seed: Optional[int] = None,
                           stream: Optional[int] = None, mask_bits: Optional[np.ndarray] = None,
                           out: Optional[np.ndarray] = None) -> np.ndarray:
    """Gradient of :func:`alpha_dropout`: ``dx = grad * keep * a``."""
    at = Placement({"mask_bits": np.uint64}, grad=grad, mask_bits=mask_bits, out=out)
    if at.device is not None:
        return _device.backward("alpha", at, _prob(p), _u64(seed), _u64(stream))
    return _ops.alpha_dropout_backward(at["grad"], _prob(p), _u64(seed), _u64(stream), at["mask_bits"], at["out"])


def alpha_dropout_coeffs(p: float) -> Tuple[float, float, float]:
    """``(a, b, dropped_value)`` of :func:`alpha_dropout` at ``p``, as the float32 values used."""
    return tuple(_ops.alpha_dropout_coeffs(_prob(p)))


@overload
def drop_connect(w: np.ndarray, p: float, *, seed: int, stream: int, training: bool = ...,
                 return_mask: Literal[False] = ..., out: Optional[np.ndarray] = ...) -> np.ndarray: ...


@overload
def drop_connect(w: np.ndarray, p: float, *, seed: int, stream: int, training: bool = ...,
                 return_mask: Literal[True], out: Optional[np.ndarray] = ...) -> Tuple[np.ndarray, np.ndarray]: ...


@overload
def drop_connect(w: CSRMatrix, p: float, *, seed: int, stream: int, training: bool = ...,
                 return_mask: Literal[False] = ..., out: None = ...) -> CSRMatrix: ...


@overload
def drop_connect(w: CSRMatrix, p: float, *, seed: int, stream: int, training: bool = ...,
                 return_mask: Literal[True], out: None = ...) -> Tuple[CSRMatrix, np.ndarray]: ...


@overload
def drop_connect(w: Union[np.ndarray, CSRMatrix], p: float, *, seed: int, stream: int, training: bool = ...,
                 return_mask: bool = ..., out: Optional[np.ndarray] = ...
                 ) -> Union[np.ndarray, CSRMatrix, Tuple[Union[np.ndarray, CSRMatrix], np.ndarray]]: ...


def drop_connect(w: Union[np.ndarray, CSRMatrix], p: float, *, seed: int, stream: int, training: bool = True,
                 return_mask: bool = False, out: Optional[np.ndarray] = None
                 ) -> Union[np.ndarray, CSRMatrix, Tuple[Union[np.ndarray, CSRMatrix], np.ndarray]]:
    """DropConnect (Wan et al. 2013): dropout of the weights, ``w * keep / (1 - p)``, with the
    element contract over the weight's flat index. w: float32, any shape (e.g. (out, in)).
    Its gradient w.r.t. w is :func:`dropout_backward` with the same seed and stream.

    w may be a pruned weight as a :class:`dropnet.sparse.CSRMatrix` ``(N, K)``: a new CSRMatrix with
    the same pattern comes back, each stored weight kept or dropped by its *dense* flat index
    ``n * K + k``, so it is the same weights, the same bits, as DropConnect of ``w.to_dense()``.
    ``return_mask`` then gives the keep of each stored entry (bool, ``(nnz,)``); ``out`` is not
    taken.
    """
    if isinstance(w, CSRMatrix):
        if out is not None:
            raise ValueError("out: not supported when w is a CSRMatrix (a new one is returned)")
        n, k = w.shape
        scaled = dropout(np.ones(n * k, np.float32), p, seed=seed, stream=stream, training=training)
        rows = np.repeat(np.arange(n, dtype=np.int64), np.diff(w.indptr))
        factor = scaled[rows * k + w.indices]  # 1 / (1 - p) where kept, 0 where dropped
        keep = factor != 0
        dropped = w.copy()
        dropped.data[...] = np.where(keep, w.data * factor, np.float32(0))  # a dropped NaN is 0, as dense
        return (dropped, keep) if return_mask else dropped
    return dropout(w, p, seed=seed, stream=stream, training=training, return_mask=return_mask, out=out)


def mc_dropout(x: np.ndarray, p: float, *, seed: int, stream0: int, samples: int,
               out: Optional[np.ndarray] = None) -> np.ndarray:
    """Monte Carlo dropout: ``samples`` dropout draws of x at inference, sample ``s`` with stream
    ``stream0 + s``. Returns float32 of shape ``(samples, *x.shape)``; ``result[s]`` equals
    ``dropout(x, p, seed=seed, stream=stream0 + s)``.
    """
    if isinstance(samples, bool) or not isinstance(samples, (int, np.integer)):
        raise TypeError(f"samples: expected an int >= 1, got {type(samples).__name__}")
    at = Placement({}, x=x, out=out)
    if at.device is not None:
        return _device.mc_dropout(at, _prob(p), _u64(seed), _u64(stream0), int(samples))
    return _ops.mc_dropout(at["x"], _prob(p), _u64(seed), _u64(stream0), int(samples), at["out"])


def _shape(shape: Shape) -> Tuple[int, ...]:
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
        shape = (int(shape),)
    try:
        dims = tuple(operator.index(d) for d in shape)  # type: ignore[union-attr]
    except TypeError:
        raise TypeError(f"shape: expected an int or a sequence of ints, got {shape!r}") from None
    if any(d < 0 for d in dims):
        raise ValueError(f"shape: expected non-negative dimensions, got {dims}")
    return dims
