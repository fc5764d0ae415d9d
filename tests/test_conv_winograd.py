"""The Winograd convolution paths (3x3, stride 1, dilation 1, ungrouped, at least 16 input
channels and at most 2 filters per input channel: docs/design.md, "Convolution paths"), F(2x2, 3x3)
and, where both output sides are at least 6, F(4x4, 3x3), against a float64 direct convolution
written here, and their determinism across thread counts and ISA paths.

Tolerance: F(2, 3) computes each output from transformed tiles whose entries are sums of up to 9
inputs (weights: up to 9 taps halved twice), so its float32 rounding error is a small constant
times the direct convolution's, which grows like sqrt(terms) for random data (terms = C*9 for y,
F*9 for dx, N*OH*OW for dw). Measured: max |error| / sqrt(terms) <= 3e-6 on these shapes with
N(0, 1) data (2.4e-6 measured); the bound used, 2e-5 * sqrt(terms), leaves a margin of about 8x and would still
catch a wrong tap (an error of order 1). F(4, 3) has larger constants (its transforms multiply by
up to 8 and divide by 6 and 24, and a transformed entry sums up to 36 inputs), the known price of
its 2.25 multiplies per output: measured max |error| / sqrt(terms) 2.9e-5 on its shapes (and on
the F(2) shapes forced through it); its bound, 1.5e-4 * sqrt(terms), leaves a margin of about 5x,
still far below a wrong tap's error.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

import dropnet
from dropnet import layers, ops

from helpers import threads

ISA_LEVELS = dropnet.cpu_features()["available"]

# F(2x2, 3x3) cases (an output side below 6) and F(4x4, 3x3) cases (both at least 6), each with odd
# and even planes (tiles that overhang), paddings 0 / 1 / 2, C and F not multiples of 16, one and
# two chunks of 8 images, output widths that make the block's images share tile rows (odd for F(2),
# 1 / 2 / 3 mod 4 for F(4), with pads on both sides) and a last block short of images, and more
# than 256 channels and filters (the products' depth in two of the GEMM's K blocks, forward and
# input gradient).
CASES = [
    (1, 16, 17, 5, 5, 0),
    (3, 17, 20, 7, 5, 1),      # output 7 x 5: F(2)
    (9, 18, 33, 3, 4, 2),      # two chunks, pad 2
    (2, 20, 16, 5, 9, 1),
    (5, 19, 7, 3, 4, 2),
    (2, 16, 16, 3, 3, 0),      # one output pixel
    (6, 21, 10, 2, 5, 2),      # odd output width, pads on both sides: images side by side
    (7, 24, 48, 4, 1, 1),      # one column
    (2, 264, 300, 4, 5, 1),    # depth 264 / 300: two K blocks
    (11, 16, 20, 3, 5, 1),     # side by side, two chunks, a last block short of images
    (1, 16, 24, 5, 5, 1),      # one image
]

CASES_F4 = [
    (9, 18, 33, 9, 8, 2),      # output 11 x 10, two chunks
    (4, 16, 31, 13, 11, 1),
    (8, 16, 24, 14, 14, 1),    # the VGG net's 14 x 14 layers (side by side: 14 = 2 mod 4)
    (9, 32, 64, 7, 7, 1),      # and its 7 x 7 layers (3 mod 4), two chunks
    (11, 16, 20, 5, 6, 2),     # output 7 x 8, pad 2
    (1, 16, 24, 7, 7, 1),      # one image
    (7, 16, 20, 6, 6, 1),      # output 6 x 6 (2 mod 4: side by side)
    (10, 16, 24, 6, 5, 2),     # output 8 x 7, pad 2, side by side, two chunks
    (2, 16, 17, 28, 28, 1),
    (3, 17, 20, 29, 31, 1),
    (9, 16, 8, 30, 30, 0),
    (2, 20, 24, 28, 30, 2),
    (5, 16, 16, 29, 27, 1),    # output 29 x 27: 1 and 3 columns of the last tile
    (11, 16, 20, 28, 29, 1),
    (1, 264, 40, 28, 28, 1),   # depth 264 / 270: two K blocks
    (1, 150, 270, 28, 28, 1),
]


def tile_of(case):
    """The path's tile for this shape (the rule of docs/design.md, "Convolution paths")."""
    _, _, _, H, W, pad = case
    return 4 if min(H, W) + 2 * pad - 2 >= 6 else 2


def direct_ref(x, w, b, pad):
    """float64 direct convolution: y[n, f, i, j] = sum_c,u,v xp[n, c, i + u, j + v] * w[f, c, u, v] + b[f]."""
    x, w = x.astype(np.float64), w.astype(np.float64)
    N, C, H, W = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    OH, OW = H + 2 * pad - 2, W + 2 * pad - 2
    y = np.zeros((N, w.shape[0], OH, OW))
    for u in range(3):
        for v in range(3):
            y += np.einsum("nchw,fc->nfhw", xp[:, :, u:u + OH, v:v + OW], w[:, :, u, v])
    return y + (0 if b is None else b.astype(np.float64)[None, :, None, None])


def direct_backward_ref(dy, x, w, pad):
    dy, x, w = dy.astype(np.float64), x.astype(np.float64), w.astype(np.float64)
    N, C, H, W = x.shape
    OH, OW = dy.shape[2:]
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    dxp = np.zeros_like(xp)
    dw = np.zeros_like(w)
    for u in range(3):
        for v in range(3):
            dw[:, :, u, v] = np.einsum("nfhw,nchw->fc", dy, xp[:, :, u:u + OH, v:v + OW])
            dxp[:, :, u:u + OH, v:v + OW] += np.einsum("nfhw,fc->nchw", dy, w[:, :, u, v])
    return dxp[:, :, pad:pad + H, pad:pad + W], dw, dy.sum(axis=(0, 2, 3))


def make(case, seed=0):
    N, C, F, H, W, pad = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, C, H, W)).astype(np.float32)
    w = rng.standard_normal((F, C, 3, 3)).astype(np.float32)
    b = rng.standard_normal(F).astype(np.float32)
    dy = rng.standard_normal((N, F, H + 2 * pad - 2, W + 2 * pad - 2)).astype(np.float32)
    return x, w, b, dy, pad


BOUND = {2: 2e-5, 4: 1.5e-4}  # max |error| / sqrt(terms) per tile (module docstring)


def assert_close(got, ref, terms, tile=2):
    assert got.dtype == np.float32 and got.shape == ref.shape
    err = np.max(np.abs(got - ref)) if got.size else 0.0
    assert err <= BOUND[tile] * math.sqrt(terms), f"max |error| {err:.3g} for {terms} terms"


@pytest.mark.parametrize("level", ISA_LEVELS)
@pytest.mark.parametrize("case", CASES + CASES_F4)
def test_forward_and_gradients_match_direct_convolution(case, level):
    x, w, b, dy, pad = make(case)
    N, C, F = x.shape[0], x.shape[1], w.shape[0]
    tile = tile_of(case)
    with dropnet.isa(level):
        y = ops.conv2d(x, w, b, padding=pad)
        y_nob = ops.conv2d(x, w, None, padding=pad)
        dx, dw, db = ops.conv2d_backward(dy, x, w, padding=pad)
    ref = direct_ref(x, w, b, pad)
    assert_close(y, ref, 9 * C, tile)
    assert_close(y_nob, ref - b[None, :, None, None], 9 * C, tile)
    rdx, rdw, rdb = direct_backward_ref(dy, x, w, pad)
    assert_close(dx, rdx, 9 * F, tile)
    assert_close(dw, rdw, N * dy.shape[2] * dy.shape[3], tile)
    assert_close(db, rdb, N * dy.shape[2] * dy.shape[3], tile)


ACTIVATIONS = {
    "relu": lambda z: np.maximum(z, 0),
    "leaky_relu": lambda z: np.where(z > 0, z, 0.01 * z),
    "tanh": np.tanh,
    "sigmoid": lambda z: 1 / (1 + np.exp(-z)),
    "gelu": lambda z: 0.5 * z * (1 + np.vectorize(math.erf)(z / np.sqrt(2))),
}


@pytest.mark.parametrize("case", [CASES[1], CASES_F4[1]])
@pytest.mark.parametrize("activation", list(ACTIVATIONS))
def test_fused_bias_and_activation(activation, case):
    x, w, b, _, pad = make(case, seed=1)
    w *= np.float32(1 / 12)  # pre-activations of order 1, where the activations bend
    ref = ACTIVATIONS[activation](direct_ref(x, w, b, pad))
    y = ops.conv2d(x, w, b, padding=pad, activation=activation)
    assert_close(y, ref, 9 * x.shape[1], tile_of(case))


def run_all(x, w, b, dy, pad):
    y = ops.conv2d(x, w, b, padding=pad, activation="relu")
    return (y,) + tuple(ops.conv2d_backward(dy, x, w, padding=pad))


# three chunks of images, F(2) then F(4); the images side by side in all but the first; then 13
# chunks, which the threads take from both ends (thread 0 from the front, summing as it goes, the
# others from the back) and the forward's blocks, handed out as threads free up: where the ends
# meet changes from run to run, the bits must not.
@pytest.mark.parametrize("case", [(21, 17, 24, 4, 4, 1), (21, 17, 24, 5, 5, 1), (21, 17, 24, 9, 9, 1),
                                  (21, 17, 24, 7, 7, 1), (21, 17, 24, 28, 29, 1), (100, 17, 24, 7, 7, 1)])
def test_same_bits_for_any_thread_count(case):
    x, w, b, dy, pad = make(case, seed=2)
    with threads(1):
        ref = run_all(x, w, b, dy, pad)
    for t in (2, 3, 4):
        with threads(t):
            for _ in range(3):
                for got, want in zip(run_all(x, w, b, dy, pad), ref):
                    np.testing.assert_array_equal(got, want)


@pytest.mark.skipif(len(ISA_LEVELS) < 2, reason="this CPU runs only the scalar path: nothing to compare")
@pytest.mark.parametrize("case", [(10, 20, 40, 4, 3, 2), (3, 260, 270, 4, 5, 1), (11, 64, 128, 5, 5, 1),
                                  (10, 20, 40, 9, 12, 2), (11, 64, 128, 7, 7, 1), (10, 20, 40, 30, 29, 1),
                                  (2, 260, 270, 28, 28, 1)])
def test_same_bits_on_every_isa_path(case):
    x, w, b, dy, pad = make(case, seed=3)
    with dropnet.isa("scalar"):
        ref = run_all(x, w, b, dy, pad)
    for level in ISA_LEVELS[1:]:
        with dropnet.isa(level), threads(2):
            for got, want in zip(run_all(x, w, b, dy, pad), ref):
                np.testing.assert_array_equal(got, want)


def train(n_threads):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((20, 16, 9, 9)).astype(np.float32)
    labels = rng.integers(0, 3, 20)
    dropnet.set_num_threads(n_threads)
    m = dropnet.Sequential([layers.Conv2D(24, 3, padding="same", activation="relu"), layers.BatchNormalization(),
                            layers.Conv2D(16, 3), layers.Activation("relu"), layers.GlobalAveragePooling2D(),
                            layers.Dense(3, activation="softmax")], input_shape=(16, 9, 9), seed=5)
    m.compile("adam")
    m.fit(x, labels, epochs=2, batch_size=10, verbose=0)
    return m.get_weights()


def test_layers_on_the_winograd_path_train_to_the_same_bits_on_one_and_three_threads():
    before = dropnet.get_num_threads()
    try:
        one, three = train(1), train(3)
    finally:
        dropnet.set_num_threads(before)
    for a, c in zip(one, three):
        np.testing.assert_array_equal(a, c)
    assert all(np.isfinite(a).all() for a in one)
