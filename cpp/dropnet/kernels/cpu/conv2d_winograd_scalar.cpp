// Scalar unit of the Winograd transforms (conv2d_winograd_body.h over one-float rows): the portable
// path (the only one off x86-64; on x86-64 only without AVX2 or under DROPNET_ISA=scalar, so
// compiled for size there).
#include "dropnet/kernels/cpu/conv2d_winograd_body.h"

namespace dropnet {
namespace cpu {

WinogradTransforms winograd_transforms_scalar(int64_t tile) { return winograd_transforms_any<ScalarRows>(tile); }

}  // namespace cpu
}  // namespace dropnet
