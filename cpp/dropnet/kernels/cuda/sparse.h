// CUDA twins of a pruned dense layer's sparse products (cpu::spmm_xt, kernels/cpu/spmm.h;
// cpu::sddmm, kernels/cpu/sparse_sddmm.h) through cuSPARSE, opened at run time
// (kernels/cuda/libraries.h): device pointers, a stream (null: the default stream), asynchronous,
// std::runtime_error naming the call when cuSPARSE is missing or fails.
//   forward          Y  (M × N) = X · Wᵀ                 spmm_xt_cusparse with S = W (N × K)
//   input gradient   dX (M × K) = dY · W                 spmm_xt_cusparse with S = Wᵀ's CSR (K × N)
//   weight gradient  dW[p] = Σ_m dY[m, n] · X[m, k]      sddmm_cusparse at W's stored entries p = (n, k)
// The bias, activation and dropout of the forward are the epilogue pass (cuda::apply_epilogue)
// after the product, as for the dense layer.
//
// Bits: cuSPARSE's own summation order, so within the float32 bound of the sums of the CPU's
// kernels (which keep the canonical orders of docs/design.md), not equal to them. The sparse
// matrix is never transposed inside cuSPARSE (its transposed SpMM is documented as not
// reproducible run to run): the input gradient takes Wᵀ's CSR, whose values csr_gather_values
// gathers from W's through the CPU layout's value_index. cuSPARSE wants one index type for row
// offsets and columns: csr_indptr_to_int32 narrows the CPU's int64 row offsets (nnz < 2^31).
//
// Never run on a GPU, and cuSPARSE never opened by this code (docs/design.md, "Device kernels").
#pragma once
#include <cstdint>
#include <string>

#include "dropnet/kernels/cuda/stream.h"

namespace dropnet {
namespace cuda {

// A CSR matrix on the device as cuSPARSE takes it: rows × cols, 32-bit row offsets (rows + 1) and
// column indices (nnz, ascending within a row), values in entry order.
struct CsrMatrix32 {
  int64_t rows = 0, cols = 0, nnz = 0;
  const int32_t* indptr = nullptr;
  const int32_t* indices = nullptr;
  const float* values = nullptr;
};

// out[i] = int32(indptr[i]) for i < n (n = rows + 1); the caller checked indptr[rows] < 2^31.
void csr_indptr_to_int32(const int64_t* indptr, int64_t n, int32_t* out, Stream stream = nullptr);
// out[q] = values[value_index[q]] for q < nnz: a transposed copy's values in its own entry order.
void csr_gather_values(const float* values, const int64_t* value_index, int64_t nnz, float* out,
                       Stream stream = nullptr);

// Between a dense rows × cols weight (row-major) and the entries of its CSR pattern (int64 row
// offsets, int32 columns: the CPU's layout): gather values[p] = dense[n, indices[p]]; scatter the
// reverse, leaving the entries not stored as they are. One thread per row.
void csr_gather_dense(const float* dense, int64_t rows, int64_t cols, const int64_t* indptr, const int32_t* indices,
                      float* values, Stream stream = nullptr);
void csr_scatter_dense(const float* values, int64_t rows, int64_t cols, const int64_t* indptr, const int32_t* indices,
                       float* dense, Stream stream = nullptr);

// Y (M × S.rows, row stride ldy) = X (M × S.cols, row stride ldx) · Sᵀ. Overwrites Y.
void spmm_xt_cusparse(int64_t M, const float* X, int64_t ldx, const CsrMatrix32& S, float* Y, int64_t ldy,
                      Stream stream = nullptr);

// dW[p] (= or += with accumulate) Σ_m dY[m, n] · X[m, k] for each stored entry p = (n, k) of S
// (S.rows × S.cols); dY: M × S.rows (row stride lddy), X: M × S.cols (row stride ldx); dW has
// S.nnz entries aligned with S's (S.values is not read).
void sddmm_cusparse(int64_t M, const float* dY, int64_t lddy, const float* X, int64_t ldx, const CsrMatrix32& S,
                    float* dW, bool accumulate, Stream stream = nullptr);

// Empty when cuSPARSE can be loaded; otherwise why not (the sonames tried and the loader's message).
std::string cusparse_unavailable_reason();

}  // namespace cuda
}  // namespace dropnet
