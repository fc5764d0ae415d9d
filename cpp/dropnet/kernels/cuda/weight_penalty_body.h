// Per-thread bodies of the CUDA weight penalties (kernels/cuda/weight_penalty.cu) as block programs
// (kernels/cuda/block_body.h), `__host__ __device__` and free of CUDA headers; the C++ tests run
// them block by block, thread by thread, and compare with cpu::weight_penalty_grad.
//
// Launch geometry: the CPU's chunks of kPenaltyBlock elements (core/optimizer_element.h); one
// block of kThreadsPerBlock threads per chunk, blocks = min(chunks, kMaxBlocks), block b taking
// chunks b, b + blocks, ...
// Thread t owns the chunk's elements i ≡ t (mod threads): it finishes their gradient with the
// optimizer's element function (penalty_segment_element, the CPU's penalty_grad_element) and sums
// w² and |w| over them in double in ascending i; block_tree_sum adds the partials pairwise and
// thread 0 writes the chunk's l2·Σw² + l1·Σ|w| to block_sums[chunk]. A second launch, one thread
// (penalty_total_thread), adds the chunk sums in chunk order into block_sums[chunks], as the CPU
// does. The gradient bits are the CPU's; a chunk's sum differs from the CPU's sequential one only
// in the order of its double additions. Every output has one writer: no atomics.
#pragma once
#include <cmath>
#include <cstdint>

#include "dropnet/kernels/cuda/block_body.h"
#include "dropnet/kernels/cuda/optimizer_body.h"  // OptimizerSegment, penalty_segment_element

namespace dropnet {
namespace cuda {

// seg: w, g, mask (or null), n, l1, l2; block_sums: penalty_blocks(n) + 1 doubles.
struct WeightPenaltyArgs {
  OptimizerSegment seg;
  double* block_sums = nullptr;
};

// The launch's arguments, as the .cu file and the simulated device build them.
inline WeightPenaltyArgs weight_penalty_args(int64_t n, const float* w, float* g, const float* mask, float l1,
                                             float l2, double* block_sums) {
  WeightPenaltyArgs a;
  a.seg.w = const_cast<float*>(w);  // read only: the penalty writes g
  a.seg.g = g;
  a.seg.mask = mask;
  a.seg.n = n;
  a.seg.l1 = l1;
  a.seg.l2 = l2;
  a.block_sums = block_sums;
  return a;
}

inline Grid weight_penalty_grid(int64_t n) {
  const int64_t chunks = penalty_blocks(n);
  const int64_t blocks = chunks < 1 ? 1 : (chunks > kMaxBlocks ? kMaxBlocks : chunks);
  return Grid{static_cast<uint32_t>(blocks), kThreadsPerBlock};
}

// a1, a2: `threads` doubles of the block's shared memory.
template <class Block>
DROPNET_HD void weight_penalty_block(Block& blk, const WeightPenaltyArgs& a, double* a1, double* a2) {
  const OptimizerSegment& s = a.seg;
  const bool penalised = s.l1 != 0.f || s.l2 != 0.f;
  const int64_t chunks = (s.n + kPenaltyBlock - 1) / kPenaltyBlock;
  for (int64_t c = blk.index; c < chunks; c += blk.count) {
    const int64_t first = c * kPenaltyBlock;
    const int64_t end = first + kPenaltyBlock < s.n ? first + kPenaltyBlock : s.n;
    blk.phase([&](uint32_t t) {
      double sq = 0.0, ab = 0.0;
      for (int64_t e = first + t; e < end; e += blk.threads) {
        if (penalised) {
          const float wi = s.w[e];
          sq += static_cast<double>(wi) * wi;
          ab += fabs(static_cast<double>(wi));
        }
        penalty_segment_element(s, e);  // reads w[e] and g[e] before writing g[e]
      }
      a1[t] = sq;
      a2[t] = ab;
    });
    block_tree_sum(blk, a1, a2);
    blk.phase([&](uint32_t t) {
      if (t == 0)
        a.block_sums[c] = penalised ? static_cast<double>(s.l2) * a1[0] + static_cast<double>(s.l1) * a2[0] : 0.0;
    });
  }
}

// block_sums[chunks] = Σ block_sums[0 .. chunks) in chunk order (a 1 × 1 launch).
DROPNET_HD void penalty_total_thread(double* block_sums, int64_t chunks, uint32_t block, uint32_t thread) {
  if (block != 0 || thread != 0) return;
  double total = 0.0;
  for (int64_t c = 0; c < chunks; ++c) total += block_sums[c];
  block_sums[chunks] = total;
}

}  // namespace cuda
}  // namespace dropnet
