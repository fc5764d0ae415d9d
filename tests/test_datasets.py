"""Dataset loaders: IDX parsing (gz and plain) against files written here, search paths, CIFAR-10
batches through the restricted unpickler, and the embedded Fashion-MNIST subset."""
from __future__ import annotations

import gzip
import os
import pickle
import struct

import numpy as np
import pytest

from dropnet import datasets

FASHION_DIR = "/usr/share/datasets/fashion-mnist"


def idx_bytes(arr: np.ndarray, type_code: int) -> bytes:
    """IDX as the format describes it: 0, 0, type, ndim, big-endian u32 dims, big-endian data."""
    big = arr.astype(arr.dtype.newbyteorder(">"))
    return bytes([0, 0, type_code, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape) + big.tobytes()


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("arr, code", [
    (np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4), 0x08),
    (np.array([-5, 0, 70000, 2 ** 31 - 1], dtype=np.int32), 0x0C),
    (np.linspace(-1, 1, 6, dtype=np.float32).reshape(3, 2), 0x0D),
])
def test_load_idx_round_trip(tmp_path, gz, arr, code):
    raw = idx_bytes(arr, code)
    path = tmp_path / ("a.idx.gz" if gz else "a.idx")
    path.write_bytes(gzip.compress(raw) if gz else raw)
    out = datasets.load_idx(str(path))
    assert out.shape == arr.shape and out.dtype == arr.dtype and out.dtype.isnative
    np.testing.assert_array_equal(out, arr)


@pytest.mark.parametrize("mutate, match", [
    (lambda r: b"\x01" + r[1:], "magic"),
    (lambda r: r[:2] + b"\x07" + r[3:], "element type"),
    (lambda r: r[:3] + b"\x00" + r[4:], "dimensions"),
    (lambda r: r[:-1], "expected 24"),
    (lambda r: r + b"\x00", "expected 24"),
    (lambda r: r[:6], "truncated IDX header"),
    (lambda r: b"", "not an IDX"),
])
def test_load_idx_rejects_bad_files(tmp_path, mutate, match):
    raw = idx_bytes(np.zeros((2, 3, 4), np.uint8), 0x08)
    path = tmp_path / "bad.idx"
    path.write_bytes(mutate(raw))
    with pytest.raises(ValueError, match=match):
        datasets.load_idx(str(path))


def test_load_idx_rejects_corrupt_gzip(tmp_path):
    raw = gzip.compress(idx_bytes(np.zeros((4, 4), np.uint8), 0x08))
    path = tmp_path / "bad.gz"
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match="gzip"):
        datasets.load_idx(str(path))


def write_fake_mnist(directory, n_train=12, n_test=5, gz=True):
    rng = np.random.default_rng(0)
    os.makedirs(directory, exist_ok=True)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    for name, arr in arrays.items():
        raw = idx_bytes(arr, 0x08)
        with open(os.path.join(directory, name + (".gz" if gz else "")), "wb") as f:
            f.write(gzip.compress(raw) if gz else raw)
    return arrays


@pytest.mark.parametrize("gz", [True, False])
def test_fashion_mnist_from_a_directory(tmp_path, gz):
    arrays = write_fake_mnist(str(tmp_path), gz=gz)
    (xt, yt), (xs, ys) = datasets.fashion_mnist(str(tmp_path))
    assert xt.shape == (12, 28, 28) and xt.dtype == np.float32 and xs.shape == (5, 28, 28)
    np.testing.assert_array_equal(xt, arrays["train-images-idx3-ubyte"] / np.float32(255))
    np.testing.assert_array_equal(yt, arrays["train-labels-idx1-ubyte"])
    assert yt.dtype == np.int64 and ys.dtype == np.int64
    (xr, _), _ = datasets.mnist(str(tmp_path), normalize=False, flatten=True)
    assert xr.dtype == np.uint8 and xr.shape == (12, 784)
    np.testing.assert_array_equal(xr, arrays["train-images-idx3-ubyte"].reshape(12, 784))


def test_search_path_env_then_system(tmp_path, monkeypatch):
    write_fake_mnist(str(tmp_path / "data" / "fashion-mnist"), n_train=7)
    monkeypatch.setenv("DROPNET_DATA", str(tmp_path / "data"))
    (xt, _), _ = datasets.fashion_mnist()
    assert len(xt) == 7
    monkeypatch.setenv("DROPNET_DATA", str(tmp_path / "nowhere"))
    monkeypatch.setattr(datasets, "SYSTEM_DATA_DIR", str(tmp_path / "system"))
    with pytest.raises(FileNotFoundError) as err:
        datasets.mnist()
    msg = str(err.value)
    assert str(tmp_path / "nowhere" / "mnist") in msg and str(tmp_path / "system" / "mnist") in msg
    assert "train-images-idx3-ubyte" in msg
    with pytest.raises(ValueError, match="dataset"):
        datasets.load("imagenet")


def test_mismatched_image_and_label_counts(tmp_path):
    write_fake_mnist(str(tmp_path))
    lab = tmp_path / "train-labels-idx1-ubyte.gz"
    lab.write_bytes(gzip.compress(idx_bytes(np.zeros(3, np.uint8), 0x08)))
    with pytest.raises(ValueError, match="do not match"):
        datasets.fashion_mnist(str(tmp_path))


def write_cifar(directory, n=4):
    rng = np.random.default_rng(1)
    os.makedirs(directory, exist_ok=True)
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        d = {b"batch_label": name.encode(), b"labels": rng.integers(0, 10, n).tolist(),
             b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), b"filenames": [b"x.png"] * n}
        with open(os.path.join(directory, name), "wb") as f:
            pickle.dump(d, f, protocol=2)
        batches[name] = d
    return batches


def test_cifar10_batches(tmp_path):
    batches = write_cifar(str(tmp_path))
    (xt, yt), (xs, ys) = datasets.cifar10(str(tmp_path))
    assert xt.shape == (20, 3, 32, 32) and xt.dtype == np.float32 and xs.shape == (4, 3, 32, 32)
    np.testing.assert_array_equal(xt[:4].reshape(4, 3072) * 255, batches["data_batch_1"][b"data"])
    assert yt.tolist()[4:8] == batches["data_batch_2"][b"labels"] and ys.dtype == np.int64
    (xf, _), _ = datasets.cifar10(str(tmp_path), normalize=False, flatten=True)
    assert xf.shape == (20, 3072) and xf.dtype == np.uint8


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_cifar_unpickler_refuses_code(tmp_path):
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({b"data": _Evil(), b"labels": []}, protocol=2))
    with pytest.raises(ValueError, match="not allowed"):
        datasets.load_cifar_batch(str(path))
    path.write_bytes(pickle.dumps({b"data": np.zeros((2, 5), np.uint8), b"labels": [0, 1]}, protocol=2))
    with pytest.raises(ValueError, match="3072"):
        datasets.load_cifar_batch(str(path))


def test_embedded_subset():
    (xt, yt), (xs, ys) = datasets.embedded()
    assert xt.shape == (4500, 28, 28) and xs.shape == (1000, 28, 28)
    assert xt.dtype == np.float32 and yt.dtype == np.int64
    assert 0.0 <= xt.min() and xt.max() <= 1.0
    assert np.bincount(yt).tolist() == [450] * 10 and np.bincount(ys).tolist() == [100] * 10
    (xf, _), _ = datasets.embedded(normalize=False, flatten=True)
    assert xf.shape == (4500, 784) and xf.dtype == np.uint8
    assert os.path.getsize(datasets.EMBEDDED_PATH) < 5_000_000
    licence = os.path.join(os.path.dirname(datasets.EMBEDDED_PATH), "LICENSE-fashion-mnist.txt")
    with open(licence) as f:
        assert "Zalando SE" in f.read()


@pytest.mark.skipif(not os.path.isdir(FASHION_DIR), reason="full Fashion-MNIST not installed here "
                    "(Debian package dataset-fashion-mnist)")
def test_embedded_subset_is_the_first_images_of_each_class():
    (xt, yt), (xs, ys) = datasets.fashion_mnist(FASHION_DIR, normalize=False)
    (et, eyt), (es, eys) = datasets.embedded(normalize=False)
    for full_x, full_y, sub_x, sub_y, k in ((xt, yt, et, eyt, 450), (xs, ys, es, eys, 100)):
        idx = np.sort(np.concatenate([np.flatnonzero(full_y == c)[:k] for c in range(10)]))
        np.testing.assert_array_equal(sub_x, full_x[idx])
        np.testing.assert_array_equal(sub_y, full_y[idx])


def test_embedded_file_is_lzma_compressed():
    # The wheel's size budget rests on this: deflate members would add 0.45 MB.
    import zipfile
    with zipfile.ZipFile(datasets.EMBEDDED_PATH) as zf:
        members = zf.infolist()
    assert {m.filename for m in members} == {f"{k}.npy" for k in
                                             ("x_train", "y_train", "x_test", "y_test", "train_indices", "test_indices")}
    assert all(m.compress_type == zipfile.ZIP_LZMA for m in members)


def test_savez_lzma_round_trips_through_np_load(tmp_path):
    rng = np.random.default_rng(3)
    arrays = {"a": rng.integers(0, 256, (5, 7, 3), dtype=np.uint8), "b": rng.standard_normal(11).astype(">f8"),
              "c": np.arange(12, dtype=np.int32).reshape(3, 4)[:, ::2]}
    path = tmp_path / "x.npz"
    datasets._savez_lzma(str(path), **arrays)
    with np.load(path, allow_pickle=False) as z:
        assert sorted(z.files) == sorted(arrays)
        for k, arr in arrays.items():
            assert z[k].dtype == arr.dtype and z[k].shape == arr.shape
            np.testing.assert_array_equal(z[k], arr)
    again = tmp_path / "y.npz"
    datasets._savez_lzma(str(again), **arrays)
    assert again.read_bytes() == path.read_bytes()
