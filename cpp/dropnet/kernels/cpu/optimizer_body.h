// Loop bodies of the optimizer updates (optimizer.h), compiled once per ISA unit with that unit's
// flags; the anonymous namespace keeps each unit's copy private. Templates on the options keep
// every inner loop branch-free and unit-stride so it vectorises.
#pragma once
#include <cmath>
#include <cstdint>

#include "dropnet/kernels/cpu/optimizer.h"

namespace dropnet {
namespace cpu {
namespace {

template <bool Momentum, bool Nesterov, bool Masked>
void sgd_loop(const SgdArgs& a, int64_t n, float* w, const float* g, float* buf, const float* mask) {
  const float lr = a.lr, mu = a.momentum, wd = a.weight_decay;
  for (int64_t i = 0; i < n; ++i) {
    float d = g[i] + wd * w[i];
    if (Momentum) {
      float b = mu * buf[i] + d;
      if (Masked) b *= mask[i];
      buf[i] = b;
      d = Nesterov ? d + mu * b : b;
    }
    float nw = w[i] - lr * d;
    if (Masked) nw *= mask[i];
    w[i] = nw;
  }
}

template <bool Decoupled, bool Masked>
void adam_loop(const AdamArgs& a, int64_t n, float* w, const float* g, float* m, float* v, const float* mask) {
  const float wd = a.weight_decay, b1c = 1.f - a.beta1, b2 = a.beta2, b2c = 1.f - a.beta2;
  const float shrink = 1.f - a.lr * a.weight_decay;
  const float step = a.step_size, inv_b2s = 1.f / a.bias2_sqrt, eps = a.epsilon;
  for (int64_t i = 0; i < n; ++i) {
    float wi = w[i];
    float gi = g[i];
    if (Decoupled) wi *= shrink;
    else gi += wd * wi;
    float mi = m[i] + b1c * (gi - m[i]);
    float vi = b2 * v[i] + b2c * gi * gi;
    if (Masked) {
      mi *= mask[i];
      vi *= mask[i];
    }
    m[i] = mi;
    v[i] = vi;
    wi -= step * (mi / (std::sqrt(vi) * inv_b2s + eps));
    if (Masked) wi *= mask[i];
    w[i] = wi;
  }
}

inline void sgd_any(const SgdArgs& a, int64_t n, float* w, const float* g, float* buf, const float* mask) {
  const bool mom = buf != nullptr && a.momentum != 0.f;
  if (mask) {
    if (!mom) return sgd_loop<false, false, true>(a, n, w, g, buf, mask);
    if (a.nesterov) return sgd_loop<true, true, true>(a, n, w, g, buf, mask);
    return sgd_loop<true, false, true>(a, n, w, g, buf, mask);
  }
  if (!mom) return sgd_loop<false, false, false>(a, n, w, g, buf, mask);
  if (a.nesterov) return sgd_loop<true, true, false>(a, n, w, g, buf, mask);
  return sgd_loop<true, false, false>(a, n, w, g, buf, mask);
}

inline void adam_any(const AdamArgs& a, int64_t n, float* w, const float* g, float* m, float* v, const float* mask) {
  if (a.decoupled) {
    if (mask) return adam_loop<true, true>(a, n, w, g, m, v, mask);
    return adam_loop<true, false>(a, n, w, g, m, v, mask);
  }
  if (mask) return adam_loop<false, true>(a, n, w, g, m, v, mask);
  return adam_loop<false, false>(a, n, w, g, m, v, mask);
}

}  // namespace
}  // namespace cpu
}  // namespace dropnet
