"""Where an ops call runs: arrays on a CUDA device, or on the host.

An argument is a *CUDA array* when it exposes ``__cuda_array_interface__`` (CuPy, Numba,
PyTorch) or ``__dlpack__`` with a CUDA ``__dlpack_device__`` (PyTorch, CuPy, JAX), or is a
:class:`dropnet.cuda.DeviceArray`; its memory is used in place, never copied. A ``__dlpack__``
object on the CPU (a PyTorch CPU tensor, say) becomes a numpy view and takes the CPU path. Checks
come in this order, each error naming the argument: dtype (TypeError), layout and read-only
outputs (ValueError), arrays on two devices (ValueError), then whether CUDA is usable at all
(RuntimeError naming what is missing). The dropout family runs on the device (the kernels of
docs/design.md, "Device kernels", with the same bits as the CPU), and so do the convolution,
pooling, batch-norm and matmul ops (``_device_layers.py``); the augmentations, the sparse ops and
``matmul_skip_zeros`` are CPU-only and say so for CUDA arrays.
"""
from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional, Tuple, TypeVar

import numpy as np

from .. import _core
from .. import cuda as _cuda

_dev = _core.device
_ops = _core.ops

_TYPESTR = {"<f4": np.dtype(np.float32), "<u8": np.dtype(np.uint64), "<i4": np.dtype(np.int32)}
_DLPACK_DTYPE = {(2, 32, 1): np.dtype(np.float32), (1, 64, 1): np.dtype(np.uint64), (0, 32, 1): np.dtype(np.int32)}
_CUDA_TYPES = (_cuda.KDL_CUDA, _cuda.KDL_CUDA_MANAGED)


@dataclass
class DeviceOperand:
    """A CUDA array argument: its memory, shape and dtype, the device once known, and the object
    that keeps the memory alive (the caller's array, or a consumed DLPack tensor)."""

    name: str
    source: Any
    ptr: int
    shape: Tuple[int, ...]
    dtype: np.dtype
    device: Optional[int]  # None: from __cuda_array_interface__, resolved from the pointer
    read_only: bool
    stream: Optional[int]
    keepalive: Any = None

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))


def _describe_dtype(desc: object) -> str:
    if isinstance(desc, tuple) and len(desc) == 3:
        code, bits, lanes = desc
        kind = {0: "int", 1: "uint", 2: "float", 4: "bfloat", 5: "complex", 6: "bool"}.get(code, f"code {code}")
        return f"{kind}{bits}" + (f"x{lanes}" if lanes != 1 else "")
    try:
        return str(np.dtype(desc))  # type: ignore[call-overload]
    except TypeError:
        return repr(desc)


def _check_contiguous(name: str, shape: Tuple[int, ...], strides: Optional[Tuple[int, ...]], unit: int,
                      itemsize: int) -> None:
    """strides (steps of ``unit`` bytes) must be C-contiguous; dimensions of size 1 may carry any."""
    if strides is None:
        return
    expect = itemsize
    for dim, stride in zip(reversed(shape), reversed(strides)):
        if dim != 1 and stride * unit != expect:
            what = "bytes" if unit == 1 else "elements"
            raise ValueError(f"{name}: expected a C-contiguous array, got strides {tuple(strides)} ({what}) "
                             f"for shape {shape}")
        expect *= dim


def _from_interface(obj: Any, name: str, dtype: np.dtype) -> DeviceOperand:
    cai = obj.__cuda_array_interface__
    if not isinstance(cai, dict) or "shape" not in cai or "typestr" not in cai or "data" not in cai:
        raise TypeError(f"{name}: expected a __cuda_array_interface__ dict with shape, typestr and data, got {cai!r}")
    shape = tuple(int(d) for d in cai["shape"])
    got = _TYPESTR.get(cai["typestr"])
    if got != dtype:
        raise TypeError(f"{name}: expected dtype {dtype}, got {_describe_dtype(cai['typestr'])}")
    if cai.get("mask") is not None:
        raise ValueError(f"{name}: expected an array without a mask, got a masked __cuda_array_interface__")
    strides = cai.get("strides")
    _check_contiguous(name, shape, None if strides is None else tuple(strides), 1, dtype.itemsize)
    ptr, read_only = cai["data"]
    stream = cai.get("stream")
    return DeviceOperand(name, obj, int(ptr), shape, dtype, None, bool(read_only),
                         None if stream is None else int(stream))


def _take_dlpack(obj: Any) -> Any:
    # stream=1: dropnet queues its work on the legacy default stream (the DLPack name for it).
    try:
        return obj.__dlpack__(stream=1, max_version=(1, 0))
    except TypeError:  # a producer older than DLPack 1.0 has no max_version
        return obj.__dlpack__(stream=1)


def _from_dlpack(obj: Any, name: str, dtype: np.dtype, device: Tuple[int, int]) -> DeviceOperand:
    t = _dev.dlpack_import(_take_dlpack(obj))
    if tuple(t["device"]) != tuple(device):
        raise ValueError(f"{name}: __dlpack__ gave a tensor on device {t['device']}, __dlpack_device__ said {device}")
    if _DLPACK_DTYPE.get(tuple(t["dtype"])) != dtype:
        raise TypeError(f"{name}: expected dtype {dtype}, got {_describe_dtype(tuple(t['dtype']))}")
    shape = tuple(int(d) for d in t["shape"])
    _check_contiguous(name, shape, t["strides"], dtype.itemsize, dtype.itemsize)
    return DeviceOperand(name, obj, int(t["ptr"]), shape, dtype, int(device[1]), bool(t["read_only"]), None,
                         t["keepalive"])


def operand(obj: Any, name: str, dtype: Any = np.float32) -> Any:
    """``obj`` as a numpy array (numpy, or a CPU ``__dlpack__`` object), a :class:`DeviceOperand`
    (a CUDA array), or unchanged (None, or something the CPU binding will refuse by name)."""
    if obj is None or isinstance(obj, np.ndarray):
        return obj
    dt = np.dtype(dtype)
    if isinstance(obj, _cuda.DeviceArray):
        if obj.dtype != dt:
            raise TypeError(f"{name}: expected dtype {dt}, got {obj.dtype}")
        return DeviceOperand(name, obj, obj.ptr, obj.shape, obj.dtype, obj.device, False, None)
    if hasattr(obj, "__cuda_array_interface__"):
        return _from_interface(obj, name, dt)
    if hasattr(obj, "__dlpack_device__") and hasattr(obj, "__dlpack__"):
        device = tuple(int(v) for v in obj.__dlpack_device__())
        if device[0] == _cuda.KDL_CPU:
            return np.from_dlpack(obj)
        if device[0] in _CUDA_TYPES:
            return _from_dlpack(obj, name, dt, device)
        raise ValueError(f"{name}: expected a CPU or CUDA array, got one on DLPack device type {device[0]}")
    return obj


def _where(a: Any) -> str:
    if isinstance(a, DeviceOperand):
        return "cuda" if a.device is None else f"cuda:{a.device}"
    return "cpu"


class Placement:
    """The arguments of one ops call, converted by :func:`operand`, and the CUDA device they
    share (``device``), or ``device is None`` for the CPU path."""

    def __init__(self, dtypes: Dict[str, Any], **arrays: Any) -> None:
        self.args = {k: operand(v, k, dtypes.get(k, np.float32)) for k, v in arrays.items()}
        present = {k: v for k, v in self.args.items() if v is not None}
        on_device = [v for v in present.values() if isinstance(v, DeviceOperand)]
        self.device: Optional[int] = None
        if not on_device:
            return
        out = self.args.get("out")
        if isinstance(out, DeviceOperand) and out.read_only:
            raise ValueError("out: expected a writeable array, got a read-only one")
        if len(on_device) != len(present) or len({v.device for v in on_device if v.device is not None}) > 1:
            self._two_devices(present)
        _cuda.require_device(next((v.device for v in on_device if v.device is not None), 0))  # or what is missing
        for v in on_device:
            if v.device is None:
                v.device = int(_dev.pointer_device(v.ptr))
        if len({v.device for v in on_device}) > 1:
            self._two_devices(present)
        self.device = on_device[0].device
        for v in on_device:  # a producer's stream that is not ours: wait for its queued work
            if v.stream not in (None, 1, 2):
                _dev.synchronize(v.device, v.stream)

    @staticmethod
    def _two_devices(present: Dict[str, Any]) -> None:
        where = ", ".join(f"{k} on {_where(v)}" for k, v in present.items())
        raise ValueError(f"arrays on two different devices: {where}; put them on one device first")

    def __getitem__(self, name: str) -> Any:
        return self.args[name]

    def output(self, name: str, shape: Tuple[int, ...], expect: str, dtype: Any = np.float32) -> Tuple[Any, int]:
        """The caller's ``out`` (its shape checked here, dtype and writeability on entry) or a new
        :class:`DeviceArray`, as ``(object to return, device pointer)``."""
        out = self.args.get(name)
        if out is None:
            made = self.new(shape, dtype)
            return made, made.ptr
        if out.shape != tuple(shape):
            raise ValueError(f"{name}: expected shape {tuple(shape)}{' ' + expect if expect else ''}, got {out.shape}")
        if out.read_only:
            raise ValueError(f"{name}: expected a writeable array, got a read-only one")
        return out.source, out.ptr

    def new(self, shape: Tuple[int, ...], dtype: Any = np.float32) -> _cuda.DeviceArray:
        """A fresh array on this call's device."""
        return _cuda.DeviceArray(shape, dtype, self.device)  # type: ignore[arg-type]

    def mask(self, n_mask: int) -> _cuda.DeviceArray:
        return _cuda.DeviceArray(((n_mask + 63) // 64,), np.uint64, self.device)  # type: ignore[arg-type]


def _all_kept(n: int) -> np.ndarray:
    words = np.full((n + 63) // 64, np.uint64(0xFFFFFFFFFFFFFFFF), np.uint64)
    if n % 64:
        words[-1] = np.uint64((1 << (n % 64)) - 1)
    return words


def _check_scalars(p: float, seed: Any, stream: Any) -> None:
    """The CPU binding checks p, seed and stream on an empty array, so both devices give the same
    errors for the same bad value."""
    _ops.dropout_forward(np.empty(0, np.float32), p, seed, stream, True, None, False)


def _check_backward_scalars(p: float, seed: Any, stream: Any, has_bits: bool) -> None:
    """As :func:`_check_scalars` for a backward: also exactly one of a mask or (seed, stream)."""
    _ops.dropout_backward(np.empty(0, np.float32), p, seed, stream, np.empty(0, np.uint64) if has_bits else None,
                          None)


def _mask_extent(kind: str, a: DeviceOperand) -> Tuple[int, int]:
    """(elements the mask covers, floats per channel): spatial dropout keeps whole (N, C) channels."""
    if kind != "spatial":
        return a.size, 1
    if len(a.shape) < 2:
        raise ValueError(f"{a.name}: expected at least 2 dimensions (N, C, ...), got shape {a.shape}")
    return a.shape[0] * a.shape[1], int(np.prod(a.shape[2:], dtype=np.int64))


def forward(kind: str, at: Placement, p: float, seed: Any, stream: Any, training: bool, return_mask: bool) -> Any:
    """``dropout``, ``alpha_dropout`` or ``spatial_dropout`` forward of ``at['x']`` on its device."""
    _check_scalars(p, seed, stream)
    x = at["x"]
    n = x.size
    n_mask, channel_size = _mask_extent(kind, x)
    y, y_ptr = at.output("out", x.shape, "(the shape of x)")
    mask = at.mask(n_mask) if return_mask or (kind == "spatial" and training and p != 0) else None
    mask_ptr = mask.ptr if mask is not None else 0
    if not training or p == 0:
        _dev.copy_device(y_ptr, x.ptr, n * 4, at.device)
        if mask is not None:
            _dev.copy_to_device(mask.ptr, _all_kept(n_mask), at.device)
    elif kind == "spatial":
        _dev.spatial_dropout_forward(x.ptr, y_ptr, n_mask, channel_size, p, seed, stream, mask_ptr, at.device)
    elif kind == "alpha":
        _dev.alpha_dropout_forward(x.ptr, y_ptr, n, p, seed, stream, mask_ptr, at.device)
    else:
        _dev.dropout_forward(x.ptr, y_ptr, n, p, seed, stream, mask_ptr, at.device)
    return (y, mask) if return_mask else y


def backward(kind: str, at: Placement, p: float, seed: Any, stream: Any) -> Any:
    """Gradient of :func:`forward` for ``at['grad']``: keep from ``at['mask_bits']`` or regenerated."""
    has_bits = at["mask_bits"] is not None
    _check_backward_scalars(p, seed, stream, has_bits)
    g = at["grad"]
    n = g.size
    n_mask, channel_size = _mask_extent(kind, g)
    bits = at["mask_bits"]
    if has_bits and bits.shape != ((n_mask + 63) // 64,):
        raise ValueError(f"mask_bits: expected shape ({(n_mask + 63) // 64},) (ceil({n_mask} / 64) uint64 words), "
                         f"got {bits.shape}")
    dx, dx_ptr = at.output("out", g.shape, "(the shape of grad)")
    if p == 0:
        _dev.copy_device(dx_ptr, g.ptr, n * 4, at.device)
        return dx
    if kind == "spatial":
        regen = None
        if not has_bits:
            regen = at.mask(n_mask)
            _dev.dropout_mask_bits(n_mask, p, seed, stream, regen.ptr, at.device)
        bits_ptr = bits.ptr if has_bits else regen.ptr  # type: ignore[union-attr]
        _dev.spatial_dropout_backward(g.ptr, dx_ptr, n_mask, channel_size, bits_ptr, p, at.device)
        return dx
    scale = _ops.alpha_dropout_coeffs(p)[0] if kind == "alpha" else 1.0 / (1.0 - p)
    _dev.dropout_backward(g.ptr, dx_ptr, n, float(np.float32(scale)), p, 0 if seed is None else seed,
                          0 if stream is None else stream, bits.ptr if has_bits else 0, at.device)
    return dx


def mc_dropout(at: Placement, p: float, seed: Any, stream0: Any, samples: int) -> Any:
    """``samples`` dropout draws of ``at['x']`` on its device, shape ``(samples, *x.shape)``."""
    _check_scalars(p, seed, stream0)
    if samples < 1:
        raise ValueError(f"samples: expected an int >= 1, got {samples}")
    x = at["x"]
    y, y_ptr = at.output("out", (samples, *x.shape), f"(samples, *x.shape) = {(samples, *x.shape)}")
    if p == 0:
        for s in range(samples):
            _dev.copy_device(y_ptr + s * x.size * 4, x.ptr, x.size * 4, at.device)
    else:
        _dev.mc_dropout(x.ptr, y_ptr, x.size, samples, p, seed, stream0, at.device)
    return y


F = TypeVar("F", bound=Callable[..., Any])


def host_only(fn: F) -> F:
    """For the ops that run on the CPU only (augmentation, the sparse ops on a CSRMatrix,
    ``matmul_skip_zeros``, a CPU strategy for the dense product): CPU ``__dlpack__`` arguments
    become numpy views, and a CUDA array is a TypeError that names the argument and says so."""
    signature = inspect.signature(fn)

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not any(_is_foreign_array(v) for v in (*args, *kwargs.values())):
            return fn(*args, **kwargs)
        bound = signature.bind_partial(*args, **kwargs)
        for name, value in bound.arguments.items():
            if not _is_foreign_array(value):
                continue
            if _is_cuda_array(value):
                raise TypeError(f"{name}: dropnet.ops.{fn.__name__} runs on the CPU only, got a CUDA array; copy it "
                                f"to a numpy array first")
            bound.arguments[name] = operand(value, name)
        return fn(*bound.args, **bound.kwargs)

    return wrapper  # type: ignore[return-value]


def _is_foreign_array(value: Any) -> bool:
    return not isinstance(value, np.ndarray) and (
        hasattr(value, "__cuda_array_interface__") or hasattr(value, "__dlpack_device__"))


def _is_cuda_array(value: Any) -> bool:
    if hasattr(value, "__cuda_array_interface__"):
        return True
    return int(value.__dlpack_device__()[0]) != _cuda.KDL_CPU
