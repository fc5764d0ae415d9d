// Stream words of the Philox contract (docs/design.md): out[j] = word (start + j) of (seed, stream).
#pragma once
#include <cstdint>

namespace dropnet {
namespace cpu {

// out: n words. Threads split [0, n) into contiguous pieces; ISA from active_isa().
void philox_stream(uint64_t seed, uint64_t stream, uint64_t start, int64_t n, uint32_t* out);

// Single-threaded bodies, one per ISA unit. Any start, any n.
void philox_stream_scalar(uint64_t seed, uint64_t stream, uint64_t start, int64_t n, uint32_t* out);
void philox_stream_avx2(uint64_t seed, uint64_t stream, uint64_t start, int64_t n, uint32_t* out);
void philox_stream_avx512(uint64_t seed, uint64_t stream, uint64_t start, int64_t n, uint32_t* out);

// Raw Philox4x32-10 on n independent (counter, key) pairs: ctr n x 4, key n x 2, out n x 4.
void philox4x32_10_batch(const uint32_t* ctr, const uint32_t* key, int64_t n, uint32_t* out);

}  // namespace cpu
}  // namespace dropnet
