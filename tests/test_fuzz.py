"""Property fuzzing of the public ops and model entry points (hypothesis).

Every call either raises a clear ValueError / TypeError (a message naming something) or returns
what an independent numpy reference computes. Operands come in every placement a caller can make:
plain arrays, arrays ending flush against a PROT_NONE guard page (tests/guard_pages.py: an
over-read is a segfault), misaligned starts, strided views, wrong dtypes, and out= buffers that
alias the inputs. Each property runs on every ISA path this CPU has.

Two profiles: a short one in the default run (a few seconds per property), and a long one under
the ``fuzz`` marker: ``python -m pytest -m fuzz``.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dropnet
from dropnet import layers, ops
from dropnet.random import uniform_bits
from dropnet.sparse import from_dense

import guard_pages as gp

SHORT, LONG = 12, 400

PLACEMENTS = ["plain", "plain", "guard", "misaligned", "strided", "float64", "list"]


def fuzz_property(fn):
    """Two tests from one property: ``test_<name>`` (short profile, default run) and
    ``test_<name>_long`` (marked ``fuzz``). Both take the isa_level fixture: every ISA path."""
    common = dict(deadline=None, derandomize=False, database=None,
                  suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                         HealthCheck.data_too_large])

    def short(isa_level, data):
        fn(data)

    def long(isa_level, data):
        fn(data)

    for test, suffix in ((short, ""), (long, "_long")):
        test.__name__ = test.__qualname__ = f"test_fuzz_{fn.__name__[len('prop_'):]}{suffix}"
        test.__doc__ = fn.__doc__
    short = settings(max_examples=SHORT, **common)(given(data=st.data())(short))
    long = pytest.mark.fuzz(settings(max_examples=LONG, **common)(given(data=st.data())(long)))
    return short, long


def place(data, a: np.ndarray, name: str, allow_bad: bool = True):
    """``a`` as the caller might pass it. Returns (array-like, is_valid_for_the_op)."""
    how = data.draw(st.sampled_from(PLACEMENTS if allow_bad else PLACEMENTS[:4]), label=f"{name} placement")
    if how == "plain":
        return a, True
    if how == "guard":
        return gp.guarded(a), True
    if how == "misaligned":
        return gp.guarded(a, misalign=data.draw(st.integers(1, 3), label=f"{name} misalign")), True
    if how == "strided":
        if a.ndim == 0 or a.shape[-1] == 0:
            return a, True
        wide = np.zeros(a.shape[:-1] + (a.shape[-1] * 2,), a.dtype)
        wide[..., ::2] = a
        view = wide[..., ::2]
        return view, view.flags.c_contiguous  # a length-1 last axis is still contiguous
    if how == "float64":
        return a.astype(np.float64), False
    return a.tolist(), False


def call(fn, *args, **kwargs):
    """(result, None) or (None, exception) for ValueError / TypeError with a message; anything
    else (a crash would not even get here) fails the test."""
    try:
        return fn(*args, **kwargs), None
    except (ValueError, TypeError) as e:
        assert str(e), f"{type(e).__name__} without a message"
        return None, e


def rand(data, shape, label):
    seed = data.draw(st.integers(0, 2**32 - 1), label=label)
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def close(got, ref, k=1):
    tol = 1e-4 * max(1.0, np.sqrt(k))
    np.testing.assert_allclose(np.asarray(got, np.float64), ref, rtol=tol, atol=tol)


dims = st.integers(0, 37)
small = st.integers(1, 6)


# ---------------------------------------------------------------- linear algebra

def prop_matmul(data):
    m, k, n = data.draw(dims, label="M"), data.draw(dims, label="K"), data.draw(dims, label="N")
    ta, tb = data.draw(st.booleans(), label="trans_a"), data.draw(st.booleans(), label="trans_b")
    a, b = rand(data, (m, k), "a"), rand(data, (k, n), "b")
    pa, ok_a = place(data, np.ascontiguousarray(a.T) if ta else a, "a")
    pb, ok_b = place(data, np.ascontiguousarray(b.T) if tb else b, "b")
    out_kind = data.draw(st.sampled_from(["none", "fresh", "guard", "alias", "overlap"]), label="out")
    alpha = data.draw(st.sampled_from([1.0, -0.5, 2.0]), label="alpha")
    beta = data.draw(st.sampled_from([0.0, 1.0]), label="beta") if out_kind in ("fresh", "guard") else 0.0
    c0 = rand(data, (m, n), "c0")
    out = {"none": None, "fresh": c0.copy(), "guard": gp.guarded(c0)}.get(out_kind)
    aliased = False
    if out_kind in ("alias", "overlap") and ok_a and isinstance(pa, np.ndarray) and pa.size and m * n:
        buf = pa.reshape(-1)
        start = 0 if out_kind == "alias" else min(1, buf.size - 1)
        if buf.size - start >= m * n and pa.flags.writeable:
            out, aliased = buf[start:start + m * n].reshape(m, n), True
    got, err = call(ops.matmul, pa, pb, trans_a=ta, trans_b=tb, alpha=alpha, beta=beta, out=out)
    if not (ok_a and ok_b) or aliased:
        assert err is not None, "bad operand or aliased out accepted"
        return
    assert err is None, err
    ref = alpha * (a.astype(np.float64) @ b) + beta * c0
    close(got, ref, k)
    if out is not None:
        assert got is out or np.shares_memory(got, out)


def prop_linear(data):
    m, k, n = data.draw(dims, label="M"), data.draw(st.integers(1, 37), label="K"), data.draw(st.integers(1, 37))
    x, w, b = rand(data, (m, k), "x"), rand(data, (n, k), "w"), rand(data, (n,), "b")
    x[np.abs(x) < 0.5] = 0.0
    act = data.draw(st.sampled_from([None, "relu", "tanh", "sigmoid", "bogus", 3]), label="activation")
    p = data.draw(st.sampled_from([0.0, 0.25, 0.5, 1.5, -0.1, "0.5", True]), label="dropout")
    seed, stream = data.draw(st.integers(0, 2**64 - 1)), data.draw(st.integers(0, 2**64 - 1))
    px, ok_x = place(data, x, "x")
    pw, ok_w = place(data, w, "w")
    got, err = call(ops.linear, px, pw, b, activation=act, dropout=p, seed=seed, stream=stream)
    valid = ok_x and ok_w and act in (None, "relu", "tanh", "sigmoid") and isinstance(p, float) and 0 <= p <= 1
    if not valid:
        assert err is not None
        return
    assert err is None, err
    z = x.astype(np.float64) @ w.T + b
    z = {None: z, "relu": np.maximum(z, 0), "tanh": np.tanh(z), "sigmoid": 1 / (1 + np.exp(-z))}[act]
    if p > 0:
        threshold = min(int((1 - p) * 2**32), 2**32 - 1)
        keep = uniform_bits(m * n, seed, stream).reshape(m, n) < threshold
        z = np.where(keep, z / (1 - p), 0.0)
    close(got, z, k)


def prop_dropout(data):
    shape = tuple(data.draw(st.lists(st.integers(0, 9), min_size=1, max_size=3), label="shape"))
    x = rand(data, shape, "x")
    p = data.draw(st.sampled_from([0.0, 0.1, 0.5, 0.9, 1.0, -0.5, float("nan")]), label="p")
    seed, stream = data.draw(st.integers(-1, 2**64)), data.draw(st.integers(0, 2**64 - 1))
    px, ok = place(data, x, "x")
    in_place = data.draw(st.booleans(), label="in place") and ok and isinstance(px, np.ndarray) and px.flags.writeable
    xin = px.copy() if in_place else px
    got, err = call(ops.dropout, xin, p, seed=seed, stream=stream, out=xin if in_place else None)
    if not ok or not (0 <= p < 1) or not (0 <= seed < 2**64):
        assert err is not None
        return
    assert err is None, err
    threshold = min(int((1 - p) * 2**32), 2**32 - 1)
    keep = uniform_bits(x.size, seed, stream).reshape(shape) < threshold
    close(got, np.where(keep, x.astype(np.float64) / (1 - p), 0.0))


# ---------------------------------------------------------------- convolution and pooling

def conv_ref(x, w, b, stride, pads, dil, groups):
    n, c, h, wd = x.shape
    f, cg, kh, kw = w.shape
    (sh, sw), (pt, pb, pl, pr), (dh, dw) = stride, pads, dil
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    oh = (h + pt + pb - (dh * (kh - 1) + 1)) // sh + 1
    ow = (wd + pl + pr - (dw * (kw - 1) + 1)) // sw + 1
    y = np.zeros((n, f, oh, ow))
    fg = f // groups
    for g in range(groups):
        xs = xp[:, g * cg:(g + 1) * cg]
        for i in range(kh):
            for j in range(kw):
                patch = xs[:, :, i * dh:i * dh + sh * (oh - 1) + 1:sh, j * dw:j * dw + sw * (ow - 1) + 1:sw]
                y[:, g * fg:(g + 1) * fg] += np.einsum("nchw,fc->nfhw", patch, w[g * fg:(g + 1) * fg, :, i, j])
    return y if b is None else y + b[None, :, None, None]


def prop_conv2d(data):
    groups = data.draw(st.sampled_from([1, 1, 2]), label="groups")
    n, cg, f = data.draw(st.integers(0, 3)), data.draw(st.integers(1, 3)), groups * data.draw(st.integers(1, 3))
    h, wd = data.draw(small, label="H"), data.draw(small, label="W")
    kh, kw = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3))
    stride = (data.draw(st.integers(1, 3)), data.draw(st.sampled_from([1, 2, 2**62])))
    dil = (data.draw(st.integers(1, 2)), data.draw(st.sampled_from([1, 2, 2**62 + 100])))
    pad = data.draw(st.sampled_from([0, 1, 2, -1, 2**61]), label="padding")
    x, w = rand(data, (n, cg * groups, h, wd), "x"), rand(data, (f, cg, kh, kw), "w")
    b = rand(data, (f,), "b") if data.draw(st.booleans(), label="bias") else None
    px, ok_x = place(data, x, "x")
    pw, ok_w = place(data, w, "w", allow_bad=False)
    got, err = call(ops.conv2d, px, pw, b, stride=stride, padding=pad, dilation=dil, groups=groups)
    span_h, span_w = dil[0] * (kh - 1) + 1, dil[1] * (kw - 1) + 1
    fits = (0 <= pad <= 2 and span_h <= h + 2 * pad and span_w <= wd + 2 * pad
            and stride[1] < 2**40 and dil[1] < 2**40)
    if not (ok_x and ok_w and fits):
        assert err is not None
        return
    assert err is None, err
    pads = (pad, pad, pad, pad)
    close(got, conv_ref(x, w, b, stride, pads, dil, groups), cg * kh * kw)
    if got.size:  # backward: dx, dw, db against finite sums of the reference's pieces
        dy = rand(data, got.shape, "dy")
        dx, dw_, db = ops.conv2d_backward(dy, px, pw, stride=stride, padding=pad, dilation=dil, groups=groups)
        close(db, dy.astype(np.float64).sum((0, 2, 3)), n * got.shape[2] * got.shape[3])
        # <dy, conv(x, w)> is bilinear: its gradients are exact to check through the reference.
        e = rand(data, x.shape, "ex")
        close(np.vdot(dx.astype(np.float64), e), np.vdot(dy, conv_ref(e, w, None, stride, pads, dil, groups)),
              x.size * cg * kh * kw)
        e = rand(data, w.shape, "ew")
        close(np.vdot(dw_.astype(np.float64), e), np.vdot(dy, conv_ref(x, e, None, stride, pads, dil, groups)),
              x.size * kh * kw)


def pool_ref(x, k, s, p, mode, count_include_pad=True):
    n, c, h, w = x.shape
    oh, ow = (h + 2 * p[0] - k[0]) // s[0] + 1, (w + 2 * p[1] - k[1]) // s[1] + 1
    y = np.zeros((n, c, oh, ow))
    for i in range(oh):
        for j in range(ow):
            hs, ws = i * s[0] - p[0], j * s[1] - p[1]
            he, we = min(hs + k[0], h + p[0]), min(ws + k[1], w + p[1])
            win = x[:, :, max(hs, 0):min(he, h), max(ws, 0):min(we, w)].astype(np.float64)
            if mode == "max":
                y[:, :, i, j] = win.max((2, 3))
            else:
                cells = (he - hs) * (we - ws) if count_include_pad else win.shape[2] * win.shape[3]
                y[:, :, i, j] = win.sum((2, 3)) / cells
    return y


def prop_pool2d(data):
    n, c, h, w = data.draw(st.integers(0, 2)), data.draw(st.integers(1, 3)), data.draw(small), data.draw(small)
    k = (data.draw(st.integers(1, 4)), data.draw(st.sampled_from([1, 2, 3, 2**62 + 8])))
    s = (data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3)))
    p = (data.draw(st.integers(0, 2)), data.draw(st.sampled_from([0, 1, 2**61 + 4])))
    mode = data.draw(st.sampled_from(["max", "avg"]), label="mode")
    cip = data.draw(st.booleans(), label="count_include_pad")
    x = rand(data, (n, c, h, w), "x")
    px, ok = place(data, x, "x")
    if mode == "max":
        got, err = call(ops.max_pool2d, px, k, s, p)
    else:
        got, err = call(ops.avg_pool2d, px, k, s, p, count_include_pad=cip)
    fits = (2 * p[0] <= k[0] and 2 * p[1] <= k[1] and k[0] <= h + 2 * p[0] and k[1] <= w + 2 * p[1]
            and max(k + p) <= 2**40)  # window arguments past 2**40 are refused (overflow-safe geometry)
    if not (ok and fits):
        assert err is not None
        return
    assert err is None, err
    close(got, pool_ref(x, k, s, p, mode, cip))


def prop_batch_norm(data):
    four_d = data.draw(st.booleans(), label="4-D")
    shape = (data.draw(st.integers(1, 9)), data.draw(st.integers(1, 5))) + ((data.draw(small), data.draw(small))
                                                                           if four_d else ())
    x = rand(data, shape, "x") * 3 + 1
    gamma, beta = rand(data, (shape[1],), "gamma"), rand(data, (shape[1],), "beta")
    px, ok = place(data, x, "x")
    out_kind = data.draw(st.sampled_from(["none", "guard", "in place", "overlap"]), label="out")
    out, bad_out = None, False
    if out_kind == "guard":
        out = gp.empty_guarded(shape)
    elif out_kind in ("in place", "overlap") and ok and isinstance(px, np.ndarray) and px.flags.writeable:
        if out_kind == "in place":
            px = px.copy()
            out = px
        elif x.size > 1:
            buf = np.zeros(x.size + 1, np.float32)
            buf[:x.size] = x.ravel()
            px, out, bad_out = buf[:x.size].reshape(shape), buf[1:].reshape(shape), True
    got, err = call(ops.batch_norm, px, gamma, beta, None, None, training=True, out=out)
    axes = (0, 2, 3) if four_d else (0,)
    count = x.size // shape[1]
    if not ok or bad_out or count < 2:
        assert err is not None
        return
    assert err is None, err
    x64 = x.astype(np.float64)
    mean, var = x64.mean(axes, keepdims=True), x64.var(axes, keepdims=True)
    bshape = (1, -1) + (1, 1) * four_d
    close(got[0], (x64 - mean) / np.sqrt(var + 1e-5) * gamma.reshape(bshape) + beta.reshape(bshape), count)


def prop_sparse_linear(data):
    m, k, n = data.draw(dims, label="M"), data.draw(st.integers(1, 37)), data.draw(st.integers(1, 37))
    w, x = rand(data, (n, k), "w"), rand(data, (m, k), "x")
    s = from_dense(w, threshold=data.draw(st.sampled_from([0.0, 0.5, 1.5]), label="threshold"))
    dense = s.to_dense().astype(np.float64)
    px, ok = place(data, x, "x")
    got, err = call(ops.sparse_linear, px, s)
    if not ok:
        assert err is not None
        return
    assert err is None, err
    close(got, x.astype(np.float64) @ dense.T, k)
    with pytest.raises(ValueError):
        s.indices.flags.writeable = True


# ---------------------------------------------------------------- model entry points

def prop_model_entry_points(data):
    units = data.draw(st.sampled_from([1, 3, 17, 0, -2, 2**40, "4"]), label="units")
    made, err = call(layers.Dense, units, activation="relu")
    if not (isinstance(units, int) and 0 < units < 2**31):
        assert err is not None
        return
    m = dropnet.Sequential([made, layers.Dense(3, activation="softmax")], input_shape=(5,), seed=1)
    m.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    rows = data.draw(st.integers(0, 9), label="rows")
    x = rand(data, (rows, data.draw(st.sampled_from([5, 5, 4]), label="features")), "x")
    px, ok = place(data, x, "x")
    got, err = call(m.predict, px, batch_size=data.draw(st.sampled_from([1, 4, 256, 0, -1]), label="batch"))
    if err is not None:
        return  # a float64 or list input is converted by predict: only the shape or batch can be wrong
    w1, b1, w2, b2 = [a.astype(np.float64) for a in m.get_weights()]
    xs = np.asarray(px, np.float64)
    z = np.maximum(xs @ w1.T + b1, 0) @ w2.T + b2
    e = np.exp(z - z.max(1, keepdims=True)) if rows else z
    close(got, e / e.sum(1, keepdims=True) if rows else e, units)
    y = data.draw(st.sampled_from(["ok", "range", "float", "short"]), label="labels")
    labels = {"ok": np.arange(rows) % 3, "range": np.full(rows, 7), "float": np.zeros(rows) + 0.5,
              "short": np.zeros(max(rows - 1, 0), np.int64)}[y]
    before = m.get_weights()
    _, err = call(m.fit, px, labels, epochs=1, batch_size=4, verbose=0)
    if err is not None:  # a rejected fit changed nothing
        for a, b in zip(before, m.get_weights()):
            np.testing.assert_array_equal(a, b)


for _prop in [prop_matmul, prop_linear, prop_dropout, prop_conv2d, prop_pool2d, prop_batch_norm,
              prop_sparse_linear, prop_model_entry_points]:
    _name = _prop.__name__[len("prop_"):]
    globals()[f"test_fuzz_{_name}"], globals()[f"test_fuzz_{_name}_long"] = fuzz_property(_prop)
del _prop, _name
