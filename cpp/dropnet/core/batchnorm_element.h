// The per-channel arithmetic of batch normalisation, as `__host__ __device__` functions
// (DROPNET_HD, core/philox.h): the CPU drivers (kernels/cpu/batchnorm.cpp) and the CUDA kernels
// (kernels/cuda/batchnorm.cu) turn a channel's sums into its statistics, its running-statistics
// update and its affine maps with these same double operations, so the two devices differ only
// in how the sums were added (docs/design.md, "Device kernels"). Inference, which has no sum,
// gives the same bits on both.
#pragma once
#include <cmath>
#include <cstdint>

#include "dropnet/core/philox.h"  // DROPNET_HD

namespace dropnet {

// Per-channel results of the moments pass, folded into the affine map the normalise pass applies:
// y = x·scale + shift.
struct ChannelStats {
  float mean, invstd, scale, shift;
};

// From s1 = Σ(x - first), s2 = Σ(x - first)² over the M values of a channel (first: the value the
// sums were shifted by, which keeps s2 free of cancellation): the batch mean, the biased variance,
// the affine map, and (running_mean non-null) the running update with momentum, the running
// variance taking the UNBIASED variance var·M / (M - 1) as PyTorch does.
DROPNET_HD ChannelStats finish_moments(double s1, double s2, float first, int64_t M, float gamma, float beta,
                                       float eps, float momentum, float* running_mean, float* running_var) {
  const double m = static_cast<double>(M);
  const double d1 = s1 / m;  // mean of (x - first)
  const double mean = static_cast<double>(first) + d1;
  double var = s2 / m - d1 * d1;
  if (var < 0.0) var = 0.0;
  const double invstd = 1.0 / sqrt(var + static_cast<double>(eps));
  if (running_mean) {
    const double mo = momentum;
    *running_mean = static_cast<float>((1.0 - mo) * *running_mean + mo * mean);
    *running_var = static_cast<float>((1.0 - mo) * *running_var + mo * var * m / (m - 1.0));
  }
  const double scale = static_cast<double>(gamma) * invstd;
  return {static_cast<float>(mean), static_cast<float>(invstd), static_cast<float>(scale),
          static_cast<float>(static_cast<double>(beta) - mean * scale)};
}

// Inference: the running statistics in place of the batch ones (mean: running_mean).
DROPNET_HD ChannelStats inference_stats(float running_mean, float running_var, float gamma, float beta, float eps) {
  const double invstd = 1.0 / sqrt(static_cast<double>(running_var) + static_cast<double>(eps));
  const double s = static_cast<double>(gamma) * invstd;
  return {running_mean, static_cast<float>(invstd), static_cast<float>(s),
          static_cast<float>(static_cast<double>(beta) - running_mean * s)};
}

// y = x·scale + shift, then ReLU when fused: the element of both normalise passes (two float
// operations, never contracted on either device).
DROPNET_HD float batchnorm_affine(float x, float scale, float shift, bool relu) {
  const float v = x * scale + shift;
  return relu ? (v > 0.f ? v : 0.f) : v;
}

// dx = k_dy · dy + k_xc · (x - mean) + k0 per channel, from the two sums of the first pass:
// training: dx = gamma·invstd · (dy - Σdy/M - (x - mean)·invstd² · Σdy(x - mean)/M)
// inference: dx = gamma·invstd · dy.
// dgamma, dbeta (optional) ACCUMULATE this channel's Σdy(x - mean)·invstd and Σdy.
struct GradCoefficients {
  float k_dy, k_xc, k0;
};
DROPNET_HD GradCoefficients grad_coefficients(double sum_dy, double sum_dy_xc, int64_t M, float gamma, float invstd,
                                              bool training, float* dgamma, float* dbeta) {
  const double is = invstd;
  if (dgamma) *dgamma += static_cast<float>(sum_dy_xc * is);
  if (dbeta) *dbeta += static_cast<float>(sum_dy);
  const double k_dy = static_cast<double>(gamma) * is;
  if (!training) return {static_cast<float>(k_dy), 0.f, 0.f};
  const double m = static_cast<double>(M);
  return {static_cast<float>(k_dy), static_cast<float>(-k_dy * is * is * sum_dy_xc / m),
          static_cast<float>(-k_dy * sum_dy / m)};
}

// The element of the input gradient: dy masked by the fused ReLU's output (y_relu > 0) when
// there was one, then the channel's coefficients.
DROPNET_HD float batchnorm_grad_input(float dy, float x, const float* y_relu_at, const GradCoefficients& q,
                                      float mean) {
  const float g = y_relu_at ? (*y_relu_at > 0.f ? dy : 0.f) : dy;
  return q.k_dy * g + q.k_xc * (x - mean) + q.k0;
}

}  // namespace dropnet
