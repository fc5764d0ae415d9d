// AVX-512 bodies of csr_matmul.h (csr_matmul_impl.h with 16-float vectors).
#include <immintrin.h>

#include "dropnet/kernels/cpu/csr_matmul.h"
#include "dropnet/kernels/cpu/csr_matmul_impl.h"

namespace dropnet {
namespace cpu {

namespace {
struct Avx512Ops {
  using Vec = __m512;
  static constexpr int64_t kLanes = 16;
  static Vec zero() { return _mm512_setzero_ps(); }
  static Vec set1(float f) { return _mm512_set1_ps(f); }
  static Vec loadu(const float* p) { return _mm512_loadu_ps(p); }
  static void storeu(float* p, Vec v) { _mm512_storeu_ps(p, v); }
  static Vec fmadd(Vec a, Vec b, Vec c) { return _mm512_fmadd_ps(a, b, c); }
  static Vec add(Vec a, Vec b) { return _mm512_add_ps(a, b); }
  static Vec max(Vec a, Vec b) { return _mm512_max_ps(a, b); }
  static float reduce_add(Vec v) {  // halves, quarters, then pairs, then the last two
    const __m256 h = _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
};
}  // namespace

void csr_matmul_avx512(const CsrView& S, const float* B, int64_t ldb, int64_t P, const float* bias, bool relu,
                       float* C, int64_t ldc) {
  csr_matmul_impl<Avx512Ops>(S, B, ldb, P, bias, relu, C, ldc);
}

void csr_sampled_dot_avx512(const CsrView& S, const float* A, int64_t lda, const float* B, int64_t ldb, int64_t P,
                            float* out) {
  csr_sampled_dot_impl<Avx512Ops>(S, A, lda, B, ldb, P, out);
}

}  // namespace cpu
}  // namespace dropnet
