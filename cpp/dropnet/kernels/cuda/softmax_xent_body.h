// Per-thread bodies of the CUDA softmax cross-entropy (kernels/cuda/softmax_xent.cu),
// `__host__ __device__` and free of CUDA headers; the C++ tests run them over the simulated grid.
//
// Launch geometry: grid_for(rows) (kernels/cuda/dropout_body.h); an item is a row, which one
// thread takes through core/softmax_xent_element.h in class order (the CPU's order: the classifier
// heads this serves have 10 to 1000 classes, and a row per thread keeps every reduction of the
// row in one fixed sequence). Each output has one writer: no
// atomics. The batch's loss sum: batch_metrics (kernels/cuda/training_batch.h).
#pragma once
#include <cstdint>

#include "dropnet/core/softmax_xent_element.h"
#include "dropnet/kernels/cuda/dropout_body.h"  // Grid, grid_for, grid_first_item, grid_stride

namespace dropnet {
namespace cuda {

struct SoftmaxXentArgs {
  const float* logits = nullptr;
  const int64_t* labels = nullptr;  // sparse labels, or
  const float* targets = nullptr;   // dense targets (rows × classes)
  int64_t rows = 0, classes = 0;
  float grad_scale = 1.f;
  float* loss = nullptr;
  float* d_logits = nullptr;  // optional
};

DROPNET_HD void softmax_xent_thread(const SoftmaxXentArgs& a, const Grid& g, uint32_t block, uint32_t thread) {
  for (int64_t r = grid_first_item(g, block, thread); r < a.rows; r += grid_stride(g)) {
    const float* z = a.logits + r * a.classes;
    float* p = a.d_logits ? a.d_logits + r * a.classes : nullptr;
    a.loss[r] = a.labels ? softmax_xent_sparse_row(z, a.classes, a.labels[r], a.grad_scale, p)
                         : softmax_xent_dense_row(z, a.targets + r * a.classes, a.classes, a.grad_scale, p);
  }
}

}  // namespace cuda
}  // namespace dropnet
