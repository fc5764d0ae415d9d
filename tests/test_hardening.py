"""Regression tests for the defects of the hardening campaign (issue 14): each case that once
crashed, wrapped around or returned a silently wrong result, on every ISA path this CPU has.

Arrays come from tests/guard_pages.py, flush against a PROT_NONE page: an over-read past the end
of an operand is a segfault here instead of a silently used neighbour.
"""
from __future__ import annotations

import numpy as np
import pytest

import dropnet
from dropnet import ops
from dropnet.sparse import from_dense

import guard_pages as gp

pytestmark = pytest.mark.skipif(not gp.available(), reason="needs mmap + mprotect (POSIX) for guard pages")

RNG = np.random.default_rng(14)


def rand(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


# ---------------------------------------------------------------- 1: masked tails of the vector kernels

@pytest.mark.parametrize("n", [1, 3, 8, 15, 16, 17, 31, 33, 47])
def test_matmul_never_reads_past_b(isa_level, n):
    """pack_b used a negative shift for the tail mask when N % 32 was in 1..15 (AVX-512)."""
    a, b = rand(8, 4), rand(4, n)
    ref = a.astype(np.float64) @ b.astype(np.float64)
    for trans_b, bb in ((False, b), (True, np.ascontiguousarray(b.T))):
        got = ops.matmul(gp.guarded(a), gp.guarded(bb), trans_b=trans_b)
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)
        at = np.ascontiguousarray(a.T)
        got = ops.matmul(gp.guarded(at), gp.guarded(bb), trans_a=True, trans_b=trans_b)
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)
    out = gp.empty_guarded((8, n))
    ops.matmul(gp.guarded(a), gp.guarded(b), out=out)
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("n", [1, 5, 15, 17])
def test_linear_and_skip_zeros_never_read_past_operands(isa_level, n):
    x, w, b = rand(5, 7), rand(n, 7), rand(n)
    x[x < 0.3] = 0.0  # mostly zeros: the skip-zeros lists are used
    ref = np.maximum(x.astype(np.float64) @ w.T.astype(np.float64) + b, 0.0)
    got = ops.linear(gp.guarded(x), gp.guarded(w), gp.guarded(b), activation="relu")
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)
    c, _ = ops.matmul_skip_zeros(gp.guarded(x), gp.guarded(np.ascontiguousarray(w.T)))
    np.testing.assert_allclose(c, x.astype(np.float64) @ w.T, rtol=1e-5, atol=1e-5)


def test_train_step_never_reads_past_x(isa_level):
    model = dropnet.Sequential([dropnet.layers.Dense(3, activation="relu"), dropnet.layers.Dense(2)],
                               input_shape=(4,), seed=0)
    model.compile(optimizer="sgd", loss="mse")
    x, y = gp.guarded(rand(8, 4)), gp.guarded(rand(8, 2))
    model.fit(x, y, epochs=1, batch_size=8, shuffle=False, verbose=0)
    assert all(np.isfinite(w).all() for w in model.get_weights())
    loss = model.network.train_step(x, y)
    assert np.isfinite(loss)


# ---------------------------------------------------------------- 2: CSR pattern stays read-only

def test_csr_pattern_cannot_be_made_writeable():
    w = rand(6, 9)
    s = from_dense(w, threshold=0.5)
    for arr in (s.indices, s.indptr, s._t_indices, s._t_indptr, s._t_value_index):
        with pytest.raises(ValueError):
            arr.flags.writeable = True
        if isinstance(arr.base, np.ndarray):
            with pytest.raises(ValueError):
                arr.base.flags.writeable = True
    np.testing.assert_array_equal(s.to_dense(), np.where(np.abs(w) > 0.5, w, 0))


# ---------------------------------------------------------------- 3, 4: window geometry overflow

HUGE = [2**62, 2**62 + 100, 2**63 - 1, 2**41]


@pytest.mark.parametrize("big", HUGE)
def test_conv_geometry_overflow_is_a_value_error(big):
    x, w = np.ones((1, 1, 4, 4), np.float32), np.ones((1, 1, 3, 3), np.float32)
    for kw in (dict(stride=(big, 1), dilation=(big + 100, 1)), dict(stride=(1, big)), dict(dilation=(1, big)),
               dict(padding=big), dict(padding=(0, big))):
        with pytest.raises(ValueError):
            ops.conv2d(x, w, None, **kw)
        with pytest.raises(ValueError):
            ops.conv2d_backward(np.ones((1, 1, 1, 1), np.float32), x, w, **kw)
    with pytest.raises(ValueError):
        ops.conv2d(x, w, None, padding=2**70)  # past int64: ValueError too, not a binding TypeError


def test_avg_pool_divisor_never_wraps():
    x = np.ones((1, 1, 6, 6), np.float32)
    with pytest.raises(ValueError):
        ops.avg_pool2d(x, 2**62 + 8, padding=2**61 + 4)
    with pytest.raises(ValueError):
        ops.avg_pool2d(x, (2**32, 2**32), padding=(2**31, 2**31))
    with pytest.raises(ValueError):
        ops.max_pool2d(x, 2**62 + 8, padding=2**61 + 4)
    with pytest.raises(ValueError):
        ops.avg_pool2d_backward(np.ones((1, 1, 1, 1), np.float32), (1, 1, 6, 6), 2**62 + 8, padding=2**61 + 4)
    # A legitimate large padding still gives PyTorch's answer: every window is padding plus x.
    np.testing.assert_allclose(ops.avg_pool2d(x, 6, padding=3), np.full((1, 1, 2, 2), 9 / 36, np.float32))


# ---------------------------------------------------------------- 5: aliasing

def test_batch_norm_rejects_a_partial_overlap_and_allows_in_place():
    buf = rand(9, 3).ravel()
    x = buf[:24].reshape(8, 3)
    with pytest.raises(ValueError, match="out.*overlap"):
        ops.batch_norm(x, None, None, None, None, training=True, out=buf[3:27].reshape(8, 3))
    x = rand(8, 3)
    ref = (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-5)
    xi = x.copy()
    y, _, _ = ops.batch_norm(xi, None, None, None, None, training=True, out=xi)
    assert y is xi or np.shares_memory(y, xi)
    np.testing.assert_allclose(xi, ref, rtol=1e-4, atol=1e-5)
    rm = np.zeros(3, np.float32)
    with pytest.raises(ValueError, match="running_var.*running_mean"):
        ops.batch_norm(x, None, None, rm, rm, training=True)
    g = rand(8, 3)
    with pytest.raises(ValueError, match="out.*x"):
        ops.batch_norm_backward(g, x, None, np.zeros(3, np.float32), np.ones(3, np.float32), out=x)


def test_max_pool_out_and_indices_must_not_share_memory():
    x = rand(1, 2, 4, 4)
    buf = np.zeros(8, np.float32)
    with pytest.raises(ValueError, match="indices_out.*out"):
        ops.max_pool2d(x, 2, return_indices=True, out=buf.reshape(1, 2, 2, 2),
                       indices_out=buf.view(np.int32).reshape(1, 2, 2, 2))
    with pytest.raises(ValueError, match="out.*x"):
        ops.max_pool2d(x, 2, out=x.ravel()[:8].reshape(1, 2, 2, 2))
    y, idx = ops.max_pool2d(x, 2, return_indices=True)
    with pytest.raises(ValueError, match="out.*grad"):
        buf2 = np.zeros(64, np.float32)
        g = buf2[:8].reshape(1, 2, 2, 2)
        ops.max_pool2d_backward(g, idx, x.shape, out=buf2[4:36].reshape(1, 2, 4, 4))


@pytest.mark.parametrize("call", [
    lambda x, o: ops.conv2d(x, np.ones((2, 2, 1, 1), np.float32), out=o),
    lambda x, o: ops.avg_pool2d(x, 1, out=o),
    lambda x, o: ops.dropout(x, 0.5, seed=0, stream=0, out=o),
    lambda x, o: ops.batch_norm(x, None, None, None, None, training=True, out=o),
])
def test_every_out_op_rejects_a_partial_overlap(call):
    buf = rand(40)
    x = buf[:32].reshape(2, 2, 2, 4)
    with pytest.raises(ValueError, match="out"):
        call(x, buf[8:40].reshape(2, 2, 2, 4))


# ---------------------------------------------------------------- 8: dtypes and alignment

def test_float32_dtype_with_metadata_is_float32():
    f32m = np.dtype(np.float32, metadata={"unit": "m"})
    a, b = rand(3, 4), rand(4, 2)
    np.testing.assert_allclose(ops.matmul(a.astype(f32m), b.astype(f32m)), a @ b, rtol=1e-5, atol=1e-6)
    out = np.zeros((3, 2), f32m)
    ops.matmul(a, b, out=out)
    np.testing.assert_allclose(out, a @ b, rtol=1e-5, atol=1e-6)
    with pytest.raises(TypeError, match="float32"):
        ops.matmul(a.astype(">f4"), b)  # byte-swapped is not float32


def _conv_ref(x, w, b):
    n, c, h, wd = x.shape
    f, _, kh, kw = w.shape
    oh, ow = h - kh + 1, wd - kw + 1
    y = np.zeros((n, f, oh, ow))
    for i in range(kh):
        for j in range(kw):
            y += np.einsum("nchw,fc->nfhw", x[:, :, i:i + oh, j:j + ow].astype(np.float64), w[:, :, i, j])
    return y + b[None, :, None, None]


@pytest.mark.parametrize("misalign", [1, 2, 3])
def test_misaligned_inputs_give_the_aligned_result(isa_level, misalign):
    x, w, b = rand(2, 3, 6, 5), rand(4, 3, 3, 2), rand(4)
    xm, wm, bm = (gp.guarded(v, misalign=misalign) for v in (x, w, b))
    assert not xm.flags.aligned
    np.testing.assert_allclose(ops.conv2d(xm, wm, bm), _conv_ref(x, w, b), rtol=1e-4, atol=1e-4)
    dy = rand(2, 4, 4, 4)
    dx, dw, db = ops.conv2d_backward(gp.guarded(dy, misalign=misalign), xm, wm)
    dx0, dw0, db0 = ops.conv2d_backward(dy, x, w)
    np.testing.assert_array_equal(dx, dx0)
    np.testing.assert_array_equal(dw, dw0)
    np.testing.assert_array_equal(db, db0)
    np.testing.assert_allclose(ops.avg_pool2d(xm, 2), x[:, :, :6, :4].reshape(2, 3, 3, 2, 2, 2).mean((3, 5)),
                               rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="out.*aligned"):
        ops.conv2d(x, w, b, out=gp.empty_guarded((2, 4, 4, 4), misalign=misalign))


@pytest.mark.parametrize("p", ["0.5", True, np.bool_(True), np.array(0.5), [0.5], None])
def test_linear_dropout_takes_the_types_dropout_takes(p):
    x, w = rand(3, 4), rand(2, 4)
    with pytest.raises(TypeError, match="dropout"):
        ops.linear(x, w, dropout=p, seed=0, stream=0)
    with pytest.raises(TypeError, match="p"):
        ops.dropout(x, p, seed=0, stream=0)
    # The same real numbers work in both (np.float32 included) and give the same mask.
    y = ops.linear(x, np.eye(4, dtype=np.float32), dropout=np.float32(0.5), seed=3, stream=4)
    np.testing.assert_array_equal(y, ops.dropout(x @ np.eye(4, dtype=np.float32), np.float32(0.5), seed=3, stream=4))


@pytest.mark.parametrize("make", [lambda v: dropnet.layers.Dense(v), lambda v: dropnet.layers.Conv2D(v, 3),
                                  lambda v: dropnet.layers.Conv2D(2, v), lambda v: dropnet.layers.Input((v,))])
@pytest.mark.parametrize("size", [2**31, 2**40, 2**63])
def test_huge_layer_sizes_fail_at_construction(make, size):
    with pytest.raises(ValueError, match=r"2\*\*31 - 1"):
        make(size)


def test_uniform_bits_never_wraps_past_2_64():
    from dropnet.random import uniform_bits
    top = uniform_bits(2, 5, 6, start=2**64 - 2)
    np.testing.assert_array_equal(top, uniform_bits(4, 5, 6, start=2**64 - 4)[2:])
    assert top[0] != uniform_bits(1, 5, 6)[0] or top[1] != uniform_bits(2, 5, 6)[1]
    with pytest.raises(ValueError, match="start"):
        uniform_bits(3, 5, 6, start=2**64 - 2)
    with pytest.raises(ValueError, match="start"):
        dropnet._core.random.fill_uniform_bits(np.zeros(3, np.uint32), 5, 6, 2**64 - 2)


# ---------------------------------------------------------------- every op with guard-page operands

def _plain(a):
    return a


_R = np.random.default_rng(7)
_X = _R.standard_normal((3, 5, 7, 13)).astype(np.float32)       # odd sizes: every loop has a tail
_M = _R.standard_normal((37, 29)).astype(np.float32)
_W = _R.standard_normal((19, 29)).astype(np.float32)
_S = from_dense(_W, threshold=0.7)
_BITS = ops.dropout(_M, 0.3, seed=1, stream=2, return_mask=True)[1]
_SP_BITS = ops.spatial_dropout(_X, 0.3, seed=1, stream=2, return_mask=True)[1]
_PY, _PIDX = ops.max_pool2d(_X, 3, 2, 1, return_indices=True)
_GAMMA, _BETA = _R.standard_normal(5).astype(np.float32), _R.standard_normal(5).astype(np.float32)
_BN_Y, _BN_MEAN, _BN_INV = ops.batch_norm(_X, _GAMMA, _BETA, None, None, training=True, relu=True)
_DW = _R.standard_normal((5, 1, 3, 3)).astype(np.float32)
_IMG = _R.standard_normal((4, 3, 11, 9)).astype(np.float32)

GUARDED_OPS = {
    "dropout": lambda g: ops.dropout(g(_M), 0.3, seed=1, stream=2, return_mask=True),
    "dropout_backward": lambda g: ops.dropout_backward(g(_M), 0.3, mask_bits=g(_BITS)),
    "alpha_dropout": lambda g: ops.alpha_dropout(g(_M), 0.2, seed=3, stream=4),
    "alpha_dropout_backward": lambda g: ops.alpha_dropout_backward(g(_M), 0.2, seed=3, stream=4),
    "spatial_dropout": lambda g: ops.spatial_dropout(g(_X), 0.3, seed=1, stream=2),
    "spatial_dropout_backward": lambda g: ops.spatial_dropout_backward(g(_X), 0.3, mask_bits=g(_SP_BITS)),
    "drop_connect": lambda g: ops.drop_connect(g(_W), 0.4, seed=5, stream=6),
    "mc_dropout": lambda g: ops.mc_dropout(g(_M), 0.3, seed=1, stream0=2, samples=3),
    "unpack_mask": lambda g: ops.unpack_mask(g(_BITS), _M.shape),
    "matmul": lambda g: ops.matmul(g(_M), g(_W), trans_b=True),
    "matmul_skip_zeros": lambda g: ops.matmul_skip_zeros(g(np.maximum(_M, 0)), g(_W), trans_b=True)[0],
    "linear": lambda g: ops.linear(g(_M), g(_W), g(_W[:, 0].copy()), activation="gelu", dropout=0.3, seed=1,
                                   stream=2, return_mask=True),
    "conv2d": lambda g: ops.conv2d(g(_X), g(_X[:2, :, :3, :3].copy()), g(_X[0, 0, 0, :2].copy()), padding=1,
                                   stride=(2, 1), activation="relu"),
    "conv2d_backward": lambda g: ops.conv2d_backward(g(_X[:, :2, :5, :11].copy()), g(_X), g(_X[:2, :, :3, :3].copy())),
    "conv2d_depthwise": lambda g: ops.conv2d(g(_X), g(_DW), groups=5, dilation=2),
    "max_pool2d": lambda g: ops.max_pool2d(g(_X), 3, 2, 1, return_indices=True),
    "max_pool2d_backward": lambda g: ops.max_pool2d_backward(g(_PY), g(_PIDX), _X.shape),
    "avg_pool2d": lambda g: ops.avg_pool2d(g(_X), 3, 2, 1, count_include_pad=False),
    "avg_pool2d_backward": lambda g: ops.avg_pool2d_backward(g(_PY), _X.shape, 3, 2, 1),
    "global_avg_pool2d": lambda g: ops.global_avg_pool2d(g(_X)),
    "global_avg_pool2d_backward": lambda g: ops.global_avg_pool2d_backward(g(_X[:, :, 0, 0].copy()), _X.shape),
    "batch_norm": lambda g: ops.batch_norm(g(_X), g(_GAMMA), g(_BETA),
                                           # updated in place: guarded, never misaligned (refused, see above)
                                           gp.guarded(np.zeros(5, np.float32)), gp.guarded(np.ones(5, np.float32)),
                                           training=True,
                                           relu=True),
    "batch_norm_2d": lambda g: ops.batch_norm(g(_M), None, None, None, None, training=True),
    "batch_norm_backward": lambda g: ops.batch_norm_backward(g(_X), g(_X), g(_GAMMA),
                                                             g(_BN_MEAN), g(_BN_INV), y=g(_BN_Y)),
    "sparse_linear": lambda g: ops.sparse_linear(g(_M), _S, g(_W[:, 0].copy()), activation="relu"),
    "sparse_linear_backward_input": lambda g: ops.sparse_linear_backward_input(g(_M[:, :19].copy()), _S),
    "sparse_weight_grad": lambda g: ops.sparse_weight_grad(g(_M[:, :19].copy()), g(_M), _S),
    "augment_images": lambda g: ops.augment_images(g(_IMG), padding=2, flip=True, erase=0.5, seed=1, stream=2),
    "random_crop": lambda g: ops.random_crop(g(_IMG), 3, seed=1, stream=2),
    "random_flip": lambda g: ops.random_flip(g(_IMG), seed=1, stream=2),
    "random_erasing": lambda g: ops.random_erasing(g(_IMG), 0.9, seed=1, stream=2),
}


def _as_list(result):
    return list(result) if isinstance(result, tuple) else [result]


@pytest.mark.parametrize("name", sorted(GUARDED_OPS))
@pytest.mark.parametrize("misalign", [0, 1])
def test_every_op_with_operands_flush_against_a_guard_page(isa_level, name, misalign):
    """Same bits as with ordinary arrays, on every ISA path, with every array operand ending at a
    PROT_NONE page (an over-read faults) and, with misalign, starting off its alignment."""
    want = _as_list(GUARDED_OPS[name](_plain))
    got = _as_list(GUARDED_OPS[name](lambda a: gp.guarded(a, misalign=misalign % a.dtype.itemsize)))
    assert len(got) == len(want)
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)
