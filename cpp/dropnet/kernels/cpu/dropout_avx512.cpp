// AVX-512 body of the dropout pass: 64 elements (16 Philox blocks, one mask word) per step.
// Loop order: for each group of 64 elements, the keep bits are made in registers (or read), then
// four 16-float vectors are loaded, masked and stored; the data is touched exactly once.
#include <cstdint>

#include "dropnet/core/philox_avx512.h"
#include "dropnet/kernels/cpu/dropout.h"

namespace dropnet {
namespace cpu {

namespace {

// Template flags hoist the per-variant branches out of the loop:
// kBitsIn: keep bits read from p.bits_in instead of regenerated; kHasX: y is written (else bits
// only); kAffine: kept y = fma(a, x, b) (AlphaDropout) instead of a * x; kStreamStores: y written
// with non-temporal stores (y + begin is 64-byte aligned).
template <bool kBitsIn, bool kHasX, bool kAffine, bool kStreamStores>
void run(const DropoutPass& p, int64_t begin, int64_t end) {
  philox::StreamKey512 key(p.seed, p.stream);
  const __m512 va = _mm512_set1_ps(p.a), vb = _mm512_set1_ps(p.b), vd = _mm512_set1_ps(p.dropped);
  const float* x = p.x;
  float* y = p.y;
  auto apply = [&](__mmask16 keep, __m512 v) {
    if (kAffine) return _mm512_mask_blend_ps(keep, vd, _mm512_fmadd_ps(va, v, vb));
    return _mm512_mask_mul_ps(vd, keep, v, va);
  };
  for (int64_t g = begin; g < end; g += 64) {
    uint64_t bits = kBitsIn ? p.bits_in[g >> 6] : philox::keep_bits64(key, static_cast<uint64_t>(g) >> 2, p.threshold);
    const int64_t m = end - g;
    if (m >= 64) {
      if (p.bits_out) p.bits_out[g >> 6] = bits;
      if (!kHasX) continue;
      for (int q = 0; q < 4; ++q) {
        const __m512 r = apply(static_cast<__mmask16>(bits >> (16 * q)), _mm512_loadu_ps(x + g + 16 * q));
        if (kStreamStores) _mm512_stream_ps(y + g + 16 * q, r);
        else _mm512_storeu_ps(y + g + 16 * q, r);
      }
    } else {  // last, partial group: masked loads and stores, bits past `end` cleared
      bits &= (uint64_t{1} << m) - 1;
      if (p.bits_out) p.bits_out[g >> 6] = bits;
      if (!kHasX) continue;
      for (int q = 0; q < 4 && 16 * q < m; ++q) {
        const int64_t left = m - 16 * q;
        const __mmask16 lanes = left >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << left) - 1);
        const __m512 r = apply(static_cast<__mmask16>(bits >> (16 * q)), _mm512_maskz_loadu_ps(lanes, x + g + 16 * q));
        _mm512_mask_storeu_ps(y + g + 16 * q, lanes, r);
      }
    }
  }
  if (kStreamStores) _mm_sfence();  // order the non-temporal stores before the caller reads y
}

}  // namespace

void dropout_pass_avx512(const DropoutPass& p, int64_t begin, int64_t end) {
  if (!p.x) {
    if (p.bits_in) return;  // nothing to write
    return run<false, false, false, false>(p, begin, end);
  }
  const bool nt = p.stream_stores && (reinterpret_cast<uintptr_t>(p.y + begin) & 63) == 0;
  if (p.affine) {
    if (p.bits_in) return run<true, true, true, false>(p, begin, end);
    return nt ? run<false, true, true, true>(p, begin, end) : run<false, true, true, false>(p, begin, end);
  }
  if (p.bits_in) return nt ? run<true, true, false, true>(p, begin, end) : run<true, true, false, false>(p, begin, end);
  return nt ? run<false, true, false, true>(p, begin, end) : run<false, true, false, false>(p, begin, end);
}

}  // namespace cpu
}  // namespace dropnet
