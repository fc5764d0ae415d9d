// CUDA twins of the pooling kernels (kernels/cpu/pooling.h): same names, arguments and contract,
// *device* pointers, a stream (null: the default stream); asynchronous, std::runtime_error naming
// the call when a launch fails. Outputs, argmax indices and gradients are the CPU's bits (one
// per-element function, core/pooling_element.h; the gradients gathered in the CPU's order), for
// inputs without denormals (the device flushes them, the CPU pooling does not). max_pool2d_backward
// takes the indices max_pool2d_forward wrote: each input cell gathers from the windows that cover it.
// Per-thread bodies and launch geometry: kernels/cuda/pooling_body.h.
//
// Never run on a GPU yet (docs/design.md, "Device kernels").
#pragma once
#include <cstdint>

#include "dropnet/core/pooling_element.h"
#include "dropnet/kernels/cuda/stream.h"

namespace dropnet {
namespace cuda {

void max_pool2d_forward(const float* x, int64_t planes, const PoolGeometry& g, float* y, int32_t* indices,
                        Stream cuda_stream = nullptr);
void max_pool2d_backward(const float* dy, const int32_t* indices, int64_t planes, const PoolGeometry& g, float* dx,
                         Stream cuda_stream = nullptr);
void avg_pool2d_forward(const float* x, int64_t planes, const PoolGeometry& g, bool count_include_pad, float* y,
                        Stream cuda_stream = nullptr);
void avg_pool2d_backward(const float* dy, int64_t planes, const PoolGeometry& g, bool count_include_pad, float* dx,
                         Stream cuda_stream = nullptr);
void global_avg_pool2d_forward(const float* x, int64_t planes, int64_t hw, float* y, Stream cuda_stream = nullptr);
void global_avg_pool2d_backward(const float* dy, int64_t planes, int64_t hw, float* dx, Stream cuda_stream = nullptr);

}  // namespace cuda
}  // namespace dropnet
