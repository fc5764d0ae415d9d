"""batch_norm / batch_norm_backward against PyTorch's definition written in float64 numpy here
(biased variance to normalise, unbiased for running_var, momentum 0.1), the numpy backward checked
by finite differences, and torch.nn.functional.batch_norm where torch is installed."""
from __future__ import annotations


import numpy as np
import pytest

import dropnet
from dropnet import ops

from helpers import threads

ISA_LEVELS = dropnet.cpu_features()["available"]




def axes(x):
    return (0,) if x.ndim == 2 else (0, 2, 3)


def per_channel(v, x):
    return v.reshape((1, -1) + (1,) * (x.ndim - 2))


def bn_ref(x, gamma, beta, rm, rv, training, momentum=0.1, eps=1e-5, relu=False):
    """Returns y, mean, invstd, new running_mean, new running_var (float64)."""
    x = x.astype(np.float64)
    C = x.shape[1]
    g = np.ones(C) if gamma is None else gamma.astype(np.float64)
    b = np.zeros(C) if beta is None else beta.astype(np.float64)
    if training:
        m = x.size // C
        mean = x.mean(axis=axes(x))
        var = ((x - per_channel(mean, x)) ** 2).mean(axis=axes(x))
        new_rm = (1 - momentum) * rm + momentum * mean
        new_rv = (1 - momentum) * rv + momentum * var * m / (m - 1)
    else:
        mean, var = rm.astype(np.float64), rv.astype(np.float64)
        new_rm, new_rv = rm, rv
    invstd = 1 / np.sqrt(var + eps)
    y = (x - per_channel(mean, x)) * per_channel(invstd * g, x) + per_channel(b, x)
    if relu:
        y = np.maximum(y, 0)
    return y, mean, invstd, new_rm, new_rv


def bn_backward_ref(dy, x, gamma, mean, invstd, training, y=None):
    dy, x = dy.astype(np.float64), x.astype(np.float64)
    if y is not None:
        dy = np.where(y > 0, dy, 0)
    C = x.shape[1]
    m = x.size // C
    g = np.ones(C) if gamma is None else gamma.astype(np.float64)
    xhat = (x - per_channel(mean.astype(np.float64), x)) * per_channel(invstd.astype(np.float64), x)
    dbeta = dy.sum(axis=axes(x))
    dgamma = (dy * xhat).sum(axis=axes(x))
    k = per_channel(g * invstd, x)
    if not training:
        return k * dy, dgamma, dbeta
    dx = k * (dy - per_channel(dbeta / m, x) - xhat * per_channel(dgamma / m, x))
    return dx, dgamma, dbeta


SHAPES = [(256, 300), (7, 5), (2, 1), (4, 3, 7, 13), (1, 5, 3, 3), (3, 2, 1, 1), (5, 17, 4, 5)]


def make(shape, seed=0, loc=0.5, scale=2.0):
    rng = np.random.default_rng(seed)
    C = shape[1]
    x = (loc + scale * rng.standard_normal(shape)).astype(np.float32)
    gamma = rng.uniform(0.5, 1.5, C).astype(np.float32)
    beta = rng.standard_normal(C).astype(np.float32)
    rm = rng.standard_normal(C).astype(np.float32)
    rv = rng.uniform(0.5, 2, C).astype(np.float32)
    return x, gamma, beta, rm, rv


@pytest.mark.parametrize("level", ISA_LEVELS)
@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("shape", SHAPES)
def test_training_forward_and_running_stats(shape, relu, level):
    x, gamma, beta, rm, rv = make(shape)
    y_ref, mean_ref, invstd_ref, rm_ref, rv_ref = bn_ref(x, gamma, beta, rm.astype(np.float64),
                                                         rv.astype(np.float64), True, relu=relu)
    with dropnet.isa(level):
        y, mean, invstd = ops.batch_norm(x, gamma, beta, rm, rv, training=True, relu=relu)
    np.testing.assert_allclose(y, y_ref, rtol=1e-5, atol=2e-5)
    np.testing.assert_allclose(mean, mean_ref, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(invstd, invstd_ref, rtol=1e-5)
    np.testing.assert_allclose(rm, rm_ref, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(rv, rv_ref, rtol=1e-6)


@pytest.mark.parametrize("level", ISA_LEVELS)
@pytest.mark.parametrize("shape", SHAPES)
def test_inference_forward_uses_running_stats(shape, level):
    x, gamma, beta, rm, rv = make(shape, seed=1)
    rm0, rv0 = rm.copy(), rv.copy()
    for relu in (False, True):
        y_ref = bn_ref(x, gamma, beta, rm, rv, False, relu=relu)[0]
        with dropnet.isa(level):
            y, mean, invstd = ops.batch_norm(x, gamma, beta, rm, rv, training=False, relu=relu)
        np.testing.assert_allclose(y, y_ref, rtol=1e-5, atol=2e-5)
        np.testing.assert_allclose(invstd, 1 / np.sqrt(rv.astype(np.float64) + 1e-5), rtol=1e-6)
    assert np.array_equal(rm, rm0) and np.array_equal(rv, rv0)  # untouched in inference


def test_no_affine_and_no_running_stats():
    x = make((6, 4, 3, 2), seed=2)[0]
    y, mean, invstd = ops.batch_norm(x, None, None, None, None, training=True)
    y_ref = bn_ref(x, None, None, np.zeros(4), np.ones(4), True)[0]
    np.testing.assert_allclose(y, y_ref, rtol=1e-5, atol=2e-5)


def test_large_mean_small_variance_stays_accurate():
    rng = np.random.default_rng(3)
    x = (1000.0 + 1e-2 * rng.standard_normal((64, 8, 5, 5))).astype(np.float32)
    y, mean, invstd = ops.batch_norm(x, None, None, None, None, training=True)
    _, mean_ref, invstd_ref, _, _ = bn_ref(x, None, None, np.zeros(8), np.ones(8), True)
    np.testing.assert_allclose(invstd, invstd_ref, rtol=1e-4)
    np.testing.assert_allclose(mean, mean_ref, rtol=1e-7)


def test_reference_backward_matches_finite_differences():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3, 2, 2, 3))
    gamma, beta = rng.uniform(0.5, 1.5, 2), rng.standard_normal(2)
    proj = rng.standard_normal(x.shape)
    for training in (True, False):
        rm, rv = rng.standard_normal(2), rng.uniform(0.5, 2, 2)
        for relu in (False, True):
            def loss(xx, gg, bb):
                return float((bn_ref(xx, gg, bb, rm, rv, training, relu=relu)[0] * proj).sum())

            y, mean, invstd, _, _ = bn_ref(x, gamma, beta, rm, rv, training, relu=relu)
            dx, dg, db = bn_backward_ref(proj, x, gamma, mean, invstd, training, y if relu else None)
            h = 1e-6
            for arr, grad in ((x, dx), (gamma, dg), (beta, db)):
                for idx in np.ndindex(arr.shape):
                    old = arr[idx]
                    arr[idx] = old + h
                    up = loss(x, gamma, beta)
                    arr[idx] = old - h
                    down = loss(x, gamma, beta)
                    arr[idx] = old
                    assert abs((up - down) / (2 * h) - grad[idx]) < 1e-5 * max(1.0, abs(grad[idx]))


@pytest.mark.parametrize("level", ISA_LEVELS)
@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("shape", SHAPES)
def test_backward_matches_reference(shape, training, relu, level):
    x, gamma, beta, rm, rv = make(shape, seed=5)
    with dropnet.isa(level):
        y, mean, invstd = ops.batch_norm(x, gamma, beta, rm, rv, training=training, relu=relu)
        dy = np.random.default_rng(6).standard_normal(shape).astype(np.float32)
        dx, dgamma, dbeta = ops.batch_norm_backward(dy, x, gamma, mean, invstd, y=y if relu else None,
                                                    training=training)
    rdx, rdg, rdb = bn_backward_ref(dy, x, gamma, mean, invstd, training, y if relu else None)
    scale = np.sqrt(x.size / x.shape[1])
    np.testing.assert_allclose(dx, rdx, rtol=1e-4, atol=1e-5 * scale)
    np.testing.assert_allclose(dgamma, rdg, rtol=1e-4, atol=1e-5 * scale)
    np.testing.assert_allclose(dbeta, rdb, rtol=1e-4, atol=1e-5 * scale)


@pytest.mark.parametrize("level", ISA_LEVELS)
def test_large_input_streaming_path(level):
    # >= 4 MB: outputs are written with non-temporal stores; odd H*W puts rows off alignment.
    shape = (64, 16, 33, 31)
    x, gamma, beta, rm, rv = make(shape, seed=15)
    dy = np.random.default_rng(16).standard_normal(shape).astype(np.float32)
    with dropnet.isa(level):
        for relu in (False, True):
            y, mean, invstd = ops.batch_norm(x, gamma, beta, rm.copy(), rv.copy(), training=True, relu=relu)
            y_ref, mean_ref, invstd_ref, _, _ = bn_ref(x, gamma, beta, rm, rv, True, relu=relu)
            np.testing.assert_allclose(y, y_ref, rtol=1e-5, atol=2e-5)
            dx, dgamma, dbeta = ops.batch_norm_backward(dy, x, gamma, mean, invstd, y=y if relu else None)
            rdx, rdg, rdb = bn_backward_ref(dy, x, gamma, mean, invstd, True, y if relu else None)
            np.testing.assert_allclose(dx, rdx, rtol=1e-4, atol=1e-4)
            np.testing.assert_allclose(dgamma, rdg, rtol=1e-4, atol=1e-2)
            np.testing.assert_allclose(dbeta, rdb, rtol=1e-4, atol=1e-2)
            g = dy.copy()  # in place: dx written over grad
            ops.batch_norm_backward(g, x, gamma, mean, invstd, y=y if relu else None, out=g)
            assert np.array_equal(g, dx)
        y_inf = ops.batch_norm(x, gamma, beta, rm, rv, training=False)[0]
        np.testing.assert_allclose(y_inf, bn_ref(x, gamma, beta, rm, rv, False)[0], rtol=1e-5, atol=2e-5)


@pytest.mark.parametrize("shape", [(64, 12), (8, 6, 5, 7)])
def test_matches_torch(shape):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x, gamma, beta, rm, rv = make(shape, seed=7)
    trm, trv = torch.from_numpy(rm.copy()), torch.from_numpy(rv.copy())
    xt, gt, bt = (torch.tensor(a, requires_grad=True) for a in (x, gamma, beta))
    yt = torch.relu(F.batch_norm(xt, trm, trv, gt, bt, training=True, momentum=0.1, eps=1e-5))
    dy = np.random.default_rng(8).standard_normal(shape).astype(np.float32)
    yt.backward(torch.from_numpy(dy))
    y, mean, invstd = ops.batch_norm(x, gamma, beta, rm, rv, training=True, relu=True)
    dx, dgamma, dbeta = ops.batch_norm_backward(dy, x, gamma, mean, invstd, y=y)
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(rm, trm.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(rv, trv.numpy(), rtol=1e-5, atol=1e-6)
    for got, ref in ((dx, xt.grad), (dgamma, gt.grad), (dbeta, bt.grad)):
        np.testing.assert_allclose(got, ref.numpy(), rtol=1e-4, atol=1e-4)
    ye = F.batch_norm(torch.from_numpy(x), trm, trv, torch.from_numpy(gamma), torch.from_numpy(beta), training=False)
    np.testing.assert_allclose(ops.batch_norm(x, gamma, beta, rm, rv, training=False)[0], ye.numpy(),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("shape", [(300, 37), (9, 5, 11, 13)])
def test_one_and_two_threads_give_identical_bits(shape):
    results = []
    for n in (1, 2):
        x, gamma, beta, rm, rv = make(shape, seed=9)
        dy = np.random.default_rng(10).standard_normal(shape).astype(np.float32)
        with threads(n):
            y, mean, invstd = ops.batch_norm(x, gamma, beta, rm, rv, training=True, relu=True)
            grads = ops.batch_norm_backward(dy, x, gamma, mean, invstd, y=y)
        results.append((y, mean, invstd, rm, rv, *grads))
    for a, b in zip(*results):
        assert np.array_equal(a, b)


def test_backward_in_place_and_out_buffers():
    x, gamma, beta, rm, rv = make((5, 3, 4, 4), seed=11)
    y, mean, invstd = ops.batch_norm(x, gamma, beta, rm, rv, training=True)
    dy = np.random.default_rng(12).standard_normal(x.shape).astype(np.float32)
    dx_ref = ops.batch_norm_backward(dy, x, gamma, mean, invstd)[0]
    g = dy.copy()
    dx = ops.batch_norm_backward(g, x, gamma, mean, invstd, out=g)[0]
    assert np.shares_memory(dx, g) and np.array_equal(g, dx_ref)
    out = np.empty_like(x)
    y2 = ops.batch_norm(x, gamma, beta, None, None, training=True, out=out)[0]
    assert np.shares_memory(y2, out) and np.array_equal(out, y)
    for shape in ((5, 3, 4, 4), (6, 20)):  # with ReLU: the first pass writes the masked grad into out
        x, gamma, beta, rm, rv = make(shape, seed=13)
        y, mean, invstd = ops.batch_norm(x, gamma, beta, rm, rv, training=True, relu=True)
        dy = np.random.default_rng(14).standard_normal(shape).astype(np.float32)
        dx_ref = ops.batch_norm_backward(dy, x, gamma, mean, invstd, y=y)[0]
        g = dy.copy()
        ops.batch_norm_backward(g, x, gamma, mean, invstd, y=y, out=g)
        assert np.array_equal(g, dx_ref)


@pytest.mark.parametrize("shape", [(4, 0), (4, 0, 3, 3)])
def test_no_channels(shape):
    x = np.zeros(shape, np.float32)
    e = np.zeros(0, np.float32)
    for training in (True, False):
        y, mean, invstd = ops.batch_norm(x, e, e, e, e.copy(), training=training)
        dx, dgamma, dbeta = ops.batch_norm_backward(x, x, e, mean, invstd, training=training)
        assert y.shape == dx.shape == shape and mean.shape == dgamma.shape == (0,)


@pytest.mark.parametrize("shape", [(0, 3), (0, 3, 4, 4), (2, 3, 0, 5)])
def test_empty_batch_in_inference_and_backward(shape):
    x = np.zeros(shape, np.float32)
    rm, rv = np.zeros(3, np.float32), np.ones(3, np.float32)
    y, mean, invstd = ops.batch_norm(x, None, None, rm, rv, training=False)
    assert y.shape == shape
    dx, dgamma, dbeta = ops.batch_norm_backward(x, x, None, mean, invstd, training=False)
    assert dx.shape == shape and not dgamma.any() and not dbeta.any()
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        ops.batch_norm(x, None, None, rm, rv, training=True)


def test_errors():
    x, gamma, beta, rm, rv = make((4, 3, 2, 2))
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        ops.batch_norm(x[:1, :, :1, :1].copy(), gamma, beta, rm, rv, training=True)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        ops.batch_norm(np.zeros((1, 3), np.float32), None, None, None, None, training=True)
    with pytest.raises(ValueError, match=r"gamma: expected shape \(3,\)"):
        ops.batch_norm(x, gamma[:2].copy(), beta, rm, rv, training=True)
    with pytest.raises(TypeError, match="float32"):
        ops.batch_norm(x.astype(np.float64), gamma, beta, rm, rv, training=True)
    with pytest.raises(ValueError, match="2-D .* or 4-D"):
        ops.batch_norm(x[0], gamma, beta, rm, rv, training=True)
    with pytest.raises(ValueError, match="both arrays or both None"):
        ops.batch_norm(x, gamma, beta, rm, None, training=True)
    with pytest.raises(ValueError, match="needs the running statistics"):
        ops.batch_norm(x, gamma, beta, None, None, training=False)
    with pytest.raises(ValueError, match="eps"):
        ops.batch_norm(x, gamma, beta, rm, rv, training=True, eps=0.0)
    with pytest.raises(ValueError, match="momentum"):
        ops.batch_norm(x, gamma, beta, rm, rv, training=True, momentum=1.5)
    with pytest.raises(ValueError, match="writeable"):
        ro = rm.copy()
        ro.flags.writeable = False
        ops.batch_norm(x, gamma, beta, ro, rv, training=True)
    y, mean, invstd = ops.batch_norm(x, gamma, beta, rm, rv, training=True)
    with pytest.raises(ValueError, match="grad: expected shape"):
        ops.batch_norm_backward(y[:2].copy(), x, gamma, mean, invstd)
    with pytest.raises(ValueError, match="saved_mean"):
        ops.batch_norm_backward(y, x, gamma, mean[:2].copy(), invstd)
    with pytest.raises(ValueError, match="y: expected shape"):
        ops.batch_norm_backward(y, x, gamma, mean, invstd, y=y[:1].copy())
