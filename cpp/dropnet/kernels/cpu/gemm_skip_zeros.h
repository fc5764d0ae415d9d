// Matrix products that skip the zeros of their left operand A: the products of a dense layer
// behind ReLU and dropout, whose inputs and pre-activation gradients are mostly zeros (behind
// ReLU, a third to a half of them; behind ReLU + dropout 0.5, three quarters). A dense GEMM
// multiplies every one of those zeros; these do work in proportion to A's nonzeros.
//   weight gradient  dW = dZᵀ · X     sgemm_at_b_skip_zeros   (lists of A's columns)
//   input gradient   dX = dZ · W      sgemm_a_b_skip_zeros    (lists of A's rows)
//   forward          Y  = H · Wᵀ      sgemm_a_b_skip_zeros with trans_b, then the GEMM epilogue
// All float32 row-major. Output row r of C is Σ_i v_i · op(B)[k_i, :] over the list of r: the
// nonzeros v_i of column r (Aᵀ·B) or row r (A·op(B)) of A, with their indices k_i ascending.
//
// How it runs: op(B) is first copied into slabs of W columns, slab c holding
// op(B)[:, c·W : c·W + W] contiguously (zero-padded): the rows a list picks are scattered over all
// of B, and read in place from a B of hundreds of KB every load would miss the L1 TLB. Then the
// output rows are cut into pieces of kSkipZerosGroup rows. For each piece a thread gathers the
// lists of its rows, then computes those rows of C: per slab, W columns of C held in registers,
// one AXPY of a slab row per list entry. Entries alternate between two sets of accumulators (even
// and odd positions of the list), added at the end: enough independent FMA chains to hide their
// latency. Each row of C is computed by one thread in a fixed order, so results are identical for
// any thread count, and identical across ISAs: the scalar twin keeps the same two chains. A zero entry
// contributes exactly nothing to the dense sum either, so results differ from the dense GEMM only
// by summation order (and by skipping 0·inf = NaN).
#pragma once
#include <cstdint>

#include "dropnet/kernels/cpu/gemm.h"

namespace dropnet {
namespace cpu {

constexpr int64_t kSkipZerosGroup = 16;

// Slab widths: 4 registers of the vector paths; the scalar twin uses the AVX-512 width.
constexpr int64_t kSkipZerosSlabAvx2 = 32, kSkipZerosSlabAvx512 = 64;

// The lists of output rows [r0, r1): row r's entries are index[(r - r0)·stride + i] and
// values[(r - r0)·stride + i] for i < count[r - r0], indices ascending. stride is the list length
// bound rounded up to 16 (the vector builds may write up to 15 slots past a list's end).
struct NonzeroLists {
  const int32_t* index;
  const float* values;
  const int32_t* count;
  int64_t stride;
};

// Nonzero count of A (M × N, lda); how the callers decide whether skipping pays.
int64_t count_nonzeros(const float* A, int64_t M, int64_t N, int64_t lda);

// C (N × K) = Aᵀ · B, A: M × N, B: M × K. Skips A's zeros when the fraction of nonzeros in up to
// 64 evenly spaced rows of A (all rows when M <= 64) is at most max_density, else runs the dense
// sgemm(trans_a); the choice depends on the data alone, never on threads. Returns true when the zeros were skipped. Overwrites C.
// Dispatches on active_isa(); threads from get_num_threads(); denormals flushed.
bool sgemm_at_b_skip_zeros(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B,
                           int64_t ldb, float* C, int64_t ldc, double max_density);

// C (M × K) = A · op(B), A: M × N, op(B) = B (N × K) or, with trans_b, Bᵀ (B: K × N); then the
// epilogue (gemm.h; optional) on C as a logical M × K output. Same density rule and return.
bool sgemm_a_b_skip_zeros(bool trans_b, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda,
                          const float* B, int64_t ldb, float* C, int64_t ldc, const GemmEpilogue* epilogue,
                          double max_density);

// ---- bodies (one per ISA unit) ----

// Slab c (R × W, contiguous) = op(B)[:, c·W : c·W + W] with op(B) R × K, columns past K zero.
void skip_zeros_pack_slab(bool trans_b, const float* B, int64_t ldb, int64_t R, int64_t K, int64_t c, int64_t W,
                          float* slab);

// Lists of columns [r0, r1) of A (M × ·) / of rows [r0, r1) of A (· × N).
void skip_zeros_column_lists_scalar(const float* A, int64_t M, int64_t lda, int64_t r0, int64_t r1, int64_t stride,
                                    int32_t* index, float* values, int32_t* count);
void skip_zeros_column_lists_avx512(const float* A, int64_t M, int64_t lda, int64_t r0, int64_t r1, int64_t stride,
                                    int32_t* index, float* values, int32_t* count);
void skip_zeros_row_lists_scalar(const float* A, int64_t N, int64_t lda, int64_t r0, int64_t r1, int64_t stride,
                                 int32_t* index, float* values, int32_t* count);
void skip_zeros_row_lists_avx512(const float* A, int64_t N, int64_t lda, int64_t r0, int64_t r1, int64_t stride,
                                 int32_t* index, float* values, int32_t* count);

// Rows [r0, r1) of C from the lists and the slabs P (slab c at P + c·R·W, R rows of op(B)).
void skip_zeros_rows_scalar(const NonzeroLists& L, int64_t r0, int64_t r1, const float* P, int64_t R, int64_t K,
                            float* C, int64_t ldc);
void skip_zeros_rows_avx2(const NonzeroLists& L, int64_t r0, int64_t r1, const float* P, int64_t R, int64_t K,
                          float* C, int64_t ldc);
void skip_zeros_rows_avx512(const NonzeroLists& L, int64_t r0, int64_t r1, const float* P, int64_t R, int64_t K,
                            float* C, int64_t ldc);

}  // namespace cpu
}  // namespace dropnet
