// CUDA twins of the batch-norm kernels (kernels/cpu/batchnorm.h): same names, same arguments and
// the same contract, with *device* pointers (scalars stay host values) and a stream (null: the
// default stream). Calls are asynchronous and throw std::runtime_error naming the call when a
// launch fails; a training forward with fewer than 2 values per channel throws ValueError, as on
// the CPU. Per-thread bodies and launch geometry: kernels/cuda/batchnorm_body.h.
//
// Bits: inference forward equals the CPU's; the training forward and the backward sum each
// channel in another order than the CPU (docs/design.md, "Device kernels"), so they agree with
// it within a tolerance, and with themselves bit for bit, run to run.
//
// Never run on a GPU yet (docs/design.md, "Device kernels").
#pragma once
#include <cstdint>

#include "dropnet/kernels/cuda/stream.h"

namespace dropnet {
namespace cuda {

void batchnorm_forward_training(const float* x, int64_t N, int64_t C, int64_t HW, const float* gamma,
                                const float* beta, float eps, float momentum, float* running_mean,
                                float* running_var, bool relu, float* y, float* saved_mean, float* saved_invstd,
                                Stream cuda_stream = nullptr);

void batchnorm_forward_inference(const float* x, int64_t N, int64_t C, int64_t HW, const float* gamma,
                                 const float* beta, const float* running_mean, const float* running_var, float eps,
                                 bool relu, float* y, float* saved_invstd, Stream cuda_stream = nullptr);

// dx overwritten (may not alias dy or x); dgamma, dbeta (C, optional) ACCUMULATED (+=).
void batchnorm_backward(const float* dy, const float* x, const float* y_relu, int64_t N, int64_t C, int64_t HW,
                        const float* gamma, const float* mean, const float* invstd, bool training, float* dx,
                        float* dgamma, float* dbeta, Stream cuda_stream = nullptr);

}  // namespace cuda
}  // namespace dropnet
