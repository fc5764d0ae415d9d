// Softmax cross-entropy kernels (softmax_xent.h). One pass for the row max, one for the exp sum
// (exponentials kept in d_logits when a gradient is wanted), one for loss and gradient; the class
// count is small (10 for the MNIST models), so these scalar loops are not the step's cost.
#include "dropnet/kernels/cpu/softmax_xent.h"

#include <algorithm>
#include <cmath>

#include "dropnet/core/denormals.h"
#include "dropnet/core/parallel.h"

namespace dropnet {
namespace cpu {

namespace {

// Calls row_fn(r, z, lse, probs_or_null) for every row; probs holds softmax(z) when d_logits is set.
template <class RowFn>
void for_each_row_lse(const float* logits, int64_t rows, int64_t classes, float* d_logits, RowFn&& row_fn) {
  const int64_t grain = std::max<int64_t>(1, 4096 / std::max<int64_t>(classes, 1));
  parallel_ranges(rows, grain, [&](int64_t b, int64_t e) {
    DenormalsFlushed ftz;
    for (int64_t r = b; r < e; ++r) {
      const float* z = logits + r * classes;
      float mx = -INFINITY;
      for (int64_t j = 0; j < classes; ++j) mx = std::max(mx, z[j]);
      float* p = d_logits ? d_logits + r * classes : nullptr;
      double sum = 0.0;
      for (int64_t j = 0; j < classes; ++j) {
        const float ex = std::exp(z[j] - mx);
        if (p) p[j] = ex;
        sum += ex;
      }
      const float lse = mx + static_cast<float>(std::log(sum));
      if (p) {
        const float inv = static_cast<float>(1.0 / sum);
        for (int64_t j = 0; j < classes; ++j) p[j] *= inv;
      }
      row_fn(r, z, lse, p);
    }
  });
}

}  // namespace

void softmax_xent_sparse(const float* logits, const int64_t* labels, int64_t rows, int64_t classes, float grad_scale,
                         float* loss, float* d_logits) {
  for_each_row_lse(logits, rows, classes, d_logits, [&](int64_t r, const float* z, float lse, float* p) {
    const int64_t label = labels[r];
    loss[r] = lse - z[label];
    if (p) {
      for (int64_t j = 0; j < classes; ++j) p[j] *= grad_scale;
      p[label] -= grad_scale;
    }
  });
}

void softmax_xent_dense(const float* logits, const float* targets, int64_t rows, int64_t classes, float grad_scale,
                        float* loss, float* d_logits) {
  for_each_row_lse(logits, rows, classes, d_logits, [&](int64_t r, const float* z, float lse, float* p) {
    const float* t = targets + r * classes;
    float l = 0.f, t_sum = 0.f;
    for (int64_t j = 0; j < classes; ++j) {
      l += t[j] * (lse - z[j]);
      t_sum += t[j];
    }
    loss[r] = l;
    if (p)
      for (int64_t j = 0; j < classes; ++j) p[j] = grad_scale * (p[j] * t_sum - t[j]);
  });
}

}  // namespace cpu
}  // namespace dropnet
