// CUDA twin of the max-norm constraint (kernels/cpu/max_norm.h): same name, arguments and
// contract, *device* pointers, a stream (null: the default stream); asynchronous,
// std::runtime_error naming the call when a launch fails. The row norms are block sums in double
// (kernels/cuda/max_norm_body.h), the same run to run, within a tolerance of the CPU's.
//
// Never run on a GPU yet (docs/design.md, "Device kernels").
#pragma once
#include <cstdint>

#include "dropnet/kernels/cuda/stream.h"

namespace dropnet {
namespace cuda {

void max_norm_rows(float* w, int64_t rows, int64_t cols, float max_norm, Stream cuda_stream = nullptr);

}  // namespace cuda
}  // namespace dropnet
