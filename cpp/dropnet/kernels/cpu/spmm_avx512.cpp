// AVX-512 bodies of spmm_xt: the 16×16-transpose pack and the rows kernel with 16-float batch
// vectors, panels of 64 batch columns (4 accumulators: enough to cover FMA latency on
// 256-bit-pipe cores such as Zen 4).
//
// Every stored entry costs one FMA and one 64-byte load of a panel row; nothing in an
// unstructured pattern lets a load serve two FMAs. Blocking over K so a panel block stays in L1
// (rows sweep a 16 KB block, parking partial sums) was measured slower than this plain loop at
// 0-95 % sparsity on Zen 4, so the loop stays plain.
#include <algorithm>

#include "dropnet/kernels/cpu/sparse_transpose_avx512.h"
#include "dropnet/kernels/cpu/spmm.h"

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

template <bool Indexed>
inline float value(const CsrView& S, int64_t p) {
  return Indexed ? S.values[S.value_index[p]] : S.values[p];
}

// acc += entries [p, end) of one row.
template <int V, bool Indexed>
inline void accumulate_row(const CsrView& S, const float* panel, int64_t p, int64_t end, __m512 acc[V]) {
  constexpr int64_t W = 16 * V;
  for (; p < end; ++p) {
    const __m512 w = _mm512_set1_ps(value<Indexed>(S, p));
    const float* x = panel + static_cast<int64_t>(S.indices[p]) * W;
    for (int v = 0; v < V; ++v) acc[v] = _mm512_fmadd_ps(w, _mm512_loadu_ps(x + 16 * v), acc[v]);
  }
}

// One panel (V vectors of 16 batch columns starting at batch row m0) for output rows [n0, n1).
template <int V, bool Indexed>
void panel_rows(const CsrView& S, const float* panel, int64_t m0, int64_t M, int64_t n0, int64_t n1,
                const float* bias, bool relu, float* Y, int64_t ldy) {
  constexpr int64_t W = 16 * V;  // panel width
  alignas(64) float tile[kSpmmRowGroup * W];
  static_assert(kSpmmRowGroup == 16, "the writeback transposes 16 rows at once");
  for (int64_t n = n0; n < n1; n += kSpmmRowGroup) {
    const int64_t rows = std::min(kSpmmRowGroup, n1 - n);
    // Two rows at a time: 2·V independent FMA chains hide the FMA latency even when V is small.
    // Each row still sums its own entries in ascending p, so pairing changes no bits.
    for (int64_t r = 0; r < kSpmmRowGroup; r += 2) {
      __m512 a[V], b[V];
      for (int v = 0; v < V; ++v) a[v] = b[v] = _mm512_setzero_ps();
      int64_t pa = 0, ea = 0, pb = 0, eb = 0;
      if (r < rows) pa = S.indptr[n + r], ea = S.indptr[n + r + 1];
      if (r + 1 < rows) pb = S.indptr[n + r + 1], eb = S.indptr[n + r + 2];
      for (; pa < ea && pb < eb; ++pa, ++pb) {
        const __m512 wa = _mm512_set1_ps(value<Indexed>(S, pa)), wb = _mm512_set1_ps(value<Indexed>(S, pb));
        const float* xa = panel + static_cast<int64_t>(S.indices[pa]) * W;
        const float* xb = panel + static_cast<int64_t>(S.indices[pb]) * W;
        for (int v = 0; v < V; ++v) {
          a[v] = _mm512_fmadd_ps(wa, _mm512_loadu_ps(xa + 16 * v), a[v]);
          b[v] = _mm512_fmadd_ps(wb, _mm512_loadu_ps(xb + 16 * v), b[v]);
        }
      }
      accumulate_row<V, Indexed>(S, panel, pa, ea, a);
      accumulate_row<V, Indexed>(S, panel, pb, eb, b);
      for (int v = 0; v < V; ++v) {
        _mm512_store_ps(tile + r * W + 16 * v, a[v]);
        _mm512_store_ps(tile + (r + 1) * W + 16 * v, b[v]);
      }
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
