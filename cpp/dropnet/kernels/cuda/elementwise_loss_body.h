// Per-thread bodies of the CUDA elementwise losses and of the sample weights
// (kernels/cuda/elementwise_loss.cu), `__host__ __device__` and free of CUDA headers; the C++ tests
// run them over the simulated grid and compare with cpu::mse_loss / cpu::elementwise_loss.
//
// Launch geometry: grid_for(rows) (kernels/cuda/dropout_body.h); an item is a row, which one
// thread takes in column order with the CPU kernel's arithmetic (mse in float, the others in
// double), so a row's sum has one fixed sequence, the CPU's. Regression and binary heads are
// narrow (a few outputs), so a row per thread leaves nothing to share. Each output has one
// writer: no atomics.
#pragma once
#include <cmath>
#include <cstdint>

#include "dropnet/core/loss_kind.h"
#include "dropnet/kernels/cuda/dropout_body.h"  // Grid, grid_for, grid_first_item, grid_stride

namespace dropnet {
namespace cuda {

struct ElementwiseLossArgs {
  ElementwiseLossKind kind = ElementwiseLossKind::mse;
  const float* y = nullptr;  // predictions (logits for binary cross-entropy), rows × cols
  const float* t = nullptr;  // targets, rows × cols
  int64_t rows = 0, cols = 0;
  float grad_scale = 1.f, delta = 1.f;
  float* loss = nullptr;  // rows
  float* d_y = nullptr;   // optional, rows × cols
};

// Row r of mse (kernels/cpu/mse_loss.cpp: float sum, gradient 2·grad_scale/cols · d).
DROPNET_HD float mse_row(const float* y, const float* t, int64_t cols, float g, float inv_cols, float* d_y) {
  float s = 0.f;
  for (int64_t j = 0; j < cols; ++j) {
    const float d = y[j] - t[j];
    s += d * d;
    if (d_y) d_y[j] = g * d;
  }
  return s * inv_cols;
}

// Row r of the double-precision losses (kernels/cpu/elementwise_loss.cpp, term by term).
DROPNET_HD float elementwise_row(ElementwiseLossKind kind, const float* y, const float* t, int64_t cols, float g,
                                 double inv_cols, double delta, float* d_y) {
  double s = 0.0;
  for (int64_t j = 0; j < cols; ++j) {
    const double z = y[j], tt = t[j];
    double term = 0.0, grad = 0.0;
    if (kind == ElementwiseLossKind::binary_crossentropy_logits) {
      const double relu = z < 0.0 ? 0.0 : z;  // std::max(z, 0.0), -0 included
      term = relu - z * tt + log1p(exp(-fabs(z)));
      grad = 1.0 / (1.0 + exp(-z)) - tt;
    } else if (kind == ElementwiseLossKind::mae) {
      const double d = z - tt;
      term = fabs(d);
      grad = d > 0.0 ? 1.0 : (d < 0.0 ? -1.0 : 0.0);
    } else {  // huber
      const double d = z - tt, a = fabs(d);
      term = a <= delta ? 0.5 * d * d : delta * (a - 0.5 * delta);
      grad = d < -delta ? -delta : (d > delta ? delta : d);
    }
    s += term;
    if (d_y) d_y[j] = g * static_cast<float>(grad);
  }
  return static_cast<float>(s * inv_cols);
}

DROPNET_HD void elementwise_loss_thread(const ElementwiseLossArgs& a, const Grid& g, uint32_t block,
                                        uint32_t thread) {
  const int64_t cols = a.cols > 1 ? a.cols : 1;
  // The CPU's scale factors, formed the CPU's way (mse in float, the others in double).
  const float mse_inv = 1.f / static_cast<float>(cols), mse_g = 2.f * a.grad_scale * mse_inv;
  const double inv_cols = 1.0 / static_cast<double>(cols);
  const float el_g = static_cast<float>(a.grad_scale * inv_cols);
  for (int64_t r = grid_first_item(g, block, thread); r < a.rows; r += grid_stride(g)) {
    const float* y = a.y + r * a.cols;
    const float* t = a.t + r * a.cols;
    float* d = a.d_y ? a.d_y + r * a.cols : nullptr;
    a.loss[r] = a.kind == ElementwiseLossKind::mse ? mse_row(y, t, a.cols, mse_g, mse_inv, d)
                                                   : elementwise_row(a.kind, y, t, a.cols, el_g, inv_cols, a.delta, d);
  }
}

// Sample weights (nn/network.cpp's contract): loss[r] *= w[r] and, when d is not null, the row's
// gradient d[r, :] *= w[r]. An item is a row.
DROPNET_HD void weight_loss_rows_thread(const float* weights, int64_t rows, int64_t cols, float* loss, float* d,
                                        const Grid& g, uint32_t block, uint32_t thread) {
  for (int64_t r = grid_first_item(g, block, thread); r < rows; r += grid_stride(g)) {
    const float w = weights[r];
    loss[r] *= w;
    if (d)
      for (int64_t j = 0; j < cols; ++j) d[r * cols + j] *= w;
  }
}

}  // namespace cuda
}  // namespace dropnet
