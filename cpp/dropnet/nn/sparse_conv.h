// Convolution with a pruned weight run compressed (sparse_weight.h: W as an F × K CSR, K =
// C·kh·kw, groups = 1). Per image: im2col, then
//   forward          y[n] (F × P) = W · cols (+ bias, ReLU fused)      cpu::csr_matmul
//   weight gradient  dW at the stored entries += dy[n] · colsᵀ       cpu::csr_sampled_dot
//   input gradient   dcols = Wᵀ · dy[n], col2im -> dx[n]               cpu::csr_matmul on Wᵀ
// Work grows with the stored weights: at 90 % sparsity a tenth of the dense GEMMs' multiply-adds.
// Threads split images like the dense convolution (conv2d.h); the weight gradient is summed per
// chunk of cpu::kConvImagesPerChunk images, then over chunks in order, so the bits do not depend
// on the thread count.
#pragma once
#include <cstdint>

#include "dropnet/kernels/cpu/gemm.h"
#include "dropnet/kernels/cpu/im2col.h"
#include "dropnet/nn/sparse_weight.h"

namespace dropnet {
namespace nn {

// Floats of workspace the two calls use with `threads` threads.
int64_t sparse_conv_forward_workspace(const cpu::ConvGeometry& g, int threads);
int64_t sparse_conv_backward_workspace(const cpu::ConvGeometry& g, int64_t N, int64_t F, int64_t nnz, int threads);

// y (N × F × P) = activation(conv(x, W) + bias); activation any of Activation (ReLU and identity
// fused, the others as a pass over y).
void sparse_conv_forward(const float* x, int64_t N, const cpu::ConvGeometry& g, const SparseWeight& w,
                         const float* bias, cpu::Activation activation, float leaky_slope, float* y, float* workspace,
                         int64_t workspace_floats);

// dy: gradient at the pre-activation (N × F × P). dw (nnz, aligned with w's entries): overwritten;
// db (F, optional): accumulated (+=); dx (N × C × H × W, optional): overwritten.
void sparse_conv_backward(const float* dy, const float* x, int64_t N, const cpu::ConvGeometry& g,
                          const SparseWeight& w, float* dx, float* dw, float* db, float* workspace,
                          int64_t workspace_floats);

// Break-even densities of a training step (forward and backward) of this convolution against the
// dense one, and of its forward alone, measured on synthetic data like sparse_break_even (dense
// layers) and cached per (geometry, F, ISA, threads). The per-image work makes the batch
// irrelevant; rows only fills BreakEven::batch.
BreakEven sparse_conv_break_even(const cpu::ConvGeometry& g, int64_t F, int64_t rows);

}  // namespace nn
}  // namespace dropnet
