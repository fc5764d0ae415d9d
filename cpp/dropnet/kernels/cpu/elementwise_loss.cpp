#include "dropnet/kernels/cpu/elementwise_loss.h"

#include <algorithm>
#include <cmath>

#include "dropnet/core/denormals.h"
#include "dropnet/core/parallel.h"

namespace dropnet {
namespace cpu {

// Scalar: output heads are narrow and the loss is a small part of a step.
void elementwise_loss(ElementwiseLoss kind, const float* y, const float* t, int64_t rows, int64_t cols,
                      float grad_scale, float delta, float* loss, float* d_y) {
  const double inv_cols = 1.0 / static_cast<double>(std::max<int64_t>(cols, 1));
  const float g = static_cast<float>(grad_scale * inv_cols);
  parallel_ranges(rows, std::max<int64_t>(1, 4096 / std::max<int64_t>(cols, 1)), [&](int64_t b, int64_t e) {
    DenormalsFlushed ftz;
    for (int64_t r = b; r < e; ++r) {
      const float* yr = y + r * cols;
      const float* tr = t + r * cols;
      double s = 0.0;
      for (int64_t j = 0; j < cols; ++j) {
        const double z = yr[j], tt = tr[j];
        double term = 0.0, grad = 0.0;
        switch (kind) {
          case ElementwiseLoss::binary_crossentropy_logits:
            term = std::max(z, 0.0) - z * tt + std::log1p(std::exp(-std::fabs(z)));
            grad = 1.0 / (1.0 + std::exp(-z)) - tt;
            break;
          case ElementwiseLoss::mae: {
            const double d = z - tt;
            term = std::fabs(d);
            grad = d > 0.0 ? 1.0 : (d < 0.0 ? -1.0 : 0.0);
            break;
          }
          case ElementwiseLoss::huber: {
            const double d = z - tt, a = std::fabs(d), dl = delta;
            term = a <= dl ? 0.5 * d * d : dl * (a - 0.5 * dl);
            grad = std::min(std::max(d, -dl), dl);
            break;
          }
        }
        s += term;
        if (d_y) d_y[r * cols + j] = g * static_cast<float>(grad);
      }
      loss[r] = static_cast<float>(s * inv_cols);
    }
  });
}

}  // namespace cpu
}  // namespace dropnet
