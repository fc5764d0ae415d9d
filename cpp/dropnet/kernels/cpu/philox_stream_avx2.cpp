// AVX2 body of philox_stream: 32 words (8 blocks) per step.
#include "dropnet/core/philox_avx2.h"
#include "dropnet/kernels/cpu/philox_stream.h"

namespace dropnet {
namespace cpu {

void philox_stream_avx2(uint64_t seed, uint64_t stream, uint64_t start, int64_t n, uint32_t* out) {
  const int64_t head = static_cast<int64_t>((32 - (start & 31)) & 31);
  if (n <= head) return philox_stream_scalar(seed, stream, start, n, out);
  philox_stream_scalar(seed, stream, start, head, out);
  const philox::KeySchedule256 ks(seed);
  int64_t j = head;
  for (; j + 32 <= n; j += 32) {
    __m256i w[4];
    philox::stream_words32(ks, stream, (start + static_cast<uint64_t>(j)) >> 2, w);
    for (int q = 0; q < 4; ++q) _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + j + 8 * q), w[q]);
  }
  if (j < n) {
    alignas(32) uint32_t tmp[32];
    __m256i w[4];
    philox::stream_words32(ks, stream, (start + static_cast<uint64_t>(j)) >> 2, w);
    for (int q = 0; q < 4; ++q) _mm256_store_si256(reinterpret_cast<__m256i*>(tmp + 8 * q), w[q]);
    for (int64_t t = 0; j < n; ++j, ++t) out[j] = tmp[t];
  }
}

}  // namespace cpu
}  // namespace dropnet
