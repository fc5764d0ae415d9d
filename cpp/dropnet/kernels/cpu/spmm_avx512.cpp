// AVX-512 bodies of spmm_xt: the 16×16-transpose pack and the rows kernel (spmm_rows_impl.h)
// with 16-float batch vectors, panels of 64 batch columns.
#include <algorithm>

#include "dropnet/kernels/cpu/transpose_avx512.h"
#include "dropnet/kernels/cpu/spmm.h"
#include "dropnet/kernels/cpu/spmm_rows_impl.h"
#include "dropnet/kernels/cpu/vec_avx512.h"

namespace dropnet {
namespace cpu {

void spmm_pack_avx512(const float* X, int64_t ldx, int64_t M, int64_t Mpad, int64_t K, int64_t k0, int64_t k1,
                      int64_t B, float* P) {
  // 16×16 blocks: each X cache line is read whole, each panel line written whole.
  for (int64_t c = 0; c * B < Mpad; ++c) {
    const int64_t width = std::min(B, Mpad - c * B);  // a multiple of 16
    float* panel = P + c * K * B;
    for (int64_t kb = k0; kb < k1; kb += 16) {
      const int64_t kw = std::min<int64_t>(16, k1 - kb);
      for (int64_t jb = 0; jb < width; jb += 16) {
        const int64_t m0 = c * B + jb;
        if (kw == 16 && m0 + 16 <= M) {
          __m512 r[16];
          for (int i = 0; i < 16; ++i) r[i] = _mm512_loadu_ps(X + (m0 + i) * ldx + kb);
          transpose16x16(r);
          for (int i = 0; i < 16; ++i) _mm512_storeu_ps(panel + (kb + i) * width + jb, r[i]);
        } else {
          for (int64_t i = 0; i < kw; ++i)
            for (int64_t j = 0; j < 16; ++j)
              panel[(kb + i) * width + jb + j] = m0 + j < M ? X[(m0 + j) * ldx + kb + i] : 0.f;
        }
      }
    }
  }
}

namespace {

struct Avx512Ops : Avx512Vec {
  // Each 16×16 block of the tile (16 rows n × 16 batch columns) transposed into 16 Y rows.
  template <int V>
  static void write_tile(const float* tile, int64_t rows, int64_t n, int64_t m0, int64_t M, const float* bias,
                         bool relu, float* Y, int64_t ldy) {
    static_assert(kSpmmRowGroup == 16, "the writeback transposes 16 rows at once");
    constexpr int64_t W = 16 * V;
    const __mmask16 nmask = first_lanes16(rows);
    const __m512 b = bias ? _mm512_maskz_loadu_ps(nmask, bias + n) : _mm512_setzero_ps();
    for (int v = 0; v < V; ++v) {
      __m512 t[16];
      for (int i = 0; i < 16; ++i) t[i] = _mm512_load_ps(tile + i * W + 16 * v);
      transpose16x16(t);
      for (int j = 0; j < 16; ++j) {
        const int64_t m = m0 + 16 * v + j;
        if (m >= M) break;
        __m512 y = _mm512_add_ps(t[j], b);
        if (relu) y = _mm512_max_ps(y, _mm512_setzero_ps());
        _mm512_mask_storeu_ps(Y + m * ldy + n, nmask, y);
      }
    }
  }
};

}  // namespace

void spmm_rows_avx512(const CsrView& S, const float* P, int64_t M, int64_t Mpad, int64_t B, int64_t n0,
                      int64_t n1, const float* bias, bool relu, float* Y, int64_t ldy) {
  static_assert(kSpmmPanelAvx512 == 64, "rows_all_panels is instantiated for up to 4 vectors of 16");
  spmm_rows_impl<Avx512Ops>(S, P, M, Mpad, B, n0, n1, bias, relu, Y, ldy);
}

}  // namespace cpu
}  // namespace dropnet
