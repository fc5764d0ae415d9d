#include "dropnet/kernels/cpu/max_norm.h"

#include <cmath>

#include "dropnet/core/parallel.h"

namespace dropnet {
namespace cpu {

void max_norm_rows(float* w, int64_t rows, int64_t cols, float max_norm) {
  const double c = max_norm;
  parallel_ranges(rows, 16, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      float* row = w + r * cols;
      double sq = 0.0;
      for (int64_t j = 0; j < cols; ++j) sq += static_cast<double>(row[j]) * row[j];
      const double norm = std::sqrt(sq);
      if (norm <= c) continue;
      const float scale = static_cast<float>(c / norm);
      for (int64_t j = 0; j < cols; ++j) row[j] *= scale;
    }
  });
}

}  // namespace cpu
}  // namespace dropnet
