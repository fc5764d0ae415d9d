// Block programs: the kernels whose threads cooperate through shared memory (a reduction over a
// channel, a column) are written once as a `__host__ __device__` function template over a Block,
// a sequence of phases `blk.phase([&](uint32_t t) { ... })` with a barrier after each. On the GPU
// (kernels/cuda/launch.cuh) a phase is one call for this thread then __syncthreads(); in the
// host tests (cpp/tests/test_cuda_bodies.cpp) it is one call per thread of the block, in order or
// reversed, so the host runs the very code the device runs, barrier for barrier. A Block exposes
// `index` and `count` (the block and the number of blocks: blockIdx.x, gridDim.x) and `threads`
// (blockDim.x, a power of two).
//
// Reductions in a block program have one fixed shape: thread t sums the items i ≡ t (mod threads)
// in ascending i, then the tree below; it depends on the problem size and the block size (fixed
// at kThreadsPerBlock by every launch), never on the GPU, so results are the same run to run.
#pragma once
#include <cstdint>

#include "dropnet/core/philox.h"  // DROPNET_HD

namespace dropnet {
namespace cuda {

// One step of the pairwise tree over `threads` partial sums: a[t] += a[t + half] for t < half,
// half = threads / 2, threads / 4, ..., 1; a[0] ends with the total.
DROPNET_HD void tree_step(double* a, uint32_t t, uint32_t half) {
  if (t < half) a[t] += a[t + half];
}

// The whole tree over two arrays of partial sums, a phase per level.
template <class Block>
DROPNET_HD void block_tree_sum(Block& blk, double* a1, double* a2) {
  for (uint32_t half = blk.threads / 2; half > 0; half /= 2)
    blk.phase([&](uint32_t t) {
      tree_step(a1, t, half);
      tree_step(a2, t, half);
    });
}

// The tree over one array of partial sums.
template <class Block>
DROPNET_HD void block_tree_sum(Block& blk, double* a) {
  for (uint32_t half = blk.threads / 2; half > 0; half /= 2) blk.phase([&](uint32_t t) { tree_step(a, t, half); });
}

}  // namespace cuda
}  // namespace dropnet
