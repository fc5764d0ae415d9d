"""Sparse weights of pruned layers: the :class:`CSRMatrix` the sparse kernels run on.

A dense layer's weight ``W`` has shape ``(out_features, in_features) = (N, K)``. Once pruned, its
surviving entries are stored in compressed sparse row form (rows = output units): ``indptr``
(int64, ``N + 1``), ``indices`` (int32, column of each entry, ascending within a row) and ``data``
(float32 values). A transposed pattern (CSR of ``Wᵀ``) is kept beside it for the backward pass;
it points into ``data`` instead of copying it, so ``data`` is the one place values live and an
in-place optimizer step on ``data`` is seen by every kernel.

The pattern arrays are read-only; values can be written through ``data`` or refreshed from a
dense weight with :meth:`CSRMatrix.update_values`. See :func:`dropnet.ops.sparse_linear`,
:func:`dropnet.ops.sparse_linear_backward_input` and :func:`dropnet.ops.sparse_weight_grad`.
"""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

from . import _core

__all__ = ["CSRMatrix", "from_dense"]

_ops = _core.ops


def _frozen(a: np.ndarray) -> np.ndarray:
    """A read-only copy of ``a`` backed by an immutable ``bytes`` object.

    The kernels trust the pattern (checked once, at build), so nothing reachable from the class
    may make it writeable again: a read-only view of a numpy array is not enough, because the
    base array can be flipped back with ``base.flags.writeable = True``. numpy refuses that for
    an array over ``bytes`` (ValueError), and bytes cannot be changed from Python.
    """
    return np.frombuffer(np.ascontiguousarray(a).tobytes(), dtype=a.dtype).reshape(a.shape)


class CSRMatrix:
    """A pruned weight ``W`` (``shape = (N, K)``) in CSR form, with its transposed pattern.

    Build one with :func:`from_dense`, or from CSR arrays directly (they are copied and checked:
    ``indptr`` non-decreasing from 0 to ``nnz``, ``indices`` in ``[0, K)`` strictly ascending
    within each row).
    """

    __slots__ = ("_shape", "_indptr", "_indices", "_data", "_t_indptr", "_t_indices", "_t_value_index")

    def __init__(self, indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, shape: Tuple[int, int]) -> None:
        shape = _check_shape(shape)
        indptr = _as_index_array(indptr, np.int64, "indptr")
        indices = _as_index_array(indices, np.int32, "indices")
        data = np.array(data, dtype=np.float32, copy=True, order="C")
        if data.ndim != 1:
            raise ValueError(f"data: expected a 1-d array of length nnz, got shape {data.shape}")
        _ops.sparse_csr_check(shape[0], shape[1], indptr, indices, data)
        self._init(shape, indptr, indices, data)

    def _init(self, shape: Tuple[int, int], indptr: np.ndarray, indices: np.ndarray, data: np.ndarray) -> None:
        self._shape = shape
        self._indptr = _frozen(indptr)
        self._indices = _frozen(indices)
        self._data = data
        t_indptr, t_indices, t_value_index = _ops.sparse_csr_transpose(shape[0], shape[1], indptr, indices)
        self._t_indptr = _frozen(t_indptr)
        self._t_indices = _frozen(t_indices)
        self._t_value_index = _frozen(t_value_index)

    @classmethod
    def _from_checked(cls, shape: Tuple[int, int], indptr: np.ndarray, indices: np.ndarray,
                      data: np.ndarray) -> "CSRMatrix":
        self = cls.__new__(cls)
        self._init(shape, indptr, indices, data)
        return self

    # ---------------------------------------------------------------- properties
    @property
    def shape(self) -> Tuple[int, int]:
        """``(out_features, in_features)`` of the dense weight."""
        return self._shape

    @property
    def nnz(self) -> int:
        """Number of stored (surviving) weights."""
        return int(self._indices.shape[0])

    @property
    def density(self) -> float:
        """``nnz / (N * K)``; 0.0 for an empty shape."""
        total = self._shape[0] * self._shape[1]
        return self.nnz / total if total else 0.0

    @property
    def sparsity(self) -> float:
        """``1 - density``: the fraction of weights pruned."""
        return 1.0 - self.density

    @property
    def indptr(self) -> np.ndarray:
        """int64 ``(N + 1,)``, read-only: row ``n``'s entries are ``indptr[n]:indptr[n + 1]``."""
        return self._indptr

    @property
    def indices(self) -> np.ndarray:
        """int32 ``(nnz,)``, read-only: the input unit (column) of each stored weight."""
        return self._indices

    @property
    def data(self) -> np.ndarray:
        """float32 ``(nnz,)``, writeable: the stored weight values (the kernels read them live)."""
        return self._data

    # ---------------------------------------------------------------- conversions
    def to_dense(self) -> np.ndarray:
        """The dense float32 ``(N, K)`` weight, zeros at pruned entries."""
        return _ops.sparse_csr_to_dense(self._shape[0], self._shape[1], self._indptr, self._indices, self._data)

    def mask(self) -> np.ndarray:
        """bool ``(N, K)``: True where a weight is stored."""
        m = np.zeros(self._shape, dtype=bool)
        rows = np.repeat(np.arange(self._shape[0]), np.diff(self._indptr))
        m[rows, self._indices] = True
        return m

    def update_values(self, w: np.ndarray) -> None:
        """Refresh the stored values, keeping the pattern (no re-analysis, no allocation).

        ``w`` is either the dense float32 ``(N, K)`` weight (the stored entries are read from
        it, pruned entries of ``w`` are ignored) or a float32 ``(nnz,)`` array of new values in
        ``data`` order.
        """
        if not isinstance(w, np.ndarray):
            raise TypeError(f"w: expected a numpy array, got {type(w).__name__}")
        if w.dtype != np.float32:
            raise TypeError(f"w: expected dtype float32, got {w.dtype}")
        if w.ndim == 1:
            if w.shape[0] != self.nnz:
                raise ValueError(f"w: expected shape ({self.nnz},) (nnz) or {self._shape}, got {w.shape}")
            self._data[...] = w
            return
        if w.shape != self._shape:
            raise ValueError(f"w: expected shape {self._shape} (or ({self.nnz},)), got {w.shape}")
        _ops.sparse_csr_gather_values(w, self._indptr, self._indices, self._data)

    def transpose(self) -> "CSRMatrix":
        """``Wᵀ`` as its own ``CSRMatrix``, shape ``(K, N)``, with its values copied into its entry order.

        ``sparse_linear(grad_y, s.transpose())`` gives the same bits as
        ``sparse_linear_backward_input(grad_y, s)`` and skips gathering ``W``'s values into the
        transposed order on every call, for a ``W`` whose values no longer change (inference,
        or a frozen layer). The copy does not follow later writes to ``s.data``.
        """
        n, k = self._shape
        data = np.take(self._data, self._t_value_index)
        return CSRMatrix._from_checked((k, n), self._t_indptr.copy(), self._t_indices.copy(), data)

    @property
    def T(self) -> "CSRMatrix":
        """Same as :meth:`transpose`."""
        return self.transpose()

    def copy(self) -> "CSRMatrix":
        """A copy with its own values (the read-only pattern is shared)."""
        other = CSRMatrix.__new__(CSRMatrix)
        for name in CSRMatrix.__slots__:
            setattr(other, name, getattr(self, name))
        other._data = self._data.copy()
        return other

    def __repr__(self) -> str:
        return (f"CSRMatrix(shape={self._shape}, nnz={self.nnz}, density={self.density:.4f}, "
                f"dtype=float32)")


def _check_shape(shape: object) -> Tuple[int, int]:
    try:
        rows, cols = (int(s) for s in shape)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise ValueError(f"shape: expected (rows, cols), got {shape!r}") from None
    if rows < 0 or cols < 0:
        raise ValueError(f"shape: expected non-negative sizes, got {shape!r}")
    return rows, cols


def _as_index_array(a: object, dtype: type, name: str) -> np.ndarray:
    arr = np.asarray(a)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{name}: expected an integer array, got dtype {arr.dtype}")
    if arr.ndim != 1:
        raise ValueError(f"{name}: expected a 1-d array, got shape {arr.shape}")
    info = np.iinfo(dtype)
    if arr.size and (arr.min() < info.min or arr.max() > info.max):
        raise ValueError(f"{name}: values out of range for {np.dtype(dtype).name}")
    return np.array(arr, dtype=dtype, copy=True, order="C")


def from_dense(w: np.ndarray, threshold: Optional[float] = None, *, mask: Optional[np.ndarray] = None) -> CSRMatrix:
    """Compress a dense weight ``w`` (float32, ``(out_features, in_features)``).

    Keeps ``w[n, k]`` where ``mask[n, k]`` is true (any dtype, nonzero = keep; stored even when
    the weight itself is 0, so it can still learn), or, without a mask, where
    ``|w[n, k]| > threshold`` (default 0.0: every nonzero; NaN is kept so it is not hidden).
    """
    if not isinstance(w, np.ndarray):
        raise TypeError(f"w: expected a numpy array of dtype float32, got {type(w).__name__}")
    if w.dtype != np.float32:
        raise TypeError(f"w: expected dtype float32, got {w.dtype}")
    if w.ndim != 2:
        raise ValueError(f"w: expected a 2-d array (out_features, in_features), got shape {w.shape}")
    w = np.ascontiguousarray(w)
    mask_u8 = None
    if mask is not None:
        if threshold is not None:
            raise ValueError("threshold: give either a mask or a threshold, not both")
        m = np.asarray(mask)
        if m.shape != w.shape:
            raise ValueError(f"mask: expected shape {w.shape} (the shape of w), got {m.shape}")
        mask_u8 = np.ascontiguousarray(m != 0).view(np.uint8)
        threshold = 0.0
    elif threshold is None:
        threshold = 0.0
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.floating, np.integer)):
        raise TypeError(f"threshold: expected a float >= 0, got {type(threshold).__name__}")
    if not threshold >= 0.0:
        raise ValueError(f"threshold: expected a float >= 0, got {threshold}")
    indptr, indices, data = _ops.sparse_csr_from_dense(w, mask_u8, float(threshold))
    return CSRMatrix._from_checked((int(w.shape[0]), int(w.shape[1])), indptr, indices, data)
