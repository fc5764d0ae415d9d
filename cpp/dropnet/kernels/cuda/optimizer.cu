// CUDA multi-tensor optimizer steps: each __global__ kernel is one call of multi_tensor_thread
// (kernels/cuda/optimizer_body.h) with this thread's (blockIdx.x, threadIdx.x), over the launch
// geometry grid_for(total elements of the list). Compiled with --fmad=false --ftz=true and IEEE
// division / square root (CMakeLists.txt), the CPU's floating-point rules.
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#include "dropnet/kernels/cuda/optimizer.h"
#include "dropnet/kernels/cuda/optimizer_body.h"

namespace dropnet {
namespace cuda {
namespace {

__global__ void multi_tensor_kernel(SegmentUpdate kind, SgdArgs sgd, AdamArgs adam, SegmentList list, Grid g) {
  multi_tensor_thread(kind, sgd, adam, list, g, blockIdx.x, threadIdx.x);
}

void run(SegmentUpdate kind, const SgdArgs& sgd, const AdamArgs& adam, const OptimizerSegment* segments,
         int64_t count, const char* what) {
  for_each_segment_list(segments, count, [&](const SegmentList& list) {
    const Grid g = grid_for(list.start[list.count]);
    multi_tensor_kernel<<<g.blocks, g.threads>>>(kind, sgd, adam, list, g);
    const cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess)
      throw std::runtime_error(std::string("CUDA error in ") + what + ": " + cudaGetErrorString(e));
  });
}

}  // namespace

void sgd_update_multi(const SgdArgs& a, const OptimizerSegment* segments, int64_t count) {
  run(SegmentUpdate::sgd, a, AdamArgs{}, segments, count, "sgd_update_multi");
}

void adam_update_multi(const AdamArgs& a, const OptimizerSegment* segments, int64_t count) {
  run(SegmentUpdate::adam, SgdArgs{}, a, segments, count, "adam_update_multi");
}

void penalty_grad_multi(const OptimizerSegment* segments, int64_t count) {
  run(SegmentUpdate::penalty, SgdArgs{}, AdamArgs{}, segments, count, "penalty_grad_multi");
}

}  // namespace cuda
}  // namespace dropnet
