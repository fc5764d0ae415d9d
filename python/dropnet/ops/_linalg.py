"""Dense linear algebra: matrix products and the fused dense-layer forward.

Both run dropnet's packed, cache-blocked SGEMM (AVX-512 / AVX2 / scalar chosen at run time,
threads over rows and columns of the output, bit-identical for any thread count).
"""
from __future__ import annotations

from typing import Literal, Optional, Tuple, Union, overload

import numpy as np

from .. import _core
from . import _device, _device_layers
from ._dropout import _prob

__all__ = ["matmul", "matmul_skip_zeros", "linear"]

_ops = _core.ops

#: Activation names :func:`linear` accepts (``None`` is the identity).
ACTIVATIONS = ("relu", "leaky_relu", "tanh", "sigmoid", "gelu")


def _check_not_transposed_view(arr: object, name: str, flag: str, flag_set: bool) -> None:
    """A transposed view (``w.T`` of a C-contiguous array) is Fortran-ordered: name the flag that
    multiplies by the transpose without a copy instead of the generic stride error."""
    if (isinstance(arr, np.ndarray) and arr.ndim == 2 and not arr.flags.c_contiguous and arr.flags.f_contiguous
            and min(arr.shape) > 1):
        hint = (f"pass the untransposed array with {flag}=True (no copy)" if not flag_set else
                f"pass the untransposed array with {flag}=False, since {flag}=True already transposes it")
        raise ValueError(f"{name}: expected a C-contiguous float32 array, got a transposed view of shape {arr.shape} "
                         f"(e.g. {name}.T); {hint}, or np.ascontiguousarray({name})")


def matmul(a: np.ndarray, b: np.ndarray, *, trans_a: bool = False, trans_b: bool = False, alpha: float = 1.0,
           beta: float = 0.0, out: Optional[np.ndarray] = None) -> np.ndarray:
    """``alpha * op(a) @ op(b) + beta * out`` in float32, where ``op(x)`` is ``x.T`` if asked.

    a: (M, K), or (K, M) with ``trans_a``; b: (K, N), or (N, K) with ``trans_b``.
    Returns ``out`` (M, N), float32 C-contiguous (a new array if ``out`` is None). With
    ``beta == 0`` the old contents of ``out`` are ignored (even NaN); a nonzero ``beta`` needs ``out``.
    Inputs must be float32 and C-contiguous (TypeError / ValueError otherwise): pass ``x.T`` as
    ``x`` with ``trans_*=True`` instead of a transposed view.
    """
    at = _device.Placement({}, a=a, b=b, out=out)
    if at.device is not None:
        return _device_layers.matmul(at, bool(trans_a), bool(trans_b), float(alpha), float(beta))
    a, b = at["a"], at["b"]
    _check_not_transposed_view(a, "a", "trans_a", bool(trans_a))
    _check_not_transposed_view(b, "b", "trans_b", bool(trans_b))
    return _ops.matmul(a, b, bool(trans_a), bool(trans_b), float(alpha), float(beta), at["out"])


@_device.host_only
def matmul_skip_zeros(a: np.ndarray, b: np.ndarray, *, trans_a: bool = False, trans_b: bool = False,
                      max_density: float = 1.0, out: Optional[np.ndarray] = None) -> Tuple[np.ndarray, bool]:
    """``op(a) @ op(b)`` with work in proportion to the nonzeros of ``a``: the products of a dense
    layer behind ReLU and dropout (``dZ.T @ X``, ``dZ @ W``, ``H @ W.T``), whose left operand is
    mostly zeros.

    a: (M, K), or (K, M) with ``trans_a``; b: (K, N), or (N, K) with ``trans_b`` (not both
    transposed); float32 C-contiguous. Returns ``(c, skipped)``: c (M, N), and whether the zeros
    were skipped, which happens when the fraction of nonzeros in ``a`` is at most ``max_density``
    (otherwise the dense GEMM runs). Each row of ``c`` sums over the nonzeros of ``a`` in a fixed
    order: bit-identical for any thread count.
    """
    _check_not_transposed_view(a, "a", "trans_a", bool(trans_a))
    _check_not_transposed_view(b, "b", "trans_b", bool(trans_b))
    c, skipped = _ops.matmul_skip_zeros(a, b, bool(trans_a), bool(trans_b), float(max_density), out)
    return c, bool(skipped)


@overload
def linear(x: np.ndarray, w: np.ndarray, b: Optional[np.ndarray] = ..., *, activation: Optional[str] = ...,
           negative_slope: float = ..., dropout: float = ..., seed: Optional[int] = ..., stream: Optional[int] = ..., return_mask: Literal[False] = ..., out: Optional[np.ndarray] = ...) -> np.ndarray: ...


@overload
def linear(x: np.ndarray, w: np.ndarray, b: Optional[np.ndarray] = ..., *, activation: Optional[str] = ...,
           negative_slope: float = ..., dropout: float = ..., seed: Optional[int] = ..., stream: Optional[int] = ..., return_mask: Literal[True], out: Optional[np.ndarray] = ...) -> Tuple[np.ndarray, np.ndarray]: ...


@overload
def linear(x: np.ndarray, w: np.ndarray, b: Optional[np.ndarray] = ..., *, activation: Optional[str] = ...,
           negative_slope: float = ..., dropout: float = ..., seed: Optional[int] = ..., stream: Optional[int] = ..., return_mask: bool = ..., out: Optional[np.ndarray] = ...) -> Union[np.ndarray, Tuple[np.ndarray, np.ndarray]]: ...


def linear(x: np.ndarray, w: np.ndarray, b: Optional[np.ndarray] = None, *, activation: Optional[str] = None,
           negative_slope: float = 0.01, dropout: float = 0.0, seed: Optional[int] = None,
           stream: Optional[int] = None, return_mask: bool = False,
           out: Optional[np.ndarray] = None) -> Union[np.ndarray, Tuple[np.ndarray, np.ndarray]]:
    """Dense layer forward, fused into one GEMM pass: ``dropout(act(x @ w.T + b))``.

    x: (M, in_features); w: (out_features, in_features) (PyTorch layout); b: (out_features,) or None.
    activation: None, ``"relu"``, ``"leaky_relu"`` (slope ``negative_slope``), ``"tanh"``,
    ``"sigmoid"`` or ``"gelu"`` (exact erf form, as ``torch.nn.functional.gelu``).
    dropout: probability ``p`` of zeroing an element (inverted dropout: kept values are scaled
    by ``1 / (1 - p)``). Element ``i = row * out_features + col`` is kept iff word ``i`` of the
    Philox stream ``(seed, stream)`` is below ``min(floor((1 - p) * 2**32), 2**32 - 1)``, the
    same mask :func:`dropnet.random.uniform_bits` gives, so the mask never depends on threads.
    Returns y (M, out_features) float32, and with ``return_mask`` also the keep mask as uint64
    words of shape (ceil(M * out_features / 64),): bit ``i % 64`` of word ``i // 64`` is element i.
    """
    if activation is not None and (not isinstance(activation, str) or activation not in ACTIVATIONS):
        raise ValueError(f"activation: expected None or one of {ACTIVATIONS}, got {activation!r}")
    p = _prob(dropout, "dropout")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout: expected a probability in [0, 1], got {dropout!r}")
    if p > 0.0 and (seed is None or stream is None):
        raise ValueError(f"dropout: p={p} needs seed= and stream= (got seed={seed!r}, stream={stream!r}); "
                         "take them from a dropnet.Generator: seed=g.seed, stream=g.next_stream()")
    at = _device.Placement({}, x=x, w=w, b=b, out=out)
    if at.device is not None:
        return _device_layers.linear(at, activation or "identity", float(negative_slope), p, seed, stream,
                                     bool(return_mask))
    return _ops.linear(at["x"], at["w"], at["b"], activation or "identity", float(negative_slope), p, seed, stream,
                       bool(return_mask), at["out"])
