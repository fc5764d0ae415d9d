// The float-vector operations the templated kernels (spmm_rows_impl.h, csr_matmul_impl.h) are
// written over, for 16-float AVX-512 vectors. Include only from *_avx512.cpp units (compiled with
// the AVX-512 flags); internal linkage.
#pragma once
#include <immintrin.h>

#include <cstdint>

namespace dropnet {
namespace cpu {
namespace {

// Mask of lanes [0, n): every masked tail load and store goes through this one function. n is
// clamped to [0, 16] because callers compute it as `remaining - 16 * v`, which is <= 0 for the
// vectors past the end; a raw `(1u << n) - 1` would shift by a negative count (undefined; on x86
// the count wraps and the mask becomes all ones, an over-read past the end of the array).
inline __mmask16 first_lanes16(int64_t n) {
  return n <= 0 ? __mmask16(0) : n >= 16 ? __mmask16(0xFFFF) : static_cast<__mmask16>((1u << n) - 1u);
}

struct Avx512Vec {
  using Vec = __m512;
  static constexpr int64_t kLanes = 16;
  static Vec zero() { return _mm512_setzero_ps(); }
  static Vec set1(float f) { return _mm512_set1_ps(f); }
  static Vec loadu(const float* p) { return _mm512_loadu_ps(p); }
  static Vec load(const float* p) { return _mm512_load_ps(p); }
  static void store(float* p, Vec v) { _mm512_store_ps(p, v); }
  static void storeu(float* p, Vec v) { _mm512_storeu_ps(p, v); }
  static Vec fmadd(Vec a, Vec b, Vec c) { return _mm512_fmadd_ps(a, b, c); }
  static Vec add(Vec a, Vec b) { return _mm512_add_ps(a, b); }
  static Vec max(Vec a, Vec b) { return _mm512_max_ps(a, b); }
  // Lane sum by a fixed tree: lanes j + (j+8), then j + (j+4), then j + (j+2), then the last two.
  static float reduce_add(Vec v) {
    const __m256 h = _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
  // The canonical 16-lane sum (lanes16.h): reduce_add's tree is that tree.
  static constexpr int kVecs16 = 1;
  static float reduce16(const Vec* v) { return reduce_add(v[0]); }
};

}  // namespace
}  // namespace cpu
}  // namespace dropnet
