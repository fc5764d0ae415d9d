// The float-vector operations the templated kernels (spmm_rows_impl.h, csr_matmul_impl.h,
// gemm_skip_zeros_rows_impl.h) are written over, for 8-float AVX2 vectors, and the lane mask of
// the masked loads and stores. Include only from *_avx2.cpp units (compiled with the AVX2 flags);
// internal linkage.
#pragma once
#include <immintrin.h>

#include <cstdint>

namespace dropnet {
namespace cpu {
namespace {

// Mask of lanes [0, n) for maskload / maskstore (the sign bit of each 32-bit lane): every masked
// tail load and store goes through this one function. Any n is safe: n <= 0 enables no lane,
// n >= 8 all of them (callers compute n as `remaining - 8 * v`, which may be negative).
inline __m256i first_lanes8(int64_t n) {
  const int clamped = static_cast<int>(n < 0 ? 0 : n > 8 ? 8 : n);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(clamped), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

struct Avx2Vec {
  using Vec = __m256;
  static constexpr int64_t kLanes = 8;
  static Vec zero() { return _mm256_setzero_ps(); }
  static Vec set1(float f) { return _mm256_set1_ps(f); }
  static Vec loadu(const float* p) { return _mm256_loadu_ps(p); }
  static Vec load(const float* p) { return _mm256_load_ps(p); }
  static void store(float* p, Vec v) { _mm256_store_ps(p, v); }
  static void storeu(float* p, Vec v) { _mm256_storeu_ps(p, v); }
  // The first n lanes of v to p[0, n); nothing is read or written past p + n.
  static void store_first(float* p, Vec v, int64_t n) { _mm256_maskstore_ps(p, first_lanes8(n), v); }
  static Vec fmadd(Vec a, Vec b, Vec c) { return _mm256_fmadd_ps(a, b, c); }
  static Vec add(Vec a, Vec b) { return _mm256_add_ps(a, b); }
  static Vec max(Vec a, Vec b) { return _mm256_max_ps(a, b); }
  // Lane sum by a fixed tree: halves, then pairs, then the last two.
  static float reduce_add(Vec v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
  // The canonical 16-lane sum (lanes16.h) of lanes 0-7 in v[0] and 8-15 in v[1].
  static constexpr int kVecs16 = 2;
  static float reduce16(const Vec* v) { return reduce_add(add(v[0], v[1])); }
};

}  // namespace
}  // namespace cpu
}  // namespace dropnet
