#include "dropnet/kernels/cpu/csr_matmul.h"

#include <cmath>

#include "dropnet/core/cpu_features.h"
#include "dropnet/kernels/cpu/lanes16.h"

namespace dropnet {
namespace cpu {

void csr_matmul_scalar(const CsrView& S, const float* B, int64_t ldb, int64_t P, const float* bias, bool relu,
                       float* C, int64_t ldc) {
  // Column j inner: each element is its own fma chain over the row's entries in ascending p.
  for (int64_t r = 0; r < S.rows; ++r) {
    float* c = C + r * ldc;
    for (int64_t j = 0; j < P; ++j) c[j] = 0.f;
    for (int64_t p = S.indptr[r]; p < S.indptr[r + 1]; ++p) {
      const float w = S.values[p];
      const float* b = B + static_cast<int64_t>(S.indices[p]) * ldb;
      for (int64_t j = 0; j < P; ++j) c[j] = std::fma(w, b[j], c[j]);
    }
    const float add = bias ? bias[r] : 0.f;
    for (int64_t j = 0; j < P; ++j) {
      const float y = c[j] + add;
      c[j] = relu && !(y > 0.f) ? 0.f : y;
    }
  }
}

void csr_sampled_dot_scalar(const CsrView& S, const float* A, int64_t lda, const float* B, int64_t ldb, int64_t P,
                            float* out) {
  // The vector twins' order (lanes16.h): 16 lanes over the first P / 16 * 16 columns, the fixed
  // tree, then the remaining columns in one fma chain.
  const int64_t full = P / 16 * 16;
  for (int64_t r = 0; r < S.rows; ++r) {
    const float* a = A + r * lda;
    for (int64_t p = S.indptr[r]; p < S.indptr[r + 1]; ++p) {
      const float* b = B + static_cast<int64_t>(S.indices[p]) * ldb;
      float lanes[16] = {};
      for (int64_t j = 0; j < full; j += 16)
        for (int l = 0; l < 16; ++l) lanes[l] = std::fma(a[j + l], b[j + l], lanes[l]);
      float s = reduce16_scalar(lanes);
      for (int64_t j = full; j < P; ++j) s = std::fma(a[j], b[j], s);
      out[p] += s;
    }
  }
}

void csr_matmul(const CsrView& S, const float* B, int64_t ldb, int64_t P, const float* bias, bool relu, float* C,
                int64_t ldc) {
  switch (active_isa()) {
    case Isa::avx512: csr_matmul_avx512(S, B, ldb, P, bias, relu, C, ldc); break;
    case Isa::avx2: csr_matmul_avx2(S, B, ldb, P, bias, relu, C, ldc); break;
    default: csr_matmul_scalar(S, B, ldb, P, bias, relu, C, ldc); break;
  }
}

void csr_sampled_dot(const CsrView& S, const float* A, int64_t lda, const float* B, int64_t ldb, int64_t P,
                     float* out) {
  switch (active_isa()) {
    case Isa::avx512: csr_sampled_dot_avx512(S, A, lda, B, ldb, P, out); break;
    case Isa::avx2: csr_sampled_dot_avx2(S, A, lda, B, ldb, P, out); break;
    default: csr_sampled_dot_scalar(S, A, lda, B, ldb, P, out); break;
  }
}

}  // namespace cpu
}  // namespace dropnet
