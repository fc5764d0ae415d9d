"""Products of a pruned dense layer with its weight stored sparse (:class:`dropnet.sparse.CSRMatrix`).

Shapes: weight ``W`` is ``(N, K) = (out_features, in_features)``, batch ``x`` is ``(M, K)``.
Work grows with the stored weights, not with ``N * K``: at 90 % sparsity these run several times
faster than the dense product. Results do not depend on the number of threads.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from .. import _core
from . import _device
from ..sparse import CSRMatrix

__all__ = ["sparse_linear", "sparse_linear_backward_input", "sparse_weight_grad"]

_ops = _core.ops

_ACTIVATIONS = ("linear", "relu", "leaky_relu", "tanh", "sigmoid", "gelu")


def _require_csr(s: object) -> CSRMatrix:
    if not isinstance(s, CSRMatrix):
        raise TypeError(f"s: expected a dropnet.sparse.CSRMatrix, got {type(s).__name__}")
    return s


@_device.host_only
def sparse_linear(x: np.ndarray, s: CSRMatrix, b: Optional[np.ndarray] = None, *, activation: Optional[str] = None,
                  negative_slope: float = 0.01, out: Optional[np.ndarray] = None) -> np.ndarray:
    """``activation(x @ W.T + b)`` with ``W`` sparse.

    x: float32 ``(M, K)``; s: ``CSRMatrix`` of shape ``(N, K)``; b: float32 ``(N,)`` or None;
    activation: None/'linear', 'relu', 'leaky_relu' (``negative_slope``), 'tanh', 'sigmoid',
    'gelu' (erf form). Returns float32 ``(M, N)`` (written into ``out`` when given).
    """
    s = _require_csr(s)
    act = "linear" if activation is None else activation
    if not isinstance(act, str):
        raise TypeError(f"activation: expected a string or None, got {type(activation).__name__}")
    n, k = s.shape
    return _ops.sparse_linear(x, n, k, s._indptr, s._indices, s._data, b, act, float(negative_slope), out)


@_device.host_only
def sparse_linear_backward_input(grad_y: np.ndarray, s: CSRMatrix, out: Optional[np.ndarray] = None) -> np.ndarray:
    """Gradient with respect to the input: ``grad_y @ W``.

    grad_y: float32 ``(M, N)``; s: ``CSRMatrix`` ``(N, K)``. Returns float32 ``(M, K)``
    (overwrites ``out`` when given).
    """
    s = _require_csr(s)
    n, k = s.shape
    return _ops.sparse_linear_backward_input(grad_y, n, k, s._t_indptr, s._t_indices, s._t_value_index, s._data, out)


@_device.host_only
def sparse_weight_grad(grad_y: np.ndarray, x: np.ndarray, s: CSRMatrix, out: Optional[np.ndarray] = None, *,
                       accumulate: bool = False) -> np.ndarray:
    """Gradient with respect to the stored weights: ``(grad_y.T @ x)[n, k]`` at each stored ``(n, k)``.

    grad_y: float32 ``(M, N)``; x: float32 ``(M, K)``. Returns float32 ``(nnz,)`` aligned with
    ``s.data`` (pruned weights get no gradient). ``accumulate=True`` adds into ``out``.
    """
    s = _require_csr(s)
    n, k = s.shape
    return _ops.sparse_weight_grad(grad_y, x, n, k, s._indptr, s._indices, out, bool(accumulate))
