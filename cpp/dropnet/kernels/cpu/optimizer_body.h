// Loop bodies of the optimizer updates (optimizer.h), compiled once per ISA unit with that unit's
// flags; the anonymous namespace keeps each unit's copy private. Templates on the options keep
// every inner loop branch-free and unit-stride so it vectorises.
#pragma once
#include <cmath>
#include <cstdint>

#include "dropnet/core/optimizer_element.h"
#include "dropnet/kernels/cpu/optimizer.h"

namespace dropnet {
namespace cpu {
namespace {

// The element updates are core/optimizer_element.h's, shared with the CUDA kernel; the loops
// copy the arguments to locals (so that stores to w cannot alias them) and keep one element's
// state in registers.
template <bool Momentum, bool Nesterov, bool Masked>
void sgd_loop(const SgdArgs& a, int64_t n, float* w, const float* g, float* buf, const float* mask) {
  const SgdArgs args = a;
  for (int64_t i = 0; i < n; ++i) {
    float wi = w[i];
    float bi = Momentum ? buf[i] : 0.f;
    sgd_element<Momentum, Nesterov, Masked>(args, wi, g[i], bi, Masked ? mask[i] : 1.f);
    if (Momentum) buf[i] = bi;
    w[i] = wi;
  }
}

template <bool Decoupled, bool Masked>
void adam_loop(const AdamArgs& a, int64_t n, float* w, const float* g, float* m, float* v, const float* mask) {
  const AdamConstants c = adam_constants(a);
  for (int64_t i = 0; i < n; ++i) {
    float wi = w[i], mi = m[i], vi = v[i];
    adam_element<Decoupled, Masked>(c, wi, g[i], mi, vi, Masked ? mask[i] : 1.f);
    m[i] = mi;
    v[i] = vi;
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
