// Per-thread bodies of the CUDA epilogue and activation kernels (kernels/cuda/activation.cu),
// `__host__ __device__` and free of CUDA headers; the C++ tests run them over the simulated grid.
//
// Launch geometry: grid_for(items) (kernels/cuda/dropout_body.h), 256-thread blocks, grid-stride.
// Items: for the epilogue, the 64-bit mask words the rows' elements (flat index i·N + j) touch,
// each thread taking its word's elements in order and writing the word whole (bits of elements
// outside the rows kept), so a mask word has one writer; for the activation passes, elements;
// for the bias gradient, columns, each thread adding its column's rows in order from 0 (the CPU's
// sum). No atomics.
#pragma once
#include <cstdint>

#include "dropnet/core/activation_element.h"
#include "dropnet/core/epilogue_element.h"
#include "dropnet/core/philox.h"
#include "dropnet/kernels/cuda/dropout_body.h"  // Grid, grid_for, grid_first_item, grid_stride

namespace dropnet {
namespace cuda {

// Mask words touched by elements [row0·N, (row0 + rows)·N): [first, first + count).
struct WordRange {
  int64_t first, count;
};
DROPNET_HD WordRange epilogue_words(int64_t row0, int64_t rows, int64_t N) {
  const int64_t e0 = row0 * N, e1 = (row0 + rows) * N;
  return {e0 >> 6, e1 > e0 ? ((e1 + 63) >> 6) - (e0 >> 6) : 0};
}

// cpu::epilogue_block_scalar (kernels/cpu/gemm.cpp) on the elements of mask word w, each taking
// value(i, j, c) (c: its place in C) as its product: *c for the epilogue pass, the chains of a
// split GEMM added up for its second pass (kernels/cuda/gemm_body.h).
template <class Value>
DROPNET_HD void epilogue_word_of(const GemmEpilogue& ep, int64_t row0, int64_t rows, int64_t N, float* C,
                                 int64_t ldc, int64_t w, const Value& value) {
  const int64_t lo = row0 * N, hi = (row0 + rows) * N;
  const int64_t e0 = 64 * w > lo ? 64 * w : lo, e1 = 64 * w + 64 < hi ? 64 * w + 64 : hi;
  uint64_t bits = 0;
  uint64_t block_index = ~uint64_t{0};
  philox::Words block{};
  for (int64_t e = e0; e < e1; ++e) {
    const int64_t i = e / N, j = e - i * N;
    float* c = C + i * ldc + j;
    float a = epilogue_activate(ep, value(i, j, c), j, e);
    if (ep.dropout) {
      const uint64_t u = ep.index_offset + static_cast<uint64_t>(e);
      if ((u >> 2) != block_index) {
        block_index = u >> 2;
        block = philox::stream_block(ep.seed, ep.stream, block_index);
      }
      const bool keep = block.v[u & 3] < ep.threshold;
      a = epilogue_drop(ep, a, keep);
      bits |= static_cast<uint64_t>(keep) << (e & 63);
    }
    *c = a;
  }
  if (ep.dropout && ep.mask_bits && e1 > e0) {
    const int n = static_cast<int>(e1 - e0), off = static_cast<int>(e0 & 63);
    const uint64_t sel = (n == 64 ? ~uint64_t{0} : ((uint64_t{1} << n) - 1)) << off;
    ep.mask_bits[w] = (ep.mask_bits[w] & ~sel) | bits;
  }
}

DROPNET_HD void epilogue_word(const GemmEpilogue& ep, int64_t row0, int64_t rows, int64_t N, float* C,
                              int64_t ldc, int64_t w) {
  epilogue_word_of(ep, row0, rows, N, C, ldc, w, [](int64_t, int64_t, const float* c) { return *c; });
}

DROPNET_HD void epilogue_thread(const GemmEpilogue& ep, int64_t row0, int64_t rows, int64_t N, float* C,
                                int64_t ldc, const Grid& g, uint32_t block, uint32_t thread) {
  const int64_t w0 = (row0 * N) >> 6;
  const int64_t w1 = rows > 0 && N > 0 ? (((row0 + rows) * N + 63) >> 6) : w0;
  for (int64_t w = w0 + grid_first_item(g, block, thread); w < w1; w += grid_stride(g))
    epilogue_word(ep, row0, rows, N, C, ldc, w);
}

DROPNET_HD void activation_forward_thread(ActivationKind kind, const float* x, float* y, int64_t n, float slope,
                                          const Grid& g, uint32_t block, uint32_t thread) {
  for (int64_t e = grid_first_item(g, block, thread); e < n; e += grid_stride(g)) y[e] = activation_value(kind, x[e], slope);
}

struct ActivationBackwardArgs {
  ActivationKind kind = ActivationKind::identity;
  int64_t rows = 0, cols = 0;
  const float *dy = nullptr, *y = nullptr, *pre = nullptr;
  const uint64_t* keep_bits = nullptr;
  float dropout_scale = 1.f, slope = 0.01f;
  float *d_pre = nullptr, *d_bias = nullptr;
};

// f' at element e as activation_backward_cols (kernels/cpu/activation_backward_body.h) forms it:
// from the pre-activation for gelu, else from the output divided back by the dropout scale.
template <ActivationKind K>
DROPNET_HD float derivative_at(const ActivationBackwardArgs& a, int64_t e, float keep_prob) {
  return K == ActivationKind::gelu ? activation_derivative<K>(0.f, a.pre[e], a.slope)
                                        : activation_derivative<K>(a.y[e] * keep_prob, 0.f, a.slope);
}
DROPNET_HD float derivative_at_any(const ActivationBackwardArgs& a, int64_t e, float keep_prob) {
  switch (a.kind) {
    case ActivationKind::relu: return derivative_at<ActivationKind::relu>(a, e, keep_prob);
    case ActivationKind::leaky_relu: return derivative_at<ActivationKind::leaky_relu>(a, e, keep_prob);
    case ActivationKind::tanh: return derivative_at<ActivationKind::tanh>(a, e, keep_prob);
    case ActivationKind::sigmoid: return derivative_at<ActivationKind::sigmoid>(a, e, keep_prob);
    case ActivationKind::gelu: return derivative_at<ActivationKind::gelu>(a, e, keep_prob);
    case ActivationKind::selu: return derivative_at<ActivationKind::selu>(a, e, keep_prob);
    case ActivationKind::elu: return derivative_at<ActivationKind::elu>(a, e, keep_prob);
    default: return derivative_at<ActivationKind::identity>(a, e, keep_prob);
  }
}

// Pass 1, items = elements: d_pre = dy · gain · f' with gain = keep ? dropout_scale : 0 (1 without a mask).
DROPNET_HD void activation_backward_thread(const ActivationBackwardArgs& a, const Grid& g, uint32_t block,
                                           uint32_t thread) {
  const bool masked = a.keep_bits != nullptr;
  const float keep_prob = masked ? 1.f / a.dropout_scale : 1.f;
  for (int64_t e = grid_first_item(g, block, thread); e < a.rows * a.cols; e += grid_stride(g)) {
    const float gain = masked ? (((a.keep_bits[e >> 6] >> (e & 63)) & 1u) ? a.dropout_scale : 0.f) : 1.f;
    a.d_pre[e] = a.dy[e] * gain * derivative_at_any(a, e, keep_prob);
  }
}

// Pass 2, items = columns: d_bias[j] = the column's d_pre summed over rows 0..rows-1 from 0.
DROPNET_HD void bias_grad_thread(const float* d_pre, int64_t rows, int64_t cols, float* d_bias, const Grid& g,
                                 uint32_t block, uint32_t thread) {
  for (int64_t j = grid_first_item(g, block, thread); j < cols; j += grid_stride(g)) {
    float s = 0.f;
    for (int64_t i = 0; i < rows; ++i) s += d_pre[i * cols + j];
    d_bias[j] = s;
  }
}

}  // namespace cuda
}  // namespace dropnet
