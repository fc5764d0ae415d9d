"""
CUDA device memory, DLPack, and the dropout family and layer ops on device pointers
"""
from __future__ import annotations
import collections.abc
import numpy
import typing
import typing_extensions
__all__: list[str] = ['DeviceBuffer', 'alpha_dropout_forward', 'avg_pool2d_backward', 'avg_pool2d_forward', 'batch_norm_backward', 'batch_norm_forward', 'conv2d_backward', 'conv2d_forward', 'copy_device', 'copy_to_device', 'copy_to_host', 'dlpack_export', 'dlpack_import', 'dropout_backward', 'dropout_forward', 'dropout_mask_bits', 'global_avg_pool2d_backward', 'global_avg_pool2d_forward', 'linear', 'matmul', 'max_pool2d_backward', 'max_pool2d_forward', 'mc_dropout', 'pointer_device', 'spatial_dropout_backward', 'spatial_dropout_forward', 'synchronize']
class DeviceBuffer:
    """
    Device memory from cudaMallocAsync, freed with the object.
    """
    def __init__(self, nbytes: typing.SupportsInt | typing.SupportsIndex, device: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    @property
    def device(self) -> int:
        ...
    @property
    def nbytes(self) -> int:
        ...
    @property
    def ptr(self) -> int:
        ...
def alpha_dropout_forward(x: typing.SupportsInt | typing.SupportsIndex, y: typing.SupportsInt | typing.SupportsIndex, n: typing.SupportsInt | typing.SupportsIndex, p: typing.SupportsFloat | typing.SupportsIndex, seed: typing.SupportsInt | typing.SupportsIndex, stream: typing.SupportsInt | typing.SupportsIndex, mask: typing.SupportsInt | typing.SupportsIndex, device: typing.SupportsInt | typing.SupportsIndex) -> None:
    ...
def avg_pool2d_backward(device: typing.SupportsInt | typing.SupportsIndex, dy: typing.SupportsInt | typing.SupportsIndex, planes: typing.SupportsInt | typing.SupportsIndex, geometry: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex], count_include_pad: bool, dx: typing.SupportsInt | typing.SupportsIndex) -> None:
    ...
def avg_pool2d_forward(device: typing.SupportsInt | typing.SupportsIndex, x: typing.SupportsInt | typing.SupportsIndex, planes: typing.SupportsInt | typing.SupportsIndex, geometry: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex], count_include_pad: bool, y: typing.SupportsInt | typing.SupportsIndex) -> None:
    ...
def batch_norm_backward(device: typing.SupportsInt | typing.SupportsIndex, dy: typing.SupportsInt | typing.SupportsIndex, x: typing.SupportsInt | typing.SupportsIndex, y_relu: typing.SupportsInt | typing.SupportsIndex, n: typing.SupportsInt | typing.SupportsIndex, c: typing.SupportsInt | typing.SupportsIndex, hw: typing.SupportsInt | typing.SupportsIndex, gamma: typing.SupportsInt | typing.SupportsIndex, saved_mean: typing.SupportsInt | typing.SupportsIndex, saved_invstd: typing.SupportsInt | typing.SupportsIndex, training: bool, dx: typing.SupportsInt | typing.SupportsIndex, dgamma: typing.SupportsInt | typing.SupportsIndex, dbeta: typing.SupportsInt | typing.SupportsIndex) -> None:
    ...
def batch_norm_forward(device: typing.SupportsInt | typing.SupportsIndex, x: typing.SupportsInt | typing.SupportsIndex, n: typing.SupportsInt | typing.SupportsIndex, c: typing.SupportsInt | typing.SupportsIndex, hw: typing.SupportsInt | typing.SupportsIndex, gamma: typing.SupportsInt | typing.SupportsIndex, beta: typing.SupportsInt | typing.SupportsIndex, running_mean: typing.SupportsInt | typing.SupportsIndex, running_var: typing.SupportsInt | typing.SupportsIndex, training: bool, momentum: typing.SupportsFloat | typing.SupportsIndex, eps: typing.SupportsFloat | typing.SupportsIndex, relu: bool, y: typing.SupportsInt | typing.SupportsIndex, saved_mean: typing.SupportsInt | typing.SupportsIndex, saved_invstd: typing.SupportsInt | typing.SupportsIndex) -> None:
    ...
def conv2d_backward(device: typing.SupportsInt | typing.SupportsIndex, dy: typing.SupportsInt | typing.SupportsIndex, x: typing.SupportsInt | typing.SupportsIndex, n: typing.SupportsInt | typing.SupportsIndex, geometry: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex], w: typing.SupportsInt | typing.SupportsIndex, f: typing.SupportsInt | typing.SupportsIndex, dx: typing.SupportsInt | typing.SupportsIndex, dw: typing.SupportsInt | typing.SupportsIndex, db: typing.SupportsInt | typing.SupportsIndex) -> None:
    ...
def conv2d_forward(device: typing.SupportsInt | typing.SupportsIndex, x: typing.SupportsInt | typing.SupportsIndex, n: typing.SupportsInt | typing.SupportsIndex, geometry: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex], w: typing.SupportsInt | typing.SupportsIndex, f: typing.SupportsInt | typing.SupportsIndex, b: typing.SupportsInt | typing.SupportsIndex, activation: typing.Any, leaky_slope: typing.SupportsFloat | typing.SupportsIndex, y: typing.SupportsInt | typing.SupportsIndex) -> None:
    ...
def copy_device(dst: typing.SupportsInt | typing.SupportsIndex, src: typing.SupportsInt | typing.SupportsIndex, nbytes: typing.SupportsInt | typing.SupportsIndex, device: typing.SupportsInt | typing.SupportsIndex) -> None:
    ...
def copy_to_device(dst: typing.SupportsInt | typing.SupportsIndex, src: numpy.ndarray[typing.Any, numpy.dtype[typing.Any]], device: typing.SupportsInt | typing.SupportsIndex) -> None:
    ...
def copy_to_host(dst: numpy.ndarray[typing.Any, numpy.dtype[typing.Any]], src: typing.SupportsInt | typing.SupportsIndex, device: typing.SupportsInt | typing.SupportsIndex) -> None:
    ...
def dlpack_export(owner: typing.Any, ptr: typing.SupportsInt | typing.SupportsIndex, shape: tuple, dtype_code: typing.SupportsInt | typing.SupportsIndex, dtype_bits: typing.SupportsInt | typing.SupportsIndex, device_type: typing.SupportsInt | typing.SupportsIndex, device_id: typing.SupportsInt | typing.SupportsIndex, versioned: bool) -> typing_extensions.CapsuleType:
    """
    A DLPack capsule of the C-contiguous array at ptr, keeping owner alive.
    """
def dlpack_import(capsule: typing.Any) -> dict:
    """
    Consume a DLPack capsule: dict of ptr, shape, strides (elements or None), dtype (code, bits, lanes), device (type, id), read_only and keepalive (holds the producer's tensor).
    """
def dropout_backward(dy: typing.SupportsInt | typing.SupportsIndex, dx: typing.SupportsInt | typing.SupportsIndex, n: typing.SupportsInt | typing.SupportsIndex, scale: typing.SupportsFloat | typing.SupportsIndex, p: typing.SupportsFloat | typing.SupportsIndex, seed: typing.SupportsInt | typing.SupportsIndex, stream: typing.SupportsInt | typing.SupportsIndex, mask: typing.SupportsInt | typing.SupportsIndex, device: typing.SupportsInt | typing.SupportsIndex) -> None:
    """
    dx = dy * keep * scale; keep from mask, or regenerated when mask is 0.
    """
def dropout_forward(x: typing.SupportsInt | typing.SupportsIndex, y: typing.SupportsInt | typing.SupportsIndex, n: typing.SupportsInt | typing.SupportsIndex, p: typing.SupportsFloat | typing.SupportsIndex, seed: typing.SupportsInt | typing.SupportsIndex, stream: typing.SupportsInt | typing.SupportsIndex, mask: typing.SupportsInt | typing.SupportsIndex, device: typing.SupportsInt | typing.SupportsIndex) -> None:
    ...
def dropout_mask_bits(n: typing.SupportsInt | typing.SupportsIndex, p: typing.SupportsFloat | typing.SupportsIndex, seed: typing.SupportsInt | typing.SupportsIndex, stream: typing.SupportsInt | typing.SupportsIndex, mask: typing.SupportsInt | typing.SupportsIndex, device: typing.SupportsInt | typing.SupportsIndex) -> None:
    ...
def global_avg_pool2d_backward(device: typing.SupportsInt | typing.SupportsIndex, dy: typing.SupportsInt | typing.SupportsIndex, planes: typing.SupportsInt | typing.SupportsIndex, hw: typing.SupportsInt | typing.SupportsIndex, dx: typing.SupportsInt | typing.SupportsIndex) -> None:
    ...
def global_avg_pool2d_forward(device: typing.SupportsInt | typing.SupportsIndex, x: typing.SupportsInt | typing.SupportsIndex, planes: typing.SupportsInt | typing.SupportsIndex, hw: typing.SupportsInt | typing.SupportsIndex, y: typing.SupportsInt | typing.SupportsIndex) -> None:
    ...
def linear(device: typing.SupportsInt | typing.SupportsIndex, m: typing.SupportsInt | typing.SupportsIndex, n: typing.SupportsInt | typing.SupportsIndex, k: typing.SupportsInt | typing.SupportsIndex, x: typing.SupportsInt | typing.SupportsIndex, w: typing.SupportsInt | typing.SupportsIndex, b: typing.SupportsInt | typing.SupportsIndex, activation: str, negative_slope: typing.SupportsFloat | typing.SupportsIndex, dropout: typing.SupportsFloat | typing.SupportsIndex, seed: typing.Any, stream: typing.Any, mask_bits: typing.SupportsInt | typing.SupportsIndex, y: typing.SupportsInt | typing.SupportsIndex) -> None:
    ...
def matmul(device: typing.SupportsInt | typing.SupportsIndex, trans_a: bool, trans_b: bool, m: typing.SupportsInt | typing.SupportsIndex, n: typing.SupportsInt | typing.SupportsIndex, k: typing.SupportsInt | typing.SupportsIndex, a: typing.SupportsInt | typing.SupportsIndex, b: typing.SupportsInt | typing.SupportsIndex, c: typing.SupportsInt | typing.SupportsIndex) -> None:
    ...
def max_pool2d_backward(device: typing.SupportsInt | typing.SupportsIndex, dy: typing.SupportsInt | typing.SupportsIndex, indices: typing.SupportsInt | typing.SupportsIndex, planes: typing.SupportsInt | typing.SupportsIndex, geometry: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex], dx: typing.SupportsInt | typing.SupportsIndex) -> None:
    ...
def max_pool2d_forward(device: typing.SupportsInt | typing.SupportsIndex, x: typing.SupportsInt | typing.SupportsIndex, planes: typing.SupportsInt | typing.SupportsIndex, geometry: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex], y: typing.SupportsInt | typing.SupportsIndex, indices: typing.SupportsInt | typing.SupportsIndex) -> None:
    ...
def mc_dropout(x: typing.SupportsInt | typing.SupportsIndex, y: typing.SupportsInt | typing.SupportsIndex, n: typing.SupportsInt | typing.SupportsIndex, samples: typing.SupportsInt | typing.SupportsIndex, p: typing.SupportsFloat | typing.SupportsIndex, seed: typing.SupportsInt | typing.SupportsIndex, stream0: typing.SupportsInt | typing.SupportsIndex, device: typing.SupportsInt | typing.SupportsIndex) -> None:
    ...
def pointer_device(ptr: typing.SupportsInt | typing.SupportsIndex) -> int:
    """
    The CUDA device a pointer's memory lives on.
    """
def spatial_dropout_backward(dy: typing.SupportsInt | typing.SupportsIndex, dx: typing.SupportsInt | typing.SupportsIndex, n_channels: typing.SupportsInt | typing.SupportsIndex, channel_size: typing.SupportsInt | typing.SupportsIndex, mask: typing.SupportsInt | typing.SupportsIndex, p: typing.SupportsFloat | typing.SupportsIndex, device: typing.SupportsInt | typing.SupportsIndex) -> None:
    ...
def spatial_dropout_forward(x: typing.SupportsInt | typing.SupportsIndex, y: typing.SupportsInt | typing.SupportsIndex, n_channels: typing.SupportsInt | typing.SupportsIndex, channel_size: typing.SupportsInt | typing.SupportsIndex, p: typing.SupportsFloat | typing.SupportsIndex, seed: typing.SupportsInt | typing.SupportsIndex, stream: typing.SupportsInt | typing.SupportsIndex, mask: typing.SupportsInt | typing.SupportsIndex, device: typing.SupportsInt | typing.SupportsIndex) -> None:
    """
    mask (ceil(n_channels / 64) words) is required.
    """
def synchronize(device: typing.SupportsInt | typing.SupportsIndex, stream: typing.SupportsInt | typing.SupportsIndex = 0) -> None:
    """
    Wait for the legacy default stream of device, and for stream when it is not 0.
    """
