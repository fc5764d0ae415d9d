// A training batch's bookkeeping, one row at a time, as `__host__ __device__` functions
// (DROPNET_HD, core/philox.h): the CPU twin (kernels/cpu/backend.cpp: batch_metrics) loops its rows
// over them and the CUDA block program (kernels/cuda/batch_rows_body.h) gives each thread its rows,
// so a prediction counts as correct on exactly the same terms on every device.
#pragma once
#include <cstdint>

#include "dropnet/core/philox.h"  // DROPNET_HD

namespace dropnet {

// What a batch's correct predictions are counted against.
enum class CorrectKind : int32_t {
  none,         // targets without classes (regression): nothing counted, the count is -1
  labels,       // argmax of the output row == its int64 label
  dense_argmax, // argmax of the output row == argmax of its (one-hot) target row
  binary,       // per output: logit > 0 == (target >= 0.5) (the loss absorbed the sigmoid)
};

// The first index of the row's largest value (NaN never wins a comparison, as std::max_element).
DROPNET_HD int64_t argmax_row(const float* r, int64_t n) {
  int64_t best = 0;
  for (int64_t j = 1; j < n; ++j)
    if (r[j] > r[best]) best = j;
  return best;
}

// Correct predictions in row r of out (rows × n_out); kind != none.
DROPNET_HD int64_t correct_in_row(CorrectKind kind, const float* out, int64_t n_out, const int64_t* labels,
                                  const float* dense, int64_t r) {
  const float* o = out + r * n_out;
  if (kind == CorrectKind::binary) {
    int64_t c = 0;
    for (int64_t j = 0; j < n_out; ++j) c += (o[j] > 0.f) == (dense[r * n_out + j] >= 0.5f);
    return c;
  }
  const int64_t truth = kind == CorrectKind::labels ? labels[r] : argmax_row(dense + r * n_out, n_out);
  return argmax_row(o, n_out) == truth ? 1 : 0;
}

// Σ_r loss[r] in double, in row order: the order of the loss the CPU network has always reported,
// so the same per-row losses give the same bits on every device.
DROPNET_HD double sum_in_row_order(const float* loss, int64_t rows) {
  double s = 0.0;
  for (int64_t r = 0; r < rows; ++r) s += loss[r];
  return s;
}

}  // namespace dropnet
