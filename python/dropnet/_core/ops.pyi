"""
stateless kernels on numpy arrays
"""
from __future__ import annotations
import collections.abc
import numpy
import numpy.typing
import typing
__all__: list[str] = ['alpha_dropout_backward', 'alpha_dropout_coeffs', 'alpha_dropout_forward', 'augment_images', 'avg_pool2d_backward', 'avg_pool2d_forward', 'batch_norm_backward', 'batch_norm_forward', 'conv2d_backward', 'conv2d_forward', 'dropout_backward', 'dropout_forward', 'dropout_mask_bits', 'global_avg_pool2d_backward', 'global_avg_pool2d_forward', 'linear', 'matmul', 'matmul_skip_zeros', 'max_pool2d_backward', 'max_pool2d_forward', 'mc_dropout', 'sparse_csr_check', 'sparse_csr_from_dense', 'sparse_csr_gather_values', 'sparse_csr_to_dense', 'sparse_csr_transpose', 'sparse_linear', 'sparse_linear_backward_input', 'sparse_weight_grad', 'spatial_dropout_backward', 'spatial_dropout_forward']
def alpha_dropout_backward(grad: typing.Any, p: typing.SupportsFloat | typing.SupportsIndex, seed: typing.Any = None, stream: typing.Any = None, mask_bits: typing.Any = None, out: typing.Any = None) -> typing.Any:
    """
    dx = grad * keep * a.
    """
def alpha_dropout_coeffs(p: typing.SupportsFloat | typing.SupportsIndex) -> tuple[float, float, float]:
    """
    (a, b, dropped_value) of AlphaDropout at p, as float32 values.
    """
def alpha_dropout_forward(x: typing.Any, p: typing.SupportsFloat | typing.SupportsIndex, seed: typing.Any, stream: typing.Any, training: bool = True, out: typing.Any = None, return_mask: bool = False) -> typing.Any:
    """
    AlphaDropout: y = a * (keep ? x : alpha') + b.
    """
def augment_images(x: typing.Any, pad: typing.SupportsInt | typing.SupportsIndex, flip: bool, erase_p: typing.SupportsFloat | typing.SupportsIndex, erase_max: typing.SupportsFloat | typing.SupportsIndex, seed: typing.Any, stream: typing.Any) -> numpy.typing.NDArray[numpy.float32]:
    """
    Random crop with zero padding, horizontal flip and random erasing of NCHW float32 images; sample i draws words 8i..8i+7 of the Philox stream (seed, stream). See kernels/cpu/augment.h.
    """
def avg_pool2d_backward(grad: typing.Any, input_shape: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex], kernel_size: tuple[typing.SupportsInt | typing.SupportsIndex, typing.SupportsInt | typing.SupportsIndex], stride: tuple[typing.SupportsInt | typing.SupportsIndex, typing.SupportsInt | typing.SupportsIndex], padding: tuple[typing.SupportsInt | typing.SupportsIndex, typing.SupportsInt | typing.SupportsIndex], count_include_pad: bool = True, out: typing.Any = None) -> numpy.typing.NDArray[numpy.float32]:
    ...
def avg_pool2d_forward(x: typing.Any, kernel_size: tuple[typing.SupportsInt | typing.SupportsIndex, typing.SupportsInt | typing.SupportsIndex], stride: tuple[typing.SupportsInt | typing.SupportsIndex, typing.SupportsInt | typing.SupportsIndex], padding: tuple[typing.SupportsInt | typing.SupportsIndex, typing.SupportsInt | typing.SupportsIndex], count_include_pad: bool = True, out: typing.Any = None) -> numpy.typing.NDArray[numpy.float32]:
    ...
def batch_norm_backward(grad: typing.Any, x: typing.Any, gamma: typing.Any, saved_mean: typing.Any, saved_invstd: typing.Any, y: typing.Any = None, training: bool = True, out: typing.Any = None) -> tuple[numpy.typing.NDArray[numpy.float32], numpy.typing.NDArray[numpy.float32], numpy.typing.NDArray[numpy.float32]]:
    ...
def batch_norm_forward(x: typing.Any, gamma: typing.Any, beta: typing.Any, running_mean: typing.Any, running_var: typing.Any, training: bool, momentum: typing.SupportsFloat | typing.SupportsIndex = 0.10000000149011612, eps: typing.SupportsFloat | typing.SupportsIndex = 9.999999747378752e-06, relu: bool = False, out: typing.Any = None) -> tuple[numpy.typing.NDArray[numpy.float32], numpy.typing.NDArray[numpy.float32], numpy.typing.NDArray[numpy.float32]]:
    ...
def conv2d_backward(grad_out: typing.Any, x: typing.Any, w: typing.Any, stride: tuple[typing.SupportsInt | typing.SupportsIndex, typing.SupportsInt | typing.SupportsIndex], padding: tuple[typing.SupportsInt | typing.SupportsIndex, typing.SupportsInt | typing.SupportsIndex, typing.SupportsInt | typing.SupportsIndex, typing.SupportsInt | typing.SupportsIndex], dilation: tuple[typing.SupportsInt | typing.SupportsIndex, typing.SupportsInt | typing.SupportsIndex], groups: typing.SupportsInt | typing.SupportsIndex = 1, need_input_grad: bool = True, need_bias_grad: bool = True, dx_out: typing.Any = None, dw_out: typing.Any = None, db_out: typing.Any = None) -> tuple[typing.Any, numpy.typing.NDArray[numpy.float32], typing.Any]:
    ...
def conv2d_forward(x: typing.Any, w: typing.Any, b: typing.Any, stride: tuple[typing.SupportsInt | typing.SupportsIndex, typing.SupportsInt | typing.SupportsIndex], padding: tuple[typing.SupportsInt | typing.SupportsIndex, typing.SupportsInt | typing.SupportsIndex, typing.SupportsInt | typing.SupportsIndex, typing.SupportsInt | typing.SupportsIndex], dilation: tuple[typing.SupportsInt | typing.SupportsIndex, typing.SupportsInt | typing.SupportsIndex], groups: typing.SupportsInt | typing.SupportsIndex = 1, activation: typing.Any = None, leaky_slope: typing.SupportsFloat | typing.SupportsIndex = 0.009999999776482582, out: typing.Any = None) -> numpy.typing.NDArray[numpy.float32]:
    ...
def dropout_backward(grad: typing.Any, p: typing.SupportsFloat | typing.SupportsIndex, seed: typing.Any = None, stream: typing.Any = None, mask_bits: typing.Any = None, out: typing.Any = None) -> typing.Any:
    """
    dx = grad * keep / (1 - p), keep read from mask_bits or regenerated from (seed, stream).
    """
def dropout_forward(x: typing.Any, p: typing.SupportsFloat | typing.SupportsIndex, seed: typing.Any, stream: typing.Any, training: bool = True, out: typing.Any = None, return_mask: bool = False) -> typing.Any:
    """
    Inverted dropout: y = x * keep / (1 - p). Returns y or (y, mask_bits).
    """
def dropout_mask_bits(n: typing.SupportsInt | typing.SupportsIndex, p: typing.SupportsFloat | typing.SupportsIndex, seed: typing.Any, stream: typing.Any) -> numpy.typing.NDArray[numpy.uint64]:
    """
    Keep bits of n elements.
    """
def global_avg_pool2d_backward(grad: typing.Any, input_shape: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex]) -> numpy.typing.NDArray[numpy.float32]:
    ...
def global_avg_pool2d_forward(x: typing.Any) -> numpy.typing.NDArray[numpy.float32]:
    ...
def linear(x: typing.Any, w: typing.Any, b: typing.Any = None, activation: str = 'identity', negative_slope: typing.SupportsFloat | typing.SupportsIndex = 0.009999999776482582, dropout: typing.SupportsFloat | typing.SupportsIndex = 0.0, seed: typing.Any = None, stream: typing.Any = None, return_mask: bool = False, out: typing.Any = None) -> typing.Any:
    ...
def matmul(a: typing.Any, b: typing.Any, trans_a: bool = False, trans_b: bool = False, alpha: typing.SupportsFloat | typing.SupportsIndex = 1.0, beta: typing.SupportsFloat | typing.SupportsIndex = 0.0, out: typing.Any = None) -> numpy.typing.NDArray[numpy.float32]:
    ...
def matmul_skip_zeros(a: typing.Any, b: typing.Any, trans_a: bool = False, trans_b: bool = False, max_density: typing.SupportsFloat | typing.SupportsIndex = 1.0, out: typing.Any = None) -> tuple[numpy.typing.NDArray[numpy.float32], bool]:
    ...
def max_pool2d_backward(grad: typing.Any, indices: typing.Any, input_shape: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex], out: typing.Any = None) -> numpy.typing.NDArray[numpy.float32]:
    ...
def max_pool2d_forward(x: typing.Any, kernel_size: tuple[typing.SupportsInt | typing.SupportsIndex, typing.SupportsInt | typing.SupportsIndex], stride: tuple[typing.SupportsInt | typing.SupportsIndex, typing.SupportsInt | typing.SupportsIndex], padding: tuple[typing.SupportsInt | typing.SupportsIndex, typing.SupportsInt | typing.SupportsIndex], return_indices: bool = True, out: typing.Any = None, indices_out: typing.Any = None) -> tuple[numpy.typing.NDArray[numpy.float32], typing.Any]:
    ...
def mc_dropout(x: typing.Any, p: typing.SupportsFloat | typing.SupportsIndex, seed: typing.Any, stream0: typing.Any, samples: typing.SupportsInt | typing.SupportsIndex, out: typing.Any = None) -> numpy.typing.NDArray[numpy.float32]:
    """
    Monte Carlo dropout: sample k is dropout(x) with stream stream0 + k; shape (samples, *x.shape).
    """
def sparse_csr_check(rows: typing.SupportsInt | typing.SupportsIndex, cols: typing.SupportsInt | typing.SupportsIndex, indptr: typing.Any, indices: typing.Any, data: typing.Any) -> None:
    """
    Raises ValueError unless (indptr, indices, data) is a valid rows × cols CSR.
    """
def sparse_csr_from_dense(w: typing.Any, mask: typing.Any, threshold: typing.SupportsFloat | typing.SupportsIndex) -> tuple:
    """
    CSR (indptr int64, indices int32, data float32) of the entries of w kept by mask or |w| > threshold.
    """
def sparse_csr_gather_values(w: typing.Any, indptr: typing.Any, indices: typing.Any, data: typing.Any) -> None:
    """
    data[p] = w[row(p), indices[p]] for every stored entry.
    """
def sparse_csr_to_dense(rows: typing.SupportsInt | typing.SupportsIndex, cols: typing.SupportsInt | typing.SupportsIndex, indptr: typing.Any, indices: typing.Any, data: typing.Any) -> numpy.typing.NDArray[numpy.float32]:
    ...
def sparse_csr_transpose(rows: typing.SupportsInt | typing.SupportsIndex, cols: typing.SupportsInt | typing.SupportsIndex, indptr: typing.Any, indices: typing.Any) -> tuple[numpy.typing.NDArray[numpy.int64], numpy.typing.NDArray[numpy.int32], numpy.typing.NDArray[numpy.int64]]:
    """
    CSR pattern of the transpose (t_indptr, t_indices, t_value_index into the original data).
    """
def sparse_linear(x: typing.Any, n_out: typing.SupportsInt | typing.SupportsIndex, n_in: typing.SupportsInt | typing.SupportsIndex, indptr: typing.Any, indices: typing.Any, data: typing.Any, b: typing.Any, activation: str, negative_slope: typing.SupportsFloat | typing.SupportsIndex, out: typing.Any) -> numpy.typing.NDArray[numpy.float32]:
    ...
def sparse_linear_backward_input(grad_y: typing.Any, n_out: typing.SupportsInt | typing.SupportsIndex, n_in: typing.SupportsInt | typing.SupportsIndex, t_indptr: typing.Any, t_indices: typing.Any, t_value_index: typing.Any, data: typing.Any, out: typing.Any) -> numpy.typing.NDArray[numpy.float32]:
    ...
def sparse_weight_grad(grad_y: typing.Any, x: typing.Any, n_out: typing.SupportsInt | typing.SupportsIndex, n_in: typing.SupportsInt | typing.SupportsIndex, indptr: typing.Any, indices: typing.Any, out: typing.Any, accumulate: bool) -> numpy.typing.NDArray[numpy.float32]:
    ...
def spatial_dropout_backward(grad: typing.Any, p: typing.SupportsFloat | typing.SupportsIndex, seed: typing.Any = None, stream: typing.Any = None, mask_bits: typing.Any = None, out: typing.Any = None) -> typing.Any:
    """
    Backward of spatial dropout.
    """
def spatial_dropout_forward(x: typing.Any, p: typing.SupportsFloat | typing.SupportsIndex, seed: typing.Any, stream: typing.Any, training: bool = True, out: typing.Any = None, return_mask: bool = False) -> typing.Any:
    """
    Spatial dropout: whole channels of (N, C, ...) kept or zeroed; channel n*C + c draws word n*C + c.
    """
