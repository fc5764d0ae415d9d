// Structure helpers of the compressed sparse row (CSR) weight of a pruned dense layer.
// A layer's weight W is N × K (out × in). Its CSR holds, for row n, the entries
// p in [indptr[n], indptr[n+1]) with column indices[p] (ascending) and value values[p].
// The transposed copy (CSR of Wᵀ, i.e. CSC of W) shares the values: entry q of row k of Wᵀ is
// W[t_indices[q], k] = values[t_value_index[q]], so there is one source of truth for the values
// and an optimizer step on `values` needs no second update.
// Index types: indptr int64 (nnz may exceed 2^31), column/row indices int32 (N, K < 2^31).
#pragma once
#include <cstdint>

#include "dropnet/core/csr_view.h"

namespace dropnet {
namespace cpu {


// Which dense entries W[n, k] (W: N × K, row-major) a CSR keeps: mask[n*K + k] != 0 when a mask
// is given, else |W[n, k]| > threshold (NaN is kept, so a diverged weight is never hidden).
// row_counts: N outputs. Threads split rows.
void csr_count_rows(const float* w, const uint8_t* mask, int64_t N, int64_t K, float threshold, int64_t* row_counts);

// Fills the CSR of the kept entries. indptr (N + 1) must already hold the prefix sums of
// csr_count_rows; indices/values get nnz entries. Threads split rows.
void csr_fill(const float* w, const uint8_t* mask, int64_t N, int64_t K, float threshold, const int64_t* indptr,
              int32_t* indices, float* values);

// CSR of Wᵀ from the CSR of W (N × K): t_indptr (K + 1), t_indices (nnz; rows n, ascending per
// column), t_value_index (nnz; position of the entry in W's CSR). A counting sort, O(nnz + K).
void csr_transpose(int64_t N, int64_t K, const int64_t* indptr, const int32_t* indices, int64_t* t_indptr,
                   int32_t* t_indices, int64_t* t_value_index);

// values[p] = W[n, indices[p]] for every stored entry (refresh after an optimizer step on the
// dense W; the pattern is reused as is). Threads split rows.
void csr_gather_values(const float* w, int64_t N, int64_t K, const int64_t* indptr, const int32_t* indices,
                       float* values);

// out[p] = values[value_index[p]] for entries p in [p0, p1) of a view with a value_index (values
// in the view's own entry order). One thread; out is indexed like the entries.
void csr_gather_ordered_values(const CsrView& S, int64_t p0, int64_t p1, float* out);

// dense (N × K) = 0 except the stored entries.
void csr_to_dense(int64_t N, int64_t K, const int64_t* indptr, const int32_t* indices, const float* values,
                  float* dense);

// Empty string when (indptr, indices) is a valid N × K pattern (indptr[0] == 0, non-decreasing,
// indptr[N] == nnz, columns in [0, K) and strictly ascending within each row); else what is wrong.
const char* csr_check_pattern(int64_t N, int64_t K, const int64_t* indptr, const int32_t* indices, int64_t nnz);

// Work split of the sparse kernels: `parts` pieces of whole groups of `group` consecutive rows,
// with about equal cost(rows) = stored entries + row_weight · rows. Piece t is rows
// [bound(t), bound(t + 1)). Depends only on the pattern and `parts`, never on timing.
int64_t csr_balanced_row_bound(const int64_t* indptr, int64_t rows, int64_t group, int64_t row_weight, int parts,
                               int part);

}  // namespace cpu
}  // namespace dropnet
