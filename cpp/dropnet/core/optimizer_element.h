// The per-element updates of the optimizers and of the weight penalties' gradient, as
// `__host__ __device__` functions (DROPNET_HD, core/philox.h): the CPU loops
// (kernels/cpu/optimizer_body.h, compiled once per ISA unit) and the CUDA multi-tensor kernel
// (kernels/cuda/optimizer.cu) run these same operations in the same order, so a device with the
// CPU's floating-point rules (no contraction, flushed denormals, IEEE division and square root:
// the CUDA build's --fmad=false --ftz=true --prec-div=true --prec-sqrt=true) gives the same bits.
// The formulas (PyTorch's) are documented in kernels/cpu/optimizer.h.
#pragma once
#include <cmath>
#include <cstdint>

#include "dropnet/core/philox.h"  // DROPNET_HD

namespace dropnet {

struct SgdArgs {
  float lr = 0.01f, momentum = 0.f, weight_decay = 0.f;
  bool nesterov = false;
};

struct AdamArgs {
  float lr = 0.001f, beta1 = 0.9f, beta2 = 0.999f, epsilon = 1e-7f, weight_decay = 0.f;
  bool decoupled = false;
  float step_size = 0.f, bias2_sqrt = 1.f;
};

// One SGD element: w, buf (momentum buffer, untouched without Momentum) updated in place.
template <bool Momentum, bool Nesterov, bool Masked>
DROPNET_HD void sgd_element(const SgdArgs& a, float& w, float g, float& buf, float mask) {
  float d = g + a.weight_decay * w;
  if (Momentum) {
    float b = a.momentum * buf + d;
    if (Masked) b *= mask;
    buf = b;
    d = Nesterov ? d + a.momentum * b : b;
  }
  float nw = w - a.lr * d;
  if (Masked) nw *= mask;
  w = nw;
}

// The loop invariants of an Adam step, computed once per call from AdamArgs (float operations,
// the same on both devices).
struct AdamConstants {
  float wd, b1c, b2, b2c, shrink, step, inv_b2s, eps;
};
DROPNET_HD AdamConstants adam_constants(const AdamArgs& a) {
  return AdamConstants{a.weight_decay, 1.f - a.beta1,        a.beta2,   1.f - a.beta2,
                       1.f - a.lr * a.weight_decay, a.step_size, 1.f / a.bias2_sqrt, a.epsilon};
}

// One Adam / AdamW element: w, m, v updated in place. sqrtf and the division are IEEE (correctly
// rounded) on both devices.
template <bool Decoupled, bool Masked>
DROPNET_HD void adam_element(const AdamConstants& c, float& w, float g, float& m, float& v, float mask) {
  float wi = w;
  float gi = g;
  if (Decoupled) wi *= c.shrink;
  else gi += c.wd * wi;
  float mi = m + c.b1c * (gi - m);
  float vi = c.b2 * v + c.b2c * gi * gi;
  if (Masked) {
    mi *= mask;
    vi *= mask;
  }
  m = mi;
  v = vi;
  wi -= c.step * (mi / (sqrtf(vi) * c.inv_b2s + c.eps));
  if (Masked) wi *= mask;
  w = wi;
}

// One parameter of a multi-tensor update (Backend::sgd_update / adam_update, the cuda:: multi-tensor
// launches): n floats of weight w and gradient g, in the memory of the device that runs the update;
// slot0 / slot1 the optimizer state (SGD: slot0 the momentum buffer or null; Adam: slot0 = m,
// slot1 = v); mask n floats of 0/1 or null; l1, l2 its penalties (cuda::penalty_grad_multi only).
struct OptimizerSegment {
  float* w = nullptr;
  float* g = nullptr;
  float* slot0 = nullptr;
  float* slot1 = nullptr;
  const float* mask = nullptr;
  int64_t n = 0;
  float l1 = 0.f, l2 = 0.f;
};

// The weight penalties' value is summed over fixed chunks of kPenaltyBlock elements on every
// device (kernels/cpu/weight_penalty.h, kernels/cuda/weight_penalty_body.h): penalty_blocks(n)
// chunks, each in double, then the chunks in order.
constexpr int64_t kPenaltyBlock = 4096;
inline int64_t penalty_blocks(int64_t n) { return (n + kPenaltyBlock - 1) / kPenaltyBlock; }

// The weight penalties' gradient of one element (kernels/cpu/weight_penalty.h):
// g = (g + 2·l2·w + l1·sign(w)) · mask. The penalty's value is a reduction, summed
// beside it (kernels/cpu/weight_penalty.cpp, kernels/cuda/weight_penalty_body.h).
template <bool Penalised, bool Masked>
DROPNET_HD float penalty_grad_element(float two_l2, float l1, float w, float g, float mask) {
  if (Penalised) g += two_l2 * w + l1 * static_cast<float>((w > 0.f) - (w < 0.f));
  if (Masked) g *= mask;
  return g;
}

}  // namespace dropnet
