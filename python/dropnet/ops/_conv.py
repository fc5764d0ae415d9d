"""Convolution, pooling and batch normalisation on NCHW float32 numpy arrays.

Shapes follow PyTorch: images ``(N, C, H, W)``, convolution weights ``(F, C, kh, kw)``, output
sizes ``(H + pad_top + pad_bottom - dilation * (k - 1) - 1) // stride + 1``. Every forward has a
backward that takes what the forward returned; parameter gradients come back fresh (zeros plus
this batch's contribution). Threads never change a result: every function is bit-identical for
any ``dropnet.set_num_threads``. CUDA arrays (``__cuda_array_interface__`` / ``__dlpack__``) run
on their device through the kernels a device network uses, and come back as device arrays.
"""
from __future__ import annotations

from typing import Literal, Optional, Sequence, Tuple, Union, overload

import numpy as np

from .. import _core
from . import _device_layers
from ._device import Placement

_ops = _core.ops

IntPair = Union[int, Tuple[int, int]]
Padding = Union[int, str, Tuple[int, int]]

__all__ = [
    "conv2d",
    "conv2d_backward",
    "max_pool2d",
    "max_pool2d_backward",
    "avg_pool2d",
    "avg_pool2d_backward",
    "global_avg_pool2d",
    "global_avg_pool2d_backward",
    "batch_norm",
    "batch_norm_backward",
]


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _pair(value: IntPair, name: str) -> Tuple[int, int]:
    """``v`` or ``(a, b)`` of ints -> ``(a, b)``; TypeError for anything else."""
    if _is_int(value):
        return _int64(value, name), _int64(value, name)
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(_is_int(v) for v in value):
        return _int64(value[0], name), _int64(value[1], name)
    raise TypeError(f"{name}: expected an int or a pair of ints, got {value!r}")


def _int64(value: object, name: str) -> int:
    """An int the core can take (it checks the range that makes sense for the argument)."""
    v = int(value)  # type: ignore[call-overload]
    if not -(1 << 63) <= v < (1 << 63):
        raise ValueError(f"{name}: expected values that fit a 64-bit integer, got {v}")
    return v


def _count(value: int, name: str) -> int:
    if _is_int(value):
        return _int64(value, name)
    raise TypeError(f"{name}: expected an int, got {value!r}")


def _conv_padding(padding: Padding, w: np.ndarray, stride: Tuple[int, int],
                  dilation: Tuple[int, int]) -> Tuple[int, int, int, int]:
    """Padding spec -> (top, bottom, left, right). "same" pads dilation*(k-1) in total, the odd
    one at the end (bottom/right) as PyTorch does; it needs stride 1."""
    if isinstance(padding, str):
        if padding == "valid":
            return 0, 0, 0, 0
        if padding == "same":
            if stride != (1, 1):
                raise ValueError(f"padding: 'same' needs stride 1, got stride {stride}")
            if len(getattr(w, "shape", ())) != 4:
                raise ValueError(f"w: expected a 4-D array (F, C, kh, kw), got {getattr(w, 'shape', type(w))}")
            th = dilation[0] * (w.shape[2] - 1)
            tw = dilation[1] * (w.shape[3] - 1)
            return th // 2, th - th // 2, tw // 2, tw - tw // 2
        raise ValueError(f"padding: expected an int, a pair, 'same' or 'valid', got {padding!r}")
    ph, pw = _pair(padding, "padding")
    return ph, ph, pw, pw


def conv2d(x: np.ndarray, w: np.ndarray, b: Optional[np.ndarray] = None, *, stride: IntPair = 1,
           padding: Padding = 0, dilation: IntPair = 1, groups: int = 1, activation: Optional[str] = None,
           leaky_slope: float = 0.01, out: Optional[np.ndarray] = None) -> np.ndarray:
    """2-D convolution (cross-correlation, as ``torch.nn.functional.conv2d``).

    x: (N, C, H, W) float32; w: (F, C // groups, kh, kw); b: (F,) or None. ``groups`` splits
    channels and filters into that many sets (``groups == C``: depthwise). ``padding`` is an int, a pair
    (ph, pw), ``"valid"`` or ``"same"`` (stride 1). ``activation`` (None, "relu", "leaky_relu",
    "tanh", "sigmoid", "gelu") is applied in the GEMM's epilogue. Returns y: (N, F, OH, OW),
    written into ``out`` when given.
    """
    at = Placement({}, x=x, w=w, b=b, out=out)
    s, d = _pair(stride, "stride"), _pair(dilation, "dilation")
    pads = _conv_padding(padding, at["w"], s, d)
    if at.device is not None:
        return _device_layers.conv2d(at, s, pads, d, _count(groups, "groups"), activation, float(leaky_slope))
    return _ops.conv2d_forward(at["x"], at["w"], at["b"], s, pads, d, _count(groups, "groups"), activation,
                               float(leaky_slope), at["out"])


def conv2d_backward(grad_out: np.ndarray, x: np.ndarray, w: np.ndarray, *, stride: IntPair = 1,
                    padding: Padding = 0, dilation: IntPair = 1, groups: int = 1, need_input_grad: bool = True,
                    need_bias_grad: bool = True, dx_out: Optional[np.ndarray] = None,
                    dw_out: Optional[np.ndarray] = None, db_out: Optional[np.ndarray] = None
                    ) -> Tuple[Optional[np.ndarray], np.ndarray, Optional[np.ndarray]]:
    """Gradients of ``conv2d`` w.r.t. x, w and b, given grad_out = dL/dy of shape (N, F, OH, OW)
    (the gradient of the convolution's output before any activation).

    Returns ``(dx, dw, db)``: dx (N, C, H, W) or None when ``need_input_grad`` is False, dw like
    w, db (F,) or None when ``need_bias_grad`` is False. dw and db sum over the batch in a fixed
    order (images in chunks of 8, chunks in order). ``dx_out``, ``dw_out``, ``db_out``: arrays to
    write the gradients into (float32, C-contiguous, their shapes; overwritten), as a training step
    reuses its buffers.
    """
    at = Placement({}, grad_out=grad_out, x=x, w=w, dx_out=dx_out, dw_out=dw_out, db_out=db_out)
    s, d = _pair(stride, "stride"), _pair(dilation, "dilation")
    pads = _conv_padding(padding, at["w"], s, d)
    if at.device is not None:
        return _device_layers.conv2d_backward(at, s, pads, d, _count(groups, "groups"), bool(need_input_grad),
                                              bool(need_bias_grad))
    return _ops.conv2d_backward(at["grad_out"], at["x"], at["w"], s, pads, d, _count(groups, "groups"),
                                bool(need_input_grad), bool(need_bias_grad), at["dx_out"], at["dw_out"], at["db_out"])


@overload
def max_pool2d(x: np.ndarray, kernel_size: IntPair, stride: Optional[IntPair] = ..., padding: IntPair = ...,
               return_indices: Literal[False] = ..., *, out: Optional[np.ndarray] = ...,
               indices_out: Optional[np.ndarray] = ...) -> np.ndarray: ...


@overload
def max_pool2d(x: np.ndarray, kernel_size: IntPair, stride: Optional[IntPair], padding: IntPair,
               return_indices: Literal[True], *, out: Optional[np.ndarray] = ...,
               indices_out: Optional[np.ndarray] = ...) -> Tuple[np.ndarray, np.ndarray]: ...


@overload
def max_pool2d(x: np.ndarray, kernel_size: IntPair, stride: Optional[IntPair] = ..., padding: IntPair = ..., *,
               return_indices: Literal[True], out: Optional[np.ndarray] = ...,
               indices_out: Optional[np.ndarray] = ...) -> Tuple[np.ndarray, np.ndarray]: ...


@overload
def max_pool2d(x: np.ndarray, kernel_size: IntPair, stride: Optional[IntPair] = ..., padding: IntPair = ...,
               return_indices: bool = ..., *, out: Optional[np.ndarray] = ...,
               indices_out: Optional[np.ndarray] = ...) -> Union[np.ndarray, Tuple[np.ndarray, np.ndarray]]: ...


def max_pool2d(x: np.ndarray, kernel_size: IntPair, stride: Optional[IntPair] = None, padding: IntPair = 0,
               return_indices: bool = False, *, out: Optional[np.ndarray] = None,
               indices_out: Optional[np.ndarray] = None) -> Union[np.ndarray, Tuple[np.ndarray, np.ndarray]]:
    """Max pooling over (kh, kw) windows of x: (N, C, H, W) float32 (stride defaults to the kernel).

    Returns y (N, C, OH, OW), and with ``return_indices`` also int32 indices ``ih * W + iw`` of
    each maximum within its plane (PyTorch's convention), which ``max_pool2d_backward`` takes.
    Padding (at most half the kernel) never wins; NaN propagates. ``out`` / ``indices_out``
    (int32, same shape) are reused instead of allocating.
    """
    at = Placement({"indices_out": np.int32}, x=x, out=out, indices_out=indices_out)
    k = _pair(kernel_size, "kernel_size")
    s = k if stride is None else _pair(stride, "stride")
    if at.device is not None:
        return _device_layers.max_pool2d(at, k, s, _pair(padding, "padding"), bool(return_indices))
    if indices_out is not None and not return_indices:
        raise ValueError("indices_out: given but return_indices is False")
    y, idx = _ops.max_pool2d_forward(at["x"], k, s, _pair(padding, "padding"), bool(return_indices), at["out"],
                                     at["indices_out"])
    return (y, idx) if return_indices else y


def max_pool2d_backward(grad: np.ndarray, indices: np.ndarray, input_shape: Sequence[int], *,
                        out: Optional[np.ndarray] = None) -> np.ndarray:
    """dL/dx of ``max_pool2d``: grad (N, C, OH, OW) scattered (summed) to the positions in
    ``indices`` of an array of ``input_shape`` (N, C, H, W); zero elsewhere."""
    at = Placement({"indices": np.int32}, grad=grad, indices=indices, out=out)
    if at.device is not None:
        return _device_layers.max_pool2d_backward(at, input_shape)
    return _ops.max_pool2d_backward(at["grad"], at["indices"], [int(v) for v in input_shape], at["out"])


def avg_pool2d(x: np.ndarray, kernel_size: IntPair, stride: Optional[IntPair] = None, padding: IntPair = 0,
               count_include_pad: bool = True, *, out: Optional[np.ndarray] = None) -> np.ndarray:
    """Average pooling over (kh, kw) windows of x: (N, C, H, W) float32 -> (N, C, OH, OW).

    ``count_include_pad`` (PyTorch's default True) divides by the window size including padded
    cells; False divides by the cells inside the image.
    """
    at = Placement({}, x=x, out=out)
    k = _pair(kernel_size, "kernel_size")
    s = k if stride is None else _pair(stride, "stride")
    if at.device is not None:
        return _device_layers.avg_pool2d(at, k, s, _pair(padding, "padding"), bool(count_include_pad))
    return _ops.avg_pool2d_forward(at["x"], k, s, _pair(padding, "padding"), bool(count_include_pad), at["out"])


def avg_pool2d_backward(grad: np.ndarray, input_shape: Sequence[int], kernel_size: IntPair,
                        stride: Optional[IntPair] = None, padding: IntPair = 0,
                        count_include_pad: bool = True) -> np.ndarray:
    """dL/dx of ``avg_pool2d`` (same window arguments) for grad (N, C, OH, OW) -> ``input_shape``."""
    at = Placement({}, grad=grad)
    k = _pair(kernel_size, "kernel_size")
    s = k if stride is None else _pair(stride, "stride")
    if at.device is not None:
        return _device_layers.avg_pool2d_backward(at, input_shape, k, s, _pair(padding, "padding"),
                                                  bool(count_include_pad))
    return _ops.avg_pool2d_backward(at["grad"], [int(v) for v in input_shape], k, s, _pair(padding, "padding"),
                                    bool(count_include_pad), None)


def global_avg_pool2d(x: np.ndarray) -> np.ndarray:
    """Mean over H and W: x (N, C, H, W) float32 -> (N, C) (Keras' GlobalAveragePooling2D)."""
    at = Placement({}, x=x)
    if at.device is not None:
        return _device_layers.global_avg_pool2d(at)
    return _ops.global_avg_pool2d_forward(at["x"])


def global_avg_pool2d_backward(grad: np.ndarray, input_shape: Sequence[int]) -> np.ndarray:
    """dL/dx of ``global_avg_pool2d``: grad (N, C) spread evenly over each (H, W) plane."""
    at = Placement({}, grad=grad)
    if at.device is not None:
        return _device_layers.global_avg_pool2d_backward(at, input_shape)
    return _ops.global_avg_pool2d_backward(at["grad"], [int(v) for v in input_shape])


def batch_norm(x: np.ndarray, gamma: Optional[np.ndarray], beta: Optional[np.ndarray],
               running_mean: Optional[np.ndarray], running_var: Optional[np.ndarray], *, training: bool,
               momentum: float = 0.1, eps: float = 1e-5, relu: bool = False,
               out: Optional[np.ndarray] = None) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Batch normalisation of x: (N, C) over N, or (N, C, H, W) over N, H, W (PyTorch semantics).

    gamma, beta: (C,) float32 or None (1 and 0). Training normalises with the batch mean and
    biased variance and, when running_mean / running_var (C,) are given, updates them in place:
    ``running = (1 - momentum) * running + momentum * batch`` with the unbiased variance.
    Inference (``training=False``) uses the running statistics. ``relu=True`` returns
    ``max(bn(x), 0)`` in the same pass. Returns ``(y, saved_mean, saved_invstd)``; pass the last
    two (and y when relu) to ``batch_norm_backward``.
    """
    at = Placement({}, x=x, gamma=gamma, beta=beta, running_mean=running_mean, running_var=running_var, out=out)
    if at.device is not None:
        return _device_layers.batch_norm(at, bool(training), float(momentum), float(eps), bool(relu))
    return _ops.batch_norm_forward(at["x"], at["gamma"], at["beta"], at["running_mean"], at["running_var"],
                                   bool(training), float(momentum), float(eps), bool(relu), at["out"])


def batch_norm_backward(grad: np.ndarray, x: np.ndarray, gamma: Optional[np.ndarray], saved_mean: np.ndarray,
                        saved_invstd: np.ndarray, *, y: Optional[np.ndarray] = None, training: bool = True,
                        out: Optional[np.ndarray] = None) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of ``batch_norm`` w.r.t. x, gamma and beta, given grad = dL/dy.

    Pass the forward's output as ``y`` when it ran with ``relu=True``: grad is then masked by
    ``y > 0``. ``training`` must match the forward (False: the statistics were constants).
    Returns ``(dx, dgamma, dbeta)``; ``out`` may be ``grad`` itself (in place).
    """
    at = Placement({}, grad=grad, x=x, gamma=gamma, saved_mean=saved_mean, saved_invstd=saved_invstd, y=y, out=out)
    if at.device is not None:
        return _device_layers.batch_norm_backward(at, bool(training))
    return _ops.batch_norm_backward(at["grad"], at["x"], at["gamma"], at["saved_mean"], at["saved_invstd"], at["y"],
                                    bool(training), at["out"])
