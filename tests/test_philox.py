"""Philox4x32-10 and the stream contract against Random123's known answers and a numpy reference."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import dropnet
from dropnet import random as dr

from philox_ref import philox4x32_10 as ref_philox, stream_words as ref_stream

KATS = [  # Random123 kat_vectors: counter[4] key[2] -> out[4]
    ([0, 0, 0, 0], [0, 0], [0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8]),
    ([0xFFFFFFFF] * 4, [0xFFFFFFFF] * 2, [0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD]),
    ([0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344], [0xA4093822, 0x299F31D0],
     [0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1]),
]


@pytest.mark.parametrize("ctr,key,out", KATS)
def test_known_answers(ctr, key, out):
    c = np.array([ctr], dtype=np.uint32)
    k = np.array([key], dtype=np.uint32)
    assert dr.philox4x32_10(c, k).tolist() == [out]
    assert ref_philox(c, k).tolist() == [out]  # the numpy reference is right too


def test_batch_shapes_and_many_counters():
    rng = np.random.default_rng(0)
    c = rng.integers(0, 2**32, size=(3, 5, 4), dtype=np.uint32)
    k = rng.integers(0, 2**32, size=(3, 5, 2), dtype=np.uint32)
    got = dr.philox4x32_10(c, k)
    assert got.shape == (3, 5, 4) and got.dtype == np.uint32
    np.testing.assert_array_equal(got, ref_philox(c, k))


@pytest.mark.parametrize("n", [0, 1, 3, 4, 5, 31, 32, 33, 63, 64, 65, 1000, 4099])
@pytest.mark.parametrize("start", [0, 1, 2, 3, 61, 4 * (2**32 - 3) + 2])
def test_stream_matches_numpy_every_isa(isa_level, n, start):
    seed, stream = 0xDEADBEEFCAFEF00D, 2**40 + 17
    want = ref_stream(n, seed, stream, start)
    got = dr.uniform_bits(n, seed, stream, start=start)
    np.testing.assert_array_equal(got, want)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(0, 300), seed=st.integers(0, 2**64 - 1), stream=st.integers(0, 2**64 - 1),
       start=st.integers(0, 2**62))
def test_stream_property(n, seed, stream, start):
    np.testing.assert_array_equal(dr.uniform_bits(n, seed, stream, start=start), ref_stream(n, seed, stream, start))


def test_same_bits_for_one_and_two_threads(isa_level):
    n = (1 << 20) + 7
    dropnet.set_num_threads(1)
    one = dr.uniform_bits(n, 123, 4, start=5)
    dropnet.set_num_threads(2)
    two = dr.uniform_bits(n, 123, 4, start=5)
    np.testing.assert_array_equal(one, two)
    np.testing.assert_array_equal(one[:5000], ref_stream(5000, 123, 4, 5))


def test_streams_and_seeds_differ():
    a = dr.uniform_bits(64, 1, 0)
    assert not np.array_equal(a, dr.uniform_bits(64, 1, 1))
    assert not np.array_equal(a, dr.uniform_bits(64, 2, 0))


def test_uniformity_of_words():
    w = dr.uniform_bits(1 << 20, 7, 0).astype(np.float64) / 2**32
    # mean of U(0,1) is 1/2 with sd 1/sqrt(12 n); 6 sigma bound
    assert abs(w.mean() - 0.5) < 6 / np.sqrt(12 * w.size)
    counts = np.bincount((w * 16).astype(np.int64), minlength=16)
    expected = w.size / 16
    chi2 = ((counts - expected) ** 2 / expected).sum()
    assert chi2 < 60  # 15 dof; p ~ 1e-7


# ----------------------------------------------------------------------------- bad arguments
def test_wrong_dtype_is_type_error():
    with pytest.raises(TypeError, match=r"counter: expected dtype uint32, got int64"):
        dr.philox4x32_10(np.zeros((1, 4), np.int64), np.zeros((1, 2), np.uint32))
    with pytest.raises(TypeError, match="key: expected dtype uint32"):
        dr.philox4x32_10(np.zeros((1, 4), np.uint32), np.zeros((1, 2), np.float32))
    with pytest.raises(TypeError, match="counter: expected a numpy array"):
        dr.philox4x32_10([[0, 0, 0, 0]], np.zeros((1, 2), np.uint32))


def test_wrong_last_dimension_is_value_error():
    with pytest.raises(ValueError, match=r"counter: expected shape \(\.\.\., 4\), got \(2, 3\)"):
        dr.philox4x32_10(np.zeros((2, 3), np.uint32), np.zeros((2, 2), np.uint32))
    with pytest.raises(ValueError, match=r"key: expected shape \(\.\.\., 2\), got \(2, 3\)"):
        dr.philox4x32_10(np.zeros((2, 4), np.uint32), np.zeros((2, 3), np.uint32))
    with pytest.raises(ValueError, match="key: expected batch shape"):
        dr.philox4x32_10(np.zeros((2, 4), np.uint32), np.zeros((3, 2), np.uint32))


def test_non_contiguous_is_value_error():
    c = np.zeros((4, 8), np.uint32)[:, ::2]
    with pytest.raises(ValueError, match="counter: expected a C-contiguous array"):
        dr.philox4x32_10(c, np.zeros((4, 2), np.uint32))


def test_bad_n_seed_stream():
    with pytest.raises(ValueError, match="n: expected n >= 0, got -1"):
        dr.uniform_bits(-1, 0, 0)
    with pytest.raises(TypeError, match="n: expected an int"):
        dr.uniform_bits(2.5, 0, 0)
    with pytest.raises(ValueError, match=r"seed: expected an int in \[0, 2\*\*64\)"):
        dr.uniform_bits(4, -1, 0)
    with pytest.raises(ValueError, match=r"stream: expected an int in \[0, 2\*\*64\)"):
        dr.uniform_bits(4, 0, 2**64)
    with pytest.raises(ValueError, match="device: expected 'cpu' or 'cuda'"):
        dr.uniform_bits(4, 0, 0, device="tpu")


# ----------------------------------------------------------------------------- Generator
def test_generator_streams():
    g = dropnet.Generator(42)
    assert (g.seed, g.offset) == (42, 0)
    assert [g.next_stream() for _ in range(3)] == [0, 1, 2]
    assert g.offset == 3
    g.offset = 10
    assert g.next_stream() == 10
    assert repr(g) == "Generator(seed=42, offset=11)"


def test_generator_bad_arguments():
    with pytest.raises(ValueError, match=r"seed: expected an int in \[0, 2\*\*64\), got -3"):
        dropnet.Generator(-3)
    with pytest.raises(TypeError, match="seed: expected an int"):
        dropnet.Generator(1.5)
    g = dropnet.Generator(0, offset=2**64 - 1)
    with pytest.raises(OverflowError):
        g.next_stream()
