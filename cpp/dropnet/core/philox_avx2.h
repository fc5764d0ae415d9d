// Philox4x32-10 on 8 blocks at once with AVX2 (include only from *_avx2.cpp units).
// Lane j of the four state vectors holds block b0 + j; a transpose returns 32 consecutive words.
// StreamKey256 is the fast path, the same scheme as StreamKey512 in core/philox_avx512.h.
#pragma once
#include <immintrin.h>

#include <cstdint>

#include "dropnet/core/philox.h"

namespace dropnet {
namespace philox {

struct KeySchedule256 {
  __m256i k0[kRounds], k1[kRounds];
  explicit KeySchedule256(uint64_t seed) {
    uint32_t a = static_cast<uint32_t>(seed), b = static_cast<uint32_t>(seed >> 32);
    for (int r = 0; r < kRounds; ++r) {
      k0[r] = _mm256_set1_epi32(static_cast<int>(a));
      k1[r] = _mm256_set1_epi32(static_cast<int>(b));
      a += kW0;
      b += kW1;
    }
  }
};

inline void mulhilo8(__m256i a, __m256i m, __m256i* hi, __m256i* lo) {
  const __m256i pe = _mm256_mul_epu32(a, m);
  const __m256i po = _mm256_mul_epu32(_mm256_srli_epi64(a, 32), m);
  *lo = _mm256_blend_epi32(pe, _mm256_slli_epi64(po, 32), 0xAA);
  *hi = _mm256_blend_epi32(_mm256_srli_epi64(pe, 32), po, 0xAA);
}

// 8 vectors of word w (lane j = block j) -> 4 vectors of 8 consecutive words (element order).
inline void transpose_words8(__m256i c0, __m256i c1, __m256i c2, __m256i c3, __m256i out[4]) {
  const __m256i t0 = _mm256_unpacklo_epi32(c0, c1);
  const __m256i t1 = _mm256_unpackhi_epi32(c0, c1);
  const __m256i t2 = _mm256_unpacklo_epi32(c2, c3);
  const __m256i t3 = _mm256_unpackhi_epi32(c2, c3);
  // u_m's 128-bit lane L holds block 4L + m.
  const __m256i u0 = _mm256_unpacklo_epi64(t0, t2);
  const __m256i u1 = _mm256_unpackhi_epi64(t0, t2);
  const __m256i u2 = _mm256_unpacklo_epi64(t1, t3);
  const __m256i u3 = _mm256_unpackhi_epi64(t1, t3);
  out[0] = _mm256_permute2x128_si256(u0, u1, 0x20);  // blocks 0, 1
  out[1] = _mm256_permute2x128_si256(u2, u3, 0x20);  // blocks 2, 3
  out[2] = _mm256_permute2x128_si256(u0, u1, 0x31);  // blocks 4, 5
  out[3] = _mm256_permute2x128_si256(u2, u3, 0x31);  // blocks 6, 7
}

// General path: any b0, including groups whose low block word wraps past 2^32.
// out[q] holds elements 4*b0 + 8*q .. 4*b0 + 8*q + 7.
inline void stream_words32_general(const KeySchedule256& ks, uint64_t stream, uint64_t b0, __m256i out[4]) {
  const uint32_t lo = static_cast<uint32_t>(b0), hi = static_cast<uint32_t>(b0 >> 32);
  __m256i c0 = _mm256_add_epi32(_mm256_set1_epi32(static_cast<int>(lo)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  __m256i c1;
  if (lo > 0xFFFFFFFFu - 7u) {  // the 8 blocks cross a 2^32 boundary: carry into the high word
    alignas(32) uint32_t h[8];
    for (uint32_t j = 0; j < 8; ++j) h[j] = hi + (lo + j < lo ? 1u : 0u);
    c1 = _mm256_load_si256(reinterpret_cast<const __m256i*>(h));
  } else {
    c1 = _mm256_set1_epi32(static_cast<int>(hi));
  }
  __m256i c2 = _mm256_set1_epi32(static_cast<int>(static_cast<uint32_t>(stream)));
  __m256i c3 = _mm256_set1_epi32(static_cast<int>(static_cast<uint32_t>(stream >> 32)));
  const __m256i m0 = _mm256_set1_epi32(static_cast<int>(kM0));
  const __m256i m1 = _mm256_set1_epi32(static_cast<int>(kM1));
  for (int r = 0; r < kRounds; ++r) {
    __m256i hi0, lo0, hi1, lo1;
    mulhilo8(c0, m0, &hi0, &lo0);
    mulhilo8(c2, m1, &hi1, &lo1);
    c0 = _mm256_xor_si256(_mm256_xor_si256(hi1, c1), ks.k0[r]);
    c1 = lo1;
    c2 = _mm256_xor_si256(_mm256_xor_si256(hi0, c3), ks.k1[r]);
    c3 = lo0;
  }
  transpose_words8(c0, c1, c2, c3, out);
}

inline void stream_words32(const KeySchedule256& ks, uint64_t stream, uint64_t b0, __m256i out[4]) {
  stream_words32_general(ks, stream, b0, out);
}

// Round keys and the stream's constant parts of rounds 0..2 (see core/philox_avx512.h, the same
// scheme: even and odd blocks in the low halves of 64-bit lanes, one multiply per product).
struct StreamKey256 {
  KeySchedule256 ks;
  uint64_t stream;
  uint32_t block_hi;
  __m256i r0_x, r1_x0, r1_x2, r2_x2;
  uint32_t h1_0, k0_0, k1_1, k1_2;

  StreamKey256(uint64_t seed, uint64_t stream_) : ks(seed), stream(stream_) {
    const uint32_t s0 = static_cast<uint32_t>(seed), s1 = static_cast<uint32_t>(seed >> 32);
    const uint32_t c2 = static_cast<uint32_t>(stream), c3 = static_cast<uint32_t>(stream >> 32);
    const uint64_t p1 = static_cast<uint64_t>(kM1) * c2;
    h1_0 = static_cast<uint32_t>(p1 >> 32);
    k0_0 = s0;
    k1_1 = s1 + kW1;
    k1_2 = s1 + 2 * kW1;
    r0_x = _mm256_set1_epi32(static_cast<int>(c3 ^ s1));
    r1_x0 = _mm256_set1_epi32(static_cast<int>(static_cast<uint32_t>(p1) ^ (s0 + kW0)));
    rebase(0);
  }

  void rebase(uint32_t hi) {
    block_hi = hi;
    const uint32_t a = h1_0 ^ hi ^ k0_0;
    const uint64_t p0 = static_cast<uint64_t>(kM0) * a;
    r1_x2 = _mm256_set1_epi32(static_cast<int>(static_cast<uint32_t>(p0 >> 32) ^ k1_1));
    r2_x2 = _mm256_set1_epi32(static_cast<int>(static_cast<uint32_t>(p0) ^ k1_2));
  }
};

// The ten rounds on N x 4 blocks whose low counter words sit in the low halves of c0[j]'s 64-bit
// lanes, the chains in lockstep so their multiply latencies overlap. Word q of chain j ends in
// the low halves of w[q][j].
template <int N>
inline void rounds4(const StreamKey256& k, const __m256i c0_in[N], __m256i w[4][N]) {
  const __m256i m0 = _mm256_set1_epi64x(kM0);
  const __m256i m1 = _mm256_set1_epi64x(kM1);
  __m256i c0[N], c1[N], c2[N], c3[N];
  DROPNET_UNROLL
  for (int j = 0; j < N; ++j) {
    const __m256i p0 = _mm256_mul_epu32(c0_in[j], m0);
    c2[j] = _mm256_xor_si256(_mm256_srli_epi64(p0, 32), k.r0_x);
    c3[j] = p0;
  }
  DROPNET_UNROLL
  for (int j = 0; j < N; ++j) {
    const __m256i p1 = _mm256_mul_epu32(c2[j], m1);
    c0[j] = _mm256_xor_si256(_mm256_srli_epi64(p1, 32), k.r1_x0);
    c1[j] = p1;
    c2[j] = _mm256_xor_si256(c3[j], k.r1_x2);
  }
  DROPNET_UNROLL
  for (int j = 0; j < N; ++j) {
    const __m256i p0 = _mm256_mul_epu32(c0[j], m0);
    const __m256i p1 = _mm256_mul_epu32(c2[j], m1);
    c0[j] = _mm256_xor_si256(_mm256_xor_si256(_mm256_srli_epi64(p1, 32), c1[j]), k.ks.k0[2]);
    c1[j] = p1;
    c2[j] = _mm256_xor_si256(_mm256_srli_epi64(p0, 32), k.r2_x2);
    c3[j] = p0;
  }
  DROPNET_UNROLL
  for (int r = 3; r < kRounds; ++r) {
    DROPNET_UNROLL
    for (int j = 0; j < N; ++j) {
      const __m256i p0 = _mm256_mul_epu32(c0[j], m0);
      const __m256i p1 = _mm256_mul_epu32(c2[j], m1);
      c0[j] = _mm256_xor_si256(_mm256_xor_si256(_mm256_srli_epi64(p1, 32), c1[j]), k.ks.k0[r]);
      c1[j] = p1;
      c2[j] = _mm256_xor_si256(_mm256_xor_si256(_mm256_srli_epi64(p0, 32), c3[j]), k.ks.k1[r]);
      c3[j] = p0;
    }
  }
  DROPNET_UNROLL
  for (int j = 0; j < N; ++j) {
    w[0][j] = c0[j];
    w[1][j] = c1[j];
    w[2][j] = c2[j];
    w[3][j] = c3[j];
  }
}

// Words of blocks b0 .. b0 + 8H - 1 of k's stream in element order: out[4h + q] holds elements
// 4*b0 + 32h + 8q .. + 7 (as stream_words32, H times). The 2H chains (even and odd blocks of each
// 8) run in lockstep so the multiply latencies overlap. Any b0.
template <int H>
inline void stream_words32(StreamKey256& k, uint64_t b0, __m256i out[4 * H]) {
  if (static_cast<uint32_t>(b0) > 0xFFFFFFFFu - (8u * H - 1u)) {
    for (int h = 0; h < H; ++h) stream_words32_general(k.ks, k.stream, b0 + 8 * h, out + 4 * h);
    return;
  }
  const uint32_t hi = static_cast<uint32_t>(b0 >> 32);
  if (hi != k.block_hi) k.rebase(hi);
  const __m256i even = _mm256_add_epi64(_mm256_set1_epi64x(static_cast<uint32_t>(b0)), _mm256_setr_epi64x(0, 2, 4, 6));
  __m256i c0[2 * H];
  DROPNET_UNROLL
  for (int j = 0; j < 2 * H; ++j) c0[j] = _mm256_add_epi64(even, _mm256_set1_epi64x(8 * (j / 2) + (j % 2)));
  __m256i w[4][2 * H];
  rounds4<2 * H>(k, c0, w);
  DROPNET_UNROLL
  for (int h = 0; h < H; ++h) {
    __m256i c[4];
    DROPNET_UNROLL
    for (int q = 0; q < 4; ++q) c[q] = _mm256_blend_epi32(w[q][2 * h], _mm256_slli_epi64(w[q][2 * h + 1], 32), 0xAA);
    transpose_words8(c[0], c[1], c[2], c[3], out + 4 * h);
  }
}

// Unsigned a < b for 32-bit lanes (AVX2 only compares signed): flip the sign bits first.
inline __m256i cmplt_epu32(__m256i a, __m256i b) {
  const __m256i sign = _mm256_set1_epi32(static_cast<int>(0x80000000u));
  return _mm256_cmpgt_epi32(_mm256_xor_si256(b, sign), _mm256_xor_si256(a, sign));
}

// Keep-bits of 32 consecutive elements starting at element 4*b0.
inline uint32_t keep_bits32(const KeySchedule256& ks, uint64_t stream, uint64_t b0, uint32_t threshold) {
  __m256i w[4];
  stream_words32(ks, stream, b0, w);
  const __m256i t = _mm256_set1_epi32(static_cast<int>(threshold));
  uint32_t bits = 0;
  for (int q = 0; q < 4; ++q)
    bits |= static_cast<uint32_t>(_mm256_movemask_ps(_mm256_castsi256_ps(cmplt_epu32(w[q], t)))) << (8 * q);
  return bits;
}

}  // namespace philox
}  // namespace dropnet
