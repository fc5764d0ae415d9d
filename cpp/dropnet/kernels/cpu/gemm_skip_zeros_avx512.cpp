// AVX-512 bodies of sgemm_at_b_skip_zeros: lists by 16×16 transposes and compresses; rows of C by
// AXPYs of slab rows, 64 columns (4 registers) at a time with two accumulator sets (8 FMA chains).
#include <immintrin.h>

#include "dropnet/kernels/cpu/gemm_skip_zeros.h"
#include "dropnet/kernels/cpu/sparse_transpose_avx512.h"

namespace dropnet {
namespace cpu {

void skip_zeros_column_lists_avx512(const float* A, int64_t M, int64_t lda, int64_t n0, int64_t n1, int64_t stride,
                                    int32_t* rows, float* values, int32_t* count) {
  const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  for (int64_t g0 = n0; g0 < n1; g0 += 16) {
    const int gw = static_cast<int>(n1 - g0 < 16 ? n1 - g0 : 16);
    const __mmask16 cols = static_cast<__mmask16>((1u << gw) - 1);
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
      const __mmask16 in = N - n >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << (N - n)) - 1);
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
constexpr int kSlabVectors = static_cast<int>(kSkipZerosSlabAvx512 / 16);

// C[n, c0 : c0 + 16·V) from the list of column n and the slab (rows of kSkipZerosSlabAvx512
// floats); the last register is stored under `tail`.
template <int V>
inline void row_chunk(const int32_t* rows, const float* vals, int32_t count, const float* slab, __mmask16 tail,
                      float* c) {
  constexpr int64_t W = kSkipZerosSlabAvx512;
  __m512 even[V], odd[V];
#pragma GCC unroll 4
  for (int q = 0; q < V; ++q) even[q] = odd[q] = _mm512_setzero_ps();
  int32_t i = 0;
  for (; i + 1 < count; i += 2) {
    const __m512 v0 = _mm512_set1_ps(vals[i]), v1 = _mm512_set1_ps(vals[i + 1]);
    const float* b0 = slab + rows[i] * W;
    const float* b1 = slab + rows[i + 1] * W;
#pragma GCC unroll 4
    for (int q = 0; q < V; ++q) {
      even[q] = _mm512_fmadd_ps(v0, _mm512_loadu_ps(b0 + 16 * q), even[q]);
      odd[q] = _mm512_fmadd_ps(v1, _mm512_loadu_ps(b1 + 16 * q), odd[q]);
    }
  }
  if (i < count) {
    const __m512 v0 = _mm512_set1_ps(vals[i]);
    const float* b0 = slab + rows[i] * W;
#pragma GCC unroll 4
    for (int q = 0; q < V; ++q) even[q] = _mm512_fmadd_ps(v0, _mm512_loadu_ps(b0 + 16 * q), even[q]);
  }
#pragma GCC unroll 4
  for (int q = 0; q < V - 1; ++q) _mm512_storeu_ps(c + 16 * q, _mm512_add_ps(even[q], odd[q]));
  _mm512_mask_storeu_ps(c + 16 * (V - 1), tail, _mm512_add_ps(even[V - 1], odd[V - 1]));
}
}  // namespace

void skip_zeros_rows_avx512(const NonzeroLists& L, int64_t n0, int64_t n1, const float* P, int64_t M, int64_t K,
                            float* C, int64_t ldc) {  // M: rows of the slabs
  constexpr int64_t W = kSkipZerosSlabAvx512;
  // Slab outer, rows inner: a slab (M·W floats, 32 KB at M = 128) is read by every row of the
  // piece while it is still in cache; the lists are re-read per slab (8 bytes an entry).
  for (int64_t c0 = 0; c0 < K; c0 += W) {
    const float* slab = P + c0 * M;
    const int64_t rem = K - c0;
    const int V = static_cast<int>(rem >= W ? kSlabVectors : (rem + 15) / 16);
    const int last = static_cast<int>(rem - 16 * (V - 1));
    const __mmask16 tail = static_cast<__mmask16>(last >= 16 ? 0xFFFF : (1u << last) - 1);
    for (int64_t n = n0; n < n1; ++n) {
      const int64_t j = n - n0;
      const int32_t* rows = L.index + j * L.stride;
      const float* vals = L.values + j * L.stride;
      float* c = C + n * ldc + c0;
      switch (V) {
        case 4: row_chunk<4>(rows, vals, L.count[j], slab, tail, c); break;
        case 3: row_chunk<3>(rows, vals, L.count[j], slab, tail, c); break;
        case 2: row_chunk<2>(rows, vals, L.count[j], slab, tail, c); break;
        default: row_chunk<1>(rows, vals, L.count[j], slab, tail, c);
      }
    }
  }
}

}  // namespace cpu
}  // namespace dropnet
