#include "dropnet/kernels/cpu/sparse_sddmm.h"

#include <algorithm>

#include "dropnet/core/cpu_features.h"
#include "dropnet/kernels/cpu/sparse_parallel.h"
#include "dropnet/kernels/cpu/sparse_workspace.h"
#include "dropnet/kernels/cpu/spmm.h"

namespace dropnet {
namespace cpu {

void sddmm_rows_scalar(int64_t M, const float* dY, int64_t lddy, const float* X, int64_t ldx, const CsrView& S,
                       int64_t n0, int64_t n1, float* dW, bool accumulate) {
  for (int64_t n = n0; n < n1; ++n)
    for (int64_t p = S.indptr[n]; p < S.indptr[n + 1]; ++p) {
      const int64_t k = S.indices[p];
      float acc = 0.f;
      for (int64_t m = 0; m < M; ++m) acc += dY[m * lddy + n] * X[m * ldx + k];
      dW[p] = accumulate ? dW[p] + acc : acc;
    }
}

void sddmm(int64_t M, const float* dY, int64_t lddy, const float* X, int64_t ldx, const CsrView& S, float* dW,
           bool accumulate) {
  const int64_t N = S.rows, K = S.cols, nnz = S.nnz();
  if (nnz == 0) return;
  if (M <= 0) {  // an empty batch contributes nothing
    if (!accumulate) std::fill(dW, dW + nnz, 0.f);
    return;
  }
  const Isa isa = active_isa();
  const int parts = sparse_parts(static_cast<double>(nnz) * M + double(M) * (N + K));
  // Rows in pieces of about equal cost: stored entries plus one per row for the row's own loop.
  const int64_t row_pieces = sparse_pieces(parts, N);
  auto row_bound = [&](int64_t piece) {
    return csr_balanced_row_bound(S.indptr, N, 1, 1, static_cast<int>(row_pieces), static_cast<int>(piece));
  };
  if (isa == Isa::scalar) {
    sparse_run_parts(parts, [&] {
      sparse_for_each_piece(row_pieces, [&](int64_t i) {
        sddmm_rows_scalar(M, dY, lddy, X, ldx, S, row_bound(i), row_bound(i + 1), dW, accumulate);
      });
    });
    return;
  }
  const bool wide = isa == Isa::avx512;
  const int64_t pad = wide ? kSpmmPadAvx512 : kSpmmPadAvx2;
  const int64_t Mpad = (M + pad - 1) / pad * pad;
  float* dYt = sparse_workspace(static_cast<size_t>((N + K) * Mpad));
  float* Xt = dYt + N * Mpad;
  // One panel as wide as the padded batch: plain transposes, by blocks of 16 columns of dY then X.
  const int64_t nb = (N + 15) / 16, kb = (K + 15) / 16, pack_pieces = sparse_pieces(parts, nb + kb);
  auto pack = wide ? spmm_pack_avx512 : spmm_pack_avx2;
  sparse_run_parts(parts, [&] {
    sparse_for_each_piece(pack_pieces, [&](int64_t i) {
      int64_t b0, b1;
      split_range(nb + kb, static_cast<int>(pack_pieces), static_cast<int>(i), &b0, &b1);
      if (b0 < nb) pack(dY, lddy, M, Mpad, N, b0 * 16, std::min(std::min(b1, nb) * 16, N), Mpad, dYt);
      if (b1 > nb) pack(X, ldx, M, Mpad, K, (std::max(b0, nb) - nb) * 16, std::min((b1 - nb) * 16, K), Mpad, Xt);
    });
    sparse_for_each_piece(row_pieces, [&](int64_t i) {
      if (wide) sddmm_rows_avx512(dYt, Xt, Mpad, S, row_bound(i), row_bound(i + 1), dW, accumulate);
      else sddmm_rows_avx2(dYt, Xt, Mpad, S, row_bound(i), row_bound(i + 1), dW, accumulate);
    });
  });
}

}  // namespace cpu
}  // namespace dropnet
