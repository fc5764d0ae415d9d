// Products of a pruned weight stored as CSR (sparse_csr.h) with dense row-major matrices whose
// rows are long contiguous vectors: the pruned convolution's weight W (F × K, K = C·kh·kw) against
// one image's im2col columns (K × P, P = OH·OW), and the gradient products of that layer.
//   csr_matmul        C (R × P) = S (R × Kc) · B (Kc × P), then + bias[r] and ReLU if asked
//                     forward: S = W, B = columns;  input gradient: S = Wᵀ, B = dY (F × P)
//   csr_sampled_dot   out[p] += Σ_j A[r_p, j] · B[k_p, j] for every stored entry p = (r_p, k_p)
//                     weight gradient at the stored entries: A = dY (F × P), B = columns
//
// Loop order (vector paths): output row r outer, then column chunks of C's row, then r's stored
// entries in ascending p: each chunk is a sum of AXPYs of contiguous rows of B kept in registers
// (8, 4, then 1 vector wide; leftover columns one at a time with fmaf). Every element of C is
// fma-accumulated over p in ascending order from 0 whatever the path or ISA, then the bias is added:
// all ISAs give identical bits. csr_sampled_dot groups 4 entries of a row to share the loads of
// A's row; each entry's dot product follows the canonical 16 lanes and tree of lanes16.h on every
// path, so neither the grouping nor the ISA changes a bit.
//
// Single-threaded: the convolution already splits images across threads. S's values must be in
// entry order (value_index null; csr_gather_ordered_values lays out a transposed view's).
#pragma once
#include <cstdint>

#include "dropnet/kernels/cpu/sparse_csr.h"

namespace dropnet {
namespace cpu {

// Dispatch on active_isa(). bias: R floats or null.
void csr_matmul(const CsrView& S, const float* B, int64_t ldb, int64_t P, const float* bias, bool relu, float* C,
                int64_t ldc);
void csr_sampled_dot(const CsrView& S, const float* A, int64_t lda, const float* B, int64_t ldb, int64_t P,
                     float* out);

// ---- bodies (one per ISA unit) ----
void csr_matmul_scalar(const CsrView& S, const float* B, int64_t ldb, int64_t P, const float* bias, bool relu,
                       float* C, int64_t ldc);
void csr_matmul_avx2(const CsrView& S, const float* B, int64_t ldb, int64_t P, const float* bias, bool relu,
                     float* C, int64_t ldc);
void csr_matmul_avx512(const CsrView& S, const float* B, int64_t ldb, int64_t P, const float* bias, bool relu,
                       float* C, int64_t ldc);
void csr_sampled_dot_scalar(const CsrView& S, const float* A, int64_t lda, const float* B, int64_t ldb, int64_t P,
                            float* out);
void csr_sampled_dot_avx2(const CsrView& S, const float* A, int64_t lda, const float* B, int64_t ldb, int64_t P,
                          float* out);
void csr_sampled_dot_avx512(const CsrView& S, const float* A, int64_t lda, const float* B, int64_t ldb, int64_t P,
                            float* out);

}  // namespace cpu
}  // namespace dropnet
