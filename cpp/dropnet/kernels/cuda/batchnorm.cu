// CUDA batch norm: each __global__ kernel is one block program of kernels/cuda/batchnorm_body.h
// run by DeviceBlock, over batchnorm_grid(C). Compiled with --fmad=false --ftz=true and IEEE
// division / square root (CMakeLists.txt), the CPU's floating-point rules.
#include "dropnet/core/error.h"
#include "dropnet/kernels/cuda/batchnorm.h"
#include "dropnet/kernels/cuda/batchnorm_body.h"
#include "dropnet/kernels/cuda/launch.cuh"

namespace dropnet {
namespace cuda {
namespace {

__global__ void batchnorm_training_kernel(BatchNormForwardArgs a) {
  __shared__ double a1[kThreadsPerBlock], a2[kThreadsPerBlock];
  DeviceBlock blk;
  batchnorm_forward_training_block(blk, a, a1, a2);
}

__global__ void batchnorm_inference_kernel(BatchNormInferenceArgs a) {
  DeviceBlock blk;
  batchnorm_forward_inference_block(blk, a);
}

__global__ void batchnorm_backward_kernel(BatchNormBackwardArgs a) {
  __shared__ double a1[kThreadsPerBlock], a2[kThreadsPerBlock];
  DeviceBlock blk;
  batchnorm_backward_block(blk, a, a1, a2);
}

}  // namespace

void batchnorm_forward_training(const float* x, int64_t N, int64_t C, int64_t HW, const float* gamma,
                                const float* beta, float eps, float momentum, float* running_mean,
                                float* running_var, bool relu, float* y, float* saved_mean, float* saved_invstd,
                                Stream cuda_stream) {
  DROPNET_CHECK(N * HW >= 2, "batch_norm: training needs more than 1 value per channel, got N*H*W = ", N * HW);
  if (C <= 0) return;
  const BatchNormForwardArgs a{x, {N, C, HW}, gamma, beta, eps, momentum, running_mean, running_var, relu, y,
                               saved_mean, saved_invstd};
  const Grid g = batchnorm_grid(C);
  batchnorm_training_kernel<<<g.blocks, g.threads, 0, cuda_stream>>>(a);
  check_launch("batchnorm_forward_training");
}

void batchnorm_forward_inference(const float* x, int64_t N, int64_t C, int64_t HW, const float* gamma,
                                 const float* beta, const float* running_mean, const float* running_var, float eps,
                                 bool relu, float* y, float* saved_invstd, Stream cuda_stream) {
  if (C <= 0) return;
  const BatchNormInferenceArgs a{x, {N, C, HW}, gamma, beta, running_mean, running_var, eps, relu, y, saved_invstd};
  const Grid g = batchnorm_grid(C);
  batchnorm_inference_kernel<<<g.blocks, g.threads, 0, cuda_stream>>>(a);
  check_launch("batchnorm_forward_inference");
}

void batchnorm_backward(const float* dy, const float* x, const float* y_relu, int64_t N, int64_t C, int64_t HW,
                        const float* gamma, const float* mean, const float* invstd, bool training, float* dx,
                        float* dgamma, float* dbeta, Stream cuda_stream) {
  if (N * HW * C <= 0) return;  // no element: dx is empty, nothing adds to dgamma / dbeta
  const BatchNormBackwardArgs a{dy, x, y_relu, {N, C, HW}, gamma, mean, invstd, training, dx, dgamma, dbeta};
  const Grid g = batchnorm_grid(C);
  batchnorm_backward_kernel<<<g.blocks, g.threads, 0, cuda_stream>>>(a);
  check_launch("batchnorm_backward");
}

}  // namespace cuda
}  // namespace dropnet
