// Dispatch entries of the activation kernels (activation.h); the backward's units:
// activation_scalar.cpp, activation_avx2.cpp, activation_avx512.cpp.
#include "dropnet/kernels/cpu/activation.h"

#include <algorithm>
#include <cmath>

#include "dropnet/core/activation_element.h"
#include "dropnet/core/cpu_features.h"
#include "dropnet/core/denormals.h"
#include "dropnet/core/parallel.h"
#include "dropnet/kernels/cpu/activation_backward_body.h"

namespace dropnet {
namespace cpu {

namespace {
constexpr int64_t kElementGrain = 1 << 14;  // below this many elements a thread team costs more than it saves
}  // namespace

void activation_forward(ActivationKind kind, const float* x, float* y, int64_t n, float slope) {
  parallel_ranges(n, kElementGrain, [&](int64_t b, int64_t e) {
    DenormalsFlushed ftz;
    for (int64_t i = b; i < e; ++i) y[i] = activation_value(kind, x[i], slope);
  });
}

void activation_backward(ActivationKind kind, int64_t rows, int64_t cols, const float* dy, const float* y,
                         const float* pre, const uint64_t* keep_bits, float dropout_scale, float slope,
                         float* d_pre, float* d_bias) {
  ActivationBackwardBody body = activation_backward_scalar;
  switch (active_isa()) {
    case Isa::avx512: body = activation_backward_avx512; break;
    case Isa::avx2: body = activation_backward_avx2; break;
    case Isa::scalar: break;
  }
  if (rows <= 0) {  // no rows: the bias gradient is an empty sum
    if (d_bias) std::fill(d_bias, d_bias + std::max<int64_t>(cols, 0), 0.f);
    return;
  }
  // Split the columns so every thread sums whole columns of d_bias in row order.
  const int64_t col_grain = std::max<int64_t>(16, kElementGrain / rows);
  parallel_ranges(cols, col_grain, [&](int64_t c0, int64_t c1) {
    DenormalsFlushed ftz;
    body(kind, rows, cols, c0, c1, dy, y, pre, keep_bits, dropout_scale, slope, d_pre, d_bias);
  });
}

void softmax_rows_forward(const float* x, float* y, int64_t rows, int64_t cols) {
  parallel_ranges(rows, std::max<int64_t>(1, kElementGrain / std::max<int64_t>(cols, 1)), [&](int64_t b, int64_t e) {
    DenormalsFlushed ftz;
    for (int64_t i = b; i < e; ++i) {
      const float* xr = x + i * cols;
      float* yr = y + i * cols;
      float mx = -INFINITY;
      for (int64_t j = 0; j < cols; ++j) mx = std::max(mx, xr[j]);
      float sum = 0.f;
      for (int64_t j = 0; j < cols; ++j) {
        yr[j] = std::exp(xr[j] - mx);
        sum += yr[j];
      }
      const float inv = 1.f / sum;
      for (int64_t j = 0; j < cols; ++j) yr[j] *= inv;
    }
  });
}

void softmax_rows_backward(const float* y, const float* dy, float* dx, int64_t rows, int64_t cols) {
  parallel_ranges(rows, std::max<int64_t>(1, kElementGrain / std::max<int64_t>(cols, 1)), [&](int64_t b, int64_t e) {
    DenormalsFlushed ftz;
    for (int64_t i = b; i < e; ++i) {
      const float* yr = y + i * cols;
      const float* dyr = dy + i * cols;
      float* dxr = dx + i * cols;
      float dot = 0.f;
      for (int64_t j = 0; j < cols; ++j) dot += dyr[j] * yr[j];
      for (int64_t j = 0; j < cols; ++j) dxr[j] = yr[j] * (dyr[j] - dot);
    }
  });
}

}  // namespace cpu
}  // namespace dropnet
