// AVX2 bodies of spmm_xt: the 8×8-transpose pack (also used by SDDMM) and
// the rows kernel (spmm_rows_impl.h) with 8-float batch vectors, panels of 32 batch columns.
#include <algorithm>

#include "dropnet/kernels/cpu/transpose_avx2.h"
#include "dropnet/kernels/cpu/spmm.h"
#include "dropnet/kernels/cpu/spmm_rows_impl.h"
#include "dropnet/kernels/cpu/vec_avx2.h"

namespace dropnet {
namespace cpu {

void spmm_pack_avx2(const float* X, int64_t ldx, int64_t M, int64_t Mpad, int64_t K, int64_t k0, int64_t k1,
                    int64_t B, float* P) {
  for (int64_t c = 0; c * B < Mpad; ++c) {
    const int64_t width = std::min(B, Mpad - c * B);  // a multiple of 8
    float* panel = P + c * K * B;
    for (int64_t kb = k0; kb < k1; kb += 8) {
      const int64_t kw = std::min<int64_t>(8, k1 - kb);
      for (int64_t jb = 0; jb < width; jb += 8) {
        const int64_t m0 = c * B + jb;
        if (kw == 8 && m0 + 8 <= M) {
          __m256 r[8];
          for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(X + (m0 + i) * ldx + kb);
          transpose8x8(r);
          for (int i = 0; i < 8; ++i) _mm256_storeu_ps(panel + (kb + i) * width + jb, r[i]);
        } else {  // edge of X: element by element, zeros past row M
          for (int64_t i = 0; i < kw; ++i)
            for (int64_t j = 0; j < 8; ++j)
              panel[(kb + i) * width + jb + j] = m0 + j < M ? X[(m0 + j) * ldx + kb + i] : 0.f;
        }
      }
    }
  }
}

namespace {

struct Avx2Ops : Avx2Vec {
  // 8×8 blocks of the tile (8 rows n × 8 batch columns) transposed into Y rows.
  template <int V>
  static void write_tile(const float* tile, int64_t rows, int64_t n, int64_t m0, int64_t M, const float* bias,
                         bool relu, float* Y, int64_t ldy) {
    constexpr int64_t W = 8 * V;
    for (int64_t h = 0; h < rows; h += 8) {
      const int64_t h_rows = std::min<int64_t>(8, rows - h);
      const __m256i nmask = first_lanes8(h_rows);
      const __m256 b = bias ? _mm256_maskload_ps(bias + n + h, nmask) : _mm256_setzero_ps();
      for (int v = 0; v < V; ++v) {
        __m256 t[8];
        for (int i = 0; i < 8; ++i) t[i] = _mm256_load_ps(tile + (h + i) * W + 8 * v);
        transpose8x8(t);
        for (int j = 0; j < 8; ++j) {
          const int64_t m = m0 + 8 * v + j;
          if (m >= M) break;
          __m256 y = _mm256_add_ps(t[j], b);
          if (relu) y = _mm256_max_ps(y, _mm256_setzero_ps());
          _mm256_maskstore_ps(Y + m * ldy + n + h, nmask, y);
        }
      }
    }
  }
};

}  // namespace

void spmm_rows_avx2(const CsrView& S, const float* P, int64_t M, int64_t Mpad, int64_t B, int64_t n0, int64_t n1,
                    const float* bias, bool relu, float* Y, int64_t ldy) {
  static_assert(kSpmmPanelAvx2 == 32, "rows_all_panels is instantiated for up to 4 vectors of 8");
  spmm_rows_impl<Avx2Ops>(S, P, M, Mpad, B, n0, n1, bias, relu, Y, ldy);
}

}  // namespace cpu
}  // namespace dropnet
