// The rows kernel of spmm_xt, written once over a vector-ops type and compiled in each ISA unit
// (include only from spmm_avx2.cpp / spmm_avx512.cpp; everything here has internal linkage, so
// the per-ISA instantiations never meet at link time).
//
// Ops provides: Vec, kLanes, zero(), set1(f), loadu(p), load(p), store(p, v), fmadd(a, b, c) and
// write_tile<V>(tile, rows, n, m0, M, bias, relu, Y, ldy), which transposes a tile of
// kSpmmRowGroup rows × V·kLanes batch columns into Y (adding bias, applying ReLU).
//
// Every stored entry costs one FMA and one load of a panel row per batch vector; nothing in an
// unstructured pattern lets a load serve two FMAs, so the loop is kept plain. Tried and measured
// slower on Zen 4 (same bits either way): sweeping K in L1-sized blocks (16 KB) and in L2-sized
// blocks (256 KB, rows in chunks, partial sums parked in scratch); 128-column panels.
// Known cost: the transposed pattern (backward input) reaches its values through value_index.
// spmm_xt gathers them into entry order before this kernel runs (it reads S.values[p] only), which
// pays at L2-sized layers; once the values outgrow L2 (4096 × 4096 at 90 %: 6.7 MB) the scattered
// reads cost ~2 ms wherever they happen, and the backward takes ~2x the forward. Software prefetch
// did not help.
#pragma once
#include <algorithm>
#include <cstdint>

#include "dropnet/kernels/cpu/spmm.h"

namespace dropnet {
namespace cpu {
namespace {

// acc += w_p · panel[k_p][:] for entries [p, end) of one row.
template <class Ops, int V>
inline void accumulate_row(const CsrView& S, const float* panel, int64_t p, int64_t end, typename Ops::Vec acc[V]) {
  constexpr int64_t W = Ops::kLanes * V;
  for (; p < end; ++p) {
    const auto w = Ops::set1(S.values[p]);
    const float* x = panel + static_cast<int64_t>(S.indices[p]) * W;
    for (int v = 0; v < V; ++v) acc[v] = Ops::fmadd(w, Ops::loadu(x + Ops::kLanes * v), acc[v]);
  }
}

// One panel (V vectors of batch columns starting at batch row m0) for output rows [n0, n1).
template <class Ops, int V>
void panel_rows(const CsrView& S, const float* panel, int64_t m0, int64_t M, int64_t n0, int64_t n1,
                const float* bias, bool relu, float* Y, int64_t ldy) {
  using Vec = typename Ops::Vec;
  constexpr int64_t W = Ops::kLanes * V;  // panel width
  alignas(64) float tile[kSpmmRowGroup * W];
  for (int64_t n = n0; n < n1; n += kSpmmRowGroup) {
    const int64_t rows = std::min(kSpmmRowGroup, n1 - n);
    // Two rows at a time: 2·V independent FMA chains hide the FMA latency even when V is small
    // (measured 1.6x at 0 % sparsity on Zen 4). Each row still sums its own entries in
    // ascending p in one chain, so pairing changes no bits.
    for (int64_t r = 0; r < kSpmmRowGroup; r += 2) {
      Vec a[V], b[V];
      for (int v = 0; v < V; ++v) a[v] = b[v] = Ops::zero();
      int64_t pa = 0, ea = 0, pb = 0, eb = 0;
      if (r < rows) pa = S.indptr[n + r], ea = S.indptr[n + r + 1];
      if (r + 1 < rows) pb = S.indptr[n + r + 1], eb = S.indptr[n + r + 2];
      for (; pa < ea && pb < eb; ++pa, ++pb) {
        const Vec wa = Ops::set1(S.values[pa]), wb = Ops::set1(S.values[pb]);
        const float* xa = panel + static_cast<int64_t>(S.indices[pa]) * W;
        const float* xb = panel + static_cast<int64_t>(S.indices[pb]) * W;
        for (int v = 0; v < V; ++v) {
          a[v] = Ops::fmadd(wa, Ops::loadu(xa + Ops::kLanes * v), a[v]);
          b[v] = Ops::fmadd(wb, Ops::loadu(xb + Ops::kLanes * v), b[v]);
        }
      }
      accumulate_row<Ops, V>(S, panel, pa, ea, a);
      accumulate_row<Ops, V>(S, panel, pb, eb, b);
      for (int v = 0; v < V; ++v) {
        Ops::store(tile + r * W + Ops::kLanes * v, a[v]);
        Ops::store(tile + (r + 1) * W + Ops::kLanes * v, b[v]);
      }
    }
    Ops::template write_tile<V>(tile, rows, n, m0, M, bias, relu, Y, ldy);
  }
}

// Every panel of P (panel width B, the last one narrower) for output rows [n0, n1).
template <class Ops>
void rows_all_panels(const CsrView& S, const float* P, int64_t M, int64_t Mpad, int64_t B, int64_t n0, int64_t n1,
                     const float* bias, bool relu, float* Y, int64_t ldy) {
  const int64_t K = S.cols;
  for (int64_t c = 0; c * B < Mpad; ++c) {
    const float* panel = P + c * K * B;
    const int64_t m0 = c * B;
    switch (std::min(B, Mpad - m0) / Ops::kLanes) {
      case 1: panel_rows<Ops, 1>(S, panel, m0, M, n0, n1, bias, relu, Y, ldy); break;
      case 2: panel_rows<Ops, 2>(S, panel, m0, M, n0, n1, bias, relu, Y, ldy); break;
      case 3: panel_rows<Ops, 3>(S, panel, m0, M, n0, n1, bias, relu, Y, ldy); break;
      default: panel_rows<Ops, 4>(S, panel, m0, M, n0, n1, bias, relu, Y, ldy); break;
    }
  }
}

template <class Ops>
void spmm_rows_impl(const CsrView& S, const float* P, int64_t M, int64_t Mpad, int64_t B, int64_t n0, int64_t n1,
                    const float* bias, bool relu, float* Y, int64_t ldy) {
  rows_all_panels<Ops>(S, P, M, Mpad, B, n0, n1, bias, relu, Y, ldy);
}

}  // namespace
}  // namespace cpu
}  // namespace dropnet
