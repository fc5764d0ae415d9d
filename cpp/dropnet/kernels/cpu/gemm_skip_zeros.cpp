#include "dropnet/kernels/cpu/gemm_skip_zeros.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "dropnet/core/cpu_features.h"
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

void skip_zeros_pack_slab(bool trans_b, const float* B, int64_t ldb, int64_t R, int64_t K, int64_t c, int64_t W,
                          float* slab) {
  const int64_t c0 = c * W;
  const int64_t w = std::min(W, K - c0);
  if (!trans_b) {
    for (int64_t r = 0; r < R; ++r) {
      std::memcpy(slab + r * W, B + r * ldb + c0, static_cast<size_t>(w) * sizeof(float));
      std::fill(slab + r * W + w, slab + (r + 1) * W, 0.f);
    }
    return;
  }
  // op(B)[r, c0 + j] = B[c0 + j, r]: read rows of B, write columns of the slab.
  std::fill(slab, slab + R * W, 0.f);
  for (int64_t j = 0; j < w; ++j) {
    const float* b = B + (c0 + j) * ldb;
    for (int64_t r = 0; r < R; ++r) slab[r * W + j] = b[r];
  }
}

// Both list builds append branch-free: every element is written at its list's next free slot,
// and the slot is taken only when the element is nonzero (NaN included). A random pattern would
// mispredict a branch about every other element.
void skip_zeros_column_lists_scalar(const float* A, int64_t M, int64_t lda, int64_t r0, int64_t r1, int64_t stride,
                                    int32_t* index, float* values, int32_t* count) {
  const int64_t width = r1 - r0;
  std::fill(count, count + width, 0);
  for (int64_t m = 0; m < M; ++m) {  // row-major walk of A
    const float* a = A + m * lda + r0;
    for (int64_t j = 0; j < width; ++j) {
      const float v = a[j];
      const int32_t c = count[j];
      index[j * stride + c] = static_cast<int32_t>(m);
      values[j * stride + c] = v;
      count[j] = c + (v != 0.f);
    }
  }
}

void skip_zeros_row_lists_scalar(const float* A, int64_t N, int64_t lda, int64_t r0, int64_t r1, int64_t stride,
                                 int32_t* index, float* values, int32_t* count) {
  for (int64_t r = r0; r < r1; ++r) {
    const float* a = A + r * lda;
    int32_t* idx = index + (r - r0) * stride;
    float* val = values + (r - r0) * stride;
    int32_t c = 0;
    for (int64_t n = 0; n < N; ++n) {
      idx[c] = static_cast<int32_t>(n);
      val[c] = a[n];
      c += a[n] != 0.f;
    }
    count[r - r0] = c;
  }
}

// The canonical order of the vector twins (gemm_skip_zeros_rows_impl.h), element by element:
// entries at even list positions feed one fma chain, odd positions another, and the two chains
// are added at the end. Every ISA path therefore gives the same bits.
void skip_zeros_rows_scalar(const NonzeroLists& L, int64_t r0, int64_t r1, const float* P, int64_t R, int64_t K,
                            float* C, int64_t ldc) {
  constexpr int64_t W = kSkipZerosSlabAvx512;
  float even[W], odd[W];
  for (int64_t c0 = 0; c0 < K; c0 += W) {
    const float* slab = P + c0 * R;
    const int64_t w = std::min(W, K - c0);
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t j = r - r0;
      std::fill(even, even + W, 0.f);
      std::fill(odd, odd + W, 0.f);
      const int32_t* index = L.index + j * L.stride;
      const float* vals = L.values + j * L.stride;
      const int32_t count = L.count[j];
      int32_t i = 0;
      for (; i + 1 < count; i += 2) {
        const float* b0 = slab + static_cast<int64_t>(index[i]) * W;
        const float* b1 = slab + static_cast<int64_t>(index[i + 1]) * W;
        for (int64_t k = 0; k < w; ++k) {
          even[k] = std::fma(vals[i], b0[k], even[k]);
          odd[k] = std::fma(vals[i + 1], b1[k], odd[k]);
        }
      }
      if (i < count) {
        const float* b0 = slab + static_cast<int64_t>(index[i]) * W;
        for (int64_t k = 0; k < w; ++k) even[k] = std::fma(vals[i], b0[k], even[k]);
      }
      float* c = C + r * ldc + c0;
      for (int64_t k = 0; k < w; ++k) c[k] = even[k] + odd[k];
    }
  }
}

namespace {

constexpr int64_t kDensitySampleRows = 64;

void epilogue_rows(const GemmEpilogue& ep, int64_t r0, int64_t r1, int64_t K, float* C, int64_t ldc) {
  if (r1 > r0) epilogue_pass(ep, r0, r1 - r0, K, C, ldc);
}

// C (rows × K) from lists of A's columns (of_columns) or rows, over R rows of op(B).
bool skip_zeros_product(bool of_columns, bool trans_b, int64_t rows, int64_t R, int64_t K, const float* A,
                        int64_t lda, const float* B, int64_t ldb, float* C, int64_t ldc, const GemmEpilogue* ep,
                        double max_density) {
  const int64_t M = of_columns ? R : rows, N = of_columns ? rows : R;  // A is M × N
  // The density of up to kDensitySampleRows evenly spaced rows of A decides (all of A when it
  // has no more rows): counting a large dense A in full would cost more than it could save.
  const int64_t sample = std::min(M, kDensitySampleRows);
  int64_t sampled_nnz = 0;
  for (int64_t i = 0; i < sample; ++i) sampled_nnz += count_nonzeros(A + (i * M / sample) * lda, 1, N, lda);
  const double density = static_cast<double>(sampled_nnz) / (static_cast<double>(sample) * static_cast<double>(N));
  if (density > max_density) return false;
  const double nnz = density * static_cast<double>(M) * static_cast<double>(N);
  const Isa isa = active_isa();
  const int64_t W = isa == Isa::avx2 ? kSkipZerosSlabAvx2 : kSkipZerosSlabAvx512;
  const int64_t slabs = (K + W - 1) / W;
  const int64_t stride = (R + 15) / 16 * 16;
  const int64_t groups = (rows + kSkipZerosGroup - 1) / kSkipZerosGroup;
  const int64_t rows_pad = groups * kSkipZerosGroup;
  // Lists of every output row side by side (values, indices, counts), so pieces never share
  // memory; then the slabs, 64-byte aligned.
  const int64_t lists = 2 * rows_pad * stride + rows_pad;
  float* ws = sparse_workspace(static_cast<size_t>((lists + 15) / 16 * 16 + slabs * R * W));
  float* values = ws;
  int32_t* index = reinterpret_cast<int32_t*>(ws + rows_pad * stride);
  int32_t* count = reinterpret_cast<int32_t*>(ws + 2 * rows_pad * stride);
  float* P = ws + (lists + 15) / 16 * 16;
  const int parts = sparse_parts(nnz * static_cast<double>(K) + double(M) * double(N));
  const int64_t pieces = sparse_pieces(parts, groups);
  sparse_run_parts(parts, [&] {
    sparse_for_each_piece(slabs, [&](int64_t c) { skip_zeros_pack_slab(trans_b, B, ldb, R, K, c, W, P + c * R * W); });
    sparse_for_each_piece(pieces, [&](int64_t i) {
      const int64_t r0 = std::min(rows, groups * i / pieces * kSkipZerosGroup);
      const int64_t r1 = std::min(rows, groups * (i + 1) / pieces * kSkipZerosGroup);
      if (r0 >= r1) return;
      int32_t* idx = index + r0 * stride;
      float* val = values + r0 * stride;
      int32_t* cnt = count + r0;
      if (isa == Isa::avx512) {
        if (of_columns) skip_zeros_column_lists_avx512(A, M, lda, r0, r1, stride, idx, val, cnt);
        else skip_zeros_row_lists_avx512(A, N, lda, r0, r1, stride, idx, val, cnt);
      } else {
        if (of_columns) skip_zeros_column_lists_scalar(A, M, lda, r0, r1, stride, idx, val, cnt);
        else skip_zeros_row_lists_scalar(A, N, lda, r0, r1, stride, idx, val, cnt);
      }
      const NonzeroLists L{idx, val, cnt, stride};
      switch (isa) {
        case Isa::avx512: skip_zeros_rows_avx512(L, r0, r1, P, R, K, C, ldc); break;
        case Isa::avx2: skip_zeros_rows_avx2(L, r0, r1, P, R, K, C, ldc); break;
        default: skip_zeros_rows_scalar(L, r0, r1, P, R, K, C, ldc);
      }
      if (ep) epilogue_rows(*ep, r0, r1, K, C, ldc);
    });
  });
  return true;
}

}  // namespace

bool sgemm_at_b_skip_zeros(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B,
                           int64_t ldb, float* C, int64_t ldc, double max_density) {
  if (M > 0 && N > 0 && K > 0 &&
      skip_zeros_product(true, false, N, M, K, A, lda, B, ldb, C, ldc, nullptr, max_density))
    return true;
  sgemm(true, false, N, K, M, 1.f, A, lda, B, ldb, 0.f, C, ldc, nullptr);
  return false;
}

bool sgemm_a_b_skip_zeros(bool trans_b, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda,
                          const float* B, int64_t ldb, float* C, int64_t ldc, const GemmEpilogue* epilogue,
                          double max_density) {
  if (M > 0 && N > 0 && K > 0 &&
      skip_zeros_product(false, trans_b, M, N, K, A, lda, B, ldb, C, ldc, epilogue, max_density))
    return true;
  sgemm(false, trans_b, M, K, N, 1.f, A, lda, B, ldb, 0.f, C, ldc, epilogue);
  return false;
}

}  // namespace cpu
}  // namespace dropnet
