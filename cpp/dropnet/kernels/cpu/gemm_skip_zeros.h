// C = Aᵀ · B skipping the zeros of A: the weight gradient dW = dZᵀ · X of a dense layer whose
// pre-activation gradient dZ is mostly zeros (behind ReLU, a third to a half of it; behind
// ReLU + dropout 0.5, three quarters). A dense GEMM multiplies every one of those zeros; this
// product does work in proportion to A's nonzeros.
//   A: M × N (row stride lda), B: M × K (ldb), C: N × K (ldc), all float32 row-major.
//   C[n, :] = Σ_{m : A[m, n] != 0} A[m, n] · B[m, :]
// How it runs (vector paths): B is first copied into slabs of W columns, slab c holding
// B[:, c·W : c·W + W] contiguously (zero-padded): the rows a list entry picks are scattered over
// all of B, and read in place from a B of hundreds of KB every load would miss the L1 TLB.
// Then A's columns are cut into pieces of kSkipZerosGroup columns. For each piece a thread
// gathers the nonzeros of each column into a list (rows m ascending, with their values), then
// computes those rows of C from the lists: per slab, W columns of C held in registers, one AXPY
// of a slab row per list entry. Entries alternate between two sets of
// accumulators (even and odd positions of the list), which are added at the end: enough
// independent FMA chains to hide their latency. Each row of C is computed by one thread in a fixed
// order, so results are identical for any thread count (not across ISAs: the scalar twin adds in
// list order). An entry equal to zero contributes exactly nothing to the dense sum either, so the
// result differs from the dense GEMM only by summation order (and by skipping 0·inf = NaN).
#pragma once
#include <cstdint>

namespace dropnet {
namespace cpu {

constexpr int64_t kSkipZerosGroup = 16;

// The nonzeros of columns [n0, n1) of A as lists: column n's entries are rows[n_local·stride + i]
// and values[n_local·stride + i] for i < count[n_local], n_local = n - n0, rows ascending.
// stride >= M rounded up to 16 (the vector build may write up to 15 slots past a list's end).
struct ColumnLists {
  const int32_t* rows;
  const float* values;
  const int32_t* count;
  int64_t stride;
};

// Nonzero count of A (M × N, lda); how the caller decides whether skipping pays.
int64_t count_nonzeros(const float* A, int64_t M, int64_t N, int64_t lda);

// C = Aᵀ · B (overwrites C) when nnz(A) <= max_density · M · N, else the dense sgemm(trans_a).
// Returns true when the zeros were skipped. Dispatches on active_isa(); threads from
// get_num_threads(); denormals flushed.
bool sgemm_at_b_skip_zeros(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B,
                           int64_t ldb, float* C, int64_t ldc, double max_density);

// ---- bodies (one per ISA unit): lists of columns [n0, n1), then rows [n0, n1) of C ----
void skip_zeros_lists_scalar(const float* A, int64_t M, int64_t lda, int64_t n0, int64_t n1, int64_t stride,
                             int32_t* rows, float* values, int32_t* count);
void skip_zeros_lists_avx512(const float* A, int64_t M, int64_t lda, int64_t n0, int64_t n1, int64_t stride,
                             int32_t* rows, float* values, int32_t* count);

// Slab widths of the vector paths (4 registers).
constexpr int64_t kSkipZerosSlabAvx2 = 32, kSkipZerosSlabAvx512 = 64;

// Slab c (M × W, contiguous) = B[:, c·W : c·W + W], columns past K zero.
void skip_zeros_pack_slab(const float* B, int64_t ldb, int64_t M, int64_t K, int64_t c, int64_t W, float* slab);

// Rows [n0, n1) of C. The scalar twin reads B in place; the vector paths read the slabs P
// (slab c at P + c·M·W).
void skip_zeros_rows_scalar(const ColumnLists& L, int64_t n0, int64_t n1, const float* B, int64_t ldb, int64_t K,
                            float* C, int64_t ldc);
void skip_zeros_rows_avx2(const ColumnLists& L, int64_t n0, int64_t n1, const float* P, int64_t M, int64_t K,
                          float* C, int64_t ldc);
void skip_zeros_rows_avx512(const ColumnLists& L, int64_t n0, int64_t n1, const float* P, int64_t M, int64_t K,
                            float* C, int64_t ldc);

}  // namespace cpu
}  // namespace dropnet
