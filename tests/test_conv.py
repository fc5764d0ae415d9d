"""conv2d forward and backward against a direct float64 numpy convolution written here; the
numpy backward is itself checked by finite differences of the numpy forward."""
from __future__ import annotations


import hypothesis
import hypothesis.strategies as st
import numpy as np
import pytest

import dropnet
from dropnet import ops

from helpers import threads

ISA_LEVELS = dropnet.cpu_features()["available"]




# ---------------------------------------------------------------- float64 references

def out_size(size, pad_total, k, stride, dil):
    return (size + pad_total - dil * (k - 1) - 1) // stride + 1


def ref_pads(padding, w, dilation):
    if padding == "same":
        th, tw = dilation[0] * (w.shape[2] - 1), dilation[1] * (w.shape[3] - 1)
        return th // 2, th - th // 2, tw // 2, tw - tw // 2
    if padding == "valid":
        return 0, 0, 0, 0
    ph, pw = (padding, padding) if isinstance(padding, int) else padding
    return ph, ph, pw, pw


def windows(xp, i, j, OH, OW, stride, dilation):
    """xp[:, :, i*dh + oh*sh, j*dw + ow*sw] for all (oh, ow): the input each output reads at tap (i, j)."""
    (sh, sw), (dh, dw) = stride, dilation
    return xp[:, :, i * dh: i * dh + sh * (OH - 1) + 1: sh, j * dw: j * dw + sw * (OW - 1) + 1: sw]


def conv_ref(x, w, b, stride, padding, dilation):
    x, w = x.astype(np.float64), w.astype(np.float64)
    N, C, H, W = x.shape
    F, _, kh, kw = w.shape
    pt, pb, pl, pr = ref_pads(padding, w, dilation)
    xp = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    OH = out_size(H, pt + pb, kh, stride[0], dilation[0])
    OW = out_size(W, pl + pr, kw, stride[1], dilation[1])
    y = np.zeros((N, F, OH, OW))
    for i in range(kh):
        for j in range(kw):
            y += np.einsum("nchw,fc->nfhw", windows(xp, i, j, OH, OW, stride, dilation), w[:, :, i, j])
    if b is not None:
        y += b.astype(np.float64)[None, :, None, None]
    return y


def conv_backward_ref(dy, x, w, stride, padding, dilation):
    dy, x, w = dy.astype(np.float64), x.astype(np.float64), w.astype(np.float64)
    N, C, H, W = x.shape
    F, _, kh, kw = w.shape
    pt, pb, pl, pr = ref_pads(padding, w, dilation)
    xp = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    dxp = np.zeros_like(xp)
    OH, OW = dy.shape[2:]
    dw = np.zeros_like(w)
    for i in range(kh):
        for j in range(kw):
            dw[:, :, i, j] = np.einsum("nfhw,nchw->fc", dy, windows(xp, i, j, OH, OW, stride, dilation))
            windows(dxp, i, j, OH, OW, stride, dilation)[...] += np.einsum("nfhw,fc->nchw", dy, w[:, :, i, j])
    dx = dxp[:, :, pt: pt + H, pl: pl + W]
    return dx, dw, dy.sum(axis=(0, 2, 3))


ACTIVATIONS = {
    None: lambda z: z,
    "relu": lambda z: np.maximum(z, 0),
    "leaky_relu": lambda z: np.where(z > 0, z, 0.01 * z),
    "tanh": np.tanh,
    "sigmoid": lambda z: 1 / (1 + np.exp(-z)),
    "gelu": lambda z: 0.5 * z * (1 + np.vectorize(__import__("math").erf)(z / np.sqrt(2))),
}

# (N, C, H, W, F, kh, kw, stride, padding, dilation)
CASES = [
    (2, 3, 7, 13, 4, 3, 3, (1, 1), 1, (1, 1)),
    (1, 2, 13, 7, 3, 3, 3, (2, 2), 1, (1, 1)),            # batch of 1, stride 2
    (3, 2, 7, 13, 5, 3, 3, (1, 1), "same", (2, 2)),       # "same" with dilation 2
    (2, 3, 9, 8, 2, 4, 2, (1, 1), "same", (1, 1)),        # even kernel: asymmetric "same"
    (2, 1, 10, 11, 6, 5, 3, (2, 1), (2, 0), (1, 2)),      # odd mix
    (9, 4, 6, 5, 3, 1, 1, (1, 1), 0, (1, 1)),             # 1x1: columns are the input
    (2, 4, 6, 7, 3, 1, 1, (2, 2), 0, (1, 1)),             # 1x1 strided
    (2, 2, 5, 5, 2, 5, 5, (1, 1), "valid", (1, 1)),       # kernel = input
]


def make(case, seed=0):
    N, C, H, W, F, kh, kw, stride, padding, dilation = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, C, H, W)).astype(np.float32)
    w = rng.standard_normal((F, C, kh, kw)).astype(np.float32)
    b = rng.standard_normal(F).astype(np.float32)
    return x, w, b, dict(stride=stride, padding=padding, dilation=dilation)


@pytest.mark.parametrize("level", ISA_LEVELS)
@pytest.mark.parametrize("case", CASES)
def test_forward_matches_direct_convolution(case, level):
    x, w, b, kw = make(case)
    ref = conv_ref(x, w, b, kw["stride"], kw["padding"], kw["dilation"])
    with dropnet.isa(level):
        y = ops.conv2d(x, w, b, **kw)
        y_nob = ops.conv2d(x, w, None, **kw)
    assert y.dtype == np.float32 and y.shape == ref.shape
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(y_nob, ref - b[None, :, None, None], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("activation", list(ACTIVATIONS))
def test_fused_activation(activation):
    x, w, b, kw = make(CASES[0], seed=1)
    ref = ACTIVATIONS[activation](conv_ref(x, w, b, kw["stride"], kw["padding"], kw["dilation"]))
    y = ops.conv2d(x, w, b, activation=activation, **kw)
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-4)


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel:UserWarning")
def test_matches_torch_conv2d():
    torch = pytest.importorskip("torch")
    for case in CASES:
        x, w, b, kw = make(case, seed=2)
        tpad = kw["padding"] if isinstance(kw["padding"], (str, tuple)) else (kw["padding"],) * 2
        yt = torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b),
                                        stride=kw["stride"], padding=tpad, dilation=kw["dilation"]).numpy()
        np.testing.assert_allclose(ops.conv2d(x, w, b, **kw), yt, rtol=1e-4, atol=1e-4)


def test_reference_backward_matches_finite_differences():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 2, 5, 6))
    w = rng.standard_normal((3, 2, 3, 2))
    b = rng.standard_normal(3)
    args = ((2, 1), (1, 1), (1, 2))
    proj = rng.standard_normal(conv_ref(x, w, b, *args).shape)

    def loss(xx, ww, bb):
        return float((conv_ref(xx, ww, bb, *args) * proj).sum())

    dx, dw, db = conv_backward_ref(proj, x, w, *args)
    h = 1e-6
    for arr, grad in ((x, dx), (w, dw), (b, db)):
        for idx in list(np.ndindex(arr.shape))[::5]:
            old = arr[idx]
            arr[idx] = old + h
            up = loss(x, w, b)
            arr[idx] = old - h
            down = loss(x, w, b)
            arr[idx] = old
            assert abs((up - down) / (2 * h) - grad[idx]) < 1e-6 * max(1.0, abs(grad[idx]))


@pytest.mark.parametrize("level", ISA_LEVELS)
@pytest.mark.parametrize("case", CASES)
def test_backward_matches_reference(case, level):
    x, w, b, kw = make(case, seed=4)
    y = conv_ref(x, w, b, kw["stride"], kw["padding"], kw["dilation"])
    dy = np.random.default_rng(5).standard_normal(y.shape).astype(np.float32)
    rdx, rdw, rdb = conv_backward_ref(dy, x, w, kw["stride"], kw["padding"], kw["dilation"])
    with dropnet.isa(level):
        dx, dw, db = ops.conv2d_backward(dy, x, w, **kw)
    for got, ref in ((dx, rdx), (dw, rdw), (db, rdb)):
        assert got.dtype == np.float32 and got.shape == ref.shape
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=2e-4 * np.sqrt(y.size / y.shape[1]))


def test_backward_optional_products():
    x, w, b, kw = make(CASES[1], seed=6)
    dy = np.ones((1, 3, 7, 4), dtype=np.float32)
    dx, dw, db = ops.conv2d_backward(dy, x, w, need_input_grad=False, need_bias_grad=False, **kw)
    assert dx is None and db is None
    _, rdw, _ = conv_backward_ref(dy, x, w, kw["stride"], kw["padding"], kw["dilation"])
    np.testing.assert_allclose(dw, rdw, rtol=1e-4, atol=1e-4)


def test_backward_matches_torch_autograd():
    torch = pytest.importorskip("torch")
    x, w, b, kw = make(CASES[2], seed=7)
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    yt = torch.nn.functional.conv2d(xt, wt, bt, stride=kw["stride"], padding="same", dilation=kw["dilation"])
    dy = np.random.default_rng(8).standard_normal(tuple(yt.shape)).astype(np.float32)
    yt.backward(torch.from_numpy(dy))
    dx, dw, db = ops.conv2d_backward(dy, x, w, **kw)
    for got, ref in ((dx, xt.grad), (dw, wt.grad), (db, bt.grad)):
        np.testing.assert_allclose(got, ref.numpy(), rtol=1e-4, atol=1e-3)


def grouped(ref_fn, groups, x, w, *rest):
    """Applies a groups=1 reference to each channel / filter set and joins the results."""
    xs, ws = np.split(x, groups, axis=1), np.split(w, groups, axis=0)
    return [ref_fn(xg, wg, *(r[i] if isinstance(r, list) else r for r in rest)) for i, (xg, wg) in enumerate(zip(xs, ws))]


# (N, C, H, W, F, groups, k, stride, padding)
GROUP_CASES = [
    (2, 4, 7, 9, 6, 2, 3, 1, 1),        # two groups
    (3, 3, 8, 7, 3, 3, 3, 2, 1),        # depthwise, stride 2
    (2, 2, 6, 6, 4, 2, 3, 1, "same"),   # depthwise with multiplier 2
    (9, 4, 5, 6, 8, 4, 1, 1, 0),        # grouped 1x1
]


@pytest.mark.parametrize("case", GROUP_CASES)
def test_groups_forward_and_backward(case):
    N, C, H, W, F, G, k, stride, padding = case
    rng = np.random.default_rng(11)
    x = rng.standard_normal((N, C, H, W)).astype(np.float32)
    w = rng.standard_normal((F, C // G, k, k)).astype(np.float32)
    b = rng.standard_normal(F).astype(np.float32)
    args = ((stride, stride), padding, (1, 1))
    y_ref = np.concatenate(grouped(lambda xg, wg, bg: conv_ref(xg, wg, bg, *args), G, x, w,
                                   list(np.split(b, G))), axis=1)
    y = ops.conv2d(x, w, b, stride=stride, padding=padding, groups=G)
    np.testing.assert_allclose(y, y_ref, rtol=1e-4, atol=1e-4)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    parts = grouped(lambda xg, wg, dyg: conv_backward_ref(dyg, xg, wg, *args), G, x, w,
                    list(np.split(dy, G, axis=1)))
    dx, dw, db = ops.conv2d_backward(dy, x, w, stride=stride, padding=padding, groups=G)
    np.testing.assert_allclose(dx, np.concatenate([p[0] for p in parts], axis=1), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(dw, np.concatenate([p[1] for p in parts], axis=0), rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(db, np.concatenate([p[2] for p in parts]), rtol=1e-4, atol=1e-3)


def test_groups_match_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(12)
    x = rng.standard_normal((2, 6, 7, 7)).astype(np.float32)
    w = rng.standard_normal((6, 1, 3, 3)).astype(np.float32)
    yt = torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(w), padding=1, groups=6).numpy()
    np.testing.assert_allclose(ops.conv2d(x, w, padding=1, groups=6), yt, rtol=1e-4, atol=1e-4)


def test_one_and_two_threads_give_identical_bits():
    # 21 images: three weight-gradient chunks of 8, split unevenly over the threads.
    case = (21, 3, 9, 11, 5, 3, 3, (1, 1), 1, (1, 1))
    x, w, b, kw = make(case, seed=9)
    dy = np.random.default_rng(10).standard_normal((21, 5, 9, 11)).astype(np.float32)
    results = []
    for n in (1, 2):
        with threads(n):
            y = ops.conv2d(x, w, b, activation="relu", **kw)
            results.append((y, *ops.conv2d_backward(dy, x, w, **kw)))
    for a, c in zip(*results):
        assert np.array_equal(a, c)


def test_out_buffer_is_written_and_returned():
    x, w, b, kw = make(CASES[0])
    out = np.full((2, 4, 7, 13), np.nan, dtype=np.float32)
    y = ops.conv2d(x, w, b, out=out, **kw)
    assert y is out or np.shares_memory(y, out)
    np.testing.assert_allclose(out, conv_ref(x, w, b, (1, 1), 1, (1, 1)), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("case", [CASES[0], CASES[1], (2, 16, 6, 6, 16, 3, 3, (1, 1), 1, (1, 1))])  # last: Winograd
def test_backward_out_buffers_are_overwritten_and_returned(case):
    x, w, b, kw = make(case, seed=8)
    y = conv_ref(x, w, b, kw["stride"], kw["padding"], kw["dilation"])
    dy = np.random.default_rng(9).standard_normal(y.shape).astype(np.float32)
    want = ops.conv2d_backward(dy, x, w, **kw)
    # NaN-filled: every element must be written (dw and db are sums: not added onto what was there).
    outs = [np.full(a.shape, np.nan, np.float32) for a in want]
    got = ops.conv2d_backward(dy, x, w, dx_out=outs[0], dw_out=outs[1], db_out=outs[2], **kw)
    for g, o, wnt in zip(got, outs, want):
        assert np.shares_memory(g, o)
        np.testing.assert_array_equal(o, wnt)
    dx, dw, db = ops.conv2d_backward(dy, x, w, need_input_grad=False, need_bias_grad=False, dw_out=outs[1], **kw)
    assert dx is None and db is None and np.shares_memory(dw, outs[1])
    np.testing.assert_array_equal(outs[1], want[1])


def test_backward_out_buffers_are_checked():
    x, w, b, kw = make(CASES[0], seed=8)
    dy = np.zeros((2, 4, 7, 13), np.float32)
    with pytest.raises(ValueError, match="dw_out: expected shape"):
        ops.conv2d_backward(dy, x, w, dw_out=np.zeros(w.size, np.float32), **kw)
    with pytest.raises(TypeError, match="db_out"):
        ops.conv2d_backward(dy, x, w, db_out=np.zeros(4, np.float64), **kw)
    with pytest.raises(ValueError, match="dx_out: given, but need_input_grad is False"):
        ops.conv2d_backward(dy, x, w, need_input_grad=False, dx_out=np.zeros_like(x), **kw)
    with pytest.raises(ValueError, match="db_out: given, but need_bias_grad is False"):
        ops.conv2d_backward(dy, x, w, need_bias_grad=False, db_out=np.zeros(4, np.float32), **kw)
    with pytest.raises(ValueError, match="dw_out.*w"):
        ops.conv2d_backward(dy, x, w, dw_out=w, **kw)
    with pytest.raises(ValueError, match="dx_out.*x"):
        ops.conv2d_backward(dy, x, w, dx_out=x, **kw)


def test_empty_batch():
    x = np.zeros((0, 3, 5, 5), np.float32)
    w = np.ones((4, 3, 3, 3), np.float32)
    assert ops.conv2d(x, w, padding=1).shape == (0, 4, 5, 5)
    dx, dw, db = ops.conv2d_backward(np.zeros((0, 4, 5, 5), np.float32), x, w, padding=1)
    assert dx.shape == x.shape and not dw.any() and not db.any()


def test_errors():
    x = np.zeros((2, 3, 5, 5), np.float32)
    w = np.zeros((4, 3, 3, 3), np.float32)
    with pytest.raises(ValueError, match="larger than the padded input"):
        ops.conv2d(x, np.zeros((4, 3, 7, 3), np.float32))
    with pytest.raises(ValueError, match="larger than the padded input"):
        ops.conv2d(x, w, dilation=3)
    with pytest.raises(ValueError, match="stride"):
        ops.conv2d(x, w, stride=0)
    with pytest.raises(ValueError, match="dilation"):
        ops.conv2d(x, w, dilation=(1, 0))
    with pytest.raises(ValueError, match="padding"):
        ops.conv2d(x, w, padding=-1)
    with pytest.raises(ValueError, match="input channels"):
        ops.conv2d(x, np.zeros((4, 2, 3, 3), np.float32))
    with pytest.raises(ValueError, match="groups: expected a divisor of the input channels 3"):
        ops.conv2d(x, np.zeros((4, 1, 3, 3), np.float32), groups=2)
    with pytest.raises(ValueError, match="groups: expected a divisor of the filters 4"):
        ops.conv2d(x, np.zeros((4, 1, 3, 3), np.float32), groups=3)
    with pytest.raises(ValueError, match="groups: expected >= 1"):
        ops.conv2d(x, w, groups=0)
    with pytest.raises(TypeError, match="groups"):
        ops.conv2d(x, w, groups=1.0)
    with pytest.raises(TypeError, match="float32"):
        ops.conv2d(x.astype(np.float64), w)
    with pytest.raises(TypeError, match="float32"):
        ops.conv2d(x, w.astype(np.float16))
    with pytest.raises(ValueError, match="4-D"):
        ops.conv2d(x[0], w)
    with pytest.raises(ValueError, match=r"b: expected shape \(4,\)"):
        ops.conv2d(x, w, np.zeros(3, np.float32))
    with pytest.raises(ValueError, match="'same' needs stride 1"):
        ops.conv2d(x, w, stride=2, padding="same")
    with pytest.raises(ValueError, match="padding"):
        ops.conv2d(x, w, padding="full")
    with pytest.raises(TypeError, match="stride"):
        ops.conv2d(x, w, stride=1.5)
    with pytest.raises(ValueError, match="activation"):
        ops.conv2d(x, w, activation="swish")
    with pytest.raises(ValueError, match=r"out: expected shape \(2, 4, 3, 3\)"):
        ops.conv2d(x, w, out=np.zeros((2, 4, 5, 5), np.float32))
    with pytest.raises(ValueError, match="share memory"):
        big = np.zeros(200, np.float32)
        ops.conv2d(big[:150].reshape(2, 3, 5, 5), w, out=big[:72].reshape(2, 4, 3, 3))
    with pytest.raises(ValueError, match=r"grad_out: expected shape \(2, 4, 3, 3\)"):
        ops.conv2d_backward(np.zeros((2, 4, 5, 5), np.float32), x, w)
    with pytest.raises(ValueError, match="C-contiguous"):
        ops.conv2d(np.zeros((2, 3, 5, 10), np.float32)[..., ::2], w)



@hypothesis.settings(max_examples=60, deadline=None)
@hypothesis.given(n=st.integers(1, 3), c=st.integers(1, 3), h=st.integers(1, 9), w=st.integers(1, 9),
                  f=st.integers(1, 3), kh=st.integers(1, 4), kw=st.integers(1, 4), sh=st.integers(1, 3),
                  sw=st.integers(1, 3), ph=st.integers(0, 2), pw=st.integers(0, 2), dh=st.integers(1, 2),
                  dw=st.integers(1, 2), seed=st.integers(0, 2**31))
def test_random_geometries_match_reference(n, c, h, w, f, kh, kw, sh, sw, ph, pw, dh, dw, seed):
    hypothesis.assume(dh * (kh - 1) + 1 <= h + 2 * ph and dw * (kw - 1) + 1 <= w + 2 * pw)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    wt = rng.standard_normal((f, c, kh, kw)).astype(np.float32)
    b = rng.standard_normal(f).astype(np.float32)
    kw_args = dict(stride=(sh, sw), padding=(ph, pw), dilation=(dh, dw))
    y_ref = conv_ref(x, wt, b, (sh, sw), (ph, pw), (dh, dw))
    np.testing.assert_allclose(ops.conv2d(x, wt, b, **kw_args), y_ref, rtol=1e-4, atol=1e-4)
    dy = rng.standard_normal(y_ref.shape).astype(np.float32)
    for got, ref in zip(ops.conv2d_backward(dy, x, wt, **kw_args),
                        conv_backward_ref(dy, x, wt, (sh, sw), (ph, pw), (dh, dw))):
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-3)
