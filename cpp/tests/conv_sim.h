// The CUDA convolution's passes on the host (kernels/cuda/conv2d_body.h through cuda_sim.h), as
// kernels/cuda/conv2d.cu launches them: shared by the host tests (test_cuda_conv_bodies.cpp) and
// the GPU tests (gpu/test_cuda_layers.cpp), which check that the device gives these bytes.
// `tiny` runs a 2-block grid (blocks stride over the tiles, the reduction kernel's 3-thread
// blocks stride over the elements) in place of the launch's own. Also the tests' shapes and data.
#pragma once
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "cuda_sim.h"
#include "dropnet/kernels/cpu/im2col.h"
#include "dropnet/kernels/cuda/conv2d_body.h"

namespace dropnet {
namespace testing {

struct ConvCase {
  int64_t N, C, H, W, F, kh, kw, stride_h, stride_w, pad_top, pad_left, pad_bottom, pad_right, dil, groups;
};

inline cpu::ConvGeometry conv_case_geometry(const ConvCase& k) {
  cpu::ConvGeometry g;
  g.C = k.C, g.H = k.H, g.W = k.W, g.groups = k.groups, g.kh = k.kh, g.kw = k.kw;
  g.stride_h = k.stride_h, g.stride_w = k.stride_w, g.pad_top = k.pad_top, g.pad_left = k.pad_left;
  g.dil_h = g.dil_w = k.dil;
  g.OH = (k.H + k.pad_top + k.pad_bottom - k.dil * (k.kh - 1) - 1) / k.stride_h + 1;
  g.OW = (k.W + k.pad_left + k.pad_right - k.dil * (k.kw - 1) - 1) / k.stride_w + 1;
  return g;
}

// N(0, 1) floats from a seeded generator.
inline std::vector<float> normal_floats(int64_t n, uint32_t seed) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> d;
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = d(gen);
  return v;
}

template <class Op>
void simulate_conv_gemm(const Op& op, const cuda::ConvGemmLayout& L, bool tiny, bool reversed) {
  const cuda::Grid grid = tiny ? cuda::Grid{2, cuda::kConvThreads} : cuda::conv_grid(L);
  simulate_tile_blocks(grid, reversed, cuda::kConvSharedFloats, cuda::kConvAccumulators,
                       [&](HostBlock& blk, float* shared, HostThreadArrays& regs) {
                         cuda::conv_gemm_block(blk, op, L, shared, regs);
                       });
}

// cuda::conv2d_forward: a.y written.
inline void simulate_conv2d_forward(const cuda::ConvForwardArgs& a, bool tiny, bool reversed) {
  simulate_conv_gemm(cuda::ConvForwardOp{a}, cuda::conv_forward_layout(a.g, a.N, a.F), tiny, reversed);
}

// cuda::conv2d_backward: dx (optional) overwritten, dw and db (optional) accumulated; the scratch
// starts as NaN, so a chunk sum read before it is written would show.
inline void simulate_conv2d_backward(const float* dy, const float* x, int64_t N, const cuda::ConvShape& s,
                                     const float* w, int64_t F, float* dx, float* dw, float* db, bool tiny,
                                     bool reversed) {
  if (dx)
    simulate_conv_gemm(cuda::ConvInputGradOp{dy, w, dx, s, N, F}, cuda::conv_input_grad_layout(s, N, F), tiny,
                       reversed);
  const cuda::ConvGemmLayout L = cuda::conv_weight_grad_layout(s, N, F, db != nullptr);
  if (L.tiles() <= 0) return;
  std::vector<float> scratch(static_cast<size_t>(cuda::conv_weight_grad_scratch(s, N, F)), std::nanf(""));
  simulate_conv_gemm(cuda::ConvWeightGradOp{dy, x, scratch.data(), s, N, F}, L, tiny, reversed);
  const int64_t K = cuda::conv_reduction(s);
  const cuda::ConvWeightGradReduceArgs r{scratch.data(), L.splits, F, K, dw, db};
  const cuda::Grid gr = tiny ? cuda::Grid{2, 3} : cuda::grid_for(F * (K + 1));
  simulate_threads(gr, reversed, [&](uint32_t bl, uint32_t t) { cuda::conv_weight_grad_reduce_thread(r, gr, bl, t); });
}

}  // namespace testing
}  // namespace dropnet
