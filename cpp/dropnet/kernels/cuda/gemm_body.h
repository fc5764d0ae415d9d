// Block program and per-thread bodies of the CUDA dense GEMM (kernels/cuda/gemm.cu), free of CUDA
// headers, so the C++ tests (cpp/tests/test_cuda_gemm_body.cpp) run them on the host over the
// launch's grid and compare with cpu::sgemm byte for byte.
//
// The product is the tile program of kernels/cuda/tile_gemm_body.h (64 × 64 tiles, or 32 × 32 for a
// small product: gemm_small_tiles) with m = row of C, n = column,
// r = k, one split (the whole of K per tile) cut into blocks of gemm_k_block(K)
// (core/gemm_blocking.h), the CPU's K blocks. At the end of each block the owning thread writes
// the element as the CPU's micro-kernels do (kernels/cpu/gemm.cpp, store_tile):
//   first block  c = alpha·acc (beta == 0: C is not read) or c = fmaf(beta, c, alpha·acc)
//   later blocks c = fmaf(1, c, alpha·acc)
// with acc the block's fmaf chain from +0 in ascending k: the canonical order of docs/design.md,
// "Canonical reduction orders". After the last block the epilogue's element function
// (core/epilogue_element.h) runs on the value in registers, unless the epilogue writes mask bits:
// those are 64-element words that one thread must own, so that case leaves the epilogue to the
// word pass cuda::apply_epilogue after the product (the same element function, the same bits).
// K == 0 or alpha == 0: no product, C = beta·C element by element (beta == 0 writes zeros,
// beta == 1 leaves C), as cpu::sgemm's scale_rows, then the epilogue pass.
#pragma once
#include <cmath>
#include <cstdint>

#include "dropnet/core/epilogue.h"
#include "dropnet/core/epilogue_element.h"
#include "dropnet/core/gemm_blocking.h"
#include "dropnet/core/philox.h"  // DROPNET_HD
#include "dropnet/kernels/cuda/dropout_body.h"  // Grid, grid_first_item, grid_stride
#include "dropnet/kernels/cuda/tile_gemm_body.h"

namespace dropnet {
namespace cuda {

// C = alpha · op(A) · op(B) + beta · C on row-major operands, op(A)(i, k) = TA ? A[k·lda + i] :
// A[i·lda + k], op(B)(k, j) = TB ? B[j·ldb + k] : B[k·ldb + j].
struct GemmArgs {
  int64_t M = 0, N = 0, K = 0;
  float alpha = 1.f, beta = 0.f;
  const float* A = nullptr;
  int64_t lda = 0;
  const float* B = nullptr;
  int64_t ldb = 0;
  float* C = nullptr;
  int64_t ldc = 0;
  GemmEpilogue epilogue;
  bool fuse_epilogue = false;  // run the epilogue's element function in the writeback
};

// Whether the writeback can run the whole epilogue: everything but mask bits (a word pass's job).
inline bool gemm_epilogue_fusable(const GemmEpilogue& ep) { return !(ep.dropout && ep.mask_bits); }

template <bool TA, bool TB>
struct GemmTileOp {
  GemmArgs g;
  // Consecutive threads load consecutive k where the operand is contiguous along k.
  static constexpr bool kAAlongR = !TA, kBAlongR = TB;
  DROPNET_HD float load_a(int64_t, int64_t m, int64_t k) const { return TA ? g.A[k * g.lda + m] : g.A[m * g.lda + k]; }
  DROPNET_HD float load_b(int64_t, int64_t k, int64_t n) const { return TB ? g.B[n * g.ldb + k] : g.B[k * g.ldb + n]; }
  DROPNET_HD void store(const GemmTile&, int64_t m, int64_t n, float acc, const KBlock& kb) const {
    float* c = g.C + m * g.ldc + n;
    const float product = g.alpha * acc;
    float v = kb.first ? (g.beta == 0.f ? product : fmaf(g.beta, *c, product)) : fmaf(1.f, *c, product);
    if (kb.last && g.fuse_epilogue) {
      const int64_t e = m * g.N + n;
      v = epilogue_activate(g.epilogue, v, n, e);
      if (g.epilogue.dropout) v = epilogue_drop(g.epilogue, v, epilogue_keep(g.epilogue, e));
    }
    *c = v;
  }
};

template <class S>
TileGemmLayout gemm_layout(int64_t M, int64_t N, int64_t K) {
  return tile_gemm_layout<S>(1, M, N, K, K, gemm_k_block(K));
}

// Below this many 64 × 64 tiles a product takes 32 × 32 tiles (four times the blocks): the MLP's
// products (128 × 300: 10 large tiles) would otherwise leave most of a GPU's SMs idle. A guess until
// a GPU has timed both (tools/gpu_check.sh); the tile never changes the bits.
constexpr int64_t kLargeTilesFrom = 128;
inline bool gemm_small_tiles(int64_t M, int64_t N) {
  return ((M + Tile64::kM - 1) / Tile64::kM) * ((N + Tile64::kN - 1) / Tile64::kN) < kLargeTilesFrom;
}

// What sgemm launches for one call (kernels/cuda/gemm.cu), built here so that the launch and the
// host tests describe the same work: the beta·C pass (no product) or the tiles, then the epilogue
// word pass when the writeback could not run the epilogue.
struct GemmPlan {
  bool scale = false;          // gemm_scale_thread over the M·N elements (K == 0 or alpha == 0, beta != 1)
  bool tiles = false;          // tile_gemm_block<Tile32 or Tile64> with GemmTileOp<trans_a, trans_b>{args} over layout
  bool small_tiles = false;    // Tile32 (gemm_small_tiles), else Tile64
  bool epilogue_pass = false;  // then cuda::apply_epilogue(epilogue, 0, M, N, C, ldc)
  GemmArgs args;
  TileGemmLayout layout;
};

inline GemmPlan gemm_plan(int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda, const float* B,
                          int64_t ldb, float beta, float* C, int64_t ldc, const GemmEpilogue* epilogue) {
  GemmPlan p;
  GemmArgs& a = p.args;
  a.M = M;
  a.N = N;
  a.K = K;
  a.alpha = alpha;
  a.beta = beta;
  a.A = A;
  a.lda = lda;
  a.B = B;
  a.ldb = ldb;
  a.C = C;
  a.ldc = ldc;
  if (M <= 0 || N <= 0) return p;
  const bool no_product = K <= 0 || alpha == 0.f;
  p.scale = no_product && beta != 1.f;
  p.tiles = !no_product;
  if (epilogue) {
    a.epilogue = *epilogue;
    a.fuse_epilogue = p.tiles && gemm_epilogue_fusable(*epilogue);
    p.epilogue_pass = !a.fuse_epilogue;
  }
  p.small_tiles = gemm_small_tiles(M, N);
  p.layout = p.small_tiles ? gemm_layout<Tile32>(M, N, K) : gemm_layout<Tile64>(M, N, K);
  return p;
}

// Items = the M·N elements of C (row-major): K == 0 or alpha == 0.
DROPNET_HD void gemm_scale_thread(float* C, int64_t M, int64_t N, int64_t ldc, float beta, const Grid& g,
                                  uint32_t block, uint32_t thread) {
  for (int64_t e = grid_first_item(g, block, thread); e < M * N; e += grid_stride(g)) {
    const int64_t i = e / N, j = e - i * N;
    float* c = C + i * ldc + j;
    *c = beta == 0.f ? 0.f : *c * beta;
  }
}

}  // namespace cuda
}  // namespace dropnet
