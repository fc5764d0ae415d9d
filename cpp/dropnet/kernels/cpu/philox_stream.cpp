#include "dropnet/kernels/cpu/philox_stream.h"

#include "dropnet/core/cpu_features.h"
#include "dropnet/core/parallel.h"
#include "dropnet/core/philox.h"

namespace dropnet {
namespace cpu {

// Scalar twin: one Philox call per block of 4 words; the reference for the vector units.
void philox_stream_scalar(uint64_t seed, uint64_t stream, uint64_t start, int64_t n, uint32_t* out) {
  int64_t j = 0;
  while (j < n) {
    const uint64_t i = start + static_cast<uint64_t>(j);
    const philox::Words w = philox::stream_block(seed, stream, i >> 2);
    for (uint64_t lane = i & 3; lane < 4 && j < n; ++lane, ++j) out[j] = w.v[lane];
  }
}

void philox_stream(uint64_t seed, uint64_t stream, uint64_t start, int64_t n, uint32_t* out) {
  auto body = philox_stream_scalar;
  switch (active_isa()) {
    case Isa::avx512: body = philox_stream_avx512; break;
    case Isa::avx2: body = philox_stream_avx2; break;
    case Isa::scalar: break;
  }
  parallel_ranges(n, 1 << 14, [&](int64_t b, int64_t e) {
    body(seed, stream, start + static_cast<uint64_t>(b), e - b, out + b);
  });
}

void philox4x32_10_batch(const uint32_t* ctr, const uint32_t* key, int64_t n, uint32_t* out) {
  parallel_ranges(n, 1 << 12, [&](int64_t b, int64_t e) {
    for (int64_t j = b; j < e; ++j) {
      const uint32_t* c = ctr + 4 * j;
      const philox::Words w = philox::philox4x32_10(c[0], c[1], c[2], c[3], key[2 * j], key[2 * j + 1]);
      for (int q = 0; q < 4; ++q) out[4 * j + q] = w.v[q];
    }
  });
}

}  // namespace cpu
}  // namespace dropnet
