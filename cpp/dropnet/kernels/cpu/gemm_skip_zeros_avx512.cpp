// AVX-512 bodies of the skip-zeros products: column lists by 16×16 transposes and compresses, row
// lists by compresses, and the rows kernel (gemm_skip_zeros_rows_impl.h) with 16-float vectors and
// 64-column slabs.
#include <immintrin.h>

#include "dropnet/kernels/cpu/gemm_skip_zeros.h"
#include "dropnet/kernels/cpu/gemm_skip_zeros_rows_impl.h"
#include "dropnet/kernels/cpu/transpose_avx512.h"
#include "dropnet/kernels/cpu/vec_avx512.h"

namespace dropnet {
namespace cpu {

void skip_zeros_column_lists_avx512(const float* A, int64_t M, int64_t lda, int64_t n0, int64_t n1, int64_t stride,
                                    int32_t* rows, float* values, int32_t* count) {
  const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  for (int64_t g0 = n0; g0 < n1; g0 += 16) {
    const int gw = static_cast<int>(n1 - g0 < 16 ? n1 - g0 : 16);
    const __mmask16 cols = first_lanes16(gw);
    int32_t* cnt = count + (g0 - n0);
    for (int j = 0; j < gw; ++j) cnt[j] = 0;
    // A block of 16 rows × 16 columns turns into 16 column vectors; each keeps its nonzeros
    // (NaN too: unordered compares as "not equal") at the end of its list. The unaligned store
    // may write up to 15 slots past the new end, never past m + 16 <= stride.
    for (int64_t m = 0; m < M; m += 16) {
      __m512 r[16];
      for (int i = 0; i < 16; ++i)
        r[i] = m + i < M ? _mm512_maskz_loadu_ps(cols, A + (m + i) * lda + g0) : _mm512_setzero_ps();
      transpose16x16(r);
      const __m512i m_ids = _mm512_add_epi32(iota, _mm512_set1_epi32(static_cast<int32_t>(m)));
      for (int j = 0; j < gw; ++j) {
        const __mmask16 keep = _mm512_cmp_ps_mask(r[j], _mm512_setzero_ps(), _CMP_NEQ_UQ);
        const int64_t at = (g0 - n0 + j) * stride + cnt[j];
        _mm512_storeu_ps(values + at, _mm512_maskz_compress_ps(keep, r[j]));
        _mm512_storeu_si512(rows + at, _mm512_maskz_compress_epi32(keep, m_ids));
        cnt[j] += _mm_popcnt_u32(keep);
      }
    }
  }
}

void skip_zeros_row_lists_avx512(const float* A, int64_t N, int64_t lda, int64_t r0, int64_t r1, int64_t stride,
                                 int32_t* index, float* values, int32_t* count) {
  const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  for (int64_t r = r0; r < r1; ++r) {
    const float* a = A + r * lda;
    int32_t* idx = index + (r - r0) * stride;
    float* val = values + (r - r0) * stride;
    int32_t c = 0;
    for (int64_t n = 0; n < N; n += 16) {
      const __mmask16 in = first_lanes16(N - n);
      const __m512 v = _mm512_maskz_loadu_ps(in, a + n);
      const __mmask16 keep = _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_NEQ_UQ);
      const __m512i ids = _mm512_add_epi32(iota, _mm512_set1_epi32(static_cast<int32_t>(n)));
      _mm512_storeu_ps(val + c, _mm512_maskz_compress_ps(keep, v));
      _mm512_storeu_si512(idx + c, _mm512_maskz_compress_epi32(keep, ids));
      c += _mm_popcnt_u32(keep);
    }
    count[r - r0] = c;
  }
}

namespace {
struct Avx512Ops {
  using Vec = __m512;
  static constexpr int64_t kLanes = 16, kSlab = kSkipZerosSlabAvx512;
  static Vec zero() { return _mm512_setzero_ps(); }
  static Vec set1(float f) { return _mm512_set1_ps(f); }
  static Vec loadu(const float* p) { return _mm512_loadu_ps(p); }
  static Vec add(Vec a, Vec b) { return _mm512_add_ps(a, b); }
  static Vec fmadd(Vec a, Vec b, Vec c) { return _mm512_fmadd_ps(a, b, c); }
  static void storeu(float* p, Vec v) { _mm512_storeu_ps(p, v); }
  static void store_first(float* p, Vec v, int n) {
    _mm512_mask_storeu_ps(p, first_lanes16(n), v);
  }
};
}  // namespace

void skip_zeros_rows_avx512(const NonzeroLists& L, int64_t r0, int64_t r1, const float* P, int64_t R, int64_t K,
                            float* C, int64_t ldc) {
  skip_zeros_rows_impl<Avx512Ops>(L, r0, r1, P, R, K, C, ldc);
}

}  // namespace cpu
}  // namespace dropnet
