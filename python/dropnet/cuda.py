"""CUDA device queries: whether a GPU is usable, how many, their memory, and what is missing.

The extension links the CUDA runtime statically and loads the driver on first use, so this
module imports, and answers, on a machine with no driver and no GPU. Today the GPU runs
:func:`dropnet.random.uniform_bits` with ``device='cuda'`` and the dropout family of
:mod:`dropnet.ops` on CUDA arrays (a :class:`DeviceArray`, or any array exposing
``__cuda_array_interface__`` or ``__dlpack__``: CuPy, PyTorch, JAX), and a model built with
``Sequential(..., device="cuda")`` or moved with ``model.to("cuda")`` trains there (the layers a GPU
runs: docs/design.md, "Devices: one network, two backends").
"""
from __future__ import annotations

import operator
from typing import Any, Dict, Optional, Tuple

import numpy as np

from . import _core

_c = _core.core
_dev = _core.device

__all__ = ["is_available", "device_count", "unavailable_reason", "mem_get_info", "parse_device", "DeviceArray",
           "to_device"]

# DLPack device types and the dtypes a DeviceArray holds, as (DLPack code, bits).
KDL_CPU, KDL_CUDA, KDL_CUDA_MANAGED = 1, 2, 13
_DLPACK_DTYPES = {np.dtype(np.float32): (2, 32), np.dtype(np.uint64): (1, 64), np.dtype(np.int32): (0, 32)}


def is_available() -> bool:
    """True when dropnet was built with CUDA and at least one CUDA device is usable."""
    return unavailable_reason() is None


def device_count() -> int:
    """Number of usable CUDA devices (0 without a CUDA build, a driver or a GPU)."""
    return int(_c.cuda_device_count())


def unavailable_reason() -> Optional[str]:
    """None when a CUDA device is usable; otherwise what is missing: a build without CUDA, no
    CUDA driver, or no CUDA device (with the CUDA runtime's own message)."""
    reason = str(_c.cuda_unavailable_reason())
    return reason or None


def _device_index(device: object) -> int:
    if isinstance(device, bool):
        raise TypeError("device: expected an int device index, got bool")
    try:
        return operator.index(device)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"device: expected an int device index, got {type(device).__name__}") from None


def mem_get_info(device: int = 0) -> Tuple[int, int]:
    """``(free, total)`` memory of CUDA device ``device`` in bytes.

    Raises ``RuntimeError`` naming what is missing when no CUDA device is usable, or when
    ``device`` is not one of them; ``TypeError`` when ``device`` is not an int.
    """
    index = _device_index(device)
    if not -2**31 <= index < 2**31:
        raise RuntimeError(f"device: expected a CUDA device index in [0, {device_count()}), got {index}")
    free, total = _c.cuda_mem_get_info(index)
    return int(free), int(total)


def parse_device(device: object, name: str = "device") -> str:
    """A model's device as ``'cpu'`` or ``'cuda:<index>'`` (``'cuda'`` is ``'cuda:0'``).

    Raises ``TypeError`` when ``device`` is not a str, ``ValueError`` when it is not one of those
    forms, and ``RuntimeError`` naming what is missing (a build without CUDA, no driver, no device,
    an index past the last device) when it names a CUDA device that cannot be used.
    """
    if not isinstance(device, str):
        raise TypeError(f"{name}: expected 'cpu', 'cuda' or 'cuda:<index>', got {type(device).__name__}")
    text = device.strip().lower()
    if text == "cpu":
        return "cpu"
    if text in _core.nn.test_devices:  # "_sim": developer builds with the C++ tests only
        return text
    index_text = text[len("cuda:"):] if text.startswith("cuda:") else ("0" if text == "cuda" else None)
    if index_text is None or not index_text.isdigit() or len(index_text) > 9:
        raise ValueError(f"{name}: expected 'cpu', 'cuda' or 'cuda:<index>', got {device!r}")
    index = int(index_text)
    reason = unavailable_reason()
    if reason is not None:
        raise RuntimeError(f"{name}: 'cuda:{index}' requested but {reason}")
    count = device_count()
    if index >= count:
        raise RuntimeError(f"{name}: 'cuda:{index}' requested but this machine has {count} CUDA device(s)")
    return f"cuda:{index}"


def require_device(device: int) -> int:
    """``device`` as an index of a usable CUDA device; RuntimeError naming what is missing."""
    index = _device_index(device)
    reason = unavailable_reason()
    if reason is not None:
        raise RuntimeError(f"device: 'cuda:{index}' requested but {reason}")
    count = device_count()
    if not 0 <= index < count:
        raise RuntimeError(f"device: expected a CUDA device index in [0, {count}), got {index}")
    return index


class DeviceArray:
    """A C-contiguous float32, uint64 or int32 array in the memory of one CUDA device, owned by dropnet
    (allocated with ``cudaMallocAsync``, freed when the last reference goes).

    It is what :mod:`dropnet.ops` returns for CUDA inputs, and it exposes both
    ``__cuda_array_interface__`` (version 3) and ``__dlpack__`` / ``__dlpack_device__``, so
    ``cupy.asarray(a)``, ``torch.as_tensor(a, device="cuda")`` and ``torch.from_dlpack(a)`` take
    it without a copy. Work on it is queued on the device's legacy default stream.
    """

    __slots__ = ("_buffer", "_ptr", "shape", "dtype", "device")

    def __init__(self, shape: Tuple[int, ...], dtype: Any = np.float32, device: int = 0) -> None:
        dt = np.dtype(dtype)
        if dt not in _DLPACK_DTYPES:
            raise TypeError(f"dtype: expected float32, uint64 or int32, got {dt}")
        self.shape = tuple(int(d) for d in shape)
        if any(d < 0 for d in self.shape):
            raise ValueError(f"shape: expected non-negative dimensions, got {self.shape}")
        self.dtype = dt
        self.device = require_device(device)
        self._buffer = _dev.DeviceBuffer(self.nbytes, self.device)
        self._ptr = int(self._buffer.ptr)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize

    @property
    def ptr(self) -> int:
        """The device address of element 0."""
        return self._ptr

    @property
    def __cuda_array_interface__(self) -> Dict[str, Any]:
        # stream 1: the legacy default stream, where dropnet queued the work that wrote it.
        return {"shape": self.shape, "typestr": self.dtype.str, "data": (self._ptr, False), "version": 3,
                "strides": None, "stream": 1}

    def __dlpack_device__(self) -> Tuple[int, int]:
        return (KDL_CUDA, self.device)

    def __dlpack__(self, *, stream: Optional[int] = None, max_version: Optional[Tuple[int, int]] = None,
                   dl_device: Optional[Tuple[int, int]] = None, copy: Optional[bool] = None) -> Any:
        """A DLPack capsule sharing this memory. ``stream``: the consumer's stream (1 legacy default,
        2 per-thread default, -1 no synchronisation); dropnet's queued work is waited for unless it
        is None, 1 or -1 (the legacy default stream, or no synchronisation). ``copy=True`` and a
        ``dl_device`` other than this array's are refused."""
        if copy:
            raise BufferError("copy: DeviceArray exports its own memory only (copy=True is not supported)")
        if dl_device is not None and tuple(dl_device) != self.__dlpack_device__():
            raise BufferError(f"dl_device: expected {self.__dlpack_device__()} (this array's device), got {dl_device}")
        if stream not in (None, 0, 1, -1):  # another stream than ours: let the host wait for ours
            _dev.synchronize(self.device)
        versioned = max_version is not None and tuple(max_version) >= (1, 0)
        code, bits = _DLPACK_DTYPES[self.dtype]
        return _dev.dlpack_export(self._buffer, self._ptr, self.shape, code, bits, KDL_CUDA, self.device, versioned)

    def numpy(self) -> np.ndarray:
        """A host copy (waits for the queued work)."""
        out = np.empty(self.shape, self.dtype)
        _dev.copy_to_host(out, self._ptr, self.device)
        return out

    def __array__(self, dtype: Any = None, copy: Optional[bool] = None) -> np.ndarray:
        if copy is False:
            raise ValueError("copy: a DeviceArray lives on a CUDA device; a host array is always a copy")
        a = self.numpy()
        return a if dtype is None else a.astype(dtype, copy=False)

    def __len__(self) -> int:
        if not self.shape:
            raise TypeError("len() of a 0-d DeviceArray")
        return self.shape[0]

    def __repr__(self) -> str:
        return f"DeviceArray(shape={self.shape}, dtype={self.dtype}, device='cuda:{self.device}')"


def to_device(array: Any, device: int = 0) -> DeviceArray:
    """Copy a host array (anything ``np.asarray`` takes; float32, uint64 or int32) to CUDA device ``device``."""
    host = np.ascontiguousarray(array)
    if host.dtype not in _DLPACK_DTYPES:
        raise TypeError(f"array: expected dtype float32, uint64 or int32, got {host.dtype}")
    out = DeviceArray(host.shape, host.dtype, device)
    _dev.copy_to_device(out.ptr, host, out.device)
    return out
