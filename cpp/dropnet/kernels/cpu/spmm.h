// Products of a pruned dense layer with its weight stored sparse (sparse_csr.h). Layer weight W is
// N × K (out × in), batch X is M × K, all float32 row-major:
//   forward          Y  (M × N) = X · Wᵀ + bias, then activation   spmm_xt with S = W
//   backward input   dX (M × K) = dY · W                            spmm_xt with S = Wᵀ (CSC copy)
//   weight gradient  dW[n, k] = Σ_m dY[m, n] · X[m, k], at stored (n, k) only    sddmm (sparse_sddmm.h)
//
// How spmm_xt runs (vector paths): a gather X[m, k_p] per (m, n) would be slow, so X is first
// packed transposed into panels of B batch columns, P[c][k][j] = X[c·B + j, k] (zero-padded to a
// multiple of the vector width). Then each output row n of Yᵀ is a sum of AXPYs of contiguous
// batch vectors: Yᵀ[n, c·B : c·B+B] = Σ_p w_p · P[c][k_p][:], accumulated in registers, with the
// stored entries of row n visited in ascending p. Tiles of 16 rows × B columns are transposed in
// registers on the way out to Y, fused with bias and ReLU.
// Threads split the batch when it divides into equal full panels, one or more per thread: each
// packs its own panels and runs every output row on them, so its panels stay in its own L2.
// Otherwise they take pieces of whole 16-row groups (cut by stored entries, handed out
// dynamically) of one shared pack. Either way every output element is computed by one thread in a
// fixed order: results are bit-identical for any thread count.
#pragma once
#include <cstdint>

#include "dropnet/kernels/cpu/gemm.h"
#include "dropnet/kernels/cpu/sparse_csr.h"

namespace dropnet {
namespace cpu {

// Rows per work group / writeback tile of the output (threads split at multiples of it).
constexpr int64_t kSpmmRowGroup = 16;

// Y (M × N, row stride ldy) = X (M × K, row stride ldx) · Sᵀ (S: N × K CSR) + bias (N or null),
// then `activation` (leaky_slope for leaky_relu). Overwrites Y. Empty rows give bias (or 0).
// Dispatches on active_isa(); threads from get_num_threads(); denormals flushed.
void spmm_xt(int64_t M, int64_t N, int64_t K, const float* X, int64_t ldx, const CsrView& S, const float* bias,
             Activation activation, float leaky_slope, float* Y, int64_t ldy);

// ---- bodies (one per ISA unit), called by spmm_xt inside its parallel region ----

// Scalar twin: Y[m, n] = bias[n] + Σ_p w_p · X[m, k_p] for rows n in [n0, n1), all m, straight
// from X (no packing); optional ReLU. The reference the vector paths are tested against.
void spmm_rows_scalar(const CsrView& S, const float* X, int64_t ldx, int64_t M, int64_t n0, int64_t n1,
                      const float* bias, bool relu, float* Y, int64_t ldy);

// Packs columns [k0, k1) of X into the panels described above: panel c (width
// Bc = min(B, Mpad - c·B)) starts at P + c·K·B and has row stride Bc; rows m >= M are zero.
// Mpad is a multiple of 8 and of B's vector width. Scalar and AVX2 (8×8 transposes) versions.
void spmm_pack_scalar(const float* X, int64_t ldx, int64_t M, int64_t Mpad, int64_t K, int64_t k0, int64_t k1,
                      int64_t B, float* P);
void spmm_pack_avx2(const float* X, int64_t ldx, int64_t M, int64_t Mpad, int64_t K, int64_t k0, int64_t k1,
                    int64_t B, float* P);
// AVX-512 pack (16×16 transposes); Mpad and B multiples of 16.
void spmm_pack_avx512(const float* X, int64_t ldx, int64_t M, int64_t Mpad, int64_t K, int64_t k0, int64_t k1,
                      int64_t B, float* P);

// Output rows [n0, n1) (n0 a multiple of kSpmmRowGroup) from packed panels, all M batch rows.
// S must have its values in entry order (value_index null: spmm_xt gathers a transposed view's).
void spmm_rows_avx2(const CsrView& S, const float* P, int64_t M, int64_t Mpad, int64_t B, int64_t n0, int64_t n1,
                    const float* bias, bool relu, float* Y, int64_t ldy);
void spmm_rows_avx512(const CsrView& S, const float* P, int64_t M, int64_t Mpad, int64_t B, int64_t n0,
                      int64_t n1, const float* bias, bool relu, float* Y, int64_t ldy);

// Batch columns per panel and padding multiple of each vector path.
constexpr int64_t kSpmmPanelAvx2 = 32, kSpmmPadAvx2 = 8;
constexpr int64_t kSpmmPanelAvx512 = 64, kSpmmPadAvx512 = 16;

}  // namespace cpu
}  // namespace dropnet
