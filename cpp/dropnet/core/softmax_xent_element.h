// One row of the softmax cross-entropy (kernels/cpu/softmax_xent.h) as `__host__ __device__`
// functions (DROPNET_HD, core/philox.h): the CPU loops its rows over them (kernels/cpu/
// softmax_xent.cpp) and every CUDA thread runs them for the rows it owns (kernels/cuda/
// softmax_xent.cu), so both take the same steps in the same order. The exponential and the
// logarithm are each device's own (glibc's expf / log on the CPU, CUDA's on the GPU), so the GPU
// agrees with the CPU within a tolerance (docs/design.md, "Device kernels"); the host simulation
// of the CUDA bodies gives the CPU's bits.
#pragma once
#include <cmath>
#include <cstdint>

#include "dropnet/core/philox.h"  // DROPNET_HD

namespace dropnet {

// log Σ_j exp(z_j) as max + log Σ exp(z - max) (the sum in double, in class order); p (optional)
// gets softmax(z).
DROPNET_HD float row_log_sum_exp(const float* z, int64_t classes, float* p) {
  float mx = -__builtin_huge_valf();
  for (int64_t j = 0; j < classes; ++j) mx = mx < z[j] ? z[j] : mx;  // std::max's choice on NaN
  double sum = 0.0;
  for (int64_t j = 0; j < classes; ++j) {
    const float ex = expf(z[j] - mx);
    if (p) p[j] = ex;
    sum += ex;
  }
  const float lse = mx + static_cast<float>(log(sum));
  if (p) {
    const float inv = static_cast<float>(1.0 / sum);
    for (int64_t j = 0; j < classes; ++j) p[j] *= inv;
  }
  return lse;
}

// Sparse label: loss = lse - z[label]; p (optional) = grad_scale · (softmax - onehot(label)).
DROPNET_HD float softmax_xent_sparse_row(const float* z, int64_t classes, int64_t label, float grad_scale, float* p) {
  const float lse = row_log_sum_exp(z, classes, p);
  if (p) {
    for (int64_t j = 0; j < classes; ++j) p[j] *= grad_scale;
    p[label] -= grad_scale;
  }
  return lse - z[label];
}

// Dense targets t: loss = Σ_j t_j (lse - z_j); p (optional) = grad_scale · (softmax · Σt - t).
DROPNET_HD float softmax_xent_dense_row(const float* z, const float* t, int64_t classes, float grad_scale, float* p) {
  const float lse = row_log_sum_exp(z, classes, p);
  float l = 0.f, t_sum = 0.f;
  for (int64_t j = 0; j < classes; ++j) {
    l += t[j] * (lse - z[j]);
    t_sum += t[j];
  }
  if (p)
    for (int64_t j = 0; j < classes; ++j) p[j] = grad_scale * (p[j] * t_sum - t[j]);
  return l;
}

}  // namespace dropnet
