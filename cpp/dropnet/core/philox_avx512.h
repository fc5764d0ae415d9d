// Philox4x32-10 on 16 blocks at once with AVX-512 (include only from *_avx512.cpp units).
// Lane j of the four state vectors holds block b0 + j. After the rounds, a 4x16 transpose turns
// the state into 64 consecutive stream words, so callers see words in element order.
//
// Fast path (StreamKey512): the 16 blocks are kept as two halves, even blocks and odd blocks, each
// block in the low 32 bits of a 64-bit lane. _mm512_mul_epu32 then gives the whole 64-bit product
// of a round in one instruction (lo in the low half, hi after one shuffle), and the round never
// re-packs hi/lo into 32-bit lanes: the high halves of c1/c3 carry garbage that only ever reaches
// the high halves of c0/c2, which the next multiply ignores. Counter words 1..3 are the same for
// the 16 blocks (unless the low block word wraps inside the group, which takes the general path),
// so round 0's second product and round 1's first product are scalars computed once per stream.
// The rounds are latency-bound (multiply, shuffle, xor per round), so keep_bits_groups runs the
// chains of several groups in lockstep.
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

// 16 vectors of word w (lane j = block j) -> 4 vectors of 16 consecutive words (element order).
inline void transpose_words16(__m512i c0, __m512i c1, __m512i c2, __m512i c3, __m512i out[4]) {
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

// General path: any b0, including groups whose low block word wraps past 2^32.
inline void stream_words64_general(const KeySchedule512& ks, uint64_t stream, uint64_t b0, __m512i out[4]) {
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
  transpose_words16(c0, c1, c2, c3, out);
}

// Round keys and the stream's constant parts of rounds 0..2, for one (seed, stream). The parts
// that also depend on the high block word are refreshed by rebase() when that word changes.
struct StreamKey512 {
  KeySchedule512 ks;
  uint64_t stream;
  uint32_t block_hi;  // high block word the round-1/2 constants are for
  __m512i r0_x;       // round 0: c2' = hi(M0*c0) ^ (c3 ^ k1[0])
  __m512i r1_x0;      // round 1: c0' = hi(M1*c2) ^ (lo(M1*lo32(stream)) ^ k0[1])
  __m512i r1_x2;      // round 1: c2' = c3 ^ (hi(M0*A) ^ k1[1]), A = round 0's constant c0
  __m512i r2_x2;      // round 2: c2' = hi(M0*c0) ^ (lo(M0*A) ^ k1[2])
  uint32_t h1_0, k0_0, k1_1, k1_2;

  StreamKey512(uint64_t seed, uint64_t stream_) : ks(seed), stream(stream_) {
    const uint32_t s0 = static_cast<uint32_t>(seed), s1 = static_cast<uint32_t>(seed >> 32);
    const uint32_t c2 = static_cast<uint32_t>(stream), c3 = static_cast<uint32_t>(stream >> 32);
    const uint64_t p1 = static_cast<uint64_t>(kM1) * c2;
    h1_0 = static_cast<uint32_t>(p1 >> 32);
    k0_0 = s0;
    k1_1 = s1 + kW1;
    k1_2 = s1 + 2 * kW1;
    r0_x = _mm512_set1_epi32(static_cast<int>(c3 ^ s1));
    r1_x0 = _mm512_set1_epi32(static_cast<int>(static_cast<uint32_t>(p1) ^ (s0 + kW0)));
    rebase(0);
  }

  void rebase(uint32_t hi) {
    block_hi = hi;
    const uint32_t a = h1_0 ^ hi ^ k0_0;
    const uint64_t p0 = static_cast<uint64_t>(kM0) * a;
    r1_x2 = _mm512_set1_epi32(static_cast<int>(static_cast<uint32_t>(p0 >> 32) ^ k1_1));
    r2_x2 = _mm512_set1_epi32(static_cast<int>(static_cast<uint32_t>(p0) ^ k1_2));
  }
};

// hi32 of each 64-bit lane's product moved to the low half (the high half gets the low word,
// which nobody reads). A shuffle rather than a shift: it issues on other pipes than the multiply.
inline __m512i high_to_low(__m512i p) { return _mm512_shuffle_epi32(p, _MM_PERM_CDAB); }

// The ten rounds on N x 8 blocks whose low counter words sit in the low halves of c0[j]'s 64-bit
// lanes, the N chains in lockstep so their multiply latencies overlap. Returns word q of chain j
// in the low halves of w[q][j] (high halves: garbage).
template <int N>
inline void rounds8(const StreamKey512& k, const __m512i c0_in[N], __m512i w[4][N]) {
  const __m512i m0 = _mm512_set1_epi64(kM0);
  const __m512i m1 = _mm512_set1_epi64(kM1);
  __m512i c0[N], c1[N], c2[N], c3[N];
  DROPNET_UNROLL
  for (int j = 0; j < N; ++j) {
    // Round 0: c1, c2, c3 are constants; M1*c2 and the new c0, c1 are folded into the constants.
    const __m512i p0 = _mm512_mul_epu32(c0_in[j], m0);
    c2[j] = _mm512_xor_si512(high_to_low(p0), k.r0_x);
    c3[j] = p0;
  }
  DROPNET_UNROLL
  for (int j = 0; j < N; ++j) {
    // Round 1: c0 is a constant, so M0*c0 is too.
    const __m512i p1 = _mm512_mul_epu32(c2[j], m1);
    c0[j] = _mm512_xor_si512(high_to_low(p1), k.r1_x0);
    c1[j] = p1;
    c2[j] = _mm512_xor_si512(c3[j], k.r1_x2);
  }
  DROPNET_UNROLL
  for (int j = 0; j < N; ++j) {
    // Round 2: c3 is still a constant (lo(M0*A)), folded into r2_x2.
    const __m512i p0 = _mm512_mul_epu32(c0[j], m0);
    const __m512i p1 = _mm512_mul_epu32(c2[j], m1);
    c0[j] = _mm512_ternarylogic_epi32(high_to_low(p1), c1[j], k.ks.k0[2], 0x96);  // three-way xor
    c1[j] = p1;
    c2[j] = _mm512_xor_si512(high_to_low(p0), k.r2_x2);
    c3[j] = p0;
  }
  DROPNET_UNROLL
  for (int r = 3; r < kRounds; ++r) {
    DROPNET_UNROLL
    for (int j = 0; j < N; ++j) {
      const __m512i p0 = _mm512_mul_epu32(c0[j], m0);
      const __m512i p1 = _mm512_mul_epu32(c2[j], m1);
      c0[j] = _mm512_ternarylogic_epi32(high_to_low(p1), c1[j], k.ks.k0[r], 0x96);
      c1[j] = p1;
      c2[j] = _mm512_ternarylogic_epi32(high_to_low(p0), c3[j], k.ks.k1[r], 0x96);
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

// The 2G chains of G groups of 16 blocks from b0: chain 2g holds the even blocks of group g
// (b0 + 16g + 2k in lane k), chain 2g + 1 the odd ones; word w of chain j ends in the low halves
// of h[w][j]. Requires all 16G blocks to share their high word; rebases k when that word moved.
template <int G>
inline void stream_chains(StreamKey512& k, uint64_t b0, __m512i h[4][2 * G]) {
  const uint32_t hi = static_cast<uint32_t>(b0 >> 32);
  if (hi != k.block_hi) k.rebase(hi);
  const __m512i even = _mm512_add_epi64(_mm512_set1_epi64(static_cast<uint32_t>(b0)),
                                        _mm512_setr_epi64(0, 2, 4, 6, 8, 10, 12, 14));
  __m512i c0[2 * G];
  DROPNET_UNROLL
  for (int j = 0; j < 2 * G; ++j) c0[j] = _mm512_add_epi64(even, _mm512_set1_epi64(16 * (j / 2) + (j % 2)));
  rounds8<2 * G>(k, c0, h);
}

// True when blocks b0 .. b0 + n_blocks - 1 share their high word (the fast path's precondition).
inline bool in_one_hi_word(uint64_t b0, uint32_t n_blocks) {
  return static_cast<uint32_t>(b0) <= 0xFFFFFFFFu - (n_blocks - 1u);
}

// The original entry points (same words), for callers holding only a KeySchedule512; also the
// general path of the fast ones.
inline void stream_words64(const KeySchedule512& ks, uint64_t stream, uint64_t b0, __m512i out[4]) {
  stream_words64_general(ks, stream, b0, out);
}

// Keep-bits of 64 consecutive elements starting at element 4*b0: bit e set iff word < threshold.
inline uint64_t keep_bits64(const KeySchedule512& ks, uint64_t stream, uint64_t b0, uint32_t threshold) {
  __m512i w[4];
  stream_words64_general(ks, stream, b0, w);
  const __m512i t = _mm512_set1_epi32(static_cast<int>(threshold));
  return static_cast<uint64_t>(_mm512_cmplt_epu32_mask(w[0], t)) |
         static_cast<uint64_t>(_mm512_cmplt_epu32_mask(w[1], t)) << 16 |
         static_cast<uint64_t>(_mm512_cmplt_epu32_mask(w[2], t)) << 32 |
         static_cast<uint64_t>(_mm512_cmplt_epu32_mask(w[3], t)) << 48;
}

// Keep-bits of G groups of 64 consecutive elements from element 4*b0 (bits[g]: elements
// 4*b0 + 64g .. + 63), the 2G chains in lockstep so the multiplies' latencies overlap. Word w of
// block j is element 4j + w, so the per-word block masks are interleaved with pdep. Any b0.
template <int G>
inline void keep_bits_groups(StreamKey512& k, uint64_t b0, uint32_t threshold, uint64_t bits[G]) {
  if (!in_one_hi_word(b0, 16 * G)) {
    for (int g = 0; g < G; ++g) bits[g] = keep_bits64(k.ks, k.stream, b0 + 16 * g, threshold);
    return;
  }
  __m512i h[4][2 * G];
  stream_chains<G>(k, b0, h);
  const __m512i t = _mm512_set1_epi32(static_cast<int>(threshold));
  DROPNET_UNROLL
  for (int g = 0; g < G; ++g) {
    uint64_t b = 0;
    DROPNET_UNROLL
    for (int w = 0; w < 4; ++w) {
      // Even 32-bit lanes only: bit 2i = block 2i (even chain) and, shifted by one, block 2i+1.
      const uint32_t me = _mm512_mask_cmplt_epu32_mask(0x5555, h[w][2 * g], t);
      const uint32_t mo = _mm512_mask_cmplt_epu32_mask(0x5555, h[w][2 * g + 1], t);
      b |= _pdep_u64(me | (mo << 1), 0x1111111111111111ULL << w);
    }
    bits[g] = b;
  }
}

inline uint64_t keep_bits64(StreamKey512& k, uint64_t b0, uint32_t threshold) {
  uint64_t bits;
  keep_bits_groups<1>(k, b0, threshold, &bits);
  return bits;
}

}  // namespace philox
}  // namespace dropnet
