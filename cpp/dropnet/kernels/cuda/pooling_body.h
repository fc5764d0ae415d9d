// Per-thread bodies of the CUDA pooling kernels (kernels/cuda/pooling.cu), `__host__ __device__`
// and free of CUDA headers; the C++ tests run them over the simulated grid.
//
// Launch geometry: grid_for(items) (kernels/cuda/dropout_body.h), 256-thread blocks, grid-stride.
// Items: the forward passes' outputs (plane, oh, ow), flat; the backward passes' input cells
// (plane, ih, iw), each summing the windows that cover it (core/pooling_element.h); the global
// average's planes (forward: one thread adds a plane in index order, the CPU's double sum) and
// elements (backward). Every output has one writer: no atomics.
#pragma once
#include <cstdint>

#include "dropnet/core/pooling_element.h"
#include "dropnet/kernels/cuda/dropout_body.h"  // Grid, grid_for, grid_first_item, grid_stride

namespace dropnet {
namespace cuda {

enum class PoolKind { max, avg };

struct PoolArgs {
  PoolKind kind = PoolKind::max;
  PoolGeometry g;
  int64_t planes = 0;
  bool count_include_pad = true;
  const float* in = nullptr;          // forward: x; backward: dy
  const int32_t* indices_in = nullptr;  // max backward
  float* out = nullptr;               // forward: y; backward: dx
  int32_t* indices_out = nullptr;     // max forward, optional
};

DROPNET_HD void pool_forward_thread(const PoolArgs& a, const Grid& grid, uint32_t block, uint32_t thread) {
  const PoolGeometry& g = a.g;
  const int64_t out = g.OH * g.OW, items = a.planes * out;
  for (int64_t e = grid_first_item(grid, block, thread); e < items; e += grid_stride(grid)) {
    const int64_t p = e / out, o = e - p * out, oh = o / g.OW, ow = o - oh * g.OW;
    const float* x = a.in + p * g.H * g.W;
    if (a.kind == PoolKind::max) {
      int64_t arg;
      a.out[e] = max_pool_window(x, g, oh, ow, &arg);
      if (a.indices_out) a.indices_out[e] = static_cast<int32_t>(arg);
    } else {
      a.out[e] = avg_pool_window(x, g, oh, ow, a.count_include_pad);
    }
  }
}

DROPNET_HD void pool_backward_thread(const PoolArgs& a, const Grid& grid, uint32_t block, uint32_t thread) {
  const PoolGeometry& g = a.g;
  const int64_t in = g.H * g.W, out = g.OH * g.OW, items = a.planes * in;
  for (int64_t e = grid_first_item(grid, block, thread); e < items; e += grid_stride(grid)) {
    const int64_t p = e / in, i = e - p * in, ih = i / g.W, iw = i - ih * g.W;
    const float* dy = a.in + p * out;
    a.out[e] = a.kind == PoolKind::max ? max_pool_grad_at(dy, a.indices_in + p * out, g, ih, iw)
                                       : avg_pool_grad_at(dy, g, a.count_include_pad, ih, iw);
  }
}

DROPNET_HD void global_avg_forward_thread(const float* x, int64_t planes, int64_t hw, float* y, const Grid& grid,
                                          uint32_t block, uint32_t thread) {
  for (int64_t p = grid_first_item(grid, block, thread); p < planes; p += grid_stride(grid))
    y[p] = global_avg_plane(x + p * hw, hw);
}

DROPNET_HD void global_avg_backward_thread(const float* dy, int64_t planes, int64_t hw, float* dx, const Grid& grid,
                                           uint32_t block, uint32_t thread) {
  const float inv = 1.f / static_cast<float>(hw);  // the CPU's factor
  for (int64_t e = grid_first_item(grid, block, thread); e < planes * hw; e += grid_stride(grid))
    dx[e] = dy[e / hw] * inv;
}

}  // namespace cuda
}  // namespace dropnet
