// Baseline unit of the batch-norm bodies: 16-byte vectors, the portable path (the only one off
// x86-64; on x86-64 only without AVX2 or under DROPNET_ISA=scalar, so compiled for size there).
#define DROPNET_BN_VEC_BYTES 16
#define DROPNET_BN_UNIT bn_scalar
#include "dropnet/kernels/cpu/batchnorm_impl.h"

namespace dropnet {
namespace cpu {
const BatchNormKernels& batchnorm_kernels_scalar() { return bn_scalar::kernels(); }
}  // namespace cpu
}  // namespace dropnet
