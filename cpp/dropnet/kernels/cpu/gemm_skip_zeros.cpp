#include "dropnet/kernels/cpu/gemm_skip_zeros.h"

#include <algorithm>
#include <cstring>

#include "dropnet/core/cpu_features.h"
#include "dropnet/kernels/cpu/gemm.h"
#include "dropnet/kernels/cpu/sparse_parallel.h"
#include "dropnet/kernels/cpu/sparse_workspace.h"

namespace dropnet {
namespace cpu {

int64_t count_nonzeros(const float* A, int64_t M, int64_t N, int64_t lda) {
  int64_t nnz = 0;
  for (int64_t m = 0; m < M; ++m) {
    const float* a = A + m * lda;
    int32_t row = 0;  // a 32-bit counter lets the compiler vectorise the compare-and-add
    for (int64_t n = 0; n < N; ++n) row += a[n] != 0.f;
    nnz += row;
  }
  return nnz;
}

void skip_zeros_lists_scalar(const float* A, int64_t M, int64_t lda, int64_t n0, int64_t n1, int64_t stride,
                             int32_t* rows, float* values, int32_t* count) {
  const int64_t width = n1 - n0;
  std::fill(count, count + width, 0);
  // Row-major walk of A with a branch-free append: every element is written at its column's next
  // free slot, and the slot is taken only when the element is nonzero (a random pattern would
  // mispredict a branch about every other element).
  for (int64_t m = 0; m < M; ++m) {
    const float* a = A + m * lda + n0;
    for (int64_t j = 0; j < width; ++j) {
      const float v = a[j];
      const int32_t c = count[j];
      rows[j * stride + c] = static_cast<int32_t>(m);
      values[j * stride + c] = v;
      count[j] = c + (v != 0.f);
    }
  }
}

void skip_zeros_rows_scalar(const ColumnLists& L, int64_t n0, int64_t n1, const float* B, int64_t ldb, int64_t K,
                            float* C, int64_t ldc) {
  for (int64_t n = n0; n < n1; ++n) {
    const int64_t j = n - n0;
    const int32_t* rows = L.rows + j * L.stride;
    const float* vals = L.values + j * L.stride;
    float* c = C + n * ldc;
    std::fill(c, c + K, 0.f);
    for (int32_t i = 0; i < L.count[j]; ++i) {
      const float v = vals[i];
      const float* b = B + static_cast<int64_t>(rows[i]) * ldb;
      for (int64_t k = 0; k < K; ++k) c[k] += v * b[k];
    }
  }
}

void skip_zeros_pack_slab(const float* B, int64_t ldb, int64_t M, int64_t K, int64_t c, int64_t W, float* slab) {
  const int64_t c0 = c * W;
  const int64_t w = std::min(W, K - c0);
  for (int64_t m = 0; m < M; ++m) {
    std::memcpy(slab + m * W, B + m * ldb + c0, static_cast<size_t>(w) * sizeof(float));
    std::fill(slab + m * W + w, slab + (m + 1) * W, 0.f);
  }
}

bool sgemm_at_b_skip_zeros(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B,
                           int64_t ldb, float* C, int64_t ldc, double max_density) {
  const int64_t nnz = M > 0 && N > 0 && K > 0 ? count_nonzeros(A, M, N, lda) : 0;
  if (M <= 0 || N <= 0 || K <= 0 || static_cast<double>(nnz) > max_density * static_cast<double>(M * N)) {
    sgemm(true, false, N, K, M, 1.f, A, lda, B, ldb, 0.f, C, ldc, nullptr);
    return false;
  }
  const Isa isa = active_isa();
  const int64_t stride = (M + 15) / 16 * 16;
  const int64_t groups = (N + kSkipZerosGroup - 1) / kSkipZerosGroup;
  const int64_t n_pad = groups * kSkipZerosGroup;
  const int64_t W = isa == Isa::avx512 ? kSkipZerosSlabAvx512 : kSkipZerosSlabAvx2;
  const int64_t slabs = isa == Isa::scalar ? 0 : (K + W - 1) / W;
  // Lists of every column side by side (values, rows, counts), so pieces never share memory;
  // then the slabs of B.
  float* ws = sparse_workspace(static_cast<size_t>(2 * n_pad * stride + n_pad + slabs * M * W + 16));
  float* values = ws;
  int32_t* rows = reinterpret_cast<int32_t*>(ws + n_pad * stride);
  int32_t* count = reinterpret_cast<int32_t*>(ws + 2 * n_pad * stride);
  float* P = ws + (2 * n_pad * stride + n_pad + 15) / 16 * 16;
  const int parts = sparse_parts(static_cast<double>(nnz) * static_cast<double>(K) + double(M) * double(N));
  const int64_t pieces = sparse_pieces(parts, groups);
  sparse_run_parts(parts, [&] {
    sparse_for_each_piece(slabs, [&](int64_t c) { skip_zeros_pack_slab(B, ldb, M, K, c, W, P + c * M * W); });
    sparse_for_each_piece(pieces, [&](int64_t i) {
      const int64_t n0 = std::min(N, groups * i / pieces * kSkipZerosGroup);
      const int64_t n1 = std::min(N, groups * (i + 1) / pieces * kSkipZerosGroup);
      if (n0 >= n1) return;
      int32_t* r = rows + n0 * stride;
      float* v = values + n0 * stride;
      int32_t* c = count + n0;
      const ColumnLists L{r, v, c, stride};
      switch (isa) {
        case Isa::avx512:
          skip_zeros_lists_avx512(A, M, lda, n0, n1, stride, r, v, c);
          skip_zeros_rows_avx512(L, n0, n1, P, M, K, C, ldc);
          break;
        case Isa::avx2:
          skip_zeros_lists_scalar(A, M, lda, n0, n1, stride, r, v, c);
          skip_zeros_rows_avx2(L, n0, n1, P, M, K, C, ldc);
          break;
        default:
          skip_zeros_lists_scalar(A, M, lda, n0, n1, stride, r, v, c);
          skip_zeros_rows_scalar(L, n0, n1, B, ldb, K, C, ldc);
      }
    });
  });
  return true;
}

}  // namespace cpu
}  // namespace dropnet
