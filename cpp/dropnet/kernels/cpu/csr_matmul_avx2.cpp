// AVX2 bodies of csr_matmul.h (csr_matmul_impl.h with 8-float vectors).
#include <immintrin.h>

#include "dropnet/kernels/cpu/csr_matmul.h"
#include "dropnet/kernels/cpu/csr_matmul_impl.h"

namespace dropnet {
namespace cpu {

namespace {
struct Avx2Ops {
  using Vec = __m256;
  static constexpr int64_t kLanes = 8;
  static Vec zero() { return _mm256_setzero_ps(); }
  static Vec set1(float f) { return _mm256_set1_ps(f); }
  static Vec loadu(const float* p) { return _mm256_loadu_ps(p); }
  static void storeu(float* p, Vec v) { _mm256_storeu_ps(p, v); }
  static Vec fmadd(Vec a, Vec b, Vec c) { return _mm256_fmadd_ps(a, b, c); }
  static Vec add(Vec a, Vec b) { return _mm256_add_ps(a, b); }
  static Vec max(Vec a, Vec b) { return _mm256_max_ps(a, b); }
  static float reduce_add(Vec v) {  // halves, then pairs, then the last two
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
};
}  // namespace

void csr_matmul_avx2(const CsrView& S, const float* B, int64_t ldb, int64_t P, const float* bias, bool relu,
                     float* C, int64_t ldc) {
  csr_matmul_impl<Avx2Ops>(S, B, ldb, P, bias, relu, C, ldc);
}

void csr_sampled_dot_avx2(const CsrView& S, const float* A, int64_t lda, const float* B, int64_t ldb, int64_t P,
                          float* out) {
  csr_sampled_dot_impl<Avx2Ops>(S, A, lda, B, ldb, P, out);
}

}  // namespace cpu
}  // namespace dropnet
