"""max / average / global-average pooling and their backward passes against direct numpy loops
written here, and against torch.nn.functional where torch is installed."""
from __future__ import annotations


import hypothesis
import hypothesis.strategies as st
import numpy as np
import pytest

import dropnet
from dropnet import ops

from helpers import threads

ISA_LEVELS = dropnet.cpu_features()["available"]




def pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def geometry(shape, k, s, p):
    (kh, kw), (sh, sw), (ph, pw) = pair(k), pair(s), pair(p)
    OH = (shape[2] + 2 * ph - kh) // sh + 1
    OW = (shape[3] + 2 * pw - kw) // sw + 1
    return kh, kw, sh, sw, ph, pw, OH, OW


def max_pool_ref(x, k, s, p):
    """Direct loops; first maximum in row-major window order wins, NaN propagates."""
    N, C, H, W = x.shape
    kh, kw, sh, sw, ph, pw, OH, OW = geometry(x.shape, k, s, p)
    y = np.empty((N, C, OH, OW), np.float32)
    idx = np.empty((N, C, OH, OW), np.int32)
    for n in range(N):
        for c in range(C):
            for oh in range(OH):
                for ow in range(OW):
                    best, arg = None, None
                    for ih in range(max(oh * sh - ph, 0), min(oh * sh - ph + kh, H)):
                        for iw in range(max(ow * sw - pw, 0), min(ow * sw - pw + kw, W)):
                            v = x[n, c, ih, iw]
                            if best is None or v > best or (np.isnan(v) and not np.isnan(best)):
                                best, arg = v, ih * W + iw
                    y[n, c, oh, ow], idx[n, c, oh, ow] = best, arg
    return y, idx


def max_pool_backward_ref(dy, idx, shape):
    dx = np.zeros((shape[0], shape[1], shape[2] * shape[3]))
    for n in range(shape[0]):
        for c in range(shape[1]):
            np.add.at(dx[n, c], idx[n, c].ravel(), dy[n, c].ravel().astype(np.float64))
    return dx.reshape(shape)


def avg_pool_matrix(shape, k, s, p, count_include_pad):
    """A (OH*OW, H*W) float64 matrix: y_plane = A @ x_plane. Its transpose is the backward."""
    _, _, H, W = shape
    kh, kw, sh, sw, ph, pw, OH, OW = geometry(shape, k, s, p)
    A = np.zeros((OH * OW, H * W))
    for oh in range(OH):
        for ow in range(OW):
            hs, ws = oh * sh - ph, ow * sw - pw
            cells = [(ih, iw) for ih in range(max(hs, 0), min(hs + kh, H)) for iw in range(max(ws, 0), min(ws + kw, W))]
            div = ((min(hs + kh, H + ph) - hs) * (min(ws + kw, W + pw) - ws)) if count_include_pad else len(cells)
            for ih, iw in cells:
                A[oh * OW + ow, ih * W + iw] = 1.0 / div
    return A, OH, OW


# (shape, kernel, stride, padding)
CASES = [
    ((2, 3, 28, 28), 2, 2, 0),        # the CNN's pooling (2x2 fast path)
    ((1, 2, 7, 13), 2, 2, 0),         # odd sizes drop the last row / column
    ((2, 2, 7, 13), 3, 2, 1),
    ((2, 1, 9, 8), 3, 1, 1),          # overlapping windows
    ((1, 3, 6, 11), (2, 3), (1, 2), (1, 1)),
    ((3, 2, 5, 5), 5, 1, 0),          # window = plane
    ((1, 1, 4, 6), 2, 3, 1),          # stride > kernel
    ((2, 2, 5, 6), 2, 2, 0),          # 2x2 rows of fewer than 4 windows, odd H
    ((1, 2, 10, 9), 2, 2, 0),         # 2x2 rows of 4 windows and odd W
    ((2, 2, 8, 8), 3, 2, 1),          # OH = H/2 but 3x3 windows: backward leaves the 2x2 path
]


@pytest.mark.parametrize("level", ISA_LEVELS)
@pytest.mark.parametrize("case", CASES)
def test_max_pool_forward_and_backward(case, level):
    shape, k, s, p = case
    rng = np.random.default_rng(0)
    # Small integers: many ties, so the first-maximum rule is exercised.
    x = rng.integers(-3, 4, shape).astype(np.float32)
    y_ref, idx_ref = max_pool_ref(x, k, s, p)
    with dropnet.isa(level):
        y, idx = ops.max_pool2d(x, k, s, p, return_indices=True)
        y_only = ops.max_pool2d(x, k, s, p)
        dy = rng.standard_normal(y.shape).astype(np.float32)
        dx = ops.max_pool2d_backward(dy, idx, x.shape)
    assert idx.dtype == np.int32
    assert np.array_equal(y, y_ref) and np.array_equal(y_only, y_ref) and np.array_equal(idx, idx_ref)
    np.testing.assert_allclose(dx, max_pool_backward_ref(dy, idx_ref, shape), rtol=1e-6, atol=1e-6)


def test_max_pool_out_buffers_are_reused():
    x = np.random.default_rng(6).standard_normal((2, 3, 8, 10)).astype(np.float32)
    y_ref, idx_ref = max_pool_ref(x, 2, 2, 0)
    out, idx_out = np.empty_like(y_ref), np.empty(y_ref.shape, np.int32)
    y, idx = ops.max_pool2d(x, 2, return_indices=True, out=out, indices_out=idx_out)
    assert np.shares_memory(y, out) and np.shares_memory(idx, idx_out)
    assert np.array_equal(out, y_ref) and np.array_equal(idx_out, idx_ref)
    with pytest.raises(ValueError, match="indices_out: expected shape"):
        ops.max_pool2d(x, 2, return_indices=True, indices_out=np.empty((2, 3, 4, 4), np.int32))
    with pytest.raises(TypeError, match="int32"):
        ops.max_pool2d(x, 2, return_indices=True, indices_out=np.empty(y_ref.shape, np.int64))
    with pytest.raises(ValueError, match="return_indices is False"):
        ops.max_pool2d(x, 2, indices_out=idx_out)


def test_max_pool_nan_propagates_and_padding_never_wins():
    x = -np.ones((1, 1, 4, 4), np.float32) * np.arange(1, 17, dtype=np.float32).reshape(1, 1, 4, 4)
    x[0, 0, 2, 3] = np.nan
    for k, s, p in ((2, 2, 0), (3, 1, 1)):
        y_ref, idx_ref = max_pool_ref(x, k, s, p)
        y, idx = ops.max_pool2d(x, k, s, p, return_indices=True)
        np.testing.assert_array_equal(y, y_ref)
        assert np.array_equal(idx, idx_ref)
        assert np.nanmax(y) < 0  # the padded zeros were never chosen


def test_max_pool_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    for shape, k, s, p in CASES:
        x = rng.standard_normal(shape).astype(np.float32)
        xt = torch.tensor(x, requires_grad=True)
        yt, it = torch.nn.functional.max_pool2d(xt, k, s, p, return_indices=True)
        dy = rng.standard_normal(tuple(yt.shape)).astype(np.float32)
        yt.backward(torch.from_numpy(dy))
        y, idx = ops.max_pool2d(x, k, s, p, return_indices=True)
        assert np.array_equal(y, yt.detach().numpy()) and np.array_equal(idx, it.numpy())
        np.testing.assert_allclose(ops.max_pool2d_backward(dy, idx, shape), xt.grad.numpy(), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("level", ISA_LEVELS)
@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("case", CASES)
def test_avg_pool_forward_and_backward(case, count_include_pad, level):
    shape, k, s, p = case
    rng = np.random.default_rng(2)
    x = rng.standard_normal(shape).astype(np.float32)
    A, OH, OW = avg_pool_matrix(shape, k, s, p, count_include_pad)
    N, C, H, W = shape
    with dropnet.isa(level):
        y = ops.avg_pool2d(x, k, s, p, count_include_pad)
        dy = rng.standard_normal(y.shape).astype(np.float32)
        dx = ops.avg_pool2d_backward(dy, shape, k, s, p, count_include_pad)
    y_ref = (x.reshape(N * C, H * W).astype(np.float64) @ A.T).reshape(N, C, OH, OW)
    dx_ref = (dy.reshape(N * C, OH * OW).astype(np.float64) @ A).reshape(shape)
    np.testing.assert_allclose(y, y_ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(dx, dx_ref, rtol=1e-5, atol=1e-6)


def test_avg_pool_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    for shape, k, s, p in CASES:
        for cip in (True, False):
            x = rng.standard_normal(shape).astype(np.float32)
            xt = torch.tensor(x, requires_grad=True)
            yt = torch.nn.functional.avg_pool2d(xt, k, s, p, count_include_pad=cip)
            dy = rng.standard_normal(tuple(yt.shape)).astype(np.float32)
            yt.backward(torch.from_numpy(dy))
            np.testing.assert_allclose(ops.avg_pool2d(x, k, s, p, cip), yt.detach().numpy(), rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(ops.avg_pool2d_backward(dy, shape, k, s, p, cip), xt.grad.numpy(),
                                       rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("shape", [(2, 3, 7, 13), (1, 1, 1, 1), (4, 5, 28, 28)])
def test_global_avg_pool(shape):
    rng = np.random.default_rng(4)
    x = rng.standard_normal(shape).astype(np.float32)
    y = ops.global_avg_pool2d(x)
    assert y.shape == shape[:2]
    np.testing.assert_allclose(y, x.astype(np.float64).mean(axis=(2, 3)), rtol=1e-6, atol=1e-7)
    dy = rng.standard_normal(shape[:2]).astype(np.float32)
    dx = ops.global_avg_pool2d_backward(dy, shape)
    np.testing.assert_allclose(dx, np.broadcast_to(dy[:, :, None, None] / (shape[2] * shape[3]), shape),
                               rtol=1e-6, atol=1e-7)


def test_one_and_two_threads_give_identical_bits():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((16, 9, 28, 28)).astype(np.float32)
    results = []
    for n in (1, 2):
        with threads(n):
            y, idx = ops.max_pool2d(x, 2, return_indices=True)
            dxm = ops.max_pool2d_backward(y, idx, x.shape)
            ya = ops.avg_pool2d(x, 3, 2, 1)
            dxa = ops.avg_pool2d_backward(ya, x.shape, 3, 2, 1)
            yg = ops.global_avg_pool2d(x)
            results.append((y, idx, dxm, ya, dxa, yg, ops.global_avg_pool2d_backward(yg, x.shape)))
    for a, b in zip(*results):
        assert np.array_equal(a, b)


def test_empty_batch():
    x = np.zeros((0, 3, 6, 6), np.float32)
    y, idx = ops.max_pool2d(x, 2, return_indices=True)
    assert y.shape == idx.shape == (0, 3, 3, 3)
    assert ops.max_pool2d_backward(y, idx, x.shape).shape == x.shape
    assert ops.avg_pool2d(x, 3, 1, 1).shape == (0, 3, 6, 6)
    assert ops.global_avg_pool2d(x).shape == (0, 3)


def test_errors():
    x = np.zeros((2, 3, 5, 5), np.float32)
    with pytest.raises(ValueError, match="larger than the padded input"):
        ops.max_pool2d(x, 6)
    with pytest.raises(ValueError, match="at most half the kernel"):
        ops.max_pool2d(x, 2, 1, 2)
    with pytest.raises(ValueError, match="stride"):
        ops.avg_pool2d(x, 2, 0)
    with pytest.raises(ValueError, match="kernel_size"):
        ops.max_pool2d(x, 0)
    with pytest.raises(TypeError, match="float32"):
        ops.max_pool2d(x.astype(np.float64), 2)
    with pytest.raises(ValueError, match="4-D"):
        ops.avg_pool2d(x[0], 2)
    with pytest.raises(TypeError, match="kernel_size"):
        ops.max_pool2d(x, (2, 2, 2))
    y, idx = ops.max_pool2d(x, 2, return_indices=True)
    bad = idx.copy()
    bad[0, 0, 0, 0] = 25
    with pytest.raises(ValueError, match=r"indices: expected values in \[0, H\*W = 25\)"):
        ops.max_pool2d_backward(y, bad, x.shape)
    with pytest.raises(TypeError, match="int32"):
        ops.max_pool2d_backward(y, idx.astype(np.int64), x.shape)
    with pytest.raises(ValueError, match="indices: expected shape"):
        ops.max_pool2d_backward(y, idx[:1].copy(), x.shape)
    with pytest.raises(ValueError, match="N, C"):
        ops.max_pool2d_backward(y, idx, (3, 3, 5, 5))
    with pytest.raises(ValueError, match="grad: expected shape"):
        ops.avg_pool2d_backward(np.zeros((2, 3, 3, 3), np.float32), x.shape, 2)
    with pytest.raises(ValueError, match="input_shape"):
        ops.global_avg_pool2d_backward(np.zeros((2, 3), np.float32), (2, 3, 5))
    with pytest.raises(ValueError, match="grad: expected shape"):
        ops.global_avg_pool2d_backward(np.zeros((2, 4), np.float32), x.shape)



@hypothesis.settings(max_examples=60, deadline=None)
@hypothesis.given(h=st.integers(1, 9), w=st.integers(1, 9), kh=st.integers(1, 4), kw=st.integers(1, 4),
                  sh=st.integers(1, 3), sw=st.integers(1, 3), ph=st.integers(0, 2), pw=st.integers(0, 2),
                  seed=st.integers(0, 2**31))
def test_random_geometries_match_reference(h, w, kh, kw, sh, sw, ph, pw, seed):
    hypothesis.assume(2 * ph <= kh and 2 * pw <= kw and kh <= h + 2 * ph and kw <= w + 2 * pw)
    shape, k, s, p = (2, 2, h, w), (kh, kw), (sh, sw), (ph, pw)
    rng = np.random.default_rng(seed)
    x = rng.integers(-2, 3, shape).astype(np.float32)
    y_ref, idx_ref = max_pool_ref(x, k, s, p)
    y, idx = ops.max_pool2d(x, k, s, p, return_indices=True)
    assert np.array_equal(y, y_ref) and np.array_equal(idx, idx_ref)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    np.testing.assert_allclose(ops.max_pool2d_backward(dy, idx, shape), max_pool_backward_ref(dy, idx_ref, shape),
                               rtol=1e-6, atol=1e-6)
    A, OH, OW = avg_pool_matrix(shape, k, s, p, True)
    np.testing.assert_allclose(ops.avg_pool2d(x, k, s, p), (x.reshape(4, h * w) @ A.T).reshape(2, 2, OH, OW),
                               rtol=1e-5, atol=1e-6)
