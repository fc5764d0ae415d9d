#include "dropnet/kernels/cpu/spmm.h"

#include <algorithm>
#include <cmath>

#include "dropnet/core/cpu_features.h"
#include "dropnet/core/denormals.h"
#include "dropnet/core/parallel.h"
#include "dropnet/kernels/cpu/sparse_parallel.h"
#include "dropnet/kernels/cpu/sparse_workspace.h"

namespace dropnet {
namespace cpu {

void spmm_rows_scalar(const CsrView& S, const float* X, int64_t ldx, int64_t M, int64_t n0, int64_t n1,
                      const float* bias, bool relu, float* Y, int64_t ldy) {
  // m outer keeps one row of X in cache while every row n of S gathers from it.
  for (int64_t m = 0; m < M; ++m) {
    const float* x = X + m * ldx;
    float* y = Y + m * ldy;
    for (int64_t n = n0; n < n1; ++n) {
      float acc = 0.f;
      for (int64_t p = S.indptr[n]; p < S.indptr[n + 1]; ++p) {
        const float w = S.value_index ? S.values[S.value_index[p]] : S.values[p];
        acc = std::fma(w, x[S.indices[p]], acc);  // one fma chain in ascending p, as the vector twins
      }
      acc += bias ? bias[n] : 0.f;
      if (relu) acc = acc > 0.f ? acc : 0.f;
      y[n] = acc;
    }
  }
}

void spmm_pack_scalar(const float* X, int64_t ldx, int64_t M, int64_t Mpad, int64_t K, int64_t k0, int64_t k1,
                      int64_t B, float* P) {
  for (int64_t c = 0; c * B < Mpad; ++c) {
    const int64_t width = std::min(B, Mpad - c * B);
    float* panel = P + c * K * B;
    for (int64_t k = k0; k < k1; ++k)
      for (int64_t j = 0; j < width; ++j) {
        const int64_t m = c * B + j;
        panel[k * width + j] = m < M ? X[m * ldx + k] : 0.f;
      }
  }
}

namespace {
// Writeback of a row costs about as much as a few stored entries; weight it in the split.
constexpr int64_t kRowWeight = 4;
}  // namespace

void spmm_xt(int64_t M, int64_t N, int64_t K, const float* X, int64_t ldx, const CsrView& S, const float* bias,
             Activation activation, float leaky_slope, float* Y, int64_t ldy) {
  if (M <= 0 || N <= 0) return;
  const bool relu = activation == Activation::relu;
  const bool fused = relu || activation == Activation::identity;
  const Isa isa = active_isa();
  const int parts = sparse_parts(static_cast<double>(S.nnz() + N) * static_cast<double>(M) + double(M) * K);
  // Output rows in pieces of whole row groups with about equal entries (sparse_csr.h).
  const int64_t row_pieces = sparse_pieces(parts, (N + kSpmmRowGroup - 1) / kSpmmRowGroup);
  auto row_bound = [&](int64_t piece) {
    return csr_balanced_row_bound(S.indptr, N, kSpmmRowGroup, kRowWeight, static_cast<int>(row_pieces),
                                  static_cast<int>(piece));
  };

  if (isa == Isa::scalar) {
    sparse_run_parts(parts, [&] {
      sparse_for_each_piece(row_pieces, [&](int64_t i) {
        spmm_rows_scalar(S, X, ldx, M, row_bound(i), row_bound(i + 1), bias, relu, Y, ldy);
      });
    });
  } else {
    const bool wide = isa == Isa::avx512;
    const int64_t B = wide ? kSpmmPanelAvx512 : kSpmmPanelAvx2;
    const int64_t pad = wide ? kSpmmPadAvx512 : kSpmmPadAvx2;
    const int64_t Mpad = (M + pad - 1) / pad * pad;
    const int64_t n_panels = (Mpad + B - 1) / B;
    // A transposed pattern's values are first laid out in its entry order (below), so the rows
    // kernel reads them contiguously, like the forward's.
    const int64_t ordered = S.value_index ? S.nnz() : 0;
    float* P = sparse_workspace(static_cast<size_t>(n_panels * K * B + ordered));
    float* values_in_order = P + n_panels * K * B;
    CsrView rows_view = S;
    if (S.value_index) rows_view.values = values_in_order, rows_view.value_index = nullptr;
    // Threads split the batch when it divides into equal full panels, one or more per thread
    // (panels narrower than B when that gives each thread one); otherwise the output rows. Either
    // way each output element is computed by one thread, in one order.
    int64_t batch_panel = 0;
    if (parts > 1 && Mpad % (B * parts) == 0) batch_panel = B;
    else if (parts > 1 && Mpad % parts == 0 && (Mpad / parts) % pad == 0 && Mpad / parts <= B) batch_panel = Mpad / parts;
    const bool split_batch = batch_panel > 0;
    // The pack goes by blocks of 16 columns of X (whole transposes).
    const int64_t k_blocks = (K + 15) / 16, pack_pieces = sparse_pieces(parts, k_blocks);
    sparse_run_parts(parts, [&] {
      if (S.value_index) {
        // Gathered in one tight loop, one contiguous range of entries per thread (each W row's
        // current cache line then stays in that thread's L2 while its range sweeps across it),
        // before the pack, so the panel is what the rows kernel finds in cache. Measured against
        // reading through value_index inside the FMA loop, 2 threads, same process interleaved:
        // 1024 x 1024 batch 256 at 90 % 0.64 vs 0.75-0.80 ms, at 98 % 0.234 vs 0.262 ms; 4096 x
        // 4096 batch 64 at 90 % no change (4.8-5.3 vs 5.0-5.5 ms: there the random reads of 6.7 MB
        // of values cost the same wherever they happen).
#pragma omp for schedule(static)
        for (int part = 0; part < parts; ++part) {
          int64_t p0, p1;
          split_range(S.nnz(), parts, part, &p0, &p1);
          csr_gather_ordered_values(S, p0, p1, values_in_order);
        }
      }
      if (split_batch) {
        // Each thread packs its own panels and runs every output row on them: its panels stay in
        // its own L2, where a shared pack leaves half of each thread's panel rows in the other
        // core's cache. 2 threads, 90 %, against the row split in the same run: 784 -> 300 batch
        // 128 63 vs 93 µs, batch 256 126 vs 181 µs; 300 -> 100 batch 128 10 vs 25 µs; 1024 x 1024
        // batch 256 0.55 vs 0.62 ms, batch 64 (two panels of 32) 0.13 vs 0.16 ms.
        const int64_t Bp = batch_panel;
#pragma omp for schedule(static)
        for (int64_t c = 0; c < Mpad / Bp; ++c) {
          const int64_t m0 = c * Bp, rows_c = std::max<int64_t>(0, std::min(Bp, M - m0));
          float* Pc = P + c * K * Bp;
          if (wide) spmm_pack_avx512(X + m0 * ldx, ldx, rows_c, Bp, K, 0, K, Bp, Pc);
          else spmm_pack_avx2(X + m0 * ldx, ldx, rows_c, Bp, K, 0, K, Bp, Pc);
          if (wide) spmm_rows_avx512(rows_view, Pc, rows_c, Bp, Bp, 0, N, bias, relu, Y + m0 * ldy, ldy);
          else spmm_rows_avx2(rows_view, Pc, rows_c, Bp, Bp, 0, N, bias, relu, Y + m0 * ldy, ldy);
        }
        return;
      }
      sparse_for_each_piece(pack_pieces, [&](int64_t i) {
        int64_t b0, b1;
        split_range(k_blocks, static_cast<int>(pack_pieces), static_cast<int>(i), &b0, &b1);
        const int64_t k0 = std::min(b0 * 16, K), k1 = std::min(b1 * 16, K);
        if (wide) spmm_pack_avx512(X, ldx, M, Mpad, K, k0, k1, B, P);
        else spmm_pack_avx2(X, ldx, M, Mpad, K, k0, k1, B, P);
      });
      sparse_for_each_piece(row_pieces, [&](int64_t i) {
        if (wide) spmm_rows_avx512(rows_view, P, M, Mpad, B, row_bound(i), row_bound(i + 1), bias, relu, Y, ldy);
        else spmm_rows_avx2(rows_view, P, M, Mpad, B, row_bound(i), row_bound(i + 1), bias, relu, Y, ldy);
      });
    });
  }

  if (!fused) {  // bias is already in; the GEMM epilogue applies the other activations
    GemmEpilogue ep;
    ep.activation = activation;
    ep.leaky_slope = leaky_slope;
    parallel_ranges(M, std::max<int64_t>(1, 8192 / N), [&](int64_t m0, int64_t m1) {
      DenormalsFlushed ftz;
      apply_epilogue(ep, m0, m1 - m0, N, Y, ldy);
    });
  }
}

}  // namespace cpu
}  // namespace dropnet
