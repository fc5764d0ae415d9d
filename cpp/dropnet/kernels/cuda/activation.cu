// CUDA epilogue and activations: each __global__ kernel is one call of its per-thread body
// (kernels/cuda/activation_body.h) with this thread's (blockIdx.x, threadIdx.x). Compiled with
// --fmad=false --ftz=true and IEEE division (CMakeLists.txt): with fmaf written out where the CPU
// fuses, the polynomials give the CPU's bits.
#include "dropnet/kernels/cuda/activation.h"
#include "dropnet/kernels/cuda/activation_body.h"
#include "dropnet/kernels/cuda/launch.cuh"

namespace dropnet {
namespace cuda {
namespace {

__global__ void epilogue_kernel(GemmEpilogue ep, int64_t row0, int64_t rows, int64_t N, float* C, int64_t ldc,
                                Grid g) {
  epilogue_thread(ep, row0, rows, N, C, ldc, g, blockIdx.x, threadIdx.x);
}
__global__ void activation_forward_kernel(ActivationKind kind, const float* x, float* y, int64_t n, float slope,
                                          Grid g) {
  activation_forward_thread(kind, x, y, n, slope, g, blockIdx.x, threadIdx.x);
}
__global__ void activation_backward_kernel(ActivationBackwardArgs a, Grid g) {
  activation_backward_thread(a, g, blockIdx.x, threadIdx.x);
}
__global__ void bias_grad_kernel(const float* d_pre, int64_t rows, int64_t cols, float* d_bias, Grid g) {
  bias_grad_thread(d_pre, rows, cols, d_bias, g, blockIdx.x, threadIdx.x);
}

}  // namespace

void apply_epilogue(const GemmEpilogue& ep, int64_t row0, int64_t rows, int64_t N, float* C, int64_t ldc,
                    Stream cuda_stream) {
  const WordRange words = epilogue_words(row0, rows, N);
  if (words.count <= 0) return;
  const Grid g = grid_for(words.count);
  epilogue_kernel<<<g.blocks, g.threads, 0, cuda_stream>>>(ep, row0, rows, N, C, ldc, g);
  check_launch("apply_epilogue");
}

void activation_forward(ActivationKind kind, const float* x, float* y, int64_t n, float slope, Stream cuda_stream) {
  if (n <= 0) return;
  const Grid g = grid_for(n);
  activation_forward_kernel<<<g.blocks, g.threads, 0, cuda_stream>>>(kind, x, y, n, slope, g);
  check_launch("activation_forward");
}

void activation_backward(ActivationKind kind, int64_t rows, int64_t cols, const float* dy, const float* y,
                         const float* pre, const uint64_t* keep_bits, float dropout_scale, float slope, float* d_pre,
                         float* d_bias, Stream cuda_stream) {
  if (rows > 0 && cols > 0) {
    const ActivationBackwardArgs a{kind, rows, cols, dy, y, pre, keep_bits, dropout_scale, slope, d_pre, d_bias};
    const Grid g = grid_for(rows * cols);
    activation_backward_kernel<<<g.blocks, g.threads, 0, cuda_stream>>>(a, g);
    check_launch("activation_backward");
  }
  if (d_bias && cols > 0) {  // no rows: the bias gradient is an empty sum, 0
    const Grid g = grid_for(cols);
    bias_grad_kernel<<<g.blocks, g.threads, 0, cuda_stream>>>(d_pre, rows > 0 ? rows : 0, cols, d_bias, g);
    check_launch("activation_backward (bias gradient)");
  }
}

}  // namespace cuda
}  // namespace dropnet
