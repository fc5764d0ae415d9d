// AVX2 body of the skip-zeros products: the rows kernel (gemm_skip_zeros_rows_impl.h) with 8-float
// vectors and 32-column slabs. The lists are built by the scalar code.
#include <immintrin.h>

#include <cstring>

#include "dropnet/kernels/cpu/gemm_skip_zeros.h"
#include "dropnet/kernels/cpu/gemm_skip_zeros_rows_impl.h"

namespace dropnet {
namespace cpu {

namespace {
struct Avx2Ops {
  using Vec = __m256;
  static constexpr int64_t kLanes = 8, kSlab = kSkipZerosSlabAvx2;
  static Vec zero() { return _mm256_setzero_ps(); }
  static Vec set1(float f) { return _mm256_set1_ps(f); }
  static Vec loadu(const float* p) { return _mm256_loadu_ps(p); }
  static Vec add(Vec a, Vec b) { return _mm256_add_ps(a, b); }
  static Vec fmadd(Vec a, Vec b, Vec c) { return _mm256_fmadd_ps(a, b, c); }
  static void storeu(float* p, Vec v) { _mm256_storeu_ps(p, v); }
  static void store_first(float* p, Vec v, int n) {
    alignas(32) float tmp[8];
    _mm256_store_ps(tmp, v);
    std::memcpy(p, tmp, static_cast<size_t>(n) * sizeof(float));
  }
};
}  // namespace

void skip_zeros_rows_avx2(const NonzeroLists& L, int64_t r0, int64_t r1, const float* P, int64_t R, int64_t K,
                          float* C, int64_t ldc) {
  skip_zeros_rows_impl<Avx2Ops>(L, r0, r1, P, R, K, C, ldc);
}

}  // namespace cpu
}  // namespace dropnet
