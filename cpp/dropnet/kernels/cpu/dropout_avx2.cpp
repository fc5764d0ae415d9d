// AVX2 body of the dropout pass: 64 elements (one mask word) per step, as two halves of 32
// (8 Philox blocks each) whose Philox chains run in lockstep. Keeps are compared in element order after the stream transpose, so the
// compare result is directly the blend mask of each 8-float vector.
#include <cstdint>

#include "dropnet/core/philox_avx2.h"
#include "dropnet/kernels/cpu/dropout.h"

namespace dropnet {
namespace cpu {

namespace {

// All-ones lanes where bit j of `bits` (j = lane) is set.
inline __m256i expand_bits8(uint32_t bits) {
  const __m256i lane_bit = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
  const __m256i b = _mm256_and_si256(_mm256_set1_epi32(static_cast<int>(bits & 0xFF)), lane_bit);
  return _mm256_cmpeq_epi32(b, lane_bit);
}

// Flags as in dropout_avx512.cpp: kBitsIn reads keeps, kHasX writes y, kAffine uses fma(a, x, b).
template <bool kBitsIn, bool kHasX, bool kAffine>
void run(const DropoutPass& p, int64_t begin, int64_t end) {
  philox::StreamKey256 key(p.seed, p.stream);
  const __m256i sign = _mm256_set1_epi32(static_cast<int>(0x80000000u));
  // Unsigned word < threshold as a signed compare of both sides with the sign bit flipped.
  const __m256i biased_threshold = _mm256_xor_si256(_mm256_set1_epi32(static_cast<int>(p.threshold)), sign);
  const __m256 va = _mm256_set1_ps(p.a), vb = _mm256_set1_ps(p.b), vd = _mm256_set1_ps(p.dropped);
  const float* x = p.x;
  float* y = p.y;
  int64_t g = begin;
  for (; g + 64 <= end; g += 64) {
    uint64_t bits = 0;
    __m256i words[8];
    if (!kBitsIn) philox::stream_words32<2>(key, (p.index_offset + static_cast<uint64_t>(g)) >> 2, words);
    for (int h = 0; h < 2; ++h) {
      const int64_t e0 = g + 32 * h;
      __m256i keep[4];
      if (kBitsIn) {
        const uint32_t b32 = static_cast<uint32_t>(p.bits_in[g >> 6] >> (32 * h));
        for (int q = 0; q < 4; ++q) keep[q] = expand_bits8(b32 >> (8 * q));
      } else {
        const __m256i* w = words + 4 * h;
        for (int q = 0; q < 4; ++q) {
          keep[q] = _mm256_cmpgt_epi32(biased_threshold, _mm256_xor_si256(w[q], sign));
          if (p.bits_out)
            bits |= static_cast<uint64_t>(static_cast<uint32_t>(_mm256_movemask_ps(_mm256_castsi256_ps(keep[q]))))
                    << (32 * h + 8 * q);
        }
      }
      if (!kHasX) continue;
      for (int q = 0; q < 4; ++q) {
        const __m256 v = _mm256_loadu_ps(x + e0 + 8 * q);
        const __m256 kept = kAffine ? _mm256_fmadd_ps(va, v, vb) : _mm256_mul_ps(v, va);
        _mm256_storeu_ps(y + e0 + 8 * q, _mm256_blendv_ps(vd, kept, _mm256_castsi256_ps(keep[q])));
      }
    }
    if (p.bits_out) p.bits_out[g >> 6] = bits;
  }
  if (g < end) dropout_pass_scalar(p, g, end);  // last, partial group
}

}  // namespace

void dropout_pass_avx2(const DropoutPass& p, int64_t begin, int64_t end) {
  if (!p.x) {
    if (p.bits_in) return;
    return run<false, false, false>(p, begin, end);
  }
  if (p.affine) return p.bits_in ? run<true, true, true>(p, begin, end) : run<false, true, true>(p, begin, end);
  return p.bits_in ? run<true, true, false>(p, begin, end) : run<false, true, false>(p, begin, end);
}

}  // namespace cpu
}  // namespace dropnet
