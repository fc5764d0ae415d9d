"""Datasets as numpy arrays: IDX files (MNIST, Fashion-MNIST), CIFAR-10 python batches, and a
small Fashion-MNIST subset shipped inside the package.

Every loader returns ``((x_train, y_train), (x_test, y_test))`` with labels int64. Images are
float32 in [0, 1] when ``normalize`` (uint8 otherwise); MNIST-like images are (N, 28, 28) or
(N, 784) with ``flatten``; CIFAR-10 images are (N, 3, 32, 32) (NCHW) or (N, 3072).
"""
from __future__ import annotations

import gzip
import io
import os
import pickle
import zipfile
from typing import List, Optional, Sequence, Tuple

import numpy as np

Split = Tuple[np.ndarray, np.ndarray]

# IDX type byte -> big-endian dtype (http://yann.lecun.com/exdb/mnist/, "THE IDX FILE FORMAT")
_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_GZIP_MAGIC = b"\x1f\x8b"

_IDX_NAMES = {
    "x_train": "train-images-idx3-ubyte", "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte", "y_test": "t10k-labels-idx1-ubyte",
}
SYSTEM_DATA_DIR = "/usr/share/datasets"


def load_idx(path: str) -> np.ndarray:
    """Read an IDX file (gzipped or not: detected from its first bytes) into a numpy array in
    native byte order, shaped by the file's dimensions.

    Validates the magic (two zero bytes, a known type code, 1..4 dimensions) and that the data
    size is exactly the product of the dimensions; raises ValueError naming the file otherwise."""
    path = os.fspath(path)
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == _GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as e:
            raise ValueError(f"{path}: corrupt gzip data ({e})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"{path}: not an IDX file (expected magic 0x0000TTDD, got {raw[:4].hex() or 'empty'})")
    type_code, ndim = raw[2], raw[3]
    if type_code not in _IDX_TYPES:
        raise ValueError(f"{path}: unknown IDX element type 0x{type_code:02x}")
    if not 1 <= ndim <= 4:
        raise ValueError(f"{path}: expected 1 to 4 dimensions, got {ndim}")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: truncated IDX header ({len(raw)} bytes, need {header})")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_TYPES[type_code])
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(raw) - header != expected:
        raise ValueError(f"{path}: IDX data is {len(raw) - header} bytes, expected {expected} for shape {dims} "
                         f"of {dtype.name}")
    arr = np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)
    return arr.astype(dtype.newbyteorder("="))


def _prepare_images(x: np.ndarray, normalize: bool, flatten: bool) -> np.ndarray:
    if flatten:
        x = x.reshape(len(x), -1)
    if normalize:
        x = x.astype(np.float32) / np.float32(255.0)
    return np.ascontiguousarray(x)


def _candidates(path: Optional[str], subdir: str) -> List[str]:
    if path is not None:
        return [os.fspath(path)]
    dirs = []
    env = os.environ.get("DROPNET_DATA")
    if env:
        dirs += [os.path.join(env, subdir), env]
    dirs.append(os.path.join(SYSTEM_DATA_DIR, subdir))
    return dirs


def _find_idx(directory: str, stem: str) -> Optional[str]:
    for name in (stem + ".gz", stem):
        p = os.path.join(directory, name)
        if os.path.isfile(p):
            return p
    return None


def _load_idx_set(name: str, subdir: str, path: Optional[str], normalize: bool, flatten: bool):
    looked = _candidates(path, subdir)
    for directory in looked:
        files = {k: _find_idx(directory, stem) for k, stem in _IDX_NAMES.items()}
        if all(files.values()):
            x_train, y_train = load_idx(files["x_train"]), load_idx(files["y_train"])
            x_test, y_test = load_idx(files["x_test"]), load_idx(files["y_test"])
            for xs, ys, split in ((x_train, y_train, "train"), (x_test, y_test, "test")):
                if xs.ndim != 3 or ys.ndim != 1 or len(xs) != len(ys):
                    raise ValueError(f"{directory}: {split} images {xs.shape} and labels {ys.shape} do not match")
            return ((_prepare_images(x_train, normalize, flatten), y_train.astype(np.int64)),
                    (_prepare_images(x_test, normalize, flatten), y_test.astype(np.int64)))
    stems = ", ".join(f"{s}[.gz]" for s in _IDX_NAMES.values())
    raise FileNotFoundError(f"{name}: no directory with {stems}; looked in: {', '.join(looked)} "
                            "(pass path=..., or set DROPNET_DATA)")


def fashion_mnist(path: Optional[str] = None, normalize: bool = True, flatten: bool = False):
    """Fashion-MNIST (60000 train + 10000 test, 28x28, 10 classes) from the four IDX files.

    Looks in ``path`` if given, else ``$DROPNET_DATA/fashion-mnist``, ``$DROPNET_DATA``, then
    ``/usr/share/datasets/fashion-mnist`` (Debian's dataset-fashion-mnist)."""
    return _load_idx_set("fashion_mnist", "fashion-mnist", path, normalize, flatten)


def mnist(path: Optional[str] = None, normalize: bool = True, flatten: bool = False):
    """MNIST digits from the four IDX files; searched like ``fashion_mnist`` with ``mnist`` dirs."""
    return _load_idx_set("mnist", "mnist", path, normalize, flatten)


class _CifarUnpickler(pickle.Unpickler):
    """CIFAR-10's python batches are pickles (the dataset's own format). This unpickler resolves
    only the globals a numpy array needs; anything else (os.system, builtins.eval, ...) raises
    UnpicklingError, so a crafted file cannot run code."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"), ("numpy", "dtype"),
        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
        ("_codecs", "encode"),  # how Python 3 protocol-2 pickles spell bytes; only encodes a str
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a CIFAR-10 batch")
        return super().find_class(module, name)


def load_cifar_batch(path: str) -> Split:
    """One CIFAR-10 python batch: images uint8 (N, 3, 32, 32), labels int64 (N,)."""
    path = os.fspath(path)
    with open(path, "rb") as f:
        try:
            d = _CifarUnpickler(io.BytesIO(f.read()), encoding="bytes").load()
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as e:
            raise ValueError(f"{path}: not a CIFAR-10 python batch ({type(e).__name__}: {e})") from None
    if not isinstance(d, dict):
        raise ValueError(f"{path}: not a CIFAR-10 python batch (expected a dict, got {type(d).__name__})")
    data, labels = d.get(b"data", d.get("data")), d.get(b"labels", d.get("labels"))
    if data is None or labels is None:
        raise ValueError(f"{path}: CIFAR-10 batch lacks 'data' or 'labels'")
    data = np.asarray(data)
    labels = np.asarray(labels, dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072 or len(data) != len(labels):
        raise ValueError(f"{path}: expected uint8 data (N, 3072) and N labels, got {data.dtype} {data.shape} "
                         f"and {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise ValueError(f"{path}: labels outside [0, 10)")
    return data.reshape(-1, 3, 32, 32), labels


def cifar10(path: Optional[str] = None, normalize: bool = True, flatten: bool = False):
    """CIFAR-10 from the python batches (``data_batch_1..5``, ``test_batch``), read with a
    restricted unpickler (see ``_CifarUnpickler``). Searched in ``path``, else
    ``$DROPNET_DATA/cifar-10-batches-py``, ``$DROPNET_DATA``, ``/usr/share/datasets/cifar-10-batches-py``."""
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    looked = _candidates(path, "cifar-10-batches-py")
    for directory in looked:
        if all(os.path.isfile(os.path.join(directory, n)) for n in names):
            parts = [load_cifar_batch(os.path.join(directory, n)) for n in names]
            x_train = np.concatenate([p[0] for p in parts[:5]])
            y_train = np.concatenate([p[1] for p in parts[:5]])
            x_test, y_test = parts[5]
            return ((_prepare_images(x_train, normalize, flatten), y_train),
                    (_prepare_images(x_test, normalize, flatten), y_test))
    raise FileNotFoundError(f"cifar10: no directory with {', '.join(names)}; looked in: {', '.join(looked)} "
                            "(pass path=..., or set DROPNET_DATA)")


EMBEDDED_PATH = os.path.join(os.path.dirname(__file__), "data", "fashion_mnist_small.npz")


def embedded(normalize: bool = True, flatten: bool = False):
    """The Fashion-MNIST subset shipped with dropnet: 4500 train images (the first 450 of each
    class in the training file) and 1000 test images (the first 100 of each class in the test
    file), in file order. MIT licence, Copyright (c) 2017 Zalando SE: see
    ``dropnet/data/LICENSE-fashion-mnist.txt``.

    The file is an ``.npz`` whose members are LZMA-compressed (``np.load`` reads them through
    ``zipfile``): 2.1 MB instead of 2.4 MB with deflate. Its size is what keeps the wheel under
    3 MB: general-purpose coders stop near 3.8 bits per pixel on these images (LZMA's best
    settings, bzip2 and delta filters were tried), so the subset is 4500 + 1000 images, not more."""
    with np.load(EMBEDDED_PATH, allow_pickle=False) as z:
        x_train, y_train, x_test, y_test = (z[k] for k in ("x_train", "y_train", "x_test", "y_test"))
    return ((_prepare_images(x_train, normalize, flatten), y_train.astype(np.int64)),
            (_prepare_images(x_test, normalize, flatten), y_test.astype(np.int64)))


def load(name: str, path: Optional[str] = None, normalize: bool = True, flatten: bool = False):
    """Load a dataset by name: ``fashion_mnist``, ``mnist``, ``cifar10`` or ``embedded``."""
    if name == "embedded":
        return embedded(normalize=normalize, flatten=flatten)
    loaders = {"fashion_mnist": fashion_mnist, "mnist": mnist, "cifar10": cifar10}
    if name not in loaders:
        raise ValueError(f"dataset: expected one of {sorted([*loaders, 'embedded'])}, got {name!r}")
    return loaders[name](path=path, normalize=normalize, flatten=flatten)


def _make_embedded(source_dir: str = f"{SYSTEM_DATA_DIR}/fashion-mnist", per_class_train: int = 450,
                   per_class_test: int = 100, out: str = EMBEDDED_PATH) -> None:
    """Regenerate the embedded subset from the full Fashion-MNIST files (maintainers only)."""
    (x_train, y_train), (x_test, y_test) = fashion_mnist(source_dir, normalize=False)

    def pick(y: np.ndarray, k: int) -> np.ndarray:
        return np.sort(np.concatenate([np.flatnonzero(y == c)[:k] for c in range(10)]))

    tr, te = pick(y_train, per_class_train), pick(y_test, per_class_test)
    _savez_lzma(out, x_train=x_train[tr], y_train=y_train[tr].astype(np.uint8),
                x_test=x_test[te], y_test=y_test[te].astype(np.uint8),
                train_indices=tr.astype(np.int32), test_indices=te.astype(np.int32))


def _savez_lzma(path: str, **arrays: np.ndarray) -> None:
    """``np.savez`` with LZMA members instead of deflate: the same format (``np.load`` reads it),
    15% smaller on images. Members are written in argument order, so equal arrays give equal
    files."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_LZMA) as zf:
        for name, arr in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_LZMA
            with zf.open(info, "w") as f:
                np.lib.format.write_array(f, np.asanyarray(arr), allow_pickle=False)


__all__: Sequence[str] = ["load_idx", "fashion_mnist", "mnist", "cifar10", "load_cifar_batch", "embedded", "load"]
