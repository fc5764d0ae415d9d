// CUDA multi-tensor optimizer steps: one launch updates a list of parameters (segments), each
// element by the same function the CPU runs (core/optimizer_element.h), so the bits agree with
// cpu::sgd_update / cpu::adam_update / cpu::weight_penalty_grad. Pointers are *device*
// pointers; calls are asynchronous on the default stream and throw std::runtime_error when a
// launch fails. Per-thread bodies and launch geometry: kernels/cuda/optimizer_body.h.
//
// Never run on a GPU yet (docs/design.md, "Device kernels").
#pragma once
#include <cstdint>

#include "dropnet/core/optimizer_element.h"

namespace dropnet {
namespace cuda {

// One parameter (core/optimizer_element.h), its pointers device pointers.
using OptimizerSegment = dropnet::OptimizerSegment;

// `segments` is a host array of `count` descriptors; they travel as kernel arguments
// (kMaxSegmentsPerLaunch per launch), so no device allocation or copy is made.
void sgd_update_multi(const SgdArgs& a, const OptimizerSegment* segments, int64_t count);
void adam_update_multi(const AdamArgs& a, const OptimizerSegment* segments, int64_t count);
// g = (g + 2·l2·w + l1·sign(w)) · mask per segment; the penalty's value (a reduction) is not
// computed here (cuda::weight_penalty_grad, kernels/cuda/weight_penalty.h, does both, per tensor).
void penalty_grad_multi(const OptimizerSegment* segments, int64_t count);

}  // namespace cuda
}  // namespace dropnet
