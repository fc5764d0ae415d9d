"""The layer ops of :mod:`dropnet.ops` on CUDA arrays: convolution, pooling, batch norm and the
dense product, run through the device's kernel interface (``_core.device``'s layer bindings,
``cpp/bindings/register_device_layers.cpp``), the one a device network calls.

Every argument is checked before anything runs on the device, with the CPU's own messages: the CPU
binding is called on host stand-ins of the same shapes with an empty batch (zeros; nothing is
computed), which checks the geometry, the parameter shapes and the scalars and gives the output's
shape; what depends on the batch (a gradient's batch, the batch-norm sample count) and the
aliasing of outputs are checked here. The results are :class:`dropnet.cuda.DeviceArray` s, or the
caller's ``out`` arrays.
"""
from __future__ import annotations

from typing import Any, Optional, Sequence, Tuple

import numpy as np

from .. import _core
from ._device import DeviceOperand, Placement, _all_kept

_dev = _core.device
_ops = _core.ops


def _stand_in(a: Optional[DeviceOperand], batch: Optional[int] = None, dtype: Any = np.float32) -> Optional[np.ndarray]:
    """Zeros of ``a``'s shape (its first dimension cut to ``batch``) on the host, for the CPU checks."""
    if a is None:
        return None
    shape = a.shape if batch is None or not a.shape else (min(batch, a.shape[0]), *a.shape[1:])
    return np.zeros(shape, dtype)


def _cpu_checks(call: Any, *cut: Tuple[Optional[np.ndarray], Optional[DeviceOperand]]) -> Any:
    """``call()``, the CPU binding on stand-ins; a ValueError it raises names the real shapes of
    the arrays whose batch was cut (``cut``: pairs of stand-in and operand)."""
    try:
        return call()
    except ValueError as e:
        message = str(e)
        for stand, real in cut:
            if stand is not None and real is not None and stand.shape != real.shape:
                message = message.replace(str(stand.shape), str(real.shape))
        raise ValueError(message) from None


def _ptr(a: Optional[DeviceOperand]) -> int:
    return 0 if a is None else a.ptr


def _require_ndim(a: DeviceOperand, ndim: int, layout: str) -> None:
    if len(a.shape) != ndim:
        raise ValueError(f"{a.name}: expected a {ndim}-D array {layout}, got shape {a.shape}")


def _require_shape(a: Optional[DeviceOperand], shape: Tuple[int, ...]) -> None:
    if a is not None and a.shape != tuple(shape):
        raise ValueError(f"{a.name}: expected shape {tuple(shape)}, got {a.shape}")


def _span(ptr: int, shape: Sequence[int], itemsize: int) -> Tuple[int, int]:
    return ptr, ptr + int(np.prod(shape, dtype=np.int64)) * itemsize


# An array's extent for the aliasing checks: (name, device pointer, shape, bytes per element).
Extent = Tuple[str, int, Tuple[int, ...], int]


def _extent(a: Any) -> Optional[Extent]:
    if a is None or isinstance(a, tuple):
        return a
    return a.name, a.ptr, a.shape, a.dtype.itemsize


def _no_overlap(out: Extent, *inputs: Any, in_place_ok: Optional[DeviceOperand] = None) -> None:
    """The CPU bindings' aliasing rule (``require_no_overlap``): an output shares no byte with an
    array it is computed from (``in_place_ok``: it may be exactly that one, for elementwise passes).
    ``inputs``: operands or extents, None skipped."""
    name, ptr, shape, itemsize = out
    lo, hi = _span(ptr, shape, itemsize)
    for a in (*(_extent(v) for v in inputs), _extent(in_place_ok)):
        if a is None:
            continue
        a_lo, a_hi = _span(a[1], a[2], a[3])
        if hi == lo or a_hi == a_lo or not (lo < a_hi and a_lo < hi):
            continue
        if in_place_ok is not None and a[0] == in_place_ok.name:
            if (a_lo, a_hi) == (lo, hi):
                continue
            raise ValueError(f"{name}: expected either the same buffer as {a[0]} (in place) or one that does not "
                             f"share memory with it, got a partial overlap")
        raise ValueError(f"{name}: must not share memory with {a[0]}, got an array that overlaps it")


def _output(at: Placement, name: str, shape: Tuple[int, ...], dtype: Any = np.float32) -> Tuple[Any, Extent]:
    """The caller's ``name`` array or a new one (``Placement.output``), with its extent."""
    obj, ptr = at.output(name, tuple(shape), "", dtype)
    return obj, (name, ptr, tuple(shape), np.dtype(dtype).itemsize)


def conv2d(at: Placement, stride: Tuple[int, int], pads: Tuple[int, int, int, int], dilation: Tuple[int, int],
           groups: int, activation: Optional[str], leaky_slope: float) -> Any:
    x, w, b = at["x"], at["w"], at["b"]
    _require_ndim(x, 4, "(N, C, H, W)")
    xs = _stand_in(x, 0)
    probe = _cpu_checks(lambda: _ops.conv2d_forward(xs, _stand_in(w), _stand_in(b), stride, pads, dilation, groups,
                                                    activation, leaky_slope, None), (xs, x))
    n, (f, oh, ow) = x.shape[0], probe.shape[1:]
    y, y_desc = _output(at, "out", (n, f, oh, ow))
    _no_overlap(y_desc, x, w, b)
    _dev.conv2d_forward(at.device, x.ptr, n, _conv_geometry(x, w, stride, pads, dilation, groups, oh, ow), w.ptr, f,
                        _ptr(b), activation, leaky_slope, y_desc[1])
    return y


def conv2d_backward(at: Placement, stride: Tuple[int, int], pads: Tuple[int, int, int, int],
                    dilation: Tuple[int, int], groups: int, need_input_grad: bool, need_bias_grad: bool) -> Any:
    dy, x, w = at["grad_out"], at["x"], at["w"]
    _require_ndim(x, 4, "(N, C, H, W)")
    _require_ndim(dy, 4, "(N, F, OH, OW)")
    xs, dys = _stand_in(x, 0), _stand_in(dy, 0)
    probe = _cpu_checks(lambda: _ops.conv2d_forward(xs, _stand_in(w), None, stride, pads, dilation, groups, None, 0.0,
                                                    None), (xs, x))
    n, (f, oh, ow) = x.shape[0], probe.shape[1:]
    _require_shape(dy, (n, f, oh, ow))
    _cpu_checks(lambda: _ops.conv2d_backward(dys, xs, _stand_in(w), stride, pads, dilation, groups, need_input_grad,
                                             need_bias_grad, None, None, None), (xs, x), (dys, dy))
    if not need_input_grad and at["dx_out"] is not None:
        raise ValueError("dx_out: given, but need_input_grad is False")
    if not need_bias_grad and at["db_out"] is not None:
        raise ValueError("db_out: given, but need_bias_grad is False")
    dw, dw_desc = _output(at, "dw_out", w.shape)
    dx, dx_desc = _output(at, "dx_out", x.shape) if need_input_grad else (None, None)
    db, db_desc = _output(at, "db_out", (f,)) if need_bias_grad else (None, None)
    outs = [d for d in (dw_desc, dx_desc, db_desc) if d is not None]
    for i, d in enumerate(outs):
        _no_overlap(d, dy, x, w, *outs[:i])
    _dev.conv2d_backward(at.device, dy.ptr, x.ptr, n, _conv_geometry(x, w, stride, pads, dilation, groups, oh, ow),
                         w.ptr, f, dx_desc[1] if dx_desc else 0, dw_desc[1], db_desc[1] if db_desc else 0)
    return dx, dw, db


def _conv_geometry(x: DeviceOperand, w: DeviceOperand, stride, pads, dilation, groups: int, oh: int,
                   ow: int) -> Tuple[int, ...]:
    _, c, h, wd = x.shape
    return (c, h, wd, groups, w.shape[2], w.shape[3], stride[0], stride[1], pads[0], pads[2], dilation[0],
            dilation[1], oh, ow)


def _pool_geometry(h: int, w: int, kernel, stride, padding, oh: int, ow: int) -> Tuple[int, ...]:
    return (h, w, kernel[0], kernel[1], stride[0], stride[1], padding[0], padding[1], oh, ow)


def max_pool2d(at: Placement, kernel, stride, padding, return_indices: bool) -> Any:
    x = at["x"]
    _require_ndim(x, 4, "(N, C, H, W)")
    if at["indices_out"] is not None and not return_indices:
        raise ValueError("indices_out: given but return_indices is False")
    xs = _stand_in(x, 0)
    probe, _ = _cpu_checks(lambda: _ops.max_pool2d_forward(xs, kernel, stride, padding, False, None, None), (xs, x))
    n, c, h, w = x.shape
    oh, ow = probe.shape[2:]
    y, y_desc = _output(at, "out", (n, c, oh, ow))
    _no_overlap(y_desc, x)
    idx, idx_desc = _output(at, "indices_out", (n, c, oh, ow), np.int32) if return_indices else (None, None)
    if idx_desc is not None:
        _no_overlap(idx_desc, x, y_desc)
    _dev.max_pool2d_forward(at.device, x.ptr, n * c, _pool_geometry(h, w, kernel, stride, padding, oh, ow),
                            y_desc[1], idx_desc[1] if idx_desc else 0)
    return (y, idx) if return_indices else y


def _input_shape(input_shape: Sequence[int]) -> Tuple[int, int, int, int]:
    # The CPU binding's checks of input_shape, on an empty gradient of it.
    shape = tuple(int(v) for v in input_shape)
    if len(shape) != 4:
        raise ValueError(f"input_shape: expected 4 values (N, C, H, W), got {len(shape)}")
    if shape[0] < 0 or shape[1] < 0 or shape[2] < 1 or shape[3] < 1:
        raise ValueError(f"input_shape: expected N, C >= 0 and H, W >= 1, got {shape}")
    return shape  # type: ignore[return-value]


def max_pool2d_backward(at: Placement, input_shape: Sequence[int]) -> Any:
    dy, idx = at["grad"], at["indices"]
    n, c, h, w = _input_shape(input_shape)
    _require_ndim(dy, 4, "(N, C, OH, OW)")
    if idx.shape != dy.shape:
        raise ValueError(f"indices: expected shape {dy.shape} (the shape of grad), got {idx.shape}")
    if dy.shape[:2] != (n, c):
        raise ValueError(f"grad: expected N, C = {n}, {c} (from input_shape), got shape {dy.shape}")
    if h * w > 2**31 - 1:
        raise ValueError(f"input_shape: H*W = {h * w} does not fit int32 indices")
    dx, dx_desc = _output(at, "out", (n, c, h, w))
    _no_overlap(dx_desc, dy, idx)
    # An index outside its plane is never any input cell's: the device's backward gathers per input
    # cell, so it cannot write out of bounds (the CPU checks every index instead).
    _dev.max_pool2d_backward(at.device, dy.ptr, idx.ptr, n * c, (h, w, 1, 1, 1, 1, 0, 0, *dy.shape[2:]), dx_desc[1])
    return dx


def avg_pool2d(at: Placement, kernel, stride, padding, count_include_pad: bool) -> Any:
    x = at["x"]
    _require_ndim(x, 4, "(N, C, H, W)")
    xs = _stand_in(x, 0)
    probe = _cpu_checks(lambda: _ops.avg_pool2d_forward(xs, kernel, stride, padding, count_include_pad, None), (xs, x))
    n, c, h, w = x.shape
    oh, ow = probe.shape[2:]
    y, y_desc = _output(at, "out", (n, c, oh, ow))
    _no_overlap(y_desc, x)
    _dev.avg_pool2d_forward(at.device, x.ptr, n * c, _pool_geometry(h, w, kernel, stride, padding, oh, ow),
                            count_include_pad, y_desc[1])
    return y


def avg_pool2d_backward(at: Placement, input_shape: Sequence[int], kernel, stride, padding,
                        count_include_pad: bool) -> Any:
    dy = at["grad"]
    n, c, h, w = _input_shape(input_shape)
    probe = _ops.avg_pool2d_forward(np.zeros((0, c, h, w), np.float32), kernel, stride, padding, count_include_pad,
                                    None)
    oh, ow = probe.shape[2:]
    _require_shape(dy, (n, c, oh, ow))
    dx, dx_desc = _output(at, "out", (n, c, h, w))
    _no_overlap(dx_desc, dy)
    _dev.avg_pool2d_backward(at.device, dy.ptr, n * c, _pool_geometry(h, w, kernel, stride, padding, oh, ow),
                             count_include_pad, dx_desc[1])
    return dx


def global_avg_pool2d(at: Placement) -> Any:
    x = at["x"]
    _require_ndim(x, 4, "(N, C, H, W)")
    xs = _stand_in(x, 0)
    _cpu_checks(lambda: _ops.global_avg_pool2d_forward(xs), (xs, x))
    n, c, h, w = x.shape
    y, y_desc = _output(at, "out", (n, c))
    _dev.global_avg_pool2d_forward(at.device, x.ptr, n * c, h * w, y_desc[1])
    return y


def global_avg_pool2d_backward(at: Placement, input_shape: Sequence[int]) -> Any:
    dy = at["grad"]
    n, c, h, w = _input_shape(input_shape)
    _require_shape(dy, (n, c))
    dx, dx_desc = _output(at, "out", (n, c, h, w))
    _dev.global_avg_pool2d_backward(at.device, dy.ptr, n * c, h * w, dx_desc[1])
    return dx


def _batch_norm_extent(x: DeviceOperand) -> Tuple[int, int, int]:
    if len(x.shape) not in (2, 4):
        raise ValueError(f"x: expected a 2-D (N, C) or 4-D (N, C, H, W) array, got shape {x.shape}")
    hw = x.shape[2] * x.shape[3] if len(x.shape) == 4 else 1
    return x.shape[0], x.shape[1], hw


def batch_norm(at: Placement, training: bool, momentum: float, eps: float, relu: bool) -> Any:
    x, gamma, beta, rm, rv = at["x"], at["gamma"], at["beta"], at["running_mean"], at["running_var"]
    n, c, hw = _batch_norm_extent(x)
    # The stand-in keeps at most 2 of each of N, H, W: "more than one value per channel" holds for
    # it exactly when it holds for x.
    xs = np.zeros((min(n, 2), c, *(min(v, 2) for v in x.shape[2:])), np.float32)
    _cpu_checks(lambda: _ops.batch_norm_forward(xs, _stand_in(gamma), _stand_in(beta), _stand_in(rm), _stand_in(rv),
                                                training, momentum, eps, relu, None), (xs, x))
    y, y_desc = _output(at, "out", x.shape)
    _no_overlap(y_desc, gamma, beta, rm, rv, in_place_ok=x)
    for stat in (rm, rv):
        if stat is not None:
            _no_overlap(_extent(stat), x, gamma, beta, *(s for s in (rm, rv) if s is not stat))
    saved_mean, saved_invstd = at.new((c,)), at.new((c,))
    _dev.batch_norm_forward(at.device, x.ptr, n, c, hw, _ptr(gamma), _ptr(beta), _ptr(rm), _ptr(rv), training,
                            momentum, eps, relu, y_desc[1], saved_mean.ptr, saved_invstd.ptr)
    return y, saved_mean, saved_invstd


def batch_norm_backward(at: Placement, training: bool) -> Any:
    dy, x, gamma, mean, invstd, y = (at[k] for k in ("grad", "x", "gamma", "saved_mean", "saved_invstd", "y"))
    n, c, hw = _batch_norm_extent(x)
    if dy.shape != x.shape:
        raise ValueError(f"grad: expected shape {x.shape} (the shape of x), got {dy.shape}")
    if gamma is not None and gamma.shape != (c,):
        raise ValueError(f"gamma: expected shape ({c},), got {gamma.shape}")
    _require_shape(mean, (c,))
    _require_shape(invstd, (c,))
    if y is not None and y.shape != x.shape:
        raise ValueError(f"y: expected shape {x.shape} (the shape of x), got {y.shape}")
    dx, dx_desc = _output(at, "out", x.shape)
    _no_overlap(dx_desc, x, y, gamma, mean, invstd, in_place_ok=dy)
    dgamma, dbeta = at.new((c,)), at.new((c,))
    _dev.batch_norm_backward(at.device, dy.ptr, x.ptr, _ptr(y), n, c, hw, _ptr(gamma), mean.ptr, invstd.ptr,
                             training, dx_desc[1], dgamma.ptr, dbeta.ptr)
    return dx, dgamma, dbeta


def linear(at: Placement, activation: str, negative_slope: float, p: float, seed: Any, stream: Any,
           return_mask: bool) -> Any:
    x, w, b = at["x"], at["w"], at["b"]
    # The CPU binding checks shapes, activation, p, seed and stream on a batch of no rows.
    xs = _stand_in(x, 0)
    probe = _cpu_checks(lambda: _ops.linear(xs, _stand_in(w), _stand_in(b), activation, negative_slope, p, seed, stream,
                                            False, None), (xs, x))
    m, k, n = x.shape[0], x.shape[1], probe.shape[1]
    y, y_desc = _output(at, "out", (m, n))
    _no_overlap(y_desc, x, w, b)
    mask = at.mask(m * n) if return_mask else None
    if mask is not None and p == 0.0:  # no dropout: every element kept
        _dev.copy_to_device(mask.ptr, _all_kept(m * n), at.device)
    _dev.linear(at.device, m, n, k, x.ptr, w.ptr, _ptr(b), activation, negative_slope, p, seed, stream,
                mask.ptr if mask is not None and p > 0.0 else 0, y_desc[1])
    return (y, mask) if return_mask else y


def matmul(at: Placement, trans_a: bool, trans_b: bool, alpha: float, beta: float) -> Any:
    a, b = at["a"], at["b"]
    if alpha != 1.0 or beta != 0.0:
        raise ValueError(f"alpha, beta: on CUDA arrays matmul computes op(a) @ op(b) (alpha 1, beta 0), got alpha="
                         f"{alpha}, beta={beta}; scale the result instead")
    # The stand-in of a has no rows of the product (M = 0); anything but a matrix keeps its shape,
    # for the CPU's message.
    a_stand = (np.zeros((a.shape[0], 0) if trans_a else (0, a.shape[1]), np.float32) if len(a.shape) == 2
               else _stand_in(a))
    probe = _cpu_checks(lambda: _ops.matmul(a_stand, _stand_in(b), trans_a, trans_b, 1.0, 0.0, None), (a_stand, a))
    m = a.shape[1] if trans_a else a.shape[0]
    k = a.shape[0] if trans_a else a.shape[1]
    n = probe.shape[1]
    c, c_desc = _output(at, "out", (m, n))
    _no_overlap(c_desc, a, b)
    _dev.matmul(at.device, trans_a, trans_b, m, n, k, a.ptr, b.ptr, c_desc[1])
    return c
