// CUDA twins of the dense layers' elementwise work: the GEMM epilogue alone (bias, activation,
// inverted dropout; cpu::apply_epilogue in kernels/cpu/gemm.h), the standalone activation
// (cpu::activation_forward) and the activation backward with its bias-gradient column sums
// (cpu::activation_backward, kernels/cpu/activation.h). Same names, arguments and contracts,
// *device* pointers, a stream (null: the default stream); asynchronous, std::runtime_error naming
// the call when a launch fails. Per-thread bodies and launch geometry: kernels/cuda/activation_body.h.
//
// Bits (core/activation_element.h): apply_epilogue and activation_backward give the CPU's bits
// (the epilogue's activations are polynomials of correctly rounded operations; the derivatives
// are arithmetic on the output; the bias gradient is each column's rows added in order), except
// activation_backward for gelu, whose erf and exp are CUDA's; activation_forward's tanh, sigmoid,
// gelu, selu and elu use CUDA's C-library functions and agree within a tolerance.
//
// Never run on a GPU yet (docs/design.md, "Device kernels").
#pragma once
#include <cstdint>

#include "dropnet/core/epilogue.h"
#include "dropnet/kernels/cuda/stream.h"

namespace dropnet {
namespace cuda {

// The epilogue on rows [row0, row0 + rows) of the M × N output C (row i at C + i·ldc); the
// epilogue's bias, pre_activation and mask_bits are device pointers. Mask bits of elements outside
// those rows are kept; two launches must not share a mask word (rows of whole words, or one stream).
void apply_epilogue(const GemmEpilogue& ep, int64_t row0, int64_t rows, int64_t N, float* C, int64_t ldc,
                    Stream cuda_stream = nullptr);

// y = f(x) on n elements (x, y may alias). Not for softmax.
void activation_forward(ActivationKind kind, const float* x, float* y, int64_t n, float slope,
                        Stream cuda_stream = nullptr);

// d_pre = dy · keep · dropout_scale · f' (overwrites; may alias dy); d_bias (cols, optional)
// overwritten with each column's sum over the rows in order 0..rows-1. Not for softmax.
void activation_backward(ActivationKind kind, int64_t rows, int64_t cols, const float* dy, const float* y,
                         const float* pre, const uint64_t* keep_bits, float dropout_scale, float slope, float* d_pre,
                         float* d_bias, Stream cuda_stream = nullptr);

}  // namespace cuda
}  // namespace dropnet
