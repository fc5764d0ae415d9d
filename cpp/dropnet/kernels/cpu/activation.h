// Elementwise activations of the dense training core, forward and backward, on raw float buffers.
// The GEMM epilogue (gemm.h) already applies identity/relu/leaky_relu/tanh/sigmoid/gelu fused with
// the product; these kernels cover the standalone Activation layer, the activations the epilogue
// lacks (selu, softmax) and every backward pass.
#pragma once
#include <cstdint>

#include "dropnet/core/epilogue.h"

namespace dropnet {
namespace cpu {

// ActivationKind (identity, relu, leaky_relu, tanh, sigmoid, gelu, selu, softmax, elu) and the
// SELU constants: core/epilogue.h, shared with the CUDA twins.
using dropnet::ActivationKind;
using dropnet::kSeluAlpha;
using dropnet::kSeluLambda;

// y = f(x) on n elements (x, y may alias). Not for softmax (a row operation: softmax_rows_forward).
void activation_forward(ActivationKind kind, const float* x, float* y, int64_t n, float slope);

// Backward of "activation, then optional inverted dropout" on a rows × cols C-order block:
//   d_pre[e] = dy[e] · keep(e) · dropout_scale · f'(e)          (overwrites; d_pre may alias dy)
//   d_bias[j] = Σ_i d_pre[i, j], rows summed in order 0..rows-1  (overwrites; null: not wanted)
// keep(e) is bit e of keep_bits; keep_bits == null means no dropout (keep = 1, dropout_scale
// ignored). f' comes from the activation's output a, recovered from the stored layer output y as
// a = y / dropout_scale wherever the element was kept (where it was dropped the gradient is zero
// anyway): relu, leaky_relu, tanh, sigmoid, selu, elu (f' = a + alpha below 0), identity. gelu's f' needs the pre-activation
// `pre` (rows × cols); `pre` is unused for the others. Not for softmax (softmax_rows_backward).
// Threads split the columns; each column's rows are summed in a fixed order, so d_bias is
// bit-identical for any thread count.
void activation_backward(ActivationKind kind, int64_t rows, int64_t cols, const float* dy, const float* y,
                         const float* pre, const uint64_t* keep_bits, float dropout_scale, float slope,
                         float* d_pre, float* d_bias);

// Row softmax of a rows × cols block (x, y may alias), max-subtracted for stability.
void softmax_rows_forward(const float* x, float* y, int64_t rows, int64_t cols);
// dx = y ⊙ (dy − Σ_j dy·y) per row, y = softmax output (dx may alias dy).
void softmax_rows_backward(const float* y, const float* dy, float* dx, int64_t rows, int64_t cols);

// Per-ISA bodies of activation_backward over the column range [col0, col1) (same contract).
using ActivationBackwardBody = void (*)(ActivationKind, int64_t rows, int64_t cols, int64_t col0, int64_t col1,
                                        const float* dy, const float* y, const float* pre, const uint64_t* keep_bits,
                                        float dropout_scale, float slope, float* d_pre, float* d_bias);
void activation_backward_scalar(ActivationKind, int64_t, int64_t, int64_t, int64_t, const float*, const float*,
                                const float*, const uint64_t*, float, float, float*, float*);
void activation_backward_avx2(ActivationKind, int64_t, int64_t, int64_t, int64_t, const float*, const float*,
                              const float*, const uint64_t*, float, float, float*, float*);
void activation_backward_avx512(ActivationKind, int64_t, int64_t, int64_t, int64_t, const float*, const float*,
                                const float*, const uint64_t*, float, float, float*, float*);

}  // namespace cpu
}  // namespace dropnet
