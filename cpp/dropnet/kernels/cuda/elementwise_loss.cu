// CUDA elementwise losses and sample weights: each __global__ kernel is one call of its per-thread
// body (kernels/cuda/elementwise_loss_body.h) with this thread's (blockIdx.x, threadIdx.x), over
// grid_for(rows). Compiled with --fmad=false --ftz=true and IEEE division (CMakeLists.txt).
#include "dropnet/kernels/cuda/elementwise_loss.h"
#include "dropnet/kernels/cuda/elementwise_loss_body.h"
#include "dropnet/kernels/cuda/launch.cuh"

namespace dropnet {
namespace cuda {
namespace {

__global__ void elementwise_loss_kernel(ElementwiseLossArgs a, Grid g) {
  elementwise_loss_thread(a, g, blockIdx.x, threadIdx.x);
}
__global__ void weight_loss_rows_kernel(const float* weights, int64_t rows, int64_t cols, float* loss, float* d,
                                        Grid g) {
  weight_loss_rows_thread(weights, rows, cols, loss, d, g, blockIdx.x, threadIdx.x);
}

}  // namespace

void elementwise_loss(ElementwiseLossKind kind, const float* y, const float* t, int64_t rows, int64_t cols,
                      float grad_scale, float delta, float* loss, float* d_y, Stream cuda_stream) {
  if (rows <= 0) return;
  const Grid g = grid_for(rows);
  elementwise_loss_kernel<<<g.blocks, g.threads, 0, cuda_stream>>>(
      ElementwiseLossArgs{kind, y, t, rows, cols, grad_scale, delta, loss, d_y}, g);
  check_launch("elementwise_loss");
}

void weight_loss_rows(const float* weights, int64_t rows, int64_t cols, float* loss, float* d, Stream cuda_stream) {
  if (rows <= 0) return;
  const Grid g = grid_for(rows);
  weight_loss_rows_kernel<<<g.blocks, g.threads, 0, cuda_stream>>>(weights, rows, cols, loss, d, g);
  check_launch("weight_loss_rows");
}

}  // namespace cuda
}  // namespace dropnet
