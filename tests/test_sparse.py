"""Sparse weights (dropnet.sparse.CSRMatrix) and the sparse layer kernels against float64 numpy.

Every kernel runs on every ISA path this CPU has, at sparsities from 0 to 99.9 % and an all-zero
weight, with empty rows/columns and odd shapes, and must give identical bits for 1, 2 and 3
threads.
"""
from __future__ import annotations

import numpy as np
import pytest

import dropnet
from dropnet import sparse
from dropnet.ops import _sparse as sops

from helpers import threads

ISAS = dropnet.cpu_features()["available"]
SPARSITIES = [0.0, 0.5, 0.8, 0.9, 0.95, 0.98, 0.999, 1.0]
SHAPES = [(1, 7, 5), (7, 33, 17), (129, 65, 47), (16, 16, 16), (33, 8, 129)]  # (M, K, N)


@pytest.fixture(autouse=True)
def _restore_threads():
    n = dropnet.get_num_threads()
    yield
    dropnet.set_num_threads(n)


def pruned(rng, n, k, sparsity, dtype=np.float32):
    """Random (n, k) weight with a fraction `sparsity` of entries exactly 0 (unstructured)."""
    w = rng.standard_normal((n, k)).astype(dtype)
    w[rng.random((n, k)) < sparsity] = 0
    return w


def stored_rows(s):
    return np.repeat(np.arange(s.shape[0]), np.diff(s.indptr))


def assert_close_to(got, ref, scale, rtol=2e-6):
    """|got - ref| within rtol · scale, scale = the sum of |terms| of each float64 result."""
    assert got.shape == ref.shape and got.dtype == np.float32
    err = np.abs(got.astype(np.float64) - ref)
    bound = rtol * scale * 8 + 1e-30
    assert np.all(err <= bound), f"max error {err.max()} > bound {bound.flat[np.argmax(err - bound)]}"


# ---------------------------------------------------------------- structure
@pytest.mark.parametrize("sparsity", SPARSITIES)
def test_from_dense_round_trip(sparsity):
    rng = np.random.default_rng(1)
    w = pruned(rng, 37, 53, sparsity)
    s = sparse.from_dense(w)
    assert s.shape == (37, 53)
    assert s.nnz == np.count_nonzero(w)
    assert s.density == pytest.approx(np.count_nonzero(w) / w.size)
    assert s.sparsity == pytest.approx(1 - s.density)
    assert s.indptr.dtype == np.int64 and s.indices.dtype == np.int32 and s.data.dtype == np.float32
    assert s.indptr[0] == 0 and s.indptr[-1] == s.nnz
    np.testing.assert_array_equal(np.diff(s.indptr), np.count_nonzero(w, axis=1))
    for n in range(37):  # columns ascending, values in place
        cols = s.indices[s.indptr[n]:s.indptr[n + 1]]
        np.testing.assert_array_equal(cols, np.flatnonzero(w[n]))
        np.testing.assert_array_equal(s.data[s.indptr[n]:s.indptr[n + 1]], w[n, cols])
    np.testing.assert_array_equal(s.to_dense(), w)
    np.testing.assert_array_equal(s.mask(), w != 0)
    assert "CSRMatrix(shape=(37, 53)" in repr(s) and f"nnz={s.nnz}" in repr(s)


def test_threshold_and_mask():
    rng = np.random.default_rng(2)
    w = rng.standard_normal((20, 30)).astype(np.float32)
    s = sparse.from_dense(w, threshold=0.5)
    np.testing.assert_array_equal(s.to_dense(), np.where(np.abs(w) > 0.5, w, 0))
    mask = rng.random((20, 30)) < 0.3
    w[0, :] = 0  # a kept weight that is exactly 0 stays stored so it can learn
    mask[0, :3] = True
    s = sparse.from_dense(w, mask=mask)
    assert s.nnz == mask.sum()
    np.testing.assert_array_equal(s.mask(), mask)
    np.testing.assert_array_equal(s.to_dense(), np.where(mask, w, 0))
    s2 = sparse.from_dense(w, mask=mask.astype(np.float32))  # torch-style 0/1 float mask
    np.testing.assert_array_equal(s2.indices, s.indices)
    w[1, 1] = np.nan  # never hidden by pruning at a threshold
    assert np.isnan(sparse.from_dense(w, threshold=10.0).to_dense()[1, 1])


def test_empty_shapes():
    for shape in [(0, 5), (5, 0), (0, 0)]:
        s = sparse.from_dense(np.zeros(shape, np.float32))
        assert s.nnz == 0 and s.shape == shape and s.to_dense().shape == shape
        x = np.ones((3, shape[1]), np.float32)
        np.testing.assert_array_equal(sops.sparse_linear(x, s), np.zeros((3, shape[0]), np.float32))
        np.testing.assert_array_equal(sops.sparse_linear_backward_input(np.ones((3, shape[0]), np.float32), s),
                                      np.zeros((3, shape[1]), np.float32))
        assert sops.sparse_weight_grad(np.ones((3, shape[0]), np.float32), x, s).shape == (0,)


def test_pattern_is_read_only_and_data_is_live():
    rng = np.random.default_rng(3)
    w = pruned(rng, 24, 40, 0.7)
    s = sparse.from_dense(w)
    for a in (s.indptr, s.indices):
        with pytest.raises(ValueError):
            a[0] = 1
        with pytest.raises(ValueError):
            a.flags.writeable = True
    s.data[...] *= 2  # an in-place optimizer step on data reaches every kernel, the backward included
    x = rng.standard_normal((5, 40)).astype(np.float32)
    gy = rng.standard_normal((5, 24)).astype(np.float32)
    np.testing.assert_allclose(sops.sparse_linear(x, s), x @ (2 * w).T, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(sops.sparse_linear_backward_input(gy, s), gy @ (2 * w), rtol=1e-5, atol=1e-5)


def test_update_values():
    rng = np.random.default_rng(4)
    w = pruned(rng, 31, 17, 0.6)
    s = sparse.from_dense(w)
    pattern = (s.indptr.copy(), s.indices.copy())
    data_id = s.data.ctypes.data
    w2 = rng.standard_normal(w.shape).astype(np.float32)  # dense, pruned entries nonzero too
    s.update_values(w2)
    np.testing.assert_array_equal(s.to_dense(), np.where(w != 0, w2, 0))
    np.testing.assert_array_equal(s.indptr, pattern[0])
    np.testing.assert_array_equal(s.indices, pattern[1])
    assert s.data.ctypes.data == data_id  # refreshed in place
    v = rng.standard_normal(s.nnz).astype(np.float32)
    s.update_values(v)
    np.testing.assert_array_equal(s.data, v)
    with pytest.raises(ValueError, match=r"w: expected shape \(31, 17\)"):
        s.update_values(np.zeros((17, 31), np.float32))
    with pytest.raises(ValueError, match="w: expected shape"):
        s.update_values(np.zeros(s.nnz + 1, np.float32))
    with pytest.raises(TypeError, match="w: expected dtype float32"):
        s.update_values(w.astype(np.float64))
    c = s.copy()
    c.data[:] = 0
    np.testing.assert_array_equal(s.data, v)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("sparsity", [0.0, 0.9, 0.999, 1.0])
def test_transpose(isa, sparsity):
    rng = np.random.default_rng(11)
    w = pruned(rng, 37, 70, sparsity)
    w[5] = 0  # an empty row of W is an empty column of Wᵀ
    s = sparse.from_dense(w)
    t = s.transpose()
    assert t.shape == (70, 37) and t.nnz == s.nnz
    np.testing.assert_array_equal(t.to_dense(), w.T)
    np.testing.assert_array_equal(s.T.to_dense(), w.T)
    np.testing.assert_array_equal(t.transpose().to_dense(), w)
    gy = rng.standard_normal((19, 37)).astype(np.float32)
    with dropnet.isa(isa):  # the same kernel, in the same order: the same bits
        np.testing.assert_array_equal(sops.sparse_linear(gy, t), sops.sparse_linear_backward_input(gy, s))
    np.testing.assert_allclose(sops.sparse_linear(gy, t), gy.astype(np.float64) @ w, rtol=1e-5, atol=1e-5)
    s.data[...] = 0  # the transpose holds its own copy of the values
    np.testing.assert_array_equal(t.to_dense(), w.T)


def test_csr_constructor_checks_pattern():
    indptr, indices, data = [0, 2, 3], [0, 2, 1], [1.0, 2.0, 3.0]
    s = sparse.CSRMatrix(indptr, indices, data, (2, 3))
    np.testing.assert_array_equal(s.to_dense(), [[1, 0, 2], [0, 3, 0]])
    with pytest.raises(ValueError, match="strictly ascending"):
        sparse.CSRMatrix([0, 2, 3], [2, 0, 1], data, (2, 3))
    with pytest.raises(ValueError, match=r"\[0, number of columns\)"):
        sparse.CSRMatrix([0, 2, 3], [0, 3, 1], data, (2, 3))
    with pytest.raises(ValueError, match="non-decreasing"):
        sparse.CSRMatrix([0, 4, 3], [0, 1, 2], data, (2, 3))
    with pytest.raises(ValueError, match=r"indptr\[-1\]"):
        sparse.CSRMatrix([0, 2, 2], [0, 1, 2], data, (2, 3))
    with pytest.raises(ValueError, match="indptr: expected length 3"):
        sparse.CSRMatrix([0, 3], [0, 1, 2], data, (2, 3))
    with pytest.raises(ValueError, match="data: expected length 3"):
        sparse.CSRMatrix(indptr, indices, [1.0], (2, 3))
    with pytest.raises(TypeError, match="indices: expected an integer array"):
        sparse.CSRMatrix(indptr, [0.0, 2.0, 1.0], data, (2, 3))
    with pytest.raises(ValueError, match="shape"):
        sparse.CSRMatrix(indptr, indices, data, (2, -3))


def test_from_dense_errors():
    w = np.ones((4, 5), np.float32)
    with pytest.raises(TypeError, match="w: expected dtype float32, got float64"):
        sparse.from_dense(w.astype(np.float64))
    with pytest.raises(TypeError, match="w: expected a numpy array"):
        sparse.from_dense([[1.0]])
    with pytest.raises(ValueError, match="w: expected a 2-d array"):
        sparse.from_dense(np.ones(5, np.float32))
    with pytest.raises(ValueError, match=r"mask: expected shape \(4, 5\)"):
        sparse.from_dense(w, mask=np.ones((5, 4), bool))
    with pytest.raises(ValueError, match="either a mask or a threshold"):
        sparse.from_dense(w, 0.1, mask=np.ones((4, 5), bool))
    with pytest.raises(ValueError, match="threshold: expected a float >= 0"):
        sparse.from_dense(w, -1.0)
    np.testing.assert_array_equal(sparse.from_dense(np.asfortranarray(w)).to_dense(), w)  # any layout in


# ---------------------------------------------------------------- kernels vs numpy
def reference(x, w, gy):
    x64, w64, gy64 = (a.astype(np.float64) for a in (x, w, gy))
    return x64 @ w64.T, gy64 @ w64, gy64.T @ x64


def check_kernels(isa, rng, M, K, N, sparsity, empty=False):
    """The three kernels against float64 numpy; returns (y, dx, dw)."""
    w = pruned(rng, N, K, sparsity)
    if empty:  # empty rows and columns
        w[::3] = 0
        w[:, ::4] = 0
    s = sparse.from_dense(w)
    x = rng.standard_normal((M, K)).astype(np.float32)
    gy = rng.standard_normal((M, N)).astype(np.float32)
    ref_y, ref_dx, ref_dw = reference(x, w, gy)
    with dropnet.isa(isa):
        y = sops.sparse_linear(x, s)
        dx = sops.sparse_linear_backward_input(gy, s)
        dw = sops.sparse_weight_grad(gy, x, s)
    ax, aw, agy = np.abs(x).astype(np.float64), np.abs(w).astype(np.float64), np.abs(gy).astype(np.float64)
    assert_close_to(y, ref_y, ax @ aw.T)
    assert_close_to(dx, ref_dx, agy @ aw)
    rows = stored_rows(s)
    assert dw.shape == (s.nnz,)
    assert_close_to(dw, ref_dw[rows, s.indices], (agy.T @ ax)[rows, s.indices])
    return y, dx, dw


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("shape", SHAPES)
def test_kernels_match_numpy(isa, shape):
    M, K, N = shape
    rng = np.random.default_rng(M * 1000 + K * 10 + N)
    for sparsity in SPARSITIES:
        check_kernels(isa, rng, M, K, N, sparsity, empty=sparsity == 0.5)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("M", [5, 20])
def test_kernels_wide_layer_small_batch(isa, M):
    # K = 9000 inputs and a batch of a few rows: the packed operands are long and thin; the same
    # bits for 1 and 2 threads.
    with threads(1):
        one = check_kernels(isa, np.random.default_rng(M), M, 9000, 40, 0.9, empty=True)
    with threads(2):
        two = check_kernels(isa, np.random.default_rng(M), M, 9000, 40, 0.9, empty=True)
    for a, b in zip(one, two):
        np.testing.assert_array_equal(a.view(np.uint32), b.view(np.uint32))


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("activation", [None, "linear", "relu", "leaky_relu", "tanh", "sigmoid", "gelu"])
def test_bias_and_activations(isa, activation):
    from math import erf

    rng = np.random.default_rng(5)
    M, K, N = 37, 50, 70
    w = pruned(rng, N, K, 0.85)
    s = sparse.from_dense(w)
    x = rng.standard_normal((M, K)).astype(np.float32)
    b = rng.standard_normal(N).astype(np.float32)
    z = x.astype(np.float64) @ w.T.astype(np.float64) + b
    act = {
        None: lambda v: v, "linear": lambda v: v, "relu": lambda v: np.maximum(v, 0),
        "leaky_relu": lambda v: np.where(v > 0, v, 0.2 * v), "tanh": np.tanh,
        "sigmoid": lambda v: 1 / (1 + np.exp(-v)),
        "gelu": lambda v: 0.5 * v * (1 + np.vectorize(erf)(v / np.sqrt(2))),
    }[activation]
    out = np.full((M, N), np.nan, np.float32)
    with dropnet.isa(isa):
        y = sops.sparse_linear(x, s, b, activation=activation, negative_slope=0.2, out=out)
    assert y is out
    np.testing.assert_allclose(y, act(z), rtol=1e-5, atol=1e-5)


def test_weight_grad_accumulates():
    rng = np.random.default_rng(6)
    w = pruned(rng, 19, 23, 0.7)
    s = sparse.from_dense(w)
    x = rng.standard_normal((11, 23)).astype(np.float32)
    gy = rng.standard_normal((11, 19)).astype(np.float32)
    for isa in ISAS:
        with dropnet.isa(isa):
            first = sops.sparse_weight_grad(gy, x, s)
            acc = first.copy()
            got = sops.sparse_weight_grad(gy, x, s, out=acc, accumulate=True)
        assert got is acc
        np.testing.assert_array_equal(acc, first + first)


def test_zero_batch():
    rng = np.random.default_rng(7)
    s = sparse.from_dense(pruned(rng, 9, 6, 0.5))
    assert sops.sparse_linear(np.zeros((0, 6), np.float32), s).shape == (0, 9)
    assert sops.sparse_linear_backward_input(np.zeros((0, 9), np.float32), s).shape == (0, 6)
    dw = np.full(s.nnz, 3.0, np.float32)
    sops.sparse_weight_grad(np.zeros((0, 9), np.float32), np.zeros((0, 6), np.float32), s, out=dw)
    np.testing.assert_array_equal(dw, 0)


def test_weight_grad_is_the_gradient():
    """Central differences of L = sum(gy * (x @ W.T)) in float64 at a few stored weights."""
    rng = np.random.default_rng(8)
    w = pruned(rng, 12, 15, 0.6)
    s = sparse.from_dense(w)
    x = rng.standard_normal((9, 15)).astype(np.float32)
    gy = rng.standard_normal((9, 12)).astype(np.float32)
    dw = sops.sparse_weight_grad(gy, x, s)
    rows = stored_rows(s)
    for p in rng.choice(s.nnz, 5, replace=False):
        n, k = rows[p], s.indices[p]
        h = 1e-3
        wp, wm = w.astype(np.float64), w.astype(np.float64)
        wp[n, k] += h
        wm[n, k] -= h
        loss = lambda ww: np.sum(gy * (x.astype(np.float64) @ ww.T))  # noqa: E731
        assert dw[p] == pytest.approx((loss(wp) - loss(wm)) / (2 * h), rel=1e-4, abs=1e-4)


# ---------------------------------------------------------------- determinism
@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("M", [129, 256])  # 3 panels of batch columns, 4 (threads split the panels)
def test_identical_bits_for_any_thread_count(isa, M):
    rng = np.random.default_rng(9)
    K, N = 301, 203
    w = pruned(rng, N, K, 0.6)
    w[:40] = 0  # unbalanced rows move the thread bounds
    s = sparse.from_dense(w)
    x = rng.standard_normal((M, K)).astype(np.float32)
    gy = rng.standard_normal((M, N)).astype(np.float32)
    b = rng.standard_normal(N).astype(np.float32)
    results = []
    for threads in (1, 2, 3, 4):
        dropnet.set_num_threads(threads)
        with dropnet.isa(isa):
            results.append((sops.sparse_linear(x, s, b, activation="relu"),
                            sops.sparse_linear_backward_input(gy, s),
                            sops.sparse_weight_grad(gy, x, s)))
    for other in results[1:]:
        for a, b_ in zip(results[0], other):
            np.testing.assert_array_equal(a, b_)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("M", [1, 16, 37, 64, 200])
def test_weight_grad_bits_do_not_depend_on_an_entrys_place_in_its_row(isa, M):
    """The vector weight gradient takes a row's entries in groups: an entry's value must not depend
    on which group it fell in or where in it. The three rows see the same grad_y column, so a column
    of row 0 (40 entries) and the same column of row 1 (its only entry) or row 2 (3 entries) must
    agree bit for bit."""
    rng = np.random.default_rng(M)
    K = 64
    w = np.zeros((3, K), np.float32)
    w[0, rng.choice(K, 40, replace=False)] = 1
    cols = np.flatnonzero(w[0])
    w[1, cols[5]] = 1  # inside row 0's first group of 16
    w[2, cols[[0, 17, 39]]] = 1  # first group, second group, tail
    s = sparse.from_dense(w)
    x = rng.standard_normal((M, K)).astype(np.float32)
    g = rng.standard_normal((M, 1)).astype(np.float32)
    gy = np.repeat(g, 3, axis=1)
    with dropnet.isa(isa):
        dw = sops.sparse_weight_grad(gy, x, s)
    row0 = dict(zip(s.indices[s.indptr[0]:s.indptr[1]].tolist(), dw[s.indptr[0]:s.indptr[1]].tolist()))
    assert dw[s.indptr[1]] == row0[cols[5]]
    for p in range(s.indptr[2], s.indptr[3]):
        assert dw[p] == row0[s.indices[p]]
    np.testing.assert_allclose(dw[:40], (g[:, 0].astype(np.float64) @ x[:, cols].astype(np.float64)), rtol=1e-5,
                               atol=1e-5)


# ---------------------------------------------------------------- errors
def test_argument_errors():
    rng = np.random.default_rng(10)
    s = sparse.from_dense(pruned(rng, 6, 4, 0.5))
    x = np.ones((3, 4), np.float32)
    gy = np.ones((3, 6), np.float32)
    with pytest.raises(TypeError, match="s: expected a dropnet.sparse.CSRMatrix"):
        sops.sparse_linear(x, np.ones((6, 4), np.float32))
    with pytest.raises(TypeError, match="x: expected dtype float32, got float64"):
        sops.sparse_linear(x.astype(np.float64), s)
    with pytest.raises(ValueError, match="x: expected a C-contiguous array"):
        sops.sparse_linear(np.ones((4, 3), np.float32).T, s)
    with pytest.raises(ValueError, match=r"x: expected shape \(batch, 4\)"):
        sops.sparse_linear(np.ones((3, 5), np.float32), s)
    with pytest.raises(ValueError, match="x: expected a 2-d array"):
        sops.sparse_linear(np.ones(4, np.float32), s)
    with pytest.raises(ValueError, match=r"b: expected shape \(6,\)"):
        sops.sparse_linear(x, s, np.ones(4, np.float32))
    with pytest.raises(ValueError, match="activation: expected None"):
        sops.sparse_linear(x, s, activation="swish")
    with pytest.raises(ValueError, match=r"out: expected shape \(3, 6\)"):
        sops.sparse_linear(x, s, out=np.empty((6, 3), np.float32))
    with pytest.raises(TypeError, match="out: expected dtype float32"):
        sops.sparse_linear(x, s, out=np.empty((3, 6), np.float64))
    ro = np.empty((3, 6), np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="out: expected a writeable array"):
        sops.sparse_linear(x, s, out=ro)
    with pytest.raises(ValueError, match="out: must not share memory with x"):
        _overlap_case(s)
    with pytest.raises(ValueError, match=r"grad_y: expected shape \(batch, 6\)"):
        sops.sparse_linear_backward_input(x, s)
    with pytest.raises(ValueError, match=r"out: expected shape \(3, 4\)"):
        sops.sparse_linear_backward_input(gy, s, out=np.empty((3, 6), np.float32))
    with pytest.raises(ValueError, match="x: expected 3 rows"):
        sops.sparse_weight_grad(gy, np.ones((2, 4), np.float32), s)
    with pytest.raises(ValueError, match=r"out: expected length \d+"):
        sops.sparse_weight_grad(gy, x, s, out=np.empty(s.nnz + 1, np.float32))
    with pytest.raises(ValueError, match="accumulate=True needs an out= array"):
        sops.sparse_weight_grad(gy, x, s, accumulate=True)
    with pytest.raises(TypeError, match="grad_y: expected dtype float32"):
        sops.sparse_weight_grad(gy.astype(np.float16), x, s)


def _overlap_case(s):
    buf = np.ones((3, 10), np.float32).reshape(-1)
    x = buf[:12].reshape(3, 4)
    out = buf[12:30].reshape(3, 6)
    sops.sparse_linear(x, s, out=out)  # disjoint: fine
    sops.sparse_linear(x, s, out=buf[6:24].reshape(3, 6))  # overlaps x: raises


# ---------------------------------------------------------------- property and peer checks
def test_random_shapes_property():
    hypothesis = pytest.importorskip("hypothesis")
    st = hypothesis.strategies

    @hypothesis.settings(max_examples=40, deadline=None, derandomize=True)
    @hypothesis.given(M=st.integers(0, 70), K=st.integers(0, 70), N=st.integers(0, 70),
                      sparsity=st.sampled_from(SPARSITIES), isa=st.sampled_from(ISAS), seed=st.integers(0, 2**16))
    def check(M, K, N, sparsity, isa, seed):
        check_kernels(isa, np.random.default_rng(seed), M, K, N, sparsity)

    check()


@pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta:UserWarning")
def test_agrees_with_torch_sparse():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(11)
    w = pruned(rng, 64, 80, 0.9)
    s = sparse.from_dense(w)
    x = rng.standard_normal((33, 80)).astype(np.float32)
    gy = rng.standard_normal((33, 64)).astype(np.float32)
    w_csr = torch.from_numpy(w).to_sparse_csr()
    ty = torch.mm(w_csr, torch.from_numpy(x).t().contiguous()).t()
    np.testing.assert_allclose(sops.sparse_linear(x, s), ty.numpy(), rtol=1e-5, atol=1e-5)
    tdw = torch.sparse.sampled_addmm(w_csr, torch.from_numpy(gy).t(), torch.from_numpy(x), beta=0.0)
    np.testing.assert_array_equal(tdw.crow_indices().numpy(), s.indptr)
    np.testing.assert_array_equal(tdw.col_indices().numpy(), s.indices)
    np.testing.assert_allclose(sops.sparse_weight_grad(gy, x, s), tdw.values().numpy(), rtol=1e-4, atol=1e-4)


# ---------------------------------------------------------------------------- DropConnect on CSR
@pytest.mark.parametrize("p", [0.0, 0.3, 0.8])
def test_drop_connect_on_a_sparse_weight_is_dense_drop_connect(p):
    rng = np.random.default_rng(12)
    w = pruned(rng, 23, 41, 0.7)
    w[3, 5] = np.nan  # dropped or kept like any weight; a dropped NaN is exactly 0
    s = sparse.from_dense(w)
    dense, bits = dropnet.ops.drop_connect(w, p, seed=9, stream=4, return_mask=True)
    got, keep = dropnet.ops.drop_connect(s, p, seed=9, stream=4, return_mask=True)
    assert got.shape == s.shape and got.nnz == s.nnz
    np.testing.assert_array_equal(got.indptr, s.indptr)
    np.testing.assert_array_equal(got.indices, s.indices)
    assert got.to_dense().tobytes() == dense.tobytes()  # the same weights, the same bits
    dense_keep = dropnet.ops.unpack_mask(bits, w.shape)
    np.testing.assert_array_equal(keep, dense_keep[stored_rows(s), s.indices])
    # The layer's product with the dropped weight, on a weight without the NaN.
    s2 = sparse.from_dense(np.nan_to_num(w))
    x = rng.standard_normal((6, 41)).astype(np.float32)
    np.testing.assert_allclose(sops.sparse_linear(x, dropnet.ops.drop_connect(s2, p, seed=9, stream=4)),
                               x @ dropnet.ops.drop_connect(np.nan_to_num(w), p, seed=9, stream=4).T,
                               rtol=1e-5, atol=1e-5)
    same = dropnet.ops.drop_connect(s, p, seed=9, stream=4, training=False)
    assert same is not s and same.to_dense().tobytes() == w.tobytes()
    with pytest.raises(ValueError, match="out: not supported"):
        dropnet.ops.drop_connect(s, p, seed=9, stream=4, out=np.empty(s.nnz, np.float32))
