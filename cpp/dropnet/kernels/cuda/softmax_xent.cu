// CUDA softmax cross-entropy: each __global__ kernel is one call of its per-thread body
// (kernels/cuda/softmax_xent_body.h) with this thread's (blockIdx.x, threadIdx.x). Compiled with
// --fmad=false --ftz=true and IEEE division (CMakeLists.txt).
#include "dropnet/kernels/cuda/launch.cuh"
#include "dropnet/kernels/cuda/softmax_xent.h"
#include "dropnet/kernels/cuda/softmax_xent_body.h"

namespace dropnet {
namespace cuda {
namespace {

__global__ void softmax_xent_kernel(SoftmaxXentArgs a, Grid g) { softmax_xent_thread(a, g, blockIdx.x, threadIdx.x); }

void run(const SoftmaxXentArgs& a, Stream s, const char* what) {
  if (a.rows <= 0) return;
  const Grid g = grid_for(a.rows);
  softmax_xent_kernel<<<g.blocks, g.threads, 0, s>>>(a, g);
  check_launch(what);
}

}  // namespace

void softmax_xent_sparse(const float* logits, const int64_t* labels, int64_t rows, int64_t classes, float grad_scale,
                         float* loss, float* d_logits, Stream cuda_stream) {
  run(SoftmaxXentArgs{logits, labels, nullptr, rows, classes, grad_scale, loss, d_logits}, cuda_stream,
      "softmax_xent_sparse");
}

void softmax_xent_dense(const float* logits, const float* targets, int64_t rows, int64_t classes, float grad_scale,
                        float* loss, float* d_logits, Stream cuda_stream) {
  run(SoftmaxXentArgs{logits, nullptr, targets, rows, classes, grad_scale, loss, d_logits}, cuda_stream,
      "softmax_xent_dense");
}

}  // namespace cuda
}  // namespace dropnet
