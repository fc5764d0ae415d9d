// AVX2 body of sddmm: dot products over the batch padded to 16 rows, two 8-float vectors per step
// (the canonical 16 lanes, lanes16.h), 4 entries at once.
#include <immintrin.h>

#include "dropnet/kernels/cpu/sparse_sddmm.h"
#include "dropnet/kernels/cpu/vec_avx2.h"

namespace dropnet {
namespace cpu {

void sddmm_rows_avx2(const float* dYt, const float* Xt, int64_t Mpad, const CsrView& S, int64_t n0, int64_t n1,
                     float* dW, bool accumulate) {
  constexpr int G = 4;
  for (int64_t n = n0; n < n1; ++n) {
    const float* dy = dYt + n * Mpad;
    const int64_t end = S.indptr[n + 1];
    for (int64_t p = S.indptr[n]; p < end; p += G) {
      const int g = static_cast<int>(end - p < G ? end - p : G);
      const float* x[G];
      for (int i = 0; i < G; ++i) x[i] = Xt + static_cast<int64_t>(S.indices[p + (i < g ? i : 0)]) * Mpad;
      // The canonical 16 lanes (lanes16.h): rows m ≡ 0..7 (mod 16) in acc[i][0], 8..15 in acc[i][1].
      __m256 acc[G][2];
      for (int i = 0; i < G; ++i) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
      for (int64_t m = 0; m < Mpad; m += 16) {
        const __m256 d0 = _mm256_loadu_ps(dy + m), d1 = _mm256_loadu_ps(dy + m + 8);
        for (int i = 0; i < G; ++i) {
          acc[i][0] = _mm256_fmadd_ps(d0, _mm256_loadu_ps(x[i] + m), acc[i][0]);
          acc[i][1] = _mm256_fmadd_ps(d1, _mm256_loadu_ps(x[i] + m + 8), acc[i][1]);
        }
      }
      for (int i = 0; i < g; ++i) {
        const float s = Avx2Vec::reduce16(acc[i]);
        dW[p + i] = accumulate ? dW[p + i] + s : s;
      }
    }
  }
}

}  // namespace cpu
}  // namespace dropnet
