#include "dropnet/kernels/cpu/gemm.h"

#include <cmath>

#include "dropnet/core/philox.h"

namespace dropnet {
namespace cpu {

namespace {
inline float activate(Activation act, float z, float slope) {
  switch (act) {
    case Activation::identity: return z;
    case Activation::relu: return z > 0.f ? z : 0.f;
    case Activation::leaky_relu: return z > 0.f ? z : slope * z;
    case Activation::tanh: return std::tanh(z);
    case Activation::sigmoid: return 1.f / (1.f + std::exp(-z));
    case Activation::gelu: return 0.5f * z * (1.f + std::erf(z * 0.70710678118654752f));
  }
  return z;
}
}  // namespace

void apply_epilogue(const GemmEpilogue& ep, int64_t row0, int64_t rows, int64_t N, float* C, int64_t ldc) {
  for (int64_t i = row0; i < row0 + rows; ++i) {
    float* c = C + i * ldc;
    for (int64_t j = 0; j < N; ++j) {
      float z = c[j] + (ep.bias ? ep.bias[j] : 0.f);
      if (ep.pre_activation) ep.pre_activation[i * N + j] = z;
      float a = activate(ep.activation, z, ep.leaky_slope);
      if (ep.dropout) {
        const uint64_t e = static_cast<uint64_t>(i * N + j);
        const bool keep = philox::stream_word(ep.seed, ep.stream, e) < ep.threshold;
        a = keep ? a * ep.scale : 0.f;
        if (ep.mask_bits) {
          const uint64_t bit = uint64_t{1} << (e & 63);
          if (keep) ep.mask_bits[e >> 6] |= bit;
          else ep.mask_bits[e >> 6] &= ~bit;
        }
      }
      c[j] = a;
    }
  }
}

void sgemm_naive(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                 int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc,
                 const GemmEpilogue* epilogue) {
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      float acc = 0.f;
      for (int64_t k = 0; k < K; ++k) {
        const float a = trans_a ? A[k * lda + i] : A[i * lda + k];
        const float b = trans_b ? B[j * ldb + k] : B[k * ldb + j];
        acc += a * b;
      }
      C[i * ldc + j] = alpha * acc + (beta == 0.f ? 0.f : beta * C[i * ldc + j]);
    }
  if (epilogue) apply_epilogue(*epilogue, 0, M, N, C, ldc);
}

// Placeholder until the packed kernels land: the naive path. (Replaced by the GEMM work.)
void sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
           int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc,
           const GemmEpilogue* epilogue) {
  sgemm_naive(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, epilogue);
}

}  // namespace cpu
}  // namespace dropnet
