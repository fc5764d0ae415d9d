// AVX-512 body of the dropout pass: groups of 64 elements (16 Philox blocks, one mask word), two
// groups per step. Loop order: for each step the keep bits are made in registers (or read), then
// each group's four 16-float vectors are loaded, masked and stored; the data is touched once.
// Large outputs use non-temporal stores (no read-for-ownership of y, no cache pollution); they
// need 64-byte-aligned addresses, and numpy's big arrays sit 16 bytes past a line, so that path
// stores aligned vectors that straddle two groups, taking their keeps from a 128-bit window.
#include <cstdint>

#include "dropnet/core/philox_avx512.h"
#include "dropnet/kernels/cpu/dropout.h"
#include "dropnet/kernels/cpu/vec_avx512.h"

namespace dropnet {
namespace cpu {

namespace {

// Groups of 64 elements whose Philox chains run in lockstep per step (2: +20 %; 3: +3 %;
// 4: slower, the state no longer fits in the 32 registers).
constexpr int kGroupsPerStep = 2;

// Template flags hoist the per-variant branches out of the loops:
// kBitsIn: keep bits read from p.bits_in instead of regenerated; kAffine: kept y = fma(a, x, b)
// (AlphaDropout) instead of a * x.
template <bool kBitsIn, bool kAffine>
struct Group {
  const DropoutPass& p;
  philox::StreamKey512 key;
  __m512 va, vb, vd;

  explicit Group(const DropoutPass& pass)
      : p(pass), key(pass.seed, pass.stream), va(_mm512_set1_ps(pass.a)), vb(_mm512_set1_ps(pass.b)),
        vd(_mm512_set1_ps(pass.dropped)) {}

  // Keep bits of the 64 elements from g (a multiple of 64).
  uint64_t bits(int64_t g) {
    return kBitsIn ? p.bits_in[g >> 6] : philox::keep_bits64(key, (p.index_offset + static_cast<uint64_t>(g)) >> 2, p.threshold);
  }

  // Keep bits of the kGroupsPerStep * 64 elements from g.
  void bits_step(int64_t g, uint64_t out[kGroupsPerStep]) {
    if (kBitsIn) {
      for (int j = 0; j < kGroupsPerStep; ++j) out[j] = p.bits_in[(g >> 6) + j];
    } else {
      philox::keep_bits_groups<kGroupsPerStep>(key, (p.index_offset + static_cast<uint64_t>(g)) >> 2, p.threshold, out);
    }
  }

  __m512 apply(__mmask16 keep, __m512 v) const {
    if (kAffine) return _mm512_mask_blend_ps(keep, vd, _mm512_fmadd_ps(va, v, vb));
    return _mm512_mask_mul_ps(vd, keep, v, va);
  }
};

// Calls fn(g, keep bits of group g) for the whole groups of [begin, end), kGroupsPerStep at a
// time; returns the start of the partial group left (end if none).
template <class Grp, class Fn>
int64_t for_whole_groups(Grp& grp, int64_t begin, int64_t end, Fn&& fn) {
  int64_t g = begin;
  for (; g + 64 * kGroupsPerStep <= end; g += 64 * kGroupsPerStep) {
    uint64_t bits[kGroupsPerStep];
    grp.bits_step(g, bits);
    for (int j = 0; j < kGroupsPerStep; ++j) fn(g + 64 * j, bits[j]);
  }
  for (; g + 64 <= end; g += 64) fn(g, grp.bits(g));
  return g;
}

// Bits only (x == nullptr): no float traffic.
void run_bits_only(const DropoutPass& p, int64_t begin, int64_t end) {
  Group<false, false> grp(p);
  const int64_t g = for_whole_groups(grp, begin, end, [&](int64_t gw, uint64_t bits) { p.bits_out[gw >> 6] = bits; });
  if (g < end) p.bits_out[g >> 6] = grp.bits(g) & ((uint64_t{1} << (end - g)) - 1);
}

// Elements [begin, end), regular stores, or non-temporal ones when y + begin is 64-byte aligned
// (kStreamStores). The last group may be partial: masked loads and stores, bits past end zero.
template <bool kBitsIn, bool kAffine, bool kStreamStores>
void run(const DropoutPass& p, int64_t begin, int64_t end) {
  Group<kBitsIn, kAffine> grp(p);
  const float* x = p.x;
  float* y = p.y;
  auto whole_group = [&](int64_t g, uint64_t bits) {
    if (p.bits_out) p.bits_out[g >> 6] = bits;
    for (int q = 0; q < 4; ++q) {
      const __m512 r = grp.apply(static_cast<__mmask16>(bits >> (16 * q)), _mm512_loadu_ps(x + g + 16 * q));
      if (kStreamStores) _mm512_stream_ps(y + g + 16 * q, r);
      else _mm512_storeu_ps(y + g + 16 * q, r);
    }
  };
  const int64_t g = for_whole_groups(grp, begin, end, whole_group);
  if (g < end) {  // partial last group: masked loads and stores
    const int64_t m = end - g;
    const uint64_t bits = grp.bits(g) & ((uint64_t{1} << m) - 1);
    if (p.bits_out) p.bits_out[g >> 6] = bits;
    for (int q = 0; q < 4 && 16 * q < m; ++q) {
      const int64_t left = m - 16 * q;
      const __mmask16 lanes = first_lanes16(left);
      const __m512 r = grp.apply(static_cast<__mmask16>(bits >> (16 * q)), _mm512_maskz_loadu_ps(lanes, x + g + 16 * q));
      _mm512_mask_storeu_ps(y + g + 16 * q, lanes, r);
    }
  }
  if (kStreamStores) _mm_sfence();  // order the non-temporal stores before the caller reads y
}

// Non-temporal stores when y + begin is `shift` floats (1..15) past a 64-byte line. Aligned
// vector q of group g covers elements g + 16q - shift .. g + 16q - shift + 15: the last `shift`
// elements of the previous group's keeps and the first 16 - shift of this one's, read from the
// 128-bit window (this:previous). Whole groups [begin, end) only; the elements before the first
// line and after the last one go through masked regular stores, so no thread writes outside
// its own range.
template <bool kBitsIn, bool kAffine>
void run_stream_shifted(const DropoutPass& p, int64_t begin, int64_t end, int shift) {
  Group<kBitsIn, kAffine> grp(p);
  const float* x = p.x;
  float* y = p.y;
  uint64_t prev = 0;
  auto whole_group = [&](int64_t g, uint64_t cur) {
    if (p.bits_out) p.bits_out[g >> 6] = cur;
    const unsigned __int128 window = static_cast<unsigned __int128>(cur) << 64 | prev;
    for (int q = 0; q < 4; ++q) {
      const int64_t e = g + 16 * q - shift;  // first element of this aligned vector
      const __mmask16 keep = static_cast<__mmask16>(window >> (64 + 16 * q - shift));
      if (g == begin && q == 0) {  // lanes before `begin` belong to the previous piece
        const __mmask16 lanes = static_cast<__mmask16>(~first_lanes16(shift));
        _mm512_mask_storeu_ps(y + e, lanes, grp.apply(keep, _mm512_maskz_loadu_ps(lanes, x + e)));
      } else {
        _mm512_stream_ps(y + e, grp.apply(keep, _mm512_loadu_ps(x + e)));
      }
    }
    prev = cur;
  };
  for_whole_groups(grp, begin, end, whole_group);
  // The last `shift` elements of the last group.
  const int64_t e = end - shift;
  const __mmask16 lanes = first_lanes16(shift);
  const __mmask16 keep = static_cast<__mmask16>(prev >> (64 - shift));
  _mm512_mask_storeu_ps(y + e, lanes, grp.apply(keep, _mm512_maskz_loadu_ps(lanes, x + e)));
  _mm_sfence();
}

template <bool kBitsIn, bool kAffine>
void run_dispatch(const DropoutPass& p, int64_t begin, int64_t end) {
  const uintptr_t addr = reinterpret_cast<uintptr_t>(p.y + begin);
  if (!p.stream_stores || (addr & 3) != 0 || end - begin < 256) return run<kBitsIn, kAffine, false>(p, begin, end);
  const int shift = static_cast<int>((addr & 63) >> 2);
  if (shift == 0) return run<kBitsIn, kAffine, true>(p, begin, end);
  const int64_t whole_end = begin + (end - begin) / 64 * 64;
  run_stream_shifted<kBitsIn, kAffine>(p, begin, whole_end, shift);
  if (whole_end < end) run<kBitsIn, kAffine, false>(p, whole_end, end);
}

}  // namespace

void dropout_pass_avx512(const DropoutPass& p, int64_t begin, int64_t end) {
  if (!p.x) {
    if (p.bits_out && !p.bits_in) run_bits_only(p, begin, end);
    return;
  }
  if (p.affine) return p.bits_in ? run_dispatch<true, true>(p, begin, end) : run_dispatch<false, true>(p, begin, end);
  return p.bits_in ? run_dispatch<true, false>(p, begin, end) : run_dispatch<false, false>(p, begin, end);
}

}  // namespace cpu
}  // namespace dropnet
