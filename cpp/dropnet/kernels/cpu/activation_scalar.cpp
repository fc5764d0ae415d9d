// Scalar unit of activation_backward: the shared loop body (the portable path; the only one off
// x86-64, on x86-64 only without AVX2 or under DROPNET_ISA=scalar, so compiled for size there).
#include "dropnet/kernels/cpu/activation_backward_body.h"

namespace dropnet {
namespace cpu {

void activation_backward_scalar(ActivationKind kind, int64_t rows, int64_t cols, int64_t col0, int64_t col1,
                                const float* dy, const float* y, const float* pre, const uint64_t* keep_bits,
                                float dropout_scale, float slope, float* d_pre, float* d_bias) {
  activation_backward_any(kind, rows, cols, col0, col1, dy, y, pre, keep_bits, dropout_scale, slope, d_pre, d_bias);
}

}  // namespace cpu
}  // namespace dropnet
