// AVX-512 bodies of csr_matmul.h (csr_matmul_impl.h with 16-float vectors).
#include "dropnet/kernels/cpu/csr_matmul.h"
#include "dropnet/kernels/cpu/csr_matmul_impl.h"
#include "dropnet/kernels/cpu/vec_avx512.h"

namespace dropnet {
namespace cpu {

void csr_matmul_avx512(const CsrView& S, const float* B, int64_t ldb, int64_t P, const float* bias, bool relu,
                       float* C, int64_t ldc) {
  csr_matmul_impl<Avx512Vec>(S, B, ldb, P, bias, relu, C, ldc);
}

void csr_sampled_dot_avx512(const CsrView& S, const float* A, int64_t lda, const float* B, int64_t ldb, int64_t P,
                            float* out) {
  csr_sampled_dot_impl<Avx512Vec>(S, A, lda, B, ldb, P, out);
}

}  // namespace cpu
}  // namespace dropnet
