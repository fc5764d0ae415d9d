// Per-thread bodies of the CSR layout conversions of kernels/cuda/sparse.cu, free of CUDA
// headers (the C++ tests run them over the simulated grid). Grid-stride over items (grid_for),
// one element each, or one CSR row each for the moves between a dense weight and its stored
// entries (a row's entries are contiguous, so each value has one writer).
#pragma once
#include <cstdint>

#include "dropnet/core/philox.h"                // DROPNET_HD
#include "dropnet/kernels/cuda/dropout_body.h"  // Grid, grid_first_item, grid_stride

namespace dropnet {
namespace cuda {

DROPNET_HD void csr_indptr_to_int32_thread(const int64_t* indptr, int64_t n, int32_t* out, const Grid& g,
                                           uint32_t block, uint32_t thread) {
  for (int64_t i = grid_first_item(g, block, thread); i < n; i += grid_stride(g))
    out[i] = static_cast<int32_t>(indptr[i]);
}

DROPNET_HD void csr_gather_values_thread(const float* values, const int64_t* value_index, int64_t nnz, float* out,
                                         const Grid& g, uint32_t block, uint32_t thread) {
  for (int64_t q = grid_first_item(g, block, thread); q < nnz; q += grid_stride(g)) out[q] = values[value_index[q]];
}

// values[p] = dense[n·cols + indices[p]] for the entries p of each row n (dense → compressed).
DROPNET_HD void csr_gather_dense_thread(const float* dense, int64_t rows, int64_t cols, const int64_t* indptr,
                                        const int32_t* indices, float* values, const Grid& g, uint32_t block,
                                        uint32_t thread) {
  for (int64_t n = grid_first_item(g, block, thread); n < rows; n += grid_stride(g))
    for (int64_t p = indptr[n]; p < indptr[n + 1]; ++p) values[p] = dense[n * cols + indices[p]];
}

// dense[n·cols + indices[p]] = values[p] (compressed → dense); entries not stored are kept.
DROPNET_HD void csr_scatter_dense_thread(const float* values, int64_t rows, int64_t cols, const int64_t* indptr,
                                         const int32_t* indices, float* dense, const Grid& g, uint32_t block,
                                         uint32_t thread) {
  for (int64_t n = grid_first_item(g, block, thread); n < rows; n += grid_stride(g))
    for (int64_t p = indptr[n]; p < indptr[n + 1]; ++p) dense[n * cols + indices[p]] = values[p];
}

}  // namespace cuda
}  // namespace dropnet
