// Philox4x32-10 on 16 blocks at once with AVX-512 (include only from *_avx512.cpp units).
// Lane j of the four state vectors holds block b0 + j. After the rounds, a 4x16 transpose turns
// the state into 64 consecutive stream words, so callers see words in element order.
#pragma once
#include <immintrin.h>

#include <cstdint>

#include "dropnet/core/philox.h"

namespace dropnet {
namespace philox {

struct KeySchedule512 {
  __m512i k0[kRounds], k1[kRounds];
  explicit KeySchedule512(uint64_t seed) {
    uint32_t a = static_cast<uint32_t>(seed), b = static_cast<uint32_t>(seed >> 32);
    for (int r = 0; r < kRounds; ++r) {
      k0[r] = _mm512_set1_epi32(static_cast<int>(a));
      k1[r] = _mm512_set1_epi32(static_cast<int>(b));
      a += kW0;
      b += kW1;
    }
  }
};

// 32x32 -> 64 multiply per 32-bit lane: even lanes straight, odd lanes after a shift.
inline void mulhilo16(__m512i a, __m512i m, __m512i* hi, __m512i* lo) {
  const __m512i pe = _mm512_mul_epu32(a, m);
  const __m512i po = _mm512_mul_epu32(_mm512_srli_epi64(a, 32), m);
  *lo = _mm512_mask_blend_epi32(0xAAAA, pe, _mm512_slli_epi64(po, 32));
  *hi = _mm512_mask_blend_epi32(0xAAAA, _mm512_srli_epi64(pe, 32), po);
}

// Words of blocks b0 .. b0+15 of `stream`, returned as 4 vectors of 16 consecutive words:
// out[q] holds the words of elements 4*b0 + 16*q .. 4*b0 + 16*q + 15.
inline void stream_words64(const KeySchedule512& ks, uint64_t stream, uint64_t b0, __m512i out[4]) {
  const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  const uint32_t lo = static_cast<uint32_t>(b0), hi = static_cast<uint32_t>(b0 >> 32);
  __m512i c0 = _mm512_add_epi32(_mm512_set1_epi32(static_cast<int>(lo)), iota);
  // A carry into the high word where lo + j wrapped past 2^32.
  const __mmask16 wrapped = _mm512_cmplt_epu32_mask(c0, _mm512_set1_epi32(static_cast<int>(lo)));
  __m512i c1 = _mm512_mask_add_epi32(_mm512_set1_epi32(static_cast<int>(hi)), wrapped,
                                     _mm512_set1_epi32(static_cast<int>(hi)), _mm512_set1_epi32(1));
  __m512i c2 = _mm512_set1_epi32(static_cast<int>(static_cast<uint32_t>(stream)));
  __m512i c3 = _mm512_set1_epi32(static_cast<int>(static_cast<uint32_t>(stream >> 32)));
  const __m512i m0 = _mm512_set1_epi32(static_cast<int>(kM0));
  const __m512i m1 = _mm512_set1_epi32(static_cast<int>(kM1));
  for (int r = 0; r < kRounds; ++r) {
    __m512i hi0, lo0, hi1, lo1;
    mulhilo16(c0, m0, &hi0, &lo0);
    mulhilo16(c2, m1, &hi1, &lo1);
    c0 = _mm512_ternarylogic_epi32(hi1, c1, ks.k0[r], 0x96);  // three-way xor
    c1 = lo1;
    c2 = _mm512_ternarylogic_epi32(hi0, c3, ks.k1[r], 0x96);
    c3 = lo0;
  }
  // Transpose: lane j of (c0,c1,c2,c3) is block j; we want block-major word order.
  const __m512i t0 = _mm512_unpacklo_epi32(c0, c1);
  const __m512i t1 = _mm512_unpackhi_epi32(c0, c1);
  const __m512i t2 = _mm512_unpacklo_epi32(c2, c3);
  const __m512i t3 = _mm512_unpackhi_epi32(c2, c3);
  // u_m's 128-bit lane L holds block 4L + m.
  const __m512i u0 = _mm512_unpacklo_epi64(t0, t2);
  const __m512i u1 = _mm512_unpackhi_epi64(t0, t2);
  const __m512i u2 = _mm512_unpacklo_epi64(t1, t3);
  const __m512i u3 = _mm512_unpackhi_epi64(t1, t3);
  const __m512i v0 = _mm512_shuffle_i32x4(u0, u1, 0x44);  // u0.L0 u0.L1 u1.L0 u1.L1
  const __m512i v1 = _mm512_shuffle_i32x4(u2, u3, 0x44);  // u2.L0 u2.L1 u3.L0 u3.L1
  const __m512i v2 = _mm512_shuffle_i32x4(u0, u1, 0xEE);  // u0.L2 u0.L3 u1.L2 u1.L3
  const __m512i v3 = _mm512_shuffle_i32x4(u2, u3, 0xEE);
  out[0] = _mm512_shuffle_i32x4(v0, v1, 0x88);  // blocks 0..3
  out[1] = _mm512_shuffle_i32x4(v0, v1, 0xDD);  // blocks 4..7
  out[2] = _mm512_shuffle_i32x4(v2, v3, 0x88);  // blocks 8..11
  out[3] = _mm512_shuffle_i32x4(v2, v3, 0xDD);  // blocks 12..15
}

// Keep-bits of 64 consecutive elements starting at element 4*b0: bit e set iff word < threshold.
inline uint64_t keep_bits64(const KeySchedule512& ks, uint64_t stream, uint64_t b0, uint32_t threshold) {
  __m512i w[4];
  stream_words64(ks, stream, b0, w);
  const __m512i t = _mm512_set1_epi32(static_cast<int>(threshold));
  return static_cast<uint64_t>(_mm512_cmplt_epu32_mask(w[0], t)) |
         static_cast<uint64_t>(_mm512_cmplt_epu32_mask(w[1], t)) << 16 |
         static_cast<uint64_t>(_mm512_cmplt_epu32_mask(w[2], t)) << 32 |
         static_cast<uint64_t>(_mm512_cmplt_epu32_mask(w[3], t)) << 48;
}

}  // namespace philox
}  // namespace dropnet
