#include "dropnet/kernels/cpu/sparse_sddmm.h"

#include <algorithm>
#include <cmath>

#include "dropnet/core/cpu_features.h"
#include "dropnet/kernels/cpu/lanes16.h"
#include "dropnet/kernels/cpu/sparse_parallel.h"
#include "dropnet/kernels/cpu/sparse_workspace.h"
#include "dropnet/kernels/cpu/spmm.h"

namespace dropnet {
namespace cpu {

// The vector twins' order (lanes16.h) over the batch padded with zeros to a multiple of 16:
// lane l sums the rows m ≡ l (mod 16), then the fixed tree. The padding's 0·0 products are
// added too, as the vector paths add them, so even the sign of a zero agrees.
void sddmm_rows_scalar(int64_t M, const float* dY, int64_t lddy, const float* X, int64_t ldx, const CsrView& S,
                       int64_t n0, int64_t n1, float* dW, bool accumulate) {
  const int64_t Mpad = (M + 15) / 16 * 16;
  for (int64_t n = n0; n < n1; ++n)
    for (int64_t p = S.indptr[n]; p < S.indptr[n + 1]; ++p) {
      const int64_t k = S.indices[p];
      float lanes[16] = {};
      for (int64_t m0 = 0; m0 < Mpad; m0 += 16)
        for (int l = 0; l < 16; ++l) {
          const int64_t m = m0 + l;
          const float d = m < M ? dY[m * lddy + n] : 0.f, x = m < M ? X[m * ldx + k] : 0.f;
          lanes[l] = std::fma(d, x, lanes[l]);
        }
      const float s = reduce16_scalar(lanes);
      dW[p] = accumulate ? dW[p] + s : s;
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
  // Padded to 16 rows on every path: the canonical 16 lanes (lanes16.h) run over whole groups.
  const int64_t Mpad = (M + 15) / 16 * 16;
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
