// What cuda::sgemm (kernels/cuda/gemm.cu, its default backend) launches for one call, each launch
// simulated on the host from its plan (cuda::gemm_plan): the beta·C pass, the tiles (split over the
// K blocks into the workspace when the plan says so), the block-order combine, the epilogue pass.
// Shared by the GEMM body tests (test_cuda_gemm_body.cpp, which also vary the grids and the tile
// shape) and the simulated device (sim_device.h).
#pragma once
#include <cstdint>

#include "cuda_sim.h"
#include "dropnet/kernels/cuda/activation_body.h"
#include "dropnet/kernels/cuda/gemm_body.h"

namespace dropnet {
namespace testing {

// tiny: two blocks of a few threads instead of the launch's grids; reversed: blocks and threads
// in reverse order; other_tiles: the tile shape the plan did not choose (none of these may change
// a bit).
struct GemmSimVariant {
  bool tiny = false, reversed = false, other_tiles = false;
};

template <class S, bool TA, bool TB, bool Chains>
void simulate_gemm_tiles(const cuda::GemmArgs& args, int64_t M, int64_t N, int64_t K, const GemmSimVariant& v) {
  const cuda::TileGemmLayout L = cuda::gemm_layout<S>(M, N, K, Chains);
  const cuda::Grid grid = v.tiny ? cuda::Grid{2, S::kThreads} : cuda::tile_grid<S>(L);
  const cuda::GemmTileOp<TA, TB, Chains> op{args};
  simulate_tile_blocks(grid, v.reversed, S::kSharedFloats, cuda::kTileAccumulators,
                       [&](HostBlock& blk, float* shared, HostThreadArrays& regs) {
                         cuda::tile_gemm_block<S>(blk, op, L, shared, regs);
                       });
}

template <class S, bool Chains>
void simulate_gemm_tiles(bool trans_a, bool trans_b, const cuda::GemmArgs& args, int64_t M, int64_t N, int64_t K,
                         const GemmSimVariant& v) {
  if (trans_a)
    trans_b ? simulate_gemm_tiles<S, true, true, Chains>(args, M, N, K, v)
            : simulate_gemm_tiles<S, true, false, Chains>(args, M, N, K, v);
  else
    trans_b ? simulate_gemm_tiles<S, false, true, Chains>(args, M, N, K, v)
            : simulate_gemm_tiles<S, false, false, Chains>(args, M, N, K, v);
}

template <class S>
void simulate_gemm_tiles(bool trans_a, bool trans_b, const cuda::GemmArgs& args, int64_t M, int64_t N, int64_t K,
                         const GemmSimVariant& v) {
  if (args.chains)
    simulate_gemm_tiles<S, true>(trans_a, trans_b, args, M, N, K, v);
  else
    simulate_gemm_tiles<S, false>(trans_a, trans_b, args, M, N, K, v);
}

// The plan p of sgemm(trans_a, trans_b, M, N, K, ..., beta, C, ldc, ep, ...) run launch by launch.
inline void simulate_sgemm(const cuda::GemmPlan& p, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K,
                           float beta, float* C, int64_t ldc, const GemmEpilogue* ep, const GemmSimVariant& v = {}) {
  auto grid = [&](int64_t items) { return v.tiny ? cuda::Grid{2, 3} : cuda::grid_for(items); };
  if (p.scale) {
    const cuda::Grid g = grid(M * N);
    simulate_threads(g, v.reversed,
                     [&](uint32_t b, uint32_t t) { cuda::gemm_scale_thread(C, M, N, ldc, beta, g, b, t); });
  }
  if (p.tiles) {
    if (p.small_tiles != v.other_tiles)
      simulate_gemm_tiles<cuda::Tile32>(trans_a, trans_b, p.args, M, N, K, v);
    else
      simulate_gemm_tiles<cuda::Tile64>(trans_a, trans_b, p.args, M, N, K, v);
  }
  if (p.combine || p.combine_words) {
    const cuda::Grid g = grid(p.combine ? M * N : cuda::epilogue_words(0, M, N).count);
    simulate_threads(g, v.reversed, [&](uint32_t b, uint32_t t) {
      if (p.combine)
        cuda::gemm_combine_thread(p.args, g, b, t);
      else
        cuda::gemm_combine_word_thread(p.args, g, b, t);
    });
  }
  if (p.epilogue_pass) {
    const cuda::Grid g = grid(cuda::epilogue_words(0, M, N).count);
    simulate_threads(g, v.reversed,
                     [&](uint32_t b, uint32_t t) { cuda::epilogue_thread(*ep, 0, M, N, C, ldc, g, b, t); });
  }
}

}  // namespace testing
}  // namespace dropnet
