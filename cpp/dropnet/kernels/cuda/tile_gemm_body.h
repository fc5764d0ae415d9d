// The tiled block program behind every CUDA product, `__host__ __device__` and free of CUDA
// headers, so the C++ tests run it on the host block by block, thread by thread
// (cpp/tests/cuda_sim.h): out[m, n] = Σ_r A[m, r]·B[r, n] per group, with operands an Op reads
// on the fly (the convolution's implicit GEMMs, kernels/cuda/conv2d_body.h; the dense GEMM,
// kernels/cuda/gemm_body.h).
//
// Launch layout (fixed, never a function of the GPU): kTileThreads = 256-thread blocks, one
// kTileM × kTileN output tile per block at a time (blocks = min(tiles, kMaxBlocks), a block
// striding over tiles beyond that); tiles numbered ((split·groups + group)·m_tiles + m_tile)·n_tiles
// + n_tile. Thread t (tx = t mod 16, ty = t / 16) owns the tile's rows ty + 16·i and columns
// tx + 16·j, i, j < 4: 16 accumulators in registers. The reduction runs in slices of at most
// kTileK: a phase where the block loads the A (kTileK × 64) and B (kTileK × 64) slices into shared
// memory, a barrier, a phase where each thread does one fmaf per owned output per r of the slice,
// a barrier.
//
// Order: a tile's reduction range [r0, r1) (one split of R) is cut into blocks of k_block from r0
// (the last one shorter); within a block every output is one fmaf chain from +0 over its r in
// ascending order (the tail is cut, never padded with zero terms), and at the end of each block
// the Op receives the chain (op.store(tile, m, n, acc, KBlock{first, last})) and the chain
// restarts from +0. Slices never straddle a block. So an output's bits depend on the problem alone:
// every grid, every thread order and every GPU give the same bytes.
#pragma once
#include <cstdint>

#include "dropnet/core/philox.h"                // DROPNET_HD, DROPNET_UNROLL
#include "dropnet/kernels/cuda/dropout_body.h"  // Grid, kMaxBlocks

// The tile loops over a thread's 4 × 4 outputs, unrolled so its accumulators stay in registers.
// nvcc's device pass knows `unroll`; its host pass passes pragmas to a host compiler that may not.
#if defined(__CUDA_ARCH__)
#define DROPNET_TILE_UNROLL _Pragma("unroll")
#elif defined(__CUDACC__)
#define DROPNET_TILE_UNROLL
#else
#define DROPNET_TILE_UNROLL DROPNET_UNROLL
#endif

namespace dropnet {
namespace cuda {

constexpr uint32_t kTileThreads = 256;
constexpr int kTileM = 64, kTileN = 64, kTileK = 16;
constexpr int kTilePerThread = 4;  // rows and columns per thread: 16 × 16 threads
constexpr int kTileAccumulators = kTilePerThread * kTilePerThread;
constexpr int kTileSharedStride = kTileM + 1;  // a slice row, padded so column writes spread over the banks
constexpr int kTileSharedFloats = 2 * kTileK * kTileSharedStride;

static_assert(kTileM == kTileN && kTileM == 16 * kTilePerThread, "tiles: 16 threads × 4 per side");
static_assert(kTileThreads == 16 * 16, "one thread per (ty, tx)");

// The product of one launch: per group an M × Ncols output, reduction [0, R) cut into `splits`
// chunks of `split_len` (separate tiles, stored separately), each chunk into blocks of `k_block`
// (one tile, chains restarting at each block).
struct TileGemmLayout {
  int64_t groups = 1, M = 0, Ncols = 0, R = 0;
  int64_t split_len = 0, splits = 1, k_block = 0;
  int64_t m_tiles = 0, n_tiles = 0;
  DROPNET_HD int64_t tiles() const { return splits * groups * m_tiles * n_tiles; }
};

inline TileGemmLayout tile_gemm_layout(int64_t groups, int64_t M, int64_t Ncols, int64_t R, int64_t split_len,
                                       int64_t k_block) {
  TileGemmLayout L;
  L.groups = groups;
  L.M = M;
  L.Ncols = Ncols;
  L.R = R;
  L.split_len = split_len;
  L.splits = R > 0 ? (R + split_len - 1) / split_len : 0;
  L.k_block = k_block;
  L.m_tiles = (M + kTileM - 1) / kTileM;
  L.n_tiles = (Ncols + kTileN - 1) / kTileN;
  return L;
}

inline Grid tile_grid(const TileGemmLayout& L) {
  const int64_t tiles = L.tiles();
  return Grid{static_cast<uint32_t>(tiles < 1 ? 1 : (tiles > kMaxBlocks ? kMaxBlocks : tiles)), kTileThreads};
}

struct GemmTile {
  int64_t split, group, m0, n0, r0, r1;
};

DROPNET_HD GemmTile gemm_tile(const TileGemmLayout& L, int64_t tile) {
  const int64_t nt = tile % L.n_tiles, rest = tile / L.n_tiles;
  const int64_t mt = rest % L.m_tiles, rest2 = rest / L.m_tiles;
  const int64_t group = rest2 % L.groups, split = rest2 / L.groups;
  const int64_t r0 = split * L.split_len, r_end = r0 + L.split_len;
  return GemmTile{split, group, mt * kTileM, nt * kTileN, r0, r_end < L.R ? r_end : L.R};
}

// Where a finished chain sits in its tile's reduction range.
struct KBlock {
  bool first, last;
};

// Element e of a kTileK × 64 operand slice as thread `t` loads it: (kk, mn) with kk the row
// (reduction) and mn the column; along_r puts consecutive e on consecutive kk.
struct SliceCell {
  int kk, mn;
};
DROPNET_HD SliceCell slice_cell(int e, bool along_r) {
  return along_r ? SliceCell{e % kTileK, e / kTileK} : SliceCell{e / kTileM, e % kTileM};
}

// One output tile after another, in the order of the file comment. Op: load_a(group, m, r),
// load_b(group, r, n), store(tile, m, n, acc, KBlock), and kAAlongR / kBAlongR (whether the
// operand is contiguous along r in memory, so consecutive threads load consecutive r and a warp's
// loads coalesce). shared: kTileSharedFloats floats of the block's shared memory; regs.at(t):
// thread t's kTileAccumulators registers.
template <class Op, class Block, class Regs>
DROPNET_HD void tile_gemm_block(Block& blk, const Op& op, const TileGemmLayout& L, float* shared, Regs& regs) {
  float* As = shared;                                // As[kk·stride + m]
  float* Bs = shared + kTileK * kTileSharedStride;  // Bs[kk·stride + n]
  const int64_t tiles = L.tiles();
  for (int64_t tile_index = blk.index; tile_index < tiles; tile_index += blk.count) {
    const GemmTile tile = gemm_tile(L, tile_index);
    int64_t block_start = tile.r0;
    for (int64_t r0 = tile.r0; r0 < tile.r1;) {
      const int64_t block_end = block_start + L.k_block < tile.r1 ? block_start + L.k_block : tile.r1;
      const int steps = static_cast<int>(block_end - r0 < kTileK ? block_end - r0 : kTileK);
      blk.phase([&](uint32_t t) {
        if (r0 == block_start) {
          float* acc = regs.at(t);
          DROPNET_TILE_UNROLL
          for (int u = 0; u < kTileAccumulators; ++u) acc[u] = 0.f;
        }
        for (int e = static_cast<int>(t); e < kTileK * kTileM; e += static_cast<int>(blk.threads)) {
          const SliceCell ca = slice_cell(e, Op::kAAlongR);
          const int64_t m = tile.m0 + ca.mn;
          As[ca.kk * kTileSharedStride + ca.mn] = ca.kk < steps && m < L.M ? op.load_a(tile.group, m, r0 + ca.kk) : 0.f;
          const SliceCell cb = slice_cell(e, Op::kBAlongR);
          const int64_t n = tile.n0 + cb.mn;
          Bs[cb.kk * kTileSharedStride + cb.mn] =
              cb.kk < steps && n < L.Ncols ? op.load_b(tile.group, r0 + cb.kk, n) : 0.f;
        }
      });
      const bool block_done = r0 + steps == block_end;
      const KBlock kb{block_start == tile.r0, block_end == tile.r1};
      blk.phase([&](uint32_t t) {
        float* acc = regs.at(t);
        const int tx = static_cast<int>(t % 16), ty = static_cast<int>(t / 16);
        for (int kk = 0; kk < steps; ++kk) {
          float a[kTilePerThread], b[kTilePerThread];
          DROPNET_TILE_UNROLL
          for (int i = 0; i < kTilePerThread; ++i) a[i] = As[kk * kTileSharedStride + ty + 16 * i];
          DROPNET_TILE_UNROLL
          for (int j = 0; j < kTilePerThread; ++j) b[j] = Bs[kk * kTileSharedStride + tx + 16 * j];
          DROPNET_TILE_UNROLL
          for (int i = 0; i < kTilePerThread; ++i) {
            DROPNET_TILE_UNROLL
            for (int j = 0; j < kTilePerThread; ++j)
              acc[i * kTilePerThread + j] = fmaf(a[i], b[j], acc[i * kTilePerThread + j]);
          }
        }
        if (!block_done) return;
        DROPNET_TILE_UNROLL
        for (int i = 0; i < kTilePerThread; ++i) {
          DROPNET_TILE_UNROLL
          for (int j = 0; j < kTilePerThread; ++j) {
            const int64_t m = tile.m0 + ty + 16 * i, n = tile.n0 + tx + 16 * j;
            if (m < L.M && n < L.Ncols) op.store(tile, m, n, acc[i * kTilePerThread + j], kb);
          }
        }
      });
      r0 += steps;
      if (block_done) block_start = block_end;
    }
  }
}

}  // namespace cuda
}  // namespace dropnet
