// Parameter updates of the optimizers, in PyTorch's formulation, on n contiguous floats:
//   SGD:   g' = g + weight_decay·w;  buf = momentum·buf + g' (buf starts at 0, so step 1 gives g');
//          nesterov: g' = g' + momentum·buf, else g' = buf (momentum 0: no buf, g' as is);
//          w = w − lr·g'.
//   Adam:  decoupled (AdamW): w = w·(1 − lr·weight_decay); else g' = g + weight_decay·w;
//          m = m + (1 − β1)(g' − m); v = β2·v + (1 − β2)·g'²;
//          w = w − step_size · m / (√v / bias2_sqrt + ε),
//          step_size = lr / (1 − β1^t), bias2_sqrt = √(1 − β2^t), computed by the caller in double.
// mask (n floats of 0/1, or null): after the update w, buf, m and v are multiplied by it, so a
// pruned weight and its optimizer state stay exactly zero whatever the gradient.
// Elements are independent; threads split them.
#pragma once
#include <cstdint>

#include "dropnet/core/optimizer_element.h"

namespace dropnet {
namespace cpu {

// The arguments and the element updates live in core/optimizer_element.h (shared with CUDA).
using SgdArgs = ::dropnet::SgdArgs;
using AdamArgs = ::dropnet::AdamArgs;

// buf: n floats, or null when momentum == 0.
void sgd_update(const SgdArgs& a, int64_t n, float* w, const float* g, float* buf, const float* mask);
void adam_update(const AdamArgs& a, int64_t n, float* w, const float* g, float* m, float* v, const float* mask);

// Per-ISA bodies over [0, n).
void sgd_update_scalar(const SgdArgs&, int64_t, float*, const float*, float*, const float*);
void sgd_update_avx2(const SgdArgs&, int64_t, float*, const float*, float*, const float*);
void sgd_update_avx512(const SgdArgs&, int64_t, float*, const float*, float*, const float*);
void adam_update_scalar(const AdamArgs&, int64_t, float*, const float*, float*, float*, const float*);
void adam_update_avx2(const AdamArgs&, int64_t, float*, const float*, float*, float*, const float*);
void adam_update_avx512(const AdamArgs&, int64_t, float*, const float*, float*, float*, const float*);

}  // namespace cpu
}  // namespace dropnet
