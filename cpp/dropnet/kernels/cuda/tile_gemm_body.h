// The tiled block program behind every CUDA product, `__host__ __device__` and free of CUDA
// headers, so the C++ tests run it on the host block by block, thread by thread
// (cpp/tests/cuda_sim.h): out[m, n] = Σ_r A[m, r]·B[r, n] per group, with operands an Op reads
// on the fly (the convolution's implicit GEMMs, kernels/cuda/conv2d_body.h; the dense GEMM,
// kernels/cuda/gemm_body.h).
//
// Launch layout, for a tile shape S (TileShape: Tile64, the convolution's and large products';
// Tile32, small products'): S::kThreads-thread blocks, one S::kM × S::kN output tile per block at a
// time (blocks = min(tiles, kMaxBlocks), a block striding over tiles beyond that); tiles numbered
// ((split·groups + group)·m_tiles + m_tile)·n_tiles + n_tile. With s = S::kSide threads per side,
// thread t (tx = t mod s, ty = t / s) owns the tile's rows ty + s·i and columns tx + s·j,
// i, j < 4: 16 accumulators in registers. The reduction runs in slices of at most kTileK = 16: a
// phase where the block loads the A (16 × kM) and B (16 × kN) slices into shared memory, a
// barrier, a phase where each thread does one fmaf per owned output per r of the slice, a barrier.
// The tile shape changes which thread computes an output, never how: the bits are the same.
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

constexpr int kTileK = 16;
constexpr int kTilePerThread = 4;  // rows and columns per thread
constexpr int kTileAccumulators = kTilePerThread * kTilePerThread;

// A square output tile of kM = kN = 4·kSide, kSide × kSide threads.
template <int Side>
struct TileShape {
  static constexpr int kSide = Side, kM = kTilePerThread * Side, kN = kTilePerThread * Side;
  static constexpr uint32_t kThreads = static_cast<uint32_t>(Side * Side);
  static constexpr int kStride = kM + 1;  // a slice row, padded so column writes spread over the banks
  static constexpr int kSharedFloats = 2 * kTileK * kStride;
};
using Tile64 = TileShape<16>;  // 64 × 64, 256 threads
using Tile32 = TileShape<8>;   // 32 × 32, 64 threads: 4 times the blocks for a small product

// The large tile's constants, which the convolution uses.
constexpr uint32_t kTileThreads = Tile64::kThreads;
constexpr int kTileSharedFloats = Tile64::kSharedFloats;

// The product of one launch: per group an M × Ncols output, reduction [0, R) cut into `splits`
// chunks of `split_len` (separate tiles, stored separately), each chunk into blocks of `k_block`
// (one tile, chains restarting at each block).
struct TileGemmLayout {
  int64_t groups = 1, M = 0, Ncols = 0, R = 0;
  int64_t split_len = 0, splits = 1, k_block = 0;
  int64_t m_tiles = 0, n_tiles = 0;
  DROPNET_HD int64_t tiles() const { return splits * groups * m_tiles * n_tiles; }
};

template <class S = Tile64>
TileGemmLayout tile_gemm_layout(int64_t groups, int64_t M, int64_t Ncols, int64_t R, int64_t split_len,
                                int64_t k_block) {
  TileGemmLayout L;
  L.groups = groups;
  L.M = M;
  L.Ncols = Ncols;
  L.R = R;
  L.split_len = split_len;
  L.splits = R > 0 ? (R + split_len - 1) / split_len : 0;
  L.k_block = k_block;
  L.m_tiles = (M + S::kM - 1) / S::kM;
  L.n_tiles = (Ncols + S::kN - 1) / S::kN;
  return L;
}

template <class S = Tile64>
Grid tile_grid(const TileGemmLayout& L) {
  const int64_t tiles = L.tiles();
  return Grid{static_cast<uint32_t>(tiles < 1 ? 1 : (tiles > kMaxBlocks ? kMaxBlocks : tiles)), S::kThreads};
}

struct GemmTile {
  int64_t split, group, m0, n0, r0, r1;
};

template <class S>
DROPNET_HD GemmTile gemm_tile(const TileGemmLayout& L, int64_t tile) {
  const int64_t nt = tile % L.n_tiles, rest = tile / L.n_tiles;
  const int64_t mt = rest % L.m_tiles, rest2 = rest / L.m_tiles;
  const int64_t group = rest2 % L.groups, split = rest2 / L.groups;
  const int64_t r0 = split * L.split_len, r_end = r0 + L.split_len;
  return GemmTile{split, group, mt * S::kM, nt * S::kN, r0, r_end < L.R ? r_end : L.R};
}

// Where a finished chain sits in its tile's reduction range.
struct KBlock {
  bool first, last;
};

// Element e of a kTileK × width operand slice as thread `t` loads it: (kk, mn) with kk the row
// (reduction) and mn the column; along_r puts consecutive e on consecutive kk.
struct SliceCell {
  int kk, mn;
};
DROPNET_HD SliceCell slice_cell(int e, bool along_r, int width) {
  return along_r ? SliceCell{e % kTileK, e / kTileK} : SliceCell{e / width, e % width};
}

// One output tile after another, in the order of the file comment, with tiles of shape S (the
// layout made by tile_gemm_layout<S>). Op: load_a(group, m, r), load_b(group, r, n),
// store(tile, m, n, acc, KBlock), and kAAlongR / kBAlongR (whether the operand is contiguous along
// r in memory, so consecutive threads load consecutive r and a warp's loads coalesce). shared:
// S::kSharedFloats floats of the block's shared memory; regs.at(t): thread t's kTileAccumulators
// registers.
template <class S = Tile64, class Op, class Block, class Regs>
DROPNET_HD void tile_gemm_block(Block& blk, const Op& op, const TileGemmLayout& L, float* shared, Regs& regs) {
  constexpr int kSide = S::kSide, kStride = S::kStride;
  float* As = shared;                      // As[kk·stride + m]
  float* Bs = shared + kTileK * kStride;  // Bs[kk·stride + n]
  const int64_t tiles = L.tiles();
  for (int64_t tile_index = blk.index; tile_index < tiles; tile_index += blk.count) {
    const GemmTile tile = gemm_tile<S>(L, tile_index);
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
        for (int e = static_cast<int>(t); e < kTileK * S::kM; e += static_cast<int>(blk.threads)) {
          const SliceCell ca = slice_cell(e, Op::kAAlongR, S::kM);
          const int64_t m = tile.m0 + ca.mn;
          As[ca.kk * kStride + ca.mn] = ca.kk < steps && m < L.M ? op.load_a(tile.group, m, r0 + ca.kk) : 0.f;
          const SliceCell cb = slice_cell(e, Op::kBAlongR, S::kN);
          const int64_t n = tile.n0 + cb.mn;
          Bs[cb.kk * kStride + cb.mn] = cb.kk < steps && n < L.Ncols ? op.load_b(tile.group, r0 + cb.kk, n) : 0.f;
        }
      });
      const bool block_done = r0 + steps == block_end;
      const KBlock kb{block_start == tile.r0, block_end == tile.r1};
      blk.phase([&](uint32_t t) {
        float* acc = regs.at(t);
        const int tx = static_cast<int>(t % kSide), ty = static_cast<int>(t / kSide);
        for (int kk = 0; kk < steps; ++kk) {
          float a[kTilePerThread], b[kTilePerThread];
          DROPNET_TILE_UNROLL
          for (int i = 0; i < kTilePerThread; ++i) a[i] = As[kk * kStride + ty + kSide * i];
          DROPNET_TILE_UNROLL
          for (int j = 0; j < kTilePerThread; ++j) b[j] = Bs[kk * kStride + tx + kSide * j];
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
            const int64_t m = tile.m0 + ty + kSide * i, n = tile.n0 + tx + kSide * j;
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
