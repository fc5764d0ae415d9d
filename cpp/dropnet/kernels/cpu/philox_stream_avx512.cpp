// AVX-512 body of philox_stream: 64 words (16 blocks) per step.
#include "dropnet/core/philox_avx512.h"
#include "dropnet/kernels/cpu/philox_stream.h"

namespace dropnet {
namespace cpu {

void philox_stream_avx512(uint64_t seed, uint64_t stream, uint64_t start, int64_t n, uint32_t* out) {
  // Scalar head up to a multiple of 64 elements, so vector steps start on whole block groups.
  const int64_t head = static_cast<int64_t>((64 - (start & 63)) & 63);
  if (n <= head) return philox_stream_scalar(seed, stream, start, n, out);
  philox_stream_scalar(seed, stream, start, head, out);
  const philox::KeySchedule512 ks(seed);
  int64_t j = head;
  for (; j + 64 <= n; j += 64) {
    __m512i w[4];
    philox::stream_words64(ks, stream, (start + static_cast<uint64_t>(j)) >> 2, w);
    for (int q = 0; q < 4; ++q) _mm512_storeu_si512(out + j + 16 * q, w[q]);
  }
  if (j < n) {
    alignas(64) uint32_t tmp[64];
    __m512i w[4];
    philox::stream_words64(ks, stream, (start + static_cast<uint64_t>(j)) >> 2, w);
    for (int q = 0; q < 4; ++q) _mm512_store_si512(tmp + 16 * q, w[q]);
    for (int64_t t = 0; j < n; ++j, ++t) out[j] = tmp[t];
  }
}

}  // namespace cpu
}  // namespace dropnet
