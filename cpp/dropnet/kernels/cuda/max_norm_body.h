// Per-thread bodies of the CUDA max-norm constraint (kernels/cuda/max_norm.cu) as block programs
// (kernels/cuda/block_body.h), `__host__ __device__` and free of CUDA headers; the C++ tests run
// them block by block, thread by thread, and compare with cpu::max_norm_rows.
//
// Launch geometry: one block of kThreadsPerBlock threads per row, blocks = min(rows, kMaxBlocks),
// block b taking rows b, b + blocks, ... Thread t owns the row's elements j ≡ t (mod threads) and
// sums their squares in double in ascending j; block_tree_sum adds the partials pairwise. Every
// thread then takes the norm from the total (IEEE sqrt, the CPU's test and the CPU's float scale)
// and scales its own elements: each element has one writer, no atomics. The norm differs from the
// CPU's sequential sum only in the order of its double additions.
#pragma once
#include <cmath>
#include <cstdint>

#include "dropnet/kernels/cuda/block_body.h"
#include "dropnet/kernels/cuda/dropout_body.h"  // Grid, kThreadsPerBlock, kMaxBlocks

namespace dropnet {
namespace cuda {

struct MaxNormArgs {
  float* w = nullptr;  // rows × cols, scaled in place
  int64_t rows = 0, cols = 0;
  float max_norm = 0.f;
};

inline Grid max_norm_grid(int64_t rows) {
  const int64_t blocks = rows < 1 ? 1 : (rows > kMaxBlocks ? kMaxBlocks : rows);
  return Grid{static_cast<uint32_t>(blocks), kThreadsPerBlock};
}

// a1: `threads` doubles of the block's shared memory.
template <class Block>
DROPNET_HD void max_norm_block(Block& blk, const MaxNormArgs& a, double* a1) {
  const double c = a.max_norm;
  for (int64_t r = blk.index; r < a.rows; r += blk.count) {
    float* row = a.w + r * a.cols;
    blk.phase([&](uint32_t t) {
      double sq = 0.0;
      for (int64_t j = t; j < a.cols; j += blk.threads) sq += static_cast<double>(row[j]) * row[j];
      a1[t] = sq;
    });
    block_tree_sum(blk, a1);
    blk.phase([&](uint32_t t) {
      const double norm = sqrt(a1[0]);
      if (norm <= c) return;
      const float scale = static_cast<float>(c / norm);
      for (int64_t j = t; j < a.cols; j += blk.threads) row[j] *= scale;
    });
  }
}

}  // namespace cuda
}  // namespace dropnet
