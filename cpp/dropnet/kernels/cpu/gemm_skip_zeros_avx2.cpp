// AVX2 body of the skip-zeros products: the rows kernel (gemm_skip_zeros_rows_impl.h) with 8-float
// vectors and 32-column slabs. The lists are built by the scalar code.
#include "dropnet/kernels/cpu/gemm_skip_zeros.h"
#include "dropnet/kernels/cpu/gemm_skip_zeros_rows_impl.h"
#include "dropnet/kernels/cpu/vec_avx2.h"

namespace dropnet {
namespace cpu {

namespace {
// The store of the last partial vector is a masked store (Avx2Vec::store_first), which touches
// exactly the n floats it writes.
struct Avx2Ops : Avx2Vec {
  static constexpr int64_t kSlab = kSkipZerosSlabAvx2;
};
}  // namespace

void skip_zeros_rows_avx2(const NonzeroLists& L, int64_t r0, int64_t r1, const float* P, int64_t R, int64_t K,
                          float* C, int64_t ldc) {
  skip_zeros_rows_impl<Avx2Ops>(L, r0, r1, P, R, K, C, ldc);
}

}  // namespace cpu
}  // namespace dropnet
