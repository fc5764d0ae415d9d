// Weight gradient of a pruned dense layer at its stored entries only (sampled dense-dense
// product, SDDMM). S is the CSR of W (N × K); for every stored entry p = (n, k):
//   dW[p] = Σ_m dY[m, n] · X[m, k]        dY: M × N, X: M × K, row-major float32
// dW has S's nnz entries, aligned with S's values, so pruned weights never get a gradient.
//
// How it runs (vector paths): dY and X are packed transposed, dYᵀ (N × Mpad) and Xᵀ (K × Mpad),
// zero-padded to Mpad = M rounded up to 16, so each entry is one contiguous dot product over the
// batch. Entries are taken four at a time, sharing the loads of dYᵀ[n, :]; each entry is summed in
// the canonical 16 lanes and tree of lanes16.h, so neither grouping nor ISA changes a bit.
// Threads take pieces of whole rows n (cut by stored entries, handed out dynamically): identical
// bits for any thread count.
#pragma once
#include <cstdint>

#include "dropnet/kernels/cpu/sparse_csr.h"

namespace dropnet {
namespace cpu {

// accumulate: dW += (parameter gradients accumulate over micro-batches), else dW = .
void sddmm(int64_t M, const float* dY, int64_t lddy, const float* X, int64_t ldx, const CsrView& S, float* dW,
           bool accumulate);

// Scalar twin on rows [n0, n1), straight from dY and X, in the same 16 lanes (std::fma).
void sddmm_rows_scalar(int64_t M, const float* dY, int64_t lddy, const float* X, int64_t ldx, const CsrView& S,
                       int64_t n0, int64_t n1, float* dW, bool accumulate);

// Vector bodies on rows [n0, n1) from the packed dYᵀ (N × Mpad) and Xᵀ (K × Mpad).
void sddmm_rows_avx2(const float* dYt, const float* Xt, int64_t Mpad, const CsrView& S, int64_t n0, int64_t n1,
                     float* dW, bool accumulate);
void sddmm_rows_avx512(const float* dYt, const float* Xt, int64_t Mpad, const CsrView& S, int64_t n0, int64_t n1,
                       float* dW, bool accumulate);

}  // namespace cpu
}  // namespace dropnet
