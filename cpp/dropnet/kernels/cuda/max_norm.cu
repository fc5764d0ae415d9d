// CUDA max-norm: the kernel is the block program max_norm_block (kernels/cuda/max_norm_body.h) run
// by DeviceBlock over max_norm_grid(rows). Compiled with --fmad=false --ftz=true and IEEE division
// and square root (CMakeLists.txt).
#include "dropnet/kernels/cuda/launch.cuh"
#include "dropnet/kernels/cuda/max_norm.h"
#include "dropnet/kernels/cuda/max_norm_body.h"

namespace dropnet {
namespace cuda {
namespace {

__global__ void max_norm_kernel(MaxNormArgs a) {
  __shared__ double a1[kThreadsPerBlock];
  DeviceBlock blk;
  max_norm_block(blk, a, a1);
}

}  // namespace

void max_norm_rows(float* w, int64_t rows, int64_t cols, float max_norm, Stream cuda_stream) {
  if (rows <= 0 || cols <= 0) return;
  const Grid g = max_norm_grid(rows);
  max_norm_kernel<<<g.blocks, g.threads, 0, cuda_stream>>>(MaxNormArgs{w, rows, cols, max_norm});
  check_launch("max_norm_rows");
}

}  // namespace cuda
}  // namespace dropnet
