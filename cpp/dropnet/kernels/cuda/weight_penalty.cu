// CUDA weight penalties: the chunk kernel is the block program weight_penalty_block
// (kernels/cuda/weight_penalty_body.h) run by DeviceBlock over weight_penalty_grid(n); the total is
// penalty_total_thread, one thread. Compiled with --fmad=false --ftz=true (CMakeLists.txt).
#include "dropnet/kernels/cuda/launch.cuh"
#include "dropnet/kernels/cuda/weight_penalty.h"
#include "dropnet/kernels/cuda/weight_penalty_body.h"

namespace dropnet {
namespace cuda {
namespace {

__global__ void weight_penalty_kernel(WeightPenaltyArgs a) {
  __shared__ double a1[kThreadsPerBlock], a2[kThreadsPerBlock];
  DeviceBlock blk;
  weight_penalty_block(blk, a, a1, a2);
}
__global__ void penalty_total_kernel(double* block_sums, int64_t chunks) {
  penalty_total_thread(block_sums, chunks, blockIdx.x, threadIdx.x);
}

}  // namespace

void weight_penalty_grad(int64_t n, const float* w, float* g, const float* mask, float l1, float l2,
                         double* block_sums, Stream cuda_stream) {
  const WeightPenaltyArgs a = weight_penalty_args(n, w, g, mask, l1, l2, block_sums);
  const int64_t chunks = penalty_blocks(n);
  if (chunks > 0) {
    const Grid grid = weight_penalty_grid(n);
    weight_penalty_kernel<<<grid.blocks, grid.threads, 0, cuda_stream>>>(a);
    check_launch("weight_penalty_grad");
  }
  penalty_total_kernel<<<1, 1, 0, cuda_stream>>>(block_sums, chunks);
  check_launch("weight_penalty_grad (total)");
}

}  // namespace cuda
}  // namespace dropnet
