// Mean squared error on rows × cols predictions y and targets t (C order):
//   loss[r] = (1 / cols) Σ_j (y_rj − t_rj)²              (per-sample mean over outputs, as Keras)
//   d_y[r, j] = grad_scale · 2 (y_rj − t_rj) / cols      (when d_y is not null; grad_scale = 1/rows
//                                                         for a batch mean)
// Rows are independent; threads split rows.
#pragma once
#include <cstdint>

namespace dropnet {
namespace cpu {

void mse_loss(const float* y, const float* t, int64_t rows, int64_t cols, float grad_scale, float* loss, float* d_y);

}  // namespace cpu
}  // namespace dropnet
