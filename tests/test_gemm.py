"""dropnet.ops.matmul / linear against float64 numpy references, on every ISA path.

Covers odd shapes (1, 7, 17, 129, 1000+), the four transpose cases, alpha/beta (beta = 0 ignores
NaN in out), bit-identical results for 1 and 2 threads, the fused epilogue (bias, activations
against their numpy / math.erf formulas, dropout mask against the Philox stream words) and the
errors bad input raises.
"""
from __future__ import annotations


import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import dropnet
from dropnet import ops
from dropnet.random import uniform_bits

from nn_reference import activate as _act_ref
from philox_ref import keep_threshold as _threshold

ISAS = dropnet.cpu_features()["available"]


@pytest.fixture(params=ISAS)
def isa(request):
    with dropnet.isa(request.param):
        yield request.param


@pytest.fixture
def threads():
    saved = dropnet.get_num_threads()
    yield
    dropnet.set_num_threads(saved)


def _rand(rng, shape):
    return rng.uniform(-1.0, 1.0, size=shape).astype(np.float32)


def _operands(rng, M, N, K, ta, tb):
    a = _rand(rng, (K, M) if ta else (M, K))
    b = _rand(rng, (N, K) if tb else (K, N))
    ref = (a.T if ta else a).astype(np.float64) @ (b.T if tb else b).astype(np.float64)
    return a, b, ref


def _tol(K):
    # float32 accumulation over K terms of magnitude <= 1
    return 2e-6 * (K + 8)


SHAPES = [(1, 1, 1), (1, 17, 7), (7, 1, 17), (17, 7, 1), (13, 33, 129), (129, 65, 17), (1001, 3, 9),
          (5, 1030, 31), (3, 5, 1100), (64, 300, 784)]


@pytest.mark.parametrize("ta,tb", [(False, False), (False, True), (True, False), (True, True)])
def test_matmul_matches_float64_numpy(isa, ta, tb):
    rng = np.random.default_rng(1)
    for M, N, K in SHAPES:
        a, b, ref = _operands(rng, M, N, K, ta, tb)
        got = ops.matmul(a, b, trans_a=ta, trans_b=tb)
        assert got.shape == (M, N) and got.dtype == np.float32
        np.testing.assert_allclose(got, ref, rtol=0, atol=_tol(K), err_msg=f"{isa} {M}x{N}x{K} ta={ta} tb={tb}")


@settings(max_examples=60, deadline=None)
@given(M=st.integers(1, 70), N=st.integers(1, 70), K=st.integers(0, 70), ta=st.booleans(), tb=st.booleans(),
       level=st.sampled_from(ISAS), seed=st.integers(0, 2**32 - 1))
def test_matmul_random_shapes(M, N, K, ta, tb, level, seed):
    rng = np.random.default_rng(seed)
    a, b, ref = _operands(rng, M, N, K, ta, tb)
    with dropnet.isa(level):
        got = ops.matmul(a, b, trans_a=ta, trans_b=tb)
    np.testing.assert_allclose(got, ref, rtol=0, atol=_tol(K))


@pytest.mark.parametrize("alpha,beta", [(1.0, 1.0), (0.5, -2.0), (-1.5, 0.25), (0.0, 3.0), (2.0, 0.0)])
def test_alpha_beta(isa, alpha, beta):
    rng = np.random.default_rng(2)
    for M, N, K in [(7, 33, 17), (129, 40, 300)]:
        a, b, ref = _operands(rng, M, N, K, False, True)
        c0 = _rand(rng, (M, N))
        out = c0.copy()
        res = ops.matmul(a, b, trans_b=True, alpha=alpha, beta=beta, out=out)
        assert res is out or np.shares_memory(res, out)
        np.testing.assert_allclose(out, alpha * ref + beta * c0.astype(np.float64), rtol=0, atol=_tol(K) * 3)


def test_beta_zero_ignores_nan_in_out(isa):
    rng = np.random.default_rng(3)
    a, b, ref = _operands(rng, 19, 45, 23, False, False)
    out = np.full((19, 45), np.nan, np.float32)
    ops.matmul(a, b, out=out)
    np.testing.assert_allclose(out, ref, rtol=0, atol=_tol(23))


def test_empty_inner_dimension_scales_out(isa):
    a = np.zeros((4, 0), np.float32)
    b = np.zeros((0, 6), np.float32)
    out = np.full((4, 6), 3.0, np.float32)
    ops.matmul(a, b, alpha=2.0, beta=0.5, out=out)
    np.testing.assert_array_equal(out, np.full((4, 6), 1.5, np.float32))
    np.testing.assert_array_equal(ops.matmul(a, b), np.zeros((4, 6), np.float32))
    assert ops.matmul(np.zeros((0, 3), np.float32), np.zeros((3, 5), np.float32)).shape == (0, 5)


@pytest.mark.parametrize("ta,tb", [(False, False), (False, True), (True, False), (True, True)])
def test_one_and_two_threads_identical_bits(isa, threads, ta, tb):
    # Shapes that make 2 threads split N, split M, and (with 4 threads) a 2 x 2 grid.
    rng = np.random.default_rng(4)
    for M, N, K in [(131, 301, 785), (300, 784, 128), (1030, 17, 260)]:
        a, b, _ = _operands(rng, M, N, K, ta, tb)
        dropnet.set_num_threads(1)
        one = ops.matmul(a, b, trans_a=ta, trans_b=tb)
        for n in (2, 3, 4):
            dropnet.set_num_threads(n)
            many = ops.matmul(a, b, trans_a=ta, trans_b=tb)
            np.testing.assert_array_equal(one.view(np.uint32), many.view(np.uint32), err_msg=f"{n} threads")


# ------------------------------------------------------------------ linear / epilogue


@pytest.mark.parametrize("activation", [None, "relu", "leaky_relu", "tanh", "sigmoid", "gelu"])
def test_linear_activations_match_formulas(isa, activation):
    rng = np.random.default_rng(5)
    M, N, K = 37, 301, 70
    x = _rand(rng, (M, K))
    w = _rand(rng, (N, K))
    b = _rand(rng, (N,))
    z = x.astype(np.float64) @ w.T.astype(np.float64) + b
    y = ops.linear(x, w, b, activation=activation, negative_slope=0.2)
    want = _act_ref(activation, z, 0.2)
    # Pre-activation rounding (<= K ulp) propagates with slope <= 1; vector tanh/sigmoid/gelu add
    # at most ~1e-6 relative to the magnitude of their input.
    tol = _tol(K) + 1e-6 * np.maximum(1.0, np.abs(z))
    assert np.all(np.abs(y - want) <= tol), f"{isa} {activation}: max err {np.abs(y - want).max()}"


@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "gelu"])
def test_vector_activations_accurate_over_wide_range(isa, activation):
    # x = I (identity weight) so z is exactly the input: isolates the activation's own error.
    z = np.concatenate([np.linspace(-30, 30, 4001), np.linspace(-1e-3, 1e-3, 101), [0.0, -0.0, 88.0, -100.0]])
    z = z.astype(np.float32)
    x = z.reshape(-1, 1)
    w = np.ones((1, 1), np.float32)
    y = ops.linear(x, w, activation=activation).ravel().astype(np.float64)
    want = _act_ref(activation, z.astype(np.float64))
    err = np.abs(y - want) / np.maximum(np.abs(want), np.float64(np.finfo(np.float32).tiny))
    if activation == "gelu":  # A-S erf: absolute error in erf <= 1.5e-7, scaled by |z|/2
        err = np.abs(y - want) / np.maximum(1.0, np.abs(z))
    mask = np.abs(want) > 1e-30  # sigmoid(-100) underflows to 0 in float32 (flushed)
    assert err[mask].max() < 1e-6, f"{isa} {activation}: max rel err {err[mask].max()} at z={z[mask][err[mask].argmax()]}"


@pytest.mark.parametrize("p", [0.5, 0.3, 0.9])
def test_linear_dropout_mask_follows_philox_contract(isa, threads, p):
    rng = np.random.default_rng(6)
    M, N, K = 29, 75, 33  # M*N = 2175: mask words straddle rows, last word partial
    x = _rand(rng, (M, K))
    w = _rand(rng, (N, K))
    b = _rand(rng, (N,))
    seed, stream = 0x1234_5678_9ABC, 7
    keep = (uniform_bits(M * N, seed, stream) < _threshold(p)).reshape(M, N)
    ref = np.maximum(x.astype(np.float64) @ w.T.astype(np.float64) + b, 0.0)
    want = np.where(keep, ref / (1.0 - p), 0.0)
    results = []
    for n in (1, 2):
        dropnet.set_num_threads(n)
        y, mask = ops.linear(x, w, b, activation="relu", dropout=p, seed=seed, stream=stream, return_mask=True)
        assert mask.dtype == np.uint64 and mask.shape == ((M * N + 63) // 64,)
        bits = np.unpackbits(mask.view(np.uint8), bitorder="little")
        np.testing.assert_array_equal(bits[: M * N].astype(bool), keep.ravel())
        assert not bits[M * N:].any()
        np.testing.assert_array_equal(y == 0, ~keep | (ref == 0))
        np.testing.assert_allclose(y, want, rtol=1e-6, atol=_tol(K) / (1.0 - p))
        results.append(y)
    np.testing.assert_array_equal(results[0].view(np.uint32), results[1].view(np.uint32))


def test_linear_dropout_threads_share_mask_words(isa, threads):
    # A width that is not a multiple of 64 with enough rows and columns for a 2-D thread split:
    # neighbouring tiles on different threads write different bits of one mask word.
    rng = np.random.default_rng(7)
    M, N, K = 150, 333, 64
    x = _rand(rng, (M, K))
    w = _rand(rng, (N, K))
    keep = uniform_bits(M * N, 3, 11) < _threshold(0.5)
    for n in (1, 2):
        dropnet.set_num_threads(n)
        _, mask = ops.linear(x, w, dropout=0.5, seed=3, stream=11, return_mask=True)
        bits = np.unpackbits(mask.view(np.uint8), bitorder="little")[: M * N].astype(bool)
        np.testing.assert_array_equal(bits, keep)


def test_linear_gelu_and_dropout_match_torch(isa):
    torch = pytest.importorskip("torch")  # torch is only a second reference here; numpy tests above
    rng = np.random.default_rng(9)
    x = _rand(rng, (33, 50)) * 4
    w = _rand(rng, (70, 50))
    b = _rand(rng, (70,))
    fn = torch.nn.functional
    want = fn.gelu(fn.linear(torch.from_numpy(x).double(), torch.from_numpy(w).double(), torch.from_numpy(b).double()))
    got = ops.linear(x, w, b, activation="gelu")
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-5, atol=_tol(50) * 4)
    # Same dropout mask applied by hand: kept values scaled by 1/(1-p) as torch's dropout does.
    y, mask = ops.linear(x, w, b, activation="gelu", dropout=0.25, seed=5, stream=1, return_mask=True)
    keep = np.unpackbits(mask.view(np.uint8), bitorder="little")[: 33 * 70].reshape(33, 70).astype(bool)
    np.testing.assert_allclose(y, np.where(keep, want.numpy() / 0.75, 0.0), rtol=1e-5, atol=_tol(50) * 6)


def test_linear_without_dropout_mask_is_all_kept():
    x = np.ones((3, 5), np.float32)
    w = np.ones((7, 5), np.float32)
    y, mask = ops.linear(x, w, return_mask=True)
    bits = np.unpackbits(mask.view(np.uint8), bitorder="little")
    assert bits[:21].all() and not bits[21:].any()
    np.testing.assert_array_equal(y, np.full((3, 7), 5.0, np.float32))


def test_linear_dropout_p_one_zeroes_everything():
    x = np.ones((4, 3), np.float32)
    w = np.ones((5, 3), np.float32)
    y = ops.linear(x, w, dropout=1.0, seed=1, stream=0)
    np.testing.assert_array_equal(y, np.zeros((4, 5), np.float32))


def test_linear_out_buffer_is_used():
    rng = np.random.default_rng(8)
    x = _rand(rng, (9, 4))
    w = _rand(rng, (6, 4))
    out = np.full((9, 6), np.nan, np.float32)
    y = ops.linear(x, w, activation="sigmoid", out=out)
    assert np.shares_memory(y, out)
    np.testing.assert_allclose(out, _act_ref("sigmoid", x.astype(np.float64) @ w.T.astype(np.float64)), atol=1e-6)


# ------------------------------------------------------------------ errors


def test_matmul_shape_mismatch_names_both_shapes():
    a = np.zeros((3, 4), np.float32)
    b = np.zeros((5, 6), np.float32)
    with pytest.raises(ValueError, match=r"\(3, 4\).*\(5, 6\)"):
        ops.matmul(a, b)
    with pytest.raises(ValueError, match=r"2-D"):
        ops.matmul(np.zeros(3, np.float32), b)


def test_matmul_rejects_wrong_dtype_and_layout():
    a = np.zeros((3, 4), np.float32)
    with pytest.raises(TypeError, match="float32.*float64"):
        ops.matmul(a.astype(np.float64), a.T.copy())
    with pytest.raises(TypeError, match="numpy array"):
        ops.matmul([[1.0]], a)
    with pytest.raises(ValueError, match="C-contiguous"):
        ops.matmul(a, np.zeros((3, 4), np.float32).T)
    with pytest.raises(ValueError, match="out: expected shape \\(3, 3\\)"):
        ops.matmul(a, a.T.copy(), out=np.zeros((3, 4), np.float32))
    with pytest.raises(TypeError, match="out"):
        ops.matmul(a, a.T.copy(), out=np.zeros((3, 3), np.float64))
    with pytest.raises(ValueError, match="beta"):
        ops.matmul(a, a.T.copy(), beta=1.0)
    with pytest.raises(ValueError, match="share memory"):
        sq = np.ones((4, 4), np.float32)
        ops.matmul(sq, sq.copy(), out=sq)


def test_linear_errors():
    x = np.zeros((3, 4), np.float32)
    w = np.zeros((5, 4), np.float32)
    with pytest.raises(ValueError, match=r"w: expected shape \(out_features, 4\).*\(3, 4\).*\(5, 3\)"):
        ops.linear(x, np.zeros((5, 3), np.float32))
    with pytest.raises(ValueError, match=r"b: expected shape \(5,\)"):
        ops.linear(x, w, np.zeros(4, np.float32))
    with pytest.raises(TypeError, match="x: expected dtype float32"):
        ops.linear(x.astype(np.float16), w)
    with pytest.raises(ValueError, match="activation"):
        ops.linear(x, w, activation="swish")
    with pytest.raises(ValueError, match="seed= and stream="):
        ops.linear(x, w, dropout=0.5)
    with pytest.raises(ValueError, match="seed= and stream="):
        ops.linear(x, w, dropout=0.5, seed=1)
    with pytest.raises(ValueError, match="dropout: expected a probability"):
        ops.linear(x, w, dropout=1.5, seed=1, stream=0)
    with pytest.raises(ValueError, match="C-contiguous"):
        ops.linear(np.zeros((4, 3), np.float32).T, w)
    with pytest.raises(ValueError, match="seed"):
        ops.linear(x, w, dropout=0.5, seed=-1, stream=0)


# ------------------------------------------------------------------ products skipping the zeros of a

FORMS = [(True, False), (False, False), (False, True)]  # (trans_a, trans_b): dZ.T @ X, dZ @ W, H @ W.T


def _sparse_operand(rng, shape, density):
    a = _rand(rng, shape)
    a[rng.random(shape) >= density] = 0.0
    return a


def _skip_operands(rng, M, N, K, ta, tb, density):
    """op(a): M x K with about `density` nonzeros, op(b): K x N; and the float64 product."""
    a = _sparse_operand(rng, (K, M) if ta else (M, K), density)
    b = _rand(rng, (N, K) if tb else (K, N))
    ref = (a.T if ta else a).astype(np.float64) @ (b.T if tb else b).astype(np.float64)
    return a, b, ref


@pytest.mark.parametrize("ta,tb", FORMS)
@pytest.mark.parametrize("M,N,K", [(1, 1, 1), (7, 17, 1), (17, 7, 33), (300, 784, 128), (33, 100, 129),
                                   (301, 785, 60), (16, 17, 33), (10, 64, 200), (100, 300, 128)])
@pytest.mark.parametrize("density", [0.0, 0.02, 0.25, 0.6, 1.0])
def test_matmul_skip_zeros_matches_numpy(isa, ta, tb, M, N, K, density):
    rng = np.random.default_rng(M * 7 + N + K)
    a, b, ref = _skip_operands(rng, M, N, K, ta, tb, density)
    c, skipped = ops.matmul_skip_zeros(a, b, trans_a=ta, trans_b=tb, max_density=1.0)
    assert skipped and c.shape == (M, N)
    np.testing.assert_allclose(c, ref, rtol=0, atol=_tol(K))
    # A row of op(a) without nonzeros gives an exact zero row.
    empty = ~((a.T if ta else a) != 0).any(axis=1)
    assert (c[empty] == 0).all()


@pytest.mark.parametrize("ta,tb", FORMS)
def test_matmul_skip_zeros_density_switch_and_out(isa, ta, tb):
    rng = np.random.default_rng(3)
    a, b, ref = _skip_operands(rng, 40, 50, 64, ta, tb, 0.5)
    density = np.count_nonzero(a) / a.size
    out = np.full((40, 50), np.nan, np.float32)
    c, skipped = ops.matmul_skip_zeros(a, b, trans_a=ta, trans_b=tb, max_density=density - 0.01, out=out)
    assert c is out and not skipped  # too dense: the GEMM ran
    np.testing.assert_array_equal(out, ops.matmul(a, b, trans_a=ta, trans_b=tb))
    c, skipped = ops.matmul_skip_zeros(a, b, trans_a=ta, trans_b=tb, max_density=density, out=out)
    assert skipped
    np.testing.assert_allclose(c, ref, rtol=0, atol=_tol(64))


@pytest.mark.parametrize("ta,tb", FORMS)
def test_matmul_skip_zeros_keeps_nan_and_inf_of_a(isa, ta, tb):
    opa = np.zeros((5, 20), np.float32)  # op(a): 5 x 20
    opa[1, 3], opa[2, 7], opa[2, 9] = np.nan, np.inf, 1.0
    a = np.ascontiguousarray(opa.T) if ta else opa
    b = np.ones((4, 20) if tb else (20, 4), np.float32)
    c, _ = ops.matmul_skip_zeros(a, b, trans_a=ta, trans_b=tb, max_density=1.0)
    assert np.isnan(c[1]).all() and np.isposinf(c[2]).all()
    assert (c[[0, 3, 4]] == 0).all()


@pytest.mark.parametrize("ta,tb", FORMS)
def test_matmul_skip_zeros_one_and_two_threads_identical_bits(isa, threads, ta, tb):
    rng = np.random.default_rng(9)
    for M, N, K, density in [(300, 784, 128, 0.25), (100, 300, 60, 0.5), (37, 129, 200, 0.1)]:
        a, b, _ = _skip_operands(rng, M, N, K, ta, tb, density)
        dropnet.set_num_threads(1)
        one, _ = ops.matmul_skip_zeros(a, b, trans_a=ta, trans_b=tb, max_density=1.0)
        for n in (2, 3):
            dropnet.set_num_threads(n)
            many, _ = ops.matmul_skip_zeros(a, b, trans_a=ta, trans_b=tb, max_density=1.0)
            np.testing.assert_array_equal(one.view(np.uint32), many.view(np.uint32), err_msg=f"{n} threads")


def test_matmul_skip_zeros_errors():
    a = np.zeros((4, 3), np.float32)
    with pytest.raises(ValueError, match="inner dimensions differ"):
        ops.matmul_skip_zeros(a, np.zeros((5, 2), np.float32), trans_a=True)
    with pytest.raises(ValueError, match="inner dimensions differ"):
        ops.matmul_skip_zeros(a, np.zeros((4, 2), np.float32))
    with pytest.raises(ValueError, match="not supported"):
        ops.matmul_skip_zeros(a, np.zeros((2, 4), np.float32), trans_a=True, trans_b=True)
    with pytest.raises(ValueError, match="max_density"):
        ops.matmul_skip_zeros(a, np.zeros((3, 2), np.float32), max_density=1.5)
    with pytest.raises(ValueError, match="out: expected shape"):
        ops.matmul_skip_zeros(a, np.zeros((3, 2), np.float32), out=np.zeros((2, 3), np.float32))
    with pytest.raises(TypeError):
        ops.matmul_skip_zeros(a.astype(np.float64), np.zeros((3, 2), np.float32))


def test_matmul_transposed_view_error_points_to_trans_flag():
    from dropnet import ops

    x = np.ones((4, 3), np.float32)
    w = np.ones((5, 3), np.float32)
    with pytest.raises(ValueError, match=r"b: .*transposed view.*trans_b=True"):
        ops.matmul(x, w.T)
    with pytest.raises(ValueError, match=r"a: .*transposed view.*trans_a=True"):
        ops.matmul(np.ones((3, 4), np.float32).T, w, trans_b=True)
    np.testing.assert_allclose(ops.matmul(x, w, trans_b=True), x @ w.T, rtol=1e-6)
