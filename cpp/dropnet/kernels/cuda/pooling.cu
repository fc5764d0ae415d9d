// CUDA pooling: each __global__ kernel is one call of its per-thread body
// (kernels/cuda/pooling_body.h) with this thread's (blockIdx.x, threadIdx.x), over grid_for(items).
// Compiled with --fmad=false --ftz=true and IEEE division (CMakeLists.txt).
#include "dropnet/kernels/cuda/launch.cuh"
#include "dropnet/kernels/cuda/pooling.h"
#include "dropnet/kernels/cuda/pooling_body.h"

namespace dropnet {
namespace cuda {
namespace {

__global__ void pool_forward_kernel(PoolArgs a, Grid g) { pool_forward_thread(a, g, blockIdx.x, threadIdx.x); }
__global__ void pool_backward_kernel(PoolArgs a, Grid g) { pool_backward_thread(a, g, blockIdx.x, threadIdx.x); }
__global__ void global_avg_forward_kernel(const float* x, int64_t planes, int64_t hw, float* y, Grid g) {
  global_avg_forward_thread(x, planes, hw, y, g, blockIdx.x, threadIdx.x);
}
__global__ void global_avg_backward_kernel(const float* dy, int64_t planes, int64_t hw, float* dx, Grid g) {
  global_avg_backward_thread(dy, planes, hw, dx, g, blockIdx.x, threadIdx.x);
}

void run_pool(const PoolArgs& a, bool forward, Stream s, const char* what) {
  const int64_t items = a.planes * (forward ? a.g.OH * a.g.OW : a.g.H * a.g.W);
  if (items <= 0) return;
  const Grid g = grid_for(items);
  if (forward) pool_forward_kernel<<<g.blocks, g.threads, 0, s>>>(a, g);
  else pool_backward_kernel<<<g.blocks, g.threads, 0, s>>>(a, g);
  check_launch(what);
}

}  // namespace

void max_pool2d_forward(const float* x, int64_t planes, const PoolGeometry& g, float* y, int32_t* indices,
                        Stream cuda_stream) {
  run_pool(PoolArgs{PoolKind::max, g, planes, true, x, nullptr, y, indices}, true, cuda_stream, "max_pool2d_forward");
}

void max_pool2d_backward(const float* dy, const int32_t* indices, int64_t planes, const PoolGeometry& g, float* dx,
                         Stream cuda_stream) {
  run_pool(PoolArgs{PoolKind::max, g, planes, true, dy, indices, dx, nullptr}, false, cuda_stream,
           "max_pool2d_backward");
}

void avg_pool2d_forward(const float* x, int64_t planes, const PoolGeometry& g, bool count_include_pad, float* y,
                        Stream cuda_stream) {
  run_pool(PoolArgs{PoolKind::avg, g, planes, count_include_pad, x, nullptr, y, nullptr}, true, cuda_stream,
           "avg_pool2d_forward");
}

void avg_pool2d_backward(const float* dy, int64_t planes, const PoolGeometry& g, bool count_include_pad, float* dx,
                         Stream cuda_stream) {
  run_pool(PoolArgs{PoolKind::avg, g, planes, count_include_pad, dy, nullptr, dx, nullptr}, false, cuda_stream,
           "avg_pool2d_backward");
}

void global_avg_pool2d_forward(const float* x, int64_t planes, int64_t hw, float* y, Stream cuda_stream) {
  if (planes <= 0) return;
  const Grid g = grid_for(planes);
  global_avg_forward_kernel<<<g.blocks, g.threads, 0, cuda_stream>>>(x, planes, hw, y, g);
  check_launch("global_avg_pool2d_forward");
}

void global_avg_pool2d_backward(const float* dy, int64_t planes, int64_t hw, float* dx, Stream cuda_stream) {
  if (planes * hw <= 0) return;
  const Grid g = grid_for(planes * hw);
  global_avg_backward_kernel<<<g.blocks, g.threads, 0, cuda_stream>>>(dy, planes, hw, dx, g);
  check_launch("global_avg_pool2d_backward");
}

}  // namespace cuda
}  // namespace dropnet
