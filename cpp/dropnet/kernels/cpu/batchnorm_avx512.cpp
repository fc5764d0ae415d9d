// AVX-512 unit of the batch-norm bodies (compiled with -mavx512f ... by its filename).
#define DROPNET_BN_VEC_BYTES 64
#define DROPNET_BN_UNIT bn_avx512
#include "dropnet/kernels/cpu/batchnorm_impl.h"

namespace dropnet {
namespace cpu {
const BatchNormKernels& batchnorm_kernels_avx512() { return bn_avx512::kernels(); }
}  // namespace cpu
}  // namespace dropnet
