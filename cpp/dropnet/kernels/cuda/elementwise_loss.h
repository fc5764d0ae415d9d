// CUDA twins of the elementwise losses (kernels/cpu/mse_loss.h, kernels/cpu/elementwise_loss.h,
// chosen by ElementwiseLossKind, core/loss_kind.h) and of the sample weights applied after any
// loss: *device* pointers, a stream (null: the default stream); asynchronous, std::runtime_error
// naming the call when a launch fails. Each row takes the CPU's steps in the CPU's order; exp and
// log1p are CUDA's (double), so losses and gradients agree with the CPU within a tolerance and
// with themselves bit for bit, run to run. Per-thread bodies and launch geometry:
// kernels/cuda/elementwise_loss_body.h.
//
// Never run on a GPU yet (docs/design.md, "Device kernels").
#pragma once
#include <cstdint>

#include "dropnet/core/loss_kind.h"
#include "dropnet/kernels/cuda/stream.h"

namespace dropnet {
namespace cuda {

// loss[r] and (d_y optional) the gradient of grad_scale · Σ_r loss[r]; delta: huber's threshold.
void elementwise_loss(ElementwiseLossKind kind, const float* y, const float* t, int64_t rows, int64_t cols,
                      float grad_scale, float delta, float* loss, float* d_y, Stream cuda_stream = nullptr);

// loss[r] *= weights[r]; d (optional, rows × cols) row r *= weights[r].
void weight_loss_rows(const float* weights, int64_t rows, int64_t cols, float* loss, float* d,
                      Stream cuda_stream = nullptr);

}  // namespace cuda
}  // namespace dropnet
