// CUDA twins of the softmax cross-entropy (kernels/cpu/softmax_xent.h): same names, arguments and
// contract, *device* pointers (labels int64), a stream (null: the default stream); asynchronous,
// std::runtime_error naming the call when a launch fails. Labels must already be checked to lie
// in [0, classes). Each row takes the CPU's steps in the CPU's order
// (core/softmax_xent_element.h); expf and log are CUDA's, so losses and gradients agree with the
// CPU within a tolerance and with themselves bit for bit, run to run. Per-thread bodies and launch
// geometry: kernels/cuda/softmax_xent_body.h.
//
// Never run on a GPU yet (docs/design.md, "Device kernels").
#pragma once
#include <cstdint>

#include "dropnet/kernels/cuda/stream.h"

namespace dropnet {
namespace cuda {

void softmax_xent_sparse(const float* logits, const int64_t* labels, int64_t rows, int64_t classes, float grad_scale,
                         float* loss, float* d_logits, Stream cuda_stream = nullptr);
void softmax_xent_dense(const float* logits, const float* targets, int64_t rows, int64_t classes, float grad_scale,
                        float* loss, float* d_logits, Stream cuda_stream = nullptr);

}  // namespace cuda
}  // namespace dropnet
