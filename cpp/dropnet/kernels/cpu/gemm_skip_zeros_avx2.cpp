// AVX2 body of sgemm_at_b_skip_zeros: rows of C by AXPYs of slab rows, 32 columns (4 registers) at
// a time with two accumulator sets (8 FMA chains). Slabs are zero-padded to full width, so every
// load is whole; only the store of the last slab is cut to K.
#include <immintrin.h>

#include <cstring>

#include "dropnet/kernels/cpu/gemm_skip_zeros.h"

namespace dropnet {
namespace cpu {

namespace {
constexpr int kSlabVectors = static_cast<int>(kSkipZerosSlabAvx2 / 8);

template <int V>
inline void row_chunk(const int32_t* rows, const float* vals, int32_t count, const float* slab, int64_t width,
                      float* c) {
  constexpr int64_t W = kSkipZerosSlabAvx2;
  __m256 even[V], odd[V];
#pragma GCC unroll 4
  for (int q = 0; q < V; ++q) even[q] = odd[q] = _mm256_setzero_ps();
  int32_t i = 0;
  for (; i + 1 < count; i += 2) {
    const __m256 v0 = _mm256_set1_ps(vals[i]), v1 = _mm256_set1_ps(vals[i + 1]);
    const float* b0 = slab + rows[i] * W;
    const float* b1 = slab + rows[i + 1] * W;
#pragma GCC unroll 4
    for (int q = 0; q < V; ++q) {
      even[q] = _mm256_fmadd_ps(v0, _mm256_loadu_ps(b0 + 8 * q), even[q]);
      odd[q] = _mm256_fmadd_ps(v1, _mm256_loadu_ps(b1 + 8 * q), odd[q]);
    }
  }
  if (i < count) {
    const __m256 v0 = _mm256_set1_ps(vals[i]);
    const float* b0 = slab + rows[i] * W;
#pragma GCC unroll 4
    for (int q = 0; q < V; ++q) even[q] = _mm256_fmadd_ps(v0, _mm256_loadu_ps(b0 + 8 * q), even[q]);
  }
  if (width == 8 * V) {
#pragma GCC unroll 4
    for (int q = 0; q < V; ++q) _mm256_storeu_ps(c + 8 * q, _mm256_add_ps(even[q], odd[q]));
    return;
  }
  alignas(32) float tmp[8 * V];
#pragma GCC unroll 4
  for (int q = 0; q < V; ++q) _mm256_store_ps(tmp + 8 * q, _mm256_add_ps(even[q], odd[q]));
  std::memcpy(c, tmp, static_cast<size_t>(width) * sizeof(float));
}
}  // namespace

void skip_zeros_rows_avx2(const NonzeroLists& L, int64_t n0, int64_t n1, const float* P, int64_t M, int64_t K,
                          float* C, int64_t ldc) {
  constexpr int64_t W = kSkipZerosSlabAvx2;
  for (int64_t c0 = 0; c0 < K; c0 += W) {  // slab outer, as the AVX-512 body
    const float* slab = P + c0 * M;
    const int64_t width = K - c0 < W ? K - c0 : W;
    const int V = static_cast<int>((width + 7) / 8);
    for (int64_t n = n0; n < n1; ++n) {
      const int64_t j = n - n0;
      const int32_t* rows = L.index + j * L.stride;
      const float* vals = L.values + j * L.stride;
      float* c = C + n * ldc + c0;
      switch (V) {
        case 4: row_chunk<4>(rows, vals, L.count[j], slab, width, c); break;
        case 3: row_chunk<3>(rows, vals, L.count[j], slab, width, c); break;
        case 2: row_chunk<2>(rows, vals, L.count[j], slab, width, c); break;
        default: row_chunk<1>(rows, vals, L.count[j], slab, width, c);
      }
    }
  }
}

}  // namespace cpu
}  // namespace dropnet
