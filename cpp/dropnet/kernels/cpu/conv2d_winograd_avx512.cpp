// avx512 unit of the Winograd transforms: the shared bodies, auto-vectorised under this file's flags.
#include "dropnet/kernels/cpu/conv2d_winograd_body.h"

namespace dropnet {
namespace cpu {

WinogradTransforms winograd_transforms_avx512() { return winograd_transforms_any(); }

}  // namespace cpu
}  // namespace dropnet
