"""The dropout family against an independent numpy implementation of Philox4x32-10 and of the
stream contract of docs/design.md, written here from the Random123 definition and checked against its
known-answer vectors. Masks must agree bit for bit for every shape, seed, stream, p, thread count
and ISA path; values against numpy float32 arithmetic; statistics within 6 sigma.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

import dropnet
from dropnet import ops

# ---------------------------------------------------------------------------------------------
# numpy reference: Philox4x32-10 (Salmon et al. 2011, Random123) on uint64 arrays of 32-bit values

M0, M1 = np.uint64(0xD2511F53), np.uint64(0xCD9E8D57)
W0, W1 = np.uint64(0x9E3779B9), np.uint64(0xBB67AE85)
LO32 = np.uint64(0xFFFFFFFF)
S32 = np.uint64(32)


def philox4x32_10(c0, c1, c2, c3, k0, k1):
    """Ten rounds on arrays (broadcast) of 32-bit words held in uint64; returns four arrays."""
    c0, c1, c2, c3, k0, k1 = (np.asarray(v, dtype=np.uint64) for v in (c0, c1, c2, c3, k0, k1))
    for r in range(10):
        if r:
            k0 = (k0 + W0) & LO32
            k1 = (k1 + W1) & LO32
        p0 = M0 * c0  # < 2**64: exact
        p1 = M1 * c2
        c0, c1, c2, c3 = (p1 >> S32) ^ c1 ^ k0, p1 & LO32, (p0 >> S32) ^ c3 ^ k1, p0 & LO32
    return c0, c1, c2, c3


def stream_words(n: int, seed: int, stream: int, start: int = 0) -> np.ndarray:
    """Word of elements start .. start+n-1: element i uses block i // 4, lane i % 4, counter
    (lo32(b), hi32(b), lo32(stream), hi32(stream)), key (lo32(seed), hi32(seed))."""
    if n == 0:
        return np.zeros(0, dtype=np.uint32)
    b = np.arange(start // 4, (start + n - 1) // 4 + 1, dtype=np.uint64)
    words = philox4x32_10(b & LO32, b >> S32, stream & 0xFFFFFFFF, stream >> 32, seed & 0xFFFFFFFF, seed >> 32)
    flat = np.stack(words, axis=1).reshape(-1)
    return flat[start % 4:start % 4 + n].astype(np.uint32)


def threshold_of(p) -> int:
    """min(floor((1 - p) * 2**32), 2**32 - 1) in double precision from the p given."""
    return min(math.floor((1.0 - float(p)) * 4294967296.0), 2**32 - 1)


def keep_ref(n: int, p, seed: int, stream: int) -> np.ndarray:
    return stream_words(n, seed, stream) < np.uint32(threshold_of(p))


def scale_of(p) -> np.float32:
    return np.float32(1.0 / (1.0 - float(p)))


def dropout_ref(x: np.ndarray, p, seed: int, stream: int):
    keep = keep_ref(x.size, p, seed, stream).reshape(x.shape)
    return np.where(keep, x * scale_of(p), np.float32(0)).astype(np.float32), keep


def bits_ref(keep: np.ndarray) -> np.ndarray:
    """Bit e % 64 of uint64 word e // 64 is keep[e]; padding bits zero."""
    flat = np.ascontiguousarray(keep, dtype=bool).reshape(-1)
    packed = np.zeros((flat.size + 63) // 64 * 8, dtype=np.uint8)
    packed[:(flat.size + 7) // 8] = np.packbits(flat, bitorder="little")
    return packed.view("<u8").astype(np.uint64)


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    """Bitwise equality of float32 arrays (distinguishes -0.0 and NaN payloads)."""
    return a.shape == b.shape and np.array_equal(a.view(np.uint32), b.view(np.uint32))


ISA_LEVELS = dropnet.cpu_features()["available"]


@pytest.fixture
def threads_restored():
    saved = dropnet.get_num_threads()
    yield
    dropnet.set_num_threads(saved)


def randn(shape, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# the reference itself

@pytest.mark.parametrize("counter, key, expected", [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
])
def test_numpy_philox_matches_random123_known_answers(counter, key, expected):
    got = philox4x32_10(*counter, *key)
    assert tuple(int(v) for v in got) == expected


def test_numpy_stream_matches_the_native_stream():
    for seed, stream, start in [(0, 0, 0), (2**64 - 1, 2**63 + 5, 3), (12345, 2**32 + 1, 4 * 2**32 - 6)]:
        assert np.array_equal(stream_words(301, seed, stream, start),
                              dropnet.random.uniform_bits(301, seed, stream, start=start))


# ---------------------------------------------------------------------------------------------
# forward: mask and values bit for bit

SHAPES = [(0,), (1,), (2,), (3,), (5,), (15,), (16,), (17,), (63,), (64,), (65,), (127,), (129,), (1000,),
          (4099,), (3, 5, 7), (2, 64, 3)]
SEEDS = [0, 1, 2**32 + 5, 2**64 - 1]
STREAMS = [0, 7, 2**40 + 3, 2**64 - 1]


@pytest.mark.parametrize("shape", SHAPES)
def test_mask_and_values_match_the_contract_for_many_shapes(shape):
    x = randn(shape, seed=len(shape) + int(np.prod(shape)))
    for seed, stream in zip(SEEDS, STREAMS):
        for p in (0.1, 0.5, 0.7, np.float32(0.7), 0.999):
            y, bits = ops.dropout(x, p, seed=seed, stream=stream, return_mask=True)
            y_ref, keep = dropout_ref(x, p, seed, stream)
            assert same_bits(y, y_ref), (shape, seed, stream, p)
            assert bits.dtype == np.uint64 and bits.shape == ((x.size + 63) // 64,)
            assert np.array_equal(bits, bits_ref(keep))  # includes zero padding bits
            assert np.array_equal(ops.unpack_mask(bits, shape), keep)


def test_seed_and_stream_each_change_the_mask():
    x = np.ones(4096, dtype=np.float32)
    base = ops.dropout(x, 0.5, seed=3, stream=4)
    assert not np.array_equal(base, ops.dropout(x, 0.5, seed=3 + 2**32, stream=4))  # high seed word
    assert not np.array_equal(base, ops.dropout(x, 0.5, seed=3, stream=4 + 2**32))  # high stream word
    assert np.array_equal(base, ops.dropout(x, 0.5, seed=3, stream=4))


def test_float32_p_gives_its_own_threshold():
    # Element 3501 of stream 2165 under seed 2024 draws a word between the two thresholds of
    # p = 0.7 (double: floor(0.3 * 2**32)) and p = float32(0.7): found by search, checked here.
    seed, stream, e = 2024, 2165, 3501
    word = int(stream_words(1, seed, stream, start=e)[0])
    assert threshold_of(0.7) <= word < threshold_of(np.float32(0.7))
    x = np.ones(e + 1, dtype=np.float32)
    assert ops.dropout(x, 0.7, seed=seed, stream=stream)[e] == 0.0
    assert ops.dropout(x, np.float32(0.7), seed=seed, stream=stream)[e] == scale_of(np.float32(0.7))
    assert not ops.dropout_mask(x.shape, 0.7, seed=seed, stream=stream)[e]
    assert ops.dropout_mask(x.shape, np.float32(0.7), seed=seed, stream=stream)[e]


def test_mask_equals_native_uniform_bits_below_threshold():
    n, seed, stream, p = 100_003, 99, 2**33 + 1, 0.35
    bits = dropnet.random.uniform_bits(n, seed, stream)
    assert np.array_equal(ops.dropout_mask(n, p, seed=seed, stream=stream), bits < threshold_of(p))


def test_dropped_values_are_zero_even_for_nan_and_inf():
    x = np.array([np.nan, np.inf, -np.inf, -0.0] * 64, dtype=np.float32)
    y = ops.dropout(x, 0.5, seed=1, stream=1)
    keep = keep_ref(x.size, 0.5, 1, 1)
    assert np.all(y[~keep] == 0) and not np.any(np.signbit(y[~keep]))
    assert same_bits(y[keep], (x * np.float32(2))[keep])


@pytest.mark.parametrize("level", ISA_LEVELS)
def test_every_isa_path_and_thread_count_give_the_same_bits(level, threads_restored):
    # Large enough for two thread pieces; odd length for a partial last mask word.
    x = randn(300_007, seed=5)
    y_ref, keep = dropout_ref(x, 0.4, 11, 2**35 + 7)
    grad = randn(x.shape, seed=6)
    dx_ref = np.where(keep, grad * scale_of(0.4), np.float32(0))
    a, b, dropped = ops.alpha_dropout_coeffs(0.2)
    keep_alpha = keep_ref(x.size, 0.2, 11, 2**35 + 7)
    with dropnet.isa(level):
        for threads in (1, 2):
            dropnet.set_num_threads(threads)
            y, bits = ops.dropout(x, 0.4, seed=11, stream=2**35 + 7, return_mask=True)
            assert same_bits(y, y_ref), (level, threads)
            assert np.array_equal(bits, bits_ref(keep))
            assert same_bits(ops.dropout_backward(grad, 0.4, mask_bits=bits), dx_ref)
            assert same_bits(ops.dropout_backward(grad, 0.4, seed=11, stream=2**35 + 7), dx_ref)
            ya, bits_a = ops.alpha_dropout(x, 0.2, seed=11, stream=2**35 + 7, return_mask=True)
            assert np.array_equal(bits_a, bits_ref(keep_alpha))
            assert np.array_equal(ya[~keep_alpha], np.full((~keep_alpha).sum(), dropped, np.float32))
            assert np.array_equal(ya[keep_alpha], alpha_kept_ref(x[keep_alpha], a, b))
            small = x[:200]
            mc = ops.mc_dropout(small, 0.4, seed=11, stream0=2**35, samples=400)  # samples over threads
            for s in (0, 1, 250, 399):
                assert same_bits(mc[s], dropout_ref(small, 0.4, 11, 2**35 + s)[0]), (level, threads, s)
            xs = x[:300_000].reshape(50, 60, 100)
            ys = ops.spatial_dropout(xs, 0.3, seed=2, stream=3)
            assert same_bits(ys, spatial_ref(xs, 0.3, 2, 3))


@pytest.mark.parametrize("level", ISA_LEVELS)
def test_outputs_larger_than_the_caches_take_the_same_bits(level, threads_restored):
    # >= 48 MB outputs use non-temporal stores; numpy puts big arrays 16 bytes past a cache line
    # and the slice below moves them another 4, so the shifted store path runs too. The reference
    # here is the native stream (itself checked against numpy above) for speed.
    n = 12_600_003
    src = np.random.default_rng(3).standard_normal(n).astype(np.float32)
    x_buf, out_buf = np.empty(n + 1, dtype=np.float32), np.empty(n + 1, dtype=np.float32)
    keep = dropnet.random.uniform_bits(n, 8, 9) < np.uint32(threshold_of(0.6))
    want = np.where(keep, src * scale_of(0.6), np.float32(0))
    with dropnet.isa(level):
        for threads in (1, 2):
            dropnet.set_num_threads(threads)
            for offset in (0, 1):
                xs, ys = x_buf[offset:offset + n], out_buf[offset:offset + n]
                xs[...] = src
                _, bits = ops.dropout(xs, 0.6, seed=8, stream=9, out=ys, return_mask=True)
                assert np.array_equal(bits, bits_ref(keep)) and same_bits(ys, want)
                assert same_bits(ops.dropout_backward(xs, 0.6, seed=8, stream=9, out=ys), want)


def test_keep_fraction_within_six_sigma():
    n = 2_000_000
    for p in (0.1, 0.5, 0.9):
        kept = int(ops.dropout_mask(n, p, seed=77, stream=1).sum())
        q = threshold_of(p) / 2**32
        assert abs(kept - n * q) < 6 * math.sqrt(n * q * (1 - q)), p


# ---------------------------------------------------------------------------------------------
# backward

@pytest.mark.parametrize("shape", [(1,), (65,), (7, 129)])
def test_backward_from_bits_and_from_regeneration(shape):
    x, grad = randn(shape, 1), randn(shape, 2)
    p, seed, stream = 0.3, 2**40 + 1, 5
    _, bits = ops.dropout(x, p, seed=seed, stream=stream, return_mask=True)
    keep = keep_ref(x.size, p, seed, stream).reshape(shape)
    want = np.where(keep, grad * scale_of(p), np.float32(0))
    assert same_bits(ops.dropout_backward(grad, p, mask_bits=bits), want)
    assert same_bits(ops.dropout_backward(grad, p, seed=seed, stream=stream), want)


def test_backward_ignores_mask_bits_past_n():
    grad = np.ones(10, dtype=np.float32)
    bits = np.array([0xFFFF_FFFF_FFFF_FC00 | 0b1010], dtype=np.uint64)  # padding bits set
    dx = ops.dropout_backward(grad, 0.5, mask_bits=bits)
    assert np.array_equal(dx, np.array([0, 2, 0, 2, 0, 0, 0, 0, 0, 0], dtype=np.float32))


# ---------------------------------------------------------------------------------------------
# spatial dropout, AlphaDropout, DropConnect, MC dropout

def spatial_ref(x: np.ndarray, p, seed: int, stream: int) -> np.ndarray:
    n, c = x.shape[:2]
    keep = keep_ref(n * c, p, seed, stream).reshape((n, c) + (1,) * (x.ndim - 2))
    return np.where(keep, x * scale_of(p), np.float32(0)).astype(np.float32)


@pytest.mark.parametrize("shape", [(3, 5), (4, 33, 7), (2, 40, 3, 5), (1, 1, 1, 1), (0, 4, 2)])
def test_spatial_dropout_zeroes_whole_channels_by_n_times_c_plus_c(shape):
    x = randn(shape, 3) + np.float32(5)  # no zeros of its own
    p, seed, stream = 0.45, 123, 2**50
    y, bits = ops.spatial_dropout(x, p, seed=seed, stream=stream, return_mask=True)
    assert same_bits(y, spatial_ref(x, p, seed, stream))
    n_channels = shape[0] * shape[1]
    keep = keep_ref(n_channels, p, seed, stream)
    assert np.array_equal(bits, bits_ref(keep))
    per_channel = y.reshape(n_channels, int(np.prod(shape[2:], dtype=np.int64)))
    assert np.all((per_channel == 0).all(axis=1) == ~keep)
    grad = randn(shape, 4)
    want = spatial_ref(grad, p, seed, stream)
    assert same_bits(ops.spatial_dropout_backward(grad, p, seed=seed, stream=stream), want)
    assert same_bits(ops.spatial_dropout_backward(grad, p, mask_bits=bits), want)


def alpha_coeffs_ref(p: float):
    alpha = -1.7580993408473766
    a = ((1 - p) * (1 + p * alpha**2)) ** -0.5
    b = -a * alpha * p
    return np.float32(a), np.float32(b), np.float32(a * alpha + b)


def alpha_kept_ref(x: np.ndarray, a, b) -> np.ndarray:
    """fma(a, x, b) rounded once: a*x is exact in double, the sum rounds (then once to float32)."""
    return (np.float64(a) * x.astype(np.float64) + np.float64(b)).astype(np.float32)


@pytest.mark.parametrize("p", [0.05, 0.2, 0.5])
def test_alpha_dropout_values_and_statistics(p):
    a, b, dropped = ops.alpha_dropout_coeffs(p)
    assert (np.float32(a), np.float32(b), np.float32(dropped)) == alpha_coeffs_ref(p)
    x = randn(1_000_000, seed=8)
    y, bits = ops.alpha_dropout(x, p, seed=4, stream=9, return_mask=True)
    keep = keep_ref(x.size, p, 4, 9)
    assert np.array_equal(bits, bits_ref(keep))
    assert np.array_equal(y[~keep], np.full((~keep).sum(), dropped, dtype=np.float32))
    assert np.array_equal(y[keep], alpha_kept_ref(x[keep], a, b))
    # Self-normalising: a standard normal input keeps mean 0 and variance 1. The sample mean's
    # sd is 1/sqrt(n) = 0.001 and the variance's about sqrt(2/n + kurtosis terms) < 0.004.
    assert abs(float(y.mean(dtype=np.float64))) < 6e-3
    assert abs(float(y.var(dtype=np.float64)) - 1.0) < 2.4e-2
    grad = randn(x.shape, 9)
    want = np.where(keep, grad * np.float32(a), np.float32(0))
    assert same_bits(ops.alpha_dropout_backward(grad, p, seed=4, stream=9), want)
    assert same_bits(ops.alpha_dropout_backward(grad, p, mask_bits=bits), want)


def test_drop_connect_masks_the_weight_by_its_flat_index():
    w = randn((300, 784), 10)
    y, bits = ops.drop_connect(w, 0.5, seed=6, stream=2, return_mask=True)
    y_ref, keep = dropout_ref(w, 0.5, 6, 2)
    assert same_bits(y, y_ref)
    assert np.array_equal(bits, bits_ref(keep))
    assert same_bits(ops.drop_connect(w, 0.5, seed=6, stream=2), y_ref)
    assert same_bits(ops.drop_connect(w, 0.5, seed=6, stream=2, training=False), w)


def test_mc_dropout_uses_one_stream_per_sample():
    x = randn((4, 50), 11)
    samples = ops.mc_dropout(x, 0.3, seed=5, stream0=2**64 - 3, samples=3)
    assert samples.shape == (3, 4, 50) and samples.dtype == np.float32
    for s in range(3):
        assert same_bits(samples[s], dropout_ref(x, 0.3, 5, 2**64 - 3 + s)[0])
    out = np.empty((3, 4, 50), dtype=np.float32)
    assert ops.mc_dropout(x, 0.3, seed=5, stream0=2**64 - 3, samples=3, out=out) is out
    assert same_bits(out, samples)
    assert np.array_equal(ops.mc_dropout(x, 0.0, seed=5, stream0=0, samples=2), np.stack([x, x]))
    big = randn(70_001, 12)  # one sample at a time over all threads
    mc = ops.mc_dropout(big, 0.3, seed=5, stream0=9, samples=2)
    assert same_bits(mc[1], dropout_ref(big, 0.3, 5, 10)[0])


# ---------------------------------------------------------------------------------------------
# identity paths, out=, in place

@pytest.mark.parametrize("fn", [ops.dropout, ops.alpha_dropout, ops.spatial_dropout])
def test_p_zero_and_inference_are_the_identity(fn):
    x = randn((3, 4, 5), 12)
    for kwargs in ({"p": 0.0}, {"p": 0.5, "training": False}):
        y, bits = fn(x, seed=1, stream=2, return_mask=True, **kwargs)
        assert y is not x and same_bits(y, x)
        n_mask = x.size if fn is not ops.spatial_dropout else 12
        assert np.array_equal(ops.unpack_mask(bits, n_mask), np.ones(n_mask, bool))
        assert np.array_equal(bits, bits_ref(np.ones(n_mask, bool)))
        out = np.full_like(x, 7.0)
        assert fn(x, seed=1, stream=2, out=out, **kwargs) is out
        assert same_bits(out, x)
    grad = randn(x.shape, 13)
    assert same_bits(ops.dropout_backward(grad, 0.0, seed=1, stream=2), grad)


def test_out_and_in_place():
    x = randn((65, 3), 14)
    y_ref = dropout_ref(x, 0.25, 3, 8)[0]
    out = np.empty_like(x)
    assert ops.dropout(x, 0.25, seed=3, stream=8, out=out) is out
    assert same_bits(out, y_ref)
    inplace = x.copy()
    assert ops.dropout(inplace, 0.25, seed=3, stream=8, out=inplace) is inplace
    assert same_bits(inplace, y_ref)
    grad = randn(x.shape, 15)
    want = dropout_ref(grad, 0.25, 3, 8)[0]
    assert ops.dropout_backward(grad, 0.25, seed=3, stream=8, out=grad) is grad
    assert same_bits(grad, want)
    xs = randn((2, 3, 4), 16)
    want_s = spatial_ref(xs, 0.5, 1, 1)
    ops.spatial_dropout(xs, 0.5, seed=1, stream=1, out=xs)
    assert same_bits(xs, want_s)


def test_empty_input():
    x = np.zeros((0, 3), dtype=np.float32)
    y, bits = ops.dropout(x, 0.5, seed=0, stream=0, return_mask=True)
    assert y.shape == (0, 3) and bits.shape == (0,)
    assert ops.dropout_backward(x, 0.5, mask_bits=bits).shape == (0, 3)
    assert ops.dropout_mask((0,), 0.5, seed=0, stream=0).shape == (0,)


# ---------------------------------------------------------------------------------------------
# errors

X = np.ones((4, 6), dtype=np.float32)


@pytest.mark.parametrize("call, exc, words", [
    (lambda: ops.dropout(X.astype(np.float64), 0.5, seed=0, stream=0), TypeError, ["x", "float32", "float64"]),
    (lambda: ops.dropout(X.astype(np.int32), 0.5, seed=0, stream=0), TypeError, ["x", "float32", "int32"]),
    (lambda: ops.dropout(X.tolist(), 0.5, seed=0, stream=0), TypeError, ["x", "numpy array"]),
    (lambda: ops.dropout(X, "0.5", seed=0, stream=0), TypeError, ["p", "str"]),
    (lambda: ops.dropout(X, 1.0, seed=0, stream=0), ValueError, ["p", "[0, 1)", "1"]),
    (lambda: ops.dropout(X, -0.1, seed=0, stream=0), ValueError, ["p", "[0, 1)", "-0.1"]),
    (lambda: ops.dropout(X, float("nan"), seed=0, stream=0), ValueError, ["p", "nan"]),
    (lambda: ops.dropout(X[:, ::2], 0.5, seed=0, stream=0), ValueError, ["x", "C-contiguous"]),
    (lambda: ops.dropout(X, 0.5, seed=-1, stream=0), ValueError, ["seed", "2**64", "-1"]),
    (lambda: ops.dropout(X, 0.5, seed=0, stream=2**64), ValueError, ["stream", "2**64"]),
    (lambda: ops.dropout(X, 0.5, seed=1.5, stream=0), TypeError, ["seed", "int"]),
    (lambda: ops.dropout(X, 0.5, seed=0, stream=0, out=np.empty((6, 4), np.float32)), ValueError,
     ["out", "(4, 6)", "(6, 4)"]),
    (lambda: ops.dropout(X, 0.5, seed=0, stream=0, out=np.empty((4, 6), np.float64)), ValueError,
     ["out", "float32", "float64"]),
    (lambda: ops.dropout(X, 0.5, seed=0, stream=0, out=np.empty((4, 12), np.float32)[:, ::2]), ValueError,
     ["out", "C-contiguous"]),
    (lambda: ops.dropout(X, 0.5, seed=0, stream=0, out=read_only(np.empty((4, 6), np.float32))), ValueError,
     ["out", "read-only"]),
    (lambda: ops.dropout(X[:3], 0.5, seed=0, stream=0, out=X[1:]), ValueError, ["out", "overlap"]),
    (lambda: ops.dropout_backward(X, 0.5), ValueError, ["mask_bits", "seed", "stream"]),
    (lambda: ops.dropout_backward(X, 0.5, seed=1), ValueError, ["mask_bits", "seed", "stream"]),
    (lambda: ops.dropout_backward(X, 0.5, seed=1, stream=1, mask_bits=np.zeros(1, np.uint64)), ValueError,
     ["either"]),
    (lambda: ops.dropout_backward(X, 0.5, mask_bits=np.zeros(2, np.uint64)), ValueError,
     ["mask_bits", "(1,)", "(2,)"]),
    (lambda: ops.dropout_backward(X, 0.5, mask_bits=np.zeros(1, np.int64)), TypeError, ["mask_bits", "uint64"]),
    (lambda: ops.dropout_backward(X.astype(np.float16), 0.5, seed=0, stream=0), TypeError, ["grad", "float32"]),
    (lambda: ops.spatial_dropout(np.ones(5, np.float32), 0.5, seed=0, stream=0), ValueError,
     ["x", "2 dimensions", "(5,)"]),
    (lambda: ops.spatial_dropout_backward(np.ones(5, np.float32), 0.5, seed=0, stream=0), ValueError,
     ["grad", "2 dimensions"]),
    (lambda: ops.alpha_dropout(X, 1.5, seed=0, stream=0), ValueError, ["p"]),
    (lambda: ops.mc_dropout(X, 0.5, seed=0, stream0=0, samples=0), ValueError, ["samples", ">= 1"]),
    (lambda: ops.mc_dropout(X, 0.5, seed=0, stream0=2**64 - 2, samples=3), ValueError, ["stream0", "2**64"]),
    (lambda: ops.mc_dropout(X, 0.5, seed=0, stream0=0, samples=2.0), TypeError, ["samples"]),
    (lambda: ops.unpack_mask(np.zeros(2, np.uint64), 64), ValueError, ["mask_bits", "(1,)"]),
    (lambda: ops.unpack_mask(np.zeros(1, np.uint32), 10), TypeError, ["mask_bits", "uint64"]),
    (lambda: ops.dropout_mask((2, -1), 0.5, seed=0, stream=0), ValueError, ["shape"]),
])
def test_bad_arguments_raise_clear_errors(call, exc, words):
    with pytest.raises(exc) as info:
        call()
    for w in words:
        assert w in str(info.value), (w, str(info.value))


def read_only(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


def test_failed_call_leaves_out_untouched():
    out = np.full((4, 6), 3.0, dtype=np.float32)
    with pytest.raises(ValueError):
        ops.dropout(X, 1.0, seed=0, stream=0, out=out)
    assert np.all(out == 3.0)


def test_numpy_integer_seeds_are_accepted():
    y = ops.dropout(X, 0.5, seed=np.uint64(2**63 + 1), stream=np.int64(4))
    assert same_bits(y, dropout_ref(X, 0.5, 2**63 + 1, 4)[0])
