// Per-thread bodies of the CUDA multi-tensor optimizer kernels (kernels/cuda/optimizer.cu) and
// how a list of segments is cut into launches. `__host__ __device__` and free of CUDA headers:
// cpp/tests/test_cuda_bodies.cpp runs them on the host over every (block, thread) of the
// launches and compares with the CPU optimizers bit for bit.
//
// Launch geometry: up to kMaxSegmentsPerLaunch segments travel by value in one SegmentList
// (about 2.3 KB, under the 4 KB of kernel parameters every CUDA version allows). Items are the
// elements of the list's segments laid end to end; grid_for(items) (kernels/cuda/dropout_body.h)
// gives 256-thread blocks, grid-stride. Thread item e finds its segment by binary search over
// the start offsets. Every element has one owner and the update is elementwise, so no atomics.
#pragma once
#include <cstdint>

#include "dropnet/core/optimizer_element.h"
#include "dropnet/kernels/cuda/dropout_body.h"
#include "dropnet/kernels/cuda/optimizer.h"

namespace dropnet {
namespace cuda {

constexpr int kMaxSegmentsPerLaunch = 40;

struct SegmentList {
  int count = 0;
  int64_t start[kMaxSegmentsPerLaunch + 1] = {};  // start[k]: offset of segment k; start[count]: total
  OptimizerSegment seg[kMaxSegmentsPerLaunch];
};

// Cuts `count` segments into lists of at most kMaxSegmentsPerLaunch and calls launch(list) for
// each, in order (a launch per list; empty segments are skipped).
template <class Launch>
void for_each_segment_list(const OptimizerSegment* segments, int64_t count, Launch&& launch) {
  SegmentList list;
  for (int64_t i = 0; i < count; ++i) {
    if (segments[i].n <= 0) continue;
    list.seg[list.count] = segments[i];
    list.start[list.count + 1] = list.start[list.count] + segments[i].n;
    if (++list.count == kMaxSegmentsPerLaunch) {
      launch(list);
      list = SegmentList{};
    }
  }
  if (list.count > 0) launch(list);
}

// The segment holding item e: the last k with start[k] <= e.
DROPNET_HD int segment_of(const SegmentList& s, int64_t e) {
  int lo = 0, hi = s.count - 1;
  while (lo < hi) {
    const int mid = (lo + hi + 1) / 2;
    if (s.start[mid] <= e) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

// Same choice of template as the CPU's sgd_any / adam_any (kernels/cpu/optimizer_body.h).
DROPNET_HD void sgd_segment_element(const SgdArgs& a, const OptimizerSegment& s, int64_t i) {
  const bool momentum = s.slot0 != nullptr && a.momentum != 0.f;
  float w = s.w[i];
  float buf = momentum ? s.slot0[i] : 0.f;
  const float g = s.g[i];
  if (s.mask) {
    const float m = s.mask[i];
    if (!momentum) sgd_element<false, false, true>(a, w, g, buf, m);
    else if (a.nesterov) sgd_element<true, true, true>(a, w, g, buf, m);
    else sgd_element<true, false, true>(a, w, g, buf, m);
  } else {
    if (!momentum) sgd_element<false, false, false>(a, w, g, buf, 1.f);
    else if (a.nesterov) sgd_element<true, true, false>(a, w, g, buf, 1.f);
    else sgd_element<true, false, false>(a, w, g, buf, 1.f);
  }
  if (momentum) s.slot0[i] = buf;
  s.w[i] = w;
}

DROPNET_HD void adam_segment_element(const AdamArgs& a, const AdamConstants& c, const OptimizerSegment& s, int64_t i) {
  float w = s.w[i], m = s.slot0[i], v = s.slot1[i];
  const float g = s.g[i];
  const float mask = s.mask ? s.mask[i] : 1.f;
  if (a.decoupled) {
    if (s.mask) adam_element<true, true>(c, w, g, m, v, mask);
    else adam_element<true, false>(c, w, g, m, v, mask);
  } else {
    if (s.mask) adam_element<false, true>(c, w, g, m, v, mask);
    else adam_element<false, false>(c, w, g, m, v, mask);
  }
  s.slot0[i] = m;
  s.slot1[i] = v;
  s.w[i] = w;
}

DROPNET_HD void penalty_segment_element(const OptimizerSegment& s, int64_t i) {
  const bool penalised = s.l1 != 0.f || s.l2 != 0.f;
  const float two_l2 = 2.f * s.l2;
  const float mask = s.mask ? s.mask[i] : 1.f;
  if (penalised) {
    s.g[i] = s.mask ? penalty_grad_element<true, true>(two_l2, s.l1, s.w[i], s.g[i], mask)
                    : penalty_grad_element<true, false>(two_l2, s.l1, s.w[i], s.g[i], mask);
  } else if (s.mask) {
    s.g[i] = penalty_grad_element<false, true>(two_l2, s.l1, 0.f, s.g[i], mask);
  }
}

enum class SegmentUpdate { sgd, adam, penalty };

// The items of thread (block, thread): each element of the list's segments, updated in place.
DROPNET_HD void multi_tensor_thread(SegmentUpdate kind, const SgdArgs& sgd, const AdamArgs& adam,
                                    const SegmentList& list, const Grid& g, uint32_t block, uint32_t thread) {
  const AdamConstants c = adam_constants(adam);
  const int64_t total = list.start[list.count];
  for (int64_t e = grid_first_item(g, block, thread); e < total; e += grid_stride(g)) {
    const int k = segment_of(list, e);
    const int64_t i = e - list.start[k];
    switch (kind) {
      case SegmentUpdate::sgd: sgd_segment_element(sgd, list.seg[k], i); break;
      case SegmentUpdate::adam: adam_segment_element(adam, c, list.seg[k], i); break;
      case SegmentUpdate::penalty: penalty_segment_element(list.seg[k], i); break;
    }
  }
}

}  // namespace cuda
}  // namespace dropnet
