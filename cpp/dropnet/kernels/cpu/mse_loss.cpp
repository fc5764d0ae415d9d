#include "dropnet/kernels/cpu/mse_loss.h"

#include <algorithm>

#include "dropnet/core/denormals.h"
#include "dropnet/core/parallel.h"

namespace dropnet {
namespace cpu {

// Scalar: the output width of a regression head is small; rows are summed in column order.
void mse_loss(const float* y, const float* t, int64_t rows, int64_t cols, float grad_scale, float* loss, float* d_y) {
  const float inv_cols = 1.f / static_cast<float>(std::max<int64_t>(cols, 1));
  const float g = 2.f * grad_scale * inv_cols;
  parallel_ranges(rows, std::max<int64_t>(1, 4096 / std::max<int64_t>(cols, 1)), [&](int64_t b, int64_t e) {
    DenormalsFlushed ftz;
    for (int64_t r = b; r < e; ++r) {
      const float* yr = y + r * cols;
      const float* tr = t + r * cols;
      float s = 0.f;
      for (int64_t j = 0; j < cols; ++j) {
        const float d = yr[j] - tr[j];
        s += d * d;
        if (d_y) d_y[r * cols + j] = g * d;
      }
      loss[r] = s * inv_cols;
    }
  });
}

}  // namespace cpu
}  // namespace dropnet
