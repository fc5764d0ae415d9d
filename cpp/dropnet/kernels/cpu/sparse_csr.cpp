#include "dropnet/kernels/cpu/sparse_csr.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "dropnet/core/parallel.h"

namespace dropnet {
namespace cpu {

namespace {
inline bool kept(const float* w, const uint8_t* mask, int64_t i, float threshold) {
  if (mask) return mask[i] != 0;
  const float v = w[i];
  return !(std::fabs(v) <= threshold);  // NaN compares false: kept
}
}  // namespace

void csr_count_rows(const float* w, const uint8_t* mask, int64_t N, int64_t K, float threshold, int64_t* row_counts) {
  parallel_ranges(N, std::max<int64_t>(1, (1 << 16) / std::max<int64_t>(1, K)), [&](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; ++n) {
      int64_t c = 0;
      for (int64_t k = 0; k < K; ++k) c += kept(w, mask, n * K + k, threshold);
      row_counts[n] = c;
    }
  });
}

void csr_fill(const float* w, const uint8_t* mask, int64_t N, int64_t K, float threshold, const int64_t* indptr,
              int32_t* indices, float* values) {
  parallel_ranges(N, std::max<int64_t>(1, (1 << 16) / std::max<int64_t>(1, K)), [&](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; ++n) {
      int64_t p = indptr[n];
      for (int64_t k = 0; k < K; ++k)
        if (kept(w, mask, n * K + k, threshold)) {
          indices[p] = static_cast<int32_t>(k);
          values[p] = w[n * K + k];
          ++p;
        }
    }
  });
}

void csr_transpose(int64_t N, int64_t K, const int64_t* indptr, const int32_t* indices, int64_t* t_indptr,
                   int32_t* t_indices, int64_t* t_value_index) {
  std::fill(t_indptr, t_indptr + K + 1, int64_t{0});
  const int64_t nnz = indptr[N];
  for (int64_t p = 0; p < nnz; ++p) ++t_indptr[indices[p] + 1];
  for (int64_t k = 0; k < K; ++k) t_indptr[k + 1] += t_indptr[k];
  // Rows are visited in ascending order, so every column's rows come out ascending. t_indptr[k]
  // serves as the cursor of column k and is shifted back afterwards.
  for (int64_t n = 0; n < N; ++n)
    for (int64_t p = indptr[n]; p < indptr[n + 1]; ++p) {
      const int64_t q = t_indptr[indices[p]]++;
      t_indices[q] = static_cast<int32_t>(n);
      t_value_index[q] = p;
    }
  for (int64_t k = K; k > 0; --k) t_indptr[k] = t_indptr[k - 1];
  t_indptr[0] = 0;
}

void csr_gather_values(const float* w, int64_t N, int64_t K, const int64_t* indptr, const int32_t* indices,
                       float* values) {
  parallel_ranges(N, 64, [&](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; ++n)
      for (int64_t p = indptr[n]; p < indptr[n + 1]; ++p) values[p] = w[n * K + indices[p]];
  });
}

void csr_gather_ordered_values(const CsrView& S, int64_t p0, int64_t p1, float* out) {
  const float* values = S.values;
  const int64_t* index = S.value_index;
  for (int64_t p = p0; p < p1; ++p) out[p] = values[index[p]];
}

void csr_to_dense(int64_t N, int64_t K, const int64_t* indptr, const int32_t* indices, const float* values,
                  float* dense) {
  parallel_ranges(N, 64, [&](int64_t n0, int64_t n1) {
    std::memset(dense + n0 * K, 0, sizeof(float) * static_cast<size_t>((n1 - n0) * K));
    for (int64_t n = n0; n < n1; ++n)
      for (int64_t p = indptr[n]; p < indptr[n + 1]; ++p) dense[n * K + indices[p]] = values[p];
  });
}

const char* csr_check_pattern(int64_t N, int64_t K, const int64_t* indptr, const int32_t* indices, int64_t nnz) {
  if (indptr[0] != 0) return "indptr[0] must be 0";
  if (indptr[N] != nnz) return "indptr[-1] must equal the number of stored entries";
  for (int64_t n = 0; n < N; ++n)
    if (indptr[n + 1] < indptr[n]) return "indptr must be non-decreasing";
  for (int64_t n = 0; n < N; ++n) {
    for (int64_t p = indptr[n]; p < indptr[n + 1]; ++p) {
      if (indices[p] < 0 || indices[p] >= K) return "indices must lie in [0, number of columns)";
      if (p > indptr[n] && indices[p] <= indices[p - 1]) return "indices must be strictly ascending within a row";
    }
  }
  return "";
}

int64_t csr_balanced_row_bound(const int64_t* indptr, int64_t rows, int64_t group, int64_t row_weight, int parts,
                               int part) {
  if (part <= 0) return 0;
  if (part >= parts) return rows;
  const int64_t groups = (rows + group - 1) / group;
  auto cost = [&](int64_t g) {  // cost of the first g groups
    const int64_t r = std::min(g * group, rows);
    return indptr[r] + row_weight * r;
  };
  // Integer target, so the bound is a pure function of the pattern: smallest g with cost >= target.
  const int64_t total = cost(groups);
  const int64_t target = static_cast<int64_t>((static_cast<__int128>(total) * part) / parts);
  int64_t lo = 0, hi = groups;
  while (lo < hi) {
    const int64_t mid = (lo + hi) / 2;
    if (cost(mid) < target) lo = mid + 1;
    else hi = mid;
  }
  return std::min(lo * group, rows);
}

}  // namespace cpu
}  // namespace dropnet
