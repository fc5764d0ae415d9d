// CUDA twin of kernels/cpu/philox_stream.h. Host-callable; callers check device.h first.
#pragma once
#include <cstdint>

namespace dropnet {
namespace cuda {

// Copies the words to the host buffer `out` (n words). Throws std::runtime_error on CUDA errors.
void philox_stream(uint64_t seed, uint64_t stream, uint64_t start, int64_t n, uint32_t* out);

}  // namespace cuda
}  // namespace dropnet
