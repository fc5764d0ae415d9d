// Block program and per-thread bodies of the CUDA dense GEMM (kernels/cuda/gemm.cu), free of CUDA
// headers, so the C++ tests (cpp/tests/test_cuda_gemm_body.cpp) run them on the host over the
// launch's grid and compare with cpu::sgemm byte for byte.
//
// The product is the tile program of kernels/cuda/tile_gemm_body.h (64 × 64 tiles, or 32 × 32 for a
// small product: gemm_small_tiles) with m = row of C, n = column, r = k, K cut into blocks of
// gemm_k_block(K) (core/gemm_blocking.h), the CPU's K blocks. Per block each element is one fmaf
// chain `acc` from +0 in ascending k, written onto C as the CPU's micro-kernels do
// (kernels/cpu/gemm.cpp, store_tile; gemm_block_writeback):
//   first block  c = alpha·acc (beta == 0: C is not read) or c = fmaf(beta, c, alpha·acc)
//   later blocks c = fmaf(1, c, alpha·acc)
// the canonical order of docs/design.md, "Canonical reduction orders". Two ways to run it, the
// same bits:
//  - in place (no workspace): a tile walks all of K, its owner thread writing each block's chain
//    onto C as it ends; after the last block the epilogue's element function
//    (core/epilogue_element.h) runs on the value in registers, unless the epilogue writes mask
//    bits: a 64-bit mask word has one writer in the word pass (cuda::apply_epilogue), which then
//    follows the product;
//  - split over the K blocks (a small product with two or more K blocks and the caller's
//    workspace of gemm_workspace_floats): each (tile, K block) is its own block of the grid and
//    writes its chains to the workspace (splits × M × N); a second pass gives each element (or,
//    with mask bits, each mask word) one thread that adds the chains onto C in block order with the
//    same writeback, then runs the epilogue: more blocks for a small product, no other order.
// K == 0 or alpha == 0: no product, C = beta·C element by element (beta == 0 writes zeros,
// beta == 1 leaves C), as cpu::sgemm's scale_rows, then the epilogue pass.
#pragma once
#include <cmath>
#include <cstdint>

#include "dropnet/core/epilogue.h"
#include "dropnet/core/epilogue_element.h"
#include "dropnet/core/gemm_blocking.h"
#include "dropnet/core/philox.h"                  // DROPNET_HD
#include "dropnet/kernels/cuda/activation_body.h"  // epilogue_word_of, epilogue_words
#include "dropnet/kernels/cuda/dropout_body.h"     // Grid, grid_first_item, grid_stride
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
  bool has_epilogue = false;
  bool fuse_epilogue = false;  // in place: run the epilogue's element function in the writeback
  float* chains = nullptr;     // split: the workspace, chain of K block s of element (m, n) at (s·M + m)·N + n
  int64_t splits = 1;
};

// Whether an element's own thread can run the whole epilogue: everything but mask bits (a mask
// word's job).
inline bool gemm_epilogue_fusable(const GemmEpilogue& ep) { return !(ep.dropout && ep.mask_bits); }

// One K block's chain written onto the element's value c (c is not read for the first block when
// beta == 0), as the CPU's store_tile.
DROPNET_HD float gemm_block_writeback(bool first, float c, float acc, float alpha, float beta) {
  const float product = alpha * acc;
  return first ? (beta == 0.f ? product : fmaf(beta, c, product)) : fmaf(1.f, c, product);
}

// The epilogue but for mask bits on element (m, n) of the product v.
DROPNET_HD float gemm_epilogue_value(const GemmEpilogue& ep, float v, int64_t m, int64_t n, int64_t N) {
  const int64_t e = m * N + n;
  v = epilogue_activate(ep, v, n, e);
  return ep.dropout ? epilogue_drop(ep, v, epilogue_keep(ep, e)) : v;
}

// Chains: the split's first pass (the chains to the workspace, nothing else: its own kernel, so
// the in-place writeback's epilogue costs it no registers).
template <bool TA, bool TB, bool Chains = false>
struct GemmTileOp {
  GemmArgs g;
  // Consecutive threads load consecutive k where the operand is contiguous along k.
  static constexpr bool kAAlongR = !TA, kBAlongR = TB;
  DROPNET_HD float load_a(int64_t, int64_t m, int64_t k) const { return TA ? g.A[k * g.lda + m] : g.A[m * g.lda + k]; }
  DROPNET_HD float load_b(int64_t, int64_t k, int64_t n) const { return TB ? g.B[n * g.ldb + k] : g.B[k * g.ldb + n]; }
  DROPNET_HD void store(const GemmTile& tile, int64_t m, int64_t n, float acc, const KBlock& kb) const {
    if constexpr (Chains) {
      g.chains[(tile.split * g.M + m) * g.N + n] = acc;
    } else {
      float* c = g.C + m * g.ldc + n;
      float v = gemm_block_writeback(kb.first, kb.first && g.beta == 0.f ? 0.f : *c, acc, g.alpha, g.beta);
      if (kb.last && g.fuse_epilogue) v = gemm_epilogue_value(g.epilogue, v, m, n, g.N);
      *c = v;
    }
  }
};

// The split's second pass: element (i, j)'s chains added onto C in K-block order.
DROPNET_HD float gemm_combine(const GemmArgs& a, int64_t i, int64_t j, const float* c) {
  float v = a.beta == 0.f ? 0.f : *c;
  for (int64_t s = 0; s < a.splits; ++s)
    v = gemm_block_writeback(s == 0, v, a.chains[(s * a.M + i) * a.N + j], a.alpha, a.beta);
  return v;
}

// Items = the M·N elements: combine, then the epilogue (without mask bits) when there is one.
DROPNET_HD void gemm_combine_thread(const GemmArgs& a, const Grid& g, uint32_t block, uint32_t thread) {
  for (int64_t e = grid_first_item(g, block, thread); e < a.M * a.N; e += grid_stride(g)) {
    const int64_t i = e / a.N, j = e - i * a.N;
    float* c = a.C + i * a.ldc + j;
    const float v = gemm_combine(a, i, j, c);
    *c = a.has_epilogue ? gemm_epilogue_value(a.epilogue, v, i, j, a.N) : v;
  }
}

// Items = the mask words of the M × N output (an epilogue with mask bits): the word pass of
// kernels/cuda/activation_body.h on the combined values.
DROPNET_HD void gemm_combine_word_thread(const GemmArgs& a, const Grid& g, uint32_t block, uint32_t thread) {
  const WordRange words = epilogue_words(0, a.M, a.N);
  for (int64_t w = grid_first_item(g, block, thread); w < words.count; w += grid_stride(g))
    epilogue_word_of(a.epilogue, 0, a.M, a.N, a.C, a.ldc, words.first + w,
                     [&](int64_t i, int64_t j, const float* c) { return gemm_combine(a, i, j, c); });
}

// In place: one tile walks all of K. Split: one tile per K block.
template <class S>
TileGemmLayout gemm_layout(int64_t M, int64_t N, int64_t K, bool split = false) {
  const int64_t kb = gemm_k_block(K);
  return tile_gemm_layout<S>(1, M, N, K, split ? kb : K, kb);
}

// Below this many 64 × 64 tiles a product takes 32 × 32 tiles (four times the blocks): the MLP's
// products (128 × 300: 10 large tiles) would otherwise leave most of a GPU's SMs idle. A guess until
// a GPU has timed both (tools/gpu_check.sh); the tile never changes the bits.
constexpr int64_t kLargeTilesFrom = 128;
inline bool gemm_small_tiles(int64_t M, int64_t N) {
  return ((M + Tile64::kM - 1) / Tile64::kM) * ((N + Tile64::kN - 1) / Tile64::kN) < kLargeTilesFrom;
}

// At most this many K blocks (K <= 4096) are split: each costs a copy of C in the workspace, and
// 16 times a small product's tiles already fill a GPU. A longer K runs in place (the chains must be
// added onto C one block after the other, so blocks cannot be grouped without changing the bits).
constexpr int64_t kMaxSplitBlocks = 16;

// Floats of workspace with which sgemm splits the product over its K blocks: a small product
// (gemm_small_tiles) of 2 to kMaxSplitBlocks K blocks, blocks × M × N; otherwise 0 (no split).
inline int64_t gemm_workspace_floats(int64_t M, int64_t N, int64_t K) {
  if (M <= 0 || N <= 0 || K <= 0 || !gemm_small_tiles(M, N)) return 0;
  const int64_t blocks = (K + gemm_k_block(K) - 1) / gemm_k_block(K);
  return blocks >= 2 && blocks <= kMaxSplitBlocks ? blocks * M * N : 0;
}

// What sgemm launches for one call (kernels/cuda/gemm.cu), built here so that the launch and the
// host tests describe the same work.
struct GemmPlan {
  bool scale = false;          // gemm_scale_thread over the M·N elements (K == 0 or alpha == 0, beta != 1)
  bool tiles = false;          // tile_gemm_block<Tile32 or Tile64> with GemmTileOp<trans_a, trans_b, split>{args}
  bool small_tiles = false;    // Tile32 (gemm_small_tiles), else Tile64
  bool combine = false;        // split: then gemm_combine_thread over the elements ...
  bool combine_words = false;  // ... or gemm_combine_word_thread over the mask words
  bool epilogue_pass = false;  // then cuda::apply_epilogue(epilogue, 0, M, N, C, ldc)
  GemmArgs args;
  TileGemmLayout layout;
};

inline GemmPlan gemm_plan(int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda, const float* B,
                          int64_t ldb, float beta, float* C, int64_t ldc, const GemmEpilogue* epilogue,
                          float* workspace = nullptr, int64_t workspace_floats = 0) {
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
    a.has_epilogue = true;
  }
  const bool fusable = !epilogue || gemm_epilogue_fusable(*epilogue);
  const int64_t want = p.tiles ? gemm_workspace_floats(M, N, K) : 0;
  const bool split = want > 0 && workspace != nullptr && workspace_floats >= want;
  p.small_tiles = gemm_small_tiles(M, N);
  p.layout = p.small_tiles ? gemm_layout<Tile32>(M, N, K, split) : gemm_layout<Tile64>(M, N, K, split);
  if (split) {
    a.chains = workspace;
    a.splits = p.layout.splits;
    p.combine = fusable;
    p.combine_words = !fusable;
  } else {
    a.fuse_epilogue = p.tiles && epilogue && fusable;
    p.epilogue_pass = epilogue && !a.fuse_epilogue;
  }
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
