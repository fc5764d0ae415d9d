// CUDA twin of the weight penalties (kernels/cpu/weight_penalty.h): g = (g + 2·l2·w + l1·sign(w))
// · mask over n floats, and the penalty l2·Σw² + l1·Σ|w| summed over the CPU's chunks of
// kPenaltyBlock elements (each chunk in double, then the chunks in order). *Device*
// pointers, a stream (null: the default stream); asynchronous, std::runtime_error naming the call
// when a launch fails. The gradient has the CPU's bits; the penalty differs from the CPU's only
// in the order of the double additions inside a chunk, and is the same run to run. Per-thread
// bodies and launch geometry: kernels/cuda/weight_penalty_body.h.
//
// Never run on a GPU yet (docs/design.md, "Device kernels").
#pragma once
#include <cstdint>

#include "dropnet/kernels/cuda/stream.h"

namespace dropnet {
namespace cuda {

// block_sums: device memory of penalty_blocks(n) + 1 doubles; the chunks' sums, then the
// penalty at block_sums[penalty_blocks(n)] (0 when l1 == l2 == 0). mask may be null.
void weight_penalty_grad(int64_t n, const float* w, float* g, const float* mask, float l1, float l2,
                         double* block_sums, Stream cuda_stream = nullptr);

}  // namespace cuda
}  // namespace dropnet
