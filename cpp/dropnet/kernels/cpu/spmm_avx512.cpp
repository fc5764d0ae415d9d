// AVX-512 body of spmm_xt: the rows kernel with 16-float batch vectors, panels of 64 batch
// columns (4 accumulators: enough to cover FMA latency on 256-bit-pipe cores such as Zen 4).
// The pack is the AVX2 8×8 one (spmm_avx2.cpp): packing is memory-bound either way.
#include <algorithm>

#include "dropnet/kernels/cpu/sparse_transpose_avx512.h"
#include "dropnet/kernels/cpu/spmm.h"

namespace dropnet {
namespace cpu {

namespace {

// One panel (V vectors of 16 batch columns starting at batch row m0) for output rows [n0, n1).
template <int V, bool Indexed>
void panel_rows(const CsrView& S, const float* panel, int64_t m0, int64_t M, int64_t n0, int64_t n1,
                const float* bias, bool relu, float* Y, int64_t ldy) {
  constexpr int64_t W = 16 * V;  // panel width
  alignas(64) float tile[kSpmmRowGroup * W];
  static_assert(kSpmmRowGroup == 16, "the writeback transposes 16 rows at once");
  for (int64_t n = n0; n < n1; n += kSpmmRowGroup) {
    const int64_t rows = std::min(kSpmmRowGroup, n1 - n);
    for (int64_t r = 0; r < kSpmmRowGroup; ++r) {
      __m512 acc[V];
      for (int v = 0; v < V; ++v) acc[v] = _mm512_setzero_ps();
      if (r < rows) {
        const int64_t end = S.indptr[n + r + 1];
        for (int64_t p = S.indptr[n + r]; p < end; ++p) {
          const __m512 w = _mm512_set1_ps(Indexed ? S.values[S.value_index[p]] : S.values[p]);
          const float* x = panel + static_cast<int64_t>(S.indices[p]) * W;
          for (int v = 0; v < V; ++v) acc[v] = _mm512_fmadd_ps(w, _mm512_loadu_ps(x + 16 * v), acc[v]);
        }
      }
      for (int v = 0; v < V; ++v) _mm512_store_ps(tile + r * W + 16 * v, acc[v]);
    }
    // Writeback: each 16×16 block (16 rows n × 16 batch columns) transposed into 16 Y rows.
    const __mmask16 nmask = static_cast<__mmask16>((1u << rows) - 1u);
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
}

template <bool Indexed>
void rows_all_panels(const CsrView& S, const float* P, int64_t M, int64_t Mpad, int64_t B, int64_t n0, int64_t n1,
                     const float* bias, bool relu, float* Y, int64_t ldy) {
  const int64_t K = S.cols;
  for (int64_t c = 0; c * B < Mpad; ++c) {
    const float* panel = P + c * K * B;
    const int64_t m0 = c * B;
    switch (std::min(B, Mpad - m0) / 16) {
      case 1: panel_rows<1, Indexed>(S, panel, m0, M, n0, n1, bias, relu, Y, ldy); break;
      case 2: panel_rows<2, Indexed>(S, panel, m0, M, n0, n1, bias, relu, Y, ldy); break;
      case 3: panel_rows<3, Indexed>(S, panel, m0, M, n0, n1, bias, relu, Y, ldy); break;
      default: panel_rows<4, Indexed>(S, panel, m0, M, n0, n1, bias, relu, Y, ldy); break;
    }
  }
}

}  // namespace

void spmm_rows_avx512(const CsrView& S, const float* P, int64_t M, int64_t Mpad, int64_t B, int64_t n0,
                      int64_t n1, const float* bias, bool relu, float* Y, int64_t ldy) {
  static_assert(kSpmmPanelAvx512 == 64, "panel_rows is instantiated for up to 4 vectors of 16");
  if (S.value_index) rows_all_panels<true>(S, P, M, Mpad, B, n0, n1, bias, relu, Y, ldy);
  else rows_all_panels<false>(S, P, M, Mpad, B, n0, n1, bias, relu, Y, ldy);
}

}  // namespace cpu
}  // namespace dropnet
