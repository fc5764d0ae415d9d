// AVX2 + FMA unit of the batch-norm bodies (compiled with -mavx2 -mfma by its filename).
#define DROPNET_BN_VEC_BYTES 32
#define DROPNET_BN_UNIT bn_avx2
#include "dropnet/kernels/cpu/batchnorm_impl.h"

namespace dropnet {
namespace cpu {
const BatchNormKernels& batchnorm_kernels_avx2() { return bn_avx2::kernels(); }
}  // namespace cpu
}  // namespace dropnet
