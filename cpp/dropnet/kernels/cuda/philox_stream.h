// CUDA twin of kernels/cpu/philox_stream.h. Host-callable; returns false (and does nothing) when
// no CUDA device is usable, so callers can fall back or skip.
#pragma once
#include <cstdint>

namespace dropnet {
namespace cuda {

// Number of CUDA devices the runtime can use; 0 when there is no driver or no GPU.
int device_count();
// Copies the words to the host buffer `out` (n words). Throws std::runtime_error on CUDA errors.
void philox_stream(uint64_t seed, uint64_t stream, uint64_t start, int64_t n, uint32_t* out);

}  // namespace cuda
}  // namespace dropnet
