// Softmax cross-entropy kernels (softmax_xent.h). One pass for the row max, one for the exp sum
// (exponentials kept in d_logits when a gradient is wanted), one for loss and gradient; the class
// count is small (10 for the MNIST models), so these scalar loops are not the step's cost.
#include "dropnet/kernels/cpu/softmax_xent.h"

#include <algorithm>

#include "dropnet/core/denormals.h"
#include "dropnet/core/parallel.h"
#include "dropnet/core/softmax_xent_element.h"

namespace dropnet {
namespace cpu {

namespace {

// Rows are independent: threads split them, each row the device-shared function
// (core/softmax_xent_element.h).
template <class RowFn>
void for_each_row(int64_t rows, int64_t classes, RowFn&& row_fn) {
  const int64_t grain = std::max<int64_t>(1, 4096 / std::max<int64_t>(classes, 1));
  parallel_ranges(rows, grain, [&](int64_t b, int64_t e) {
    DenormalsFlushed ftz;
    for (int64_t r = b; r < e; ++r) row_fn(r);
  });
}

}  // namespace

void softmax_xent_sparse(const float* logits, const int64_t* labels, int64_t rows, int64_t classes, float grad_scale,
                         float* loss, float* d_logits) {
  for_each_row(rows, classes, [&](int64_t r) {
    loss[r] = softmax_xent_sparse_row(logits + r * classes, classes, labels[r], grad_scale,
                                      d_logits ? d_logits + r * classes : nullptr);
  });
}

void softmax_xent_dense(const float* logits, const float* targets, int64_t rows, int64_t classes, float grad_scale,
                        float* loss, float* d_logits) {
  for_each_row(rows, classes, [&](int64_t r) {
    loss[r] = softmax_xent_dense_row(logits + r * classes, targets + r * classes, classes, grad_scale,
                                     d_logits ? d_logits + r * classes : nullptr);
  });
}

}  // namespace cpu
}  // namespace dropnet
