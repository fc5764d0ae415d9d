// Per-thread bodies of the CUDA kernels around a training step's batch (kernels/cuda/
// training_batch.cu), `__host__ __device__` and free of CUDA headers; the C++ tests run them over
// the simulated grid (cpp/tests/sim_device.h, test_cuda_layer_bodies.cpp).
//
// gather_rows: 1-D grid-stride over the batch's 32-bit words (grid_for(rows · row_words)); word i
// is row i / row_words of the batch, so a warp reads one source row's consecutive words.
// batch_metrics: one block program (kThreadsPerBlock threads, one block). Thread t counts the
// correct predictions of rows t, t + threads, ... and the tree of block_body.h adds the counts
// (whole numbers in double: exact in any order); thread 0 adds the loss rows in row order
// (core/batch_metrics_element.h), the CPU's order, so the same per-row losses give the CPU's bits.
// One launch a step, no atomics; both results stay in device memory until the network asks.
#pragma once
#include <cstdint>

#include "dropnet/core/batch_metrics_element.h"
#include "dropnet/kernels/cuda/block_body.h"    // tree_step
#include "dropnet/kernels/cuda/dropout_body.h"  // Grid, grid_first_item, grid_stride

namespace dropnet {
namespace cuda {

struct GatherRowsArgs {
  const uint32_t* src = nullptr;
  uint32_t* dst = nullptr;
  const int64_t* index = nullptr;  // source row of each batch row, or null: rows first, first + 1, ...
  int64_t first = 0, rows = 0, row_words = 0;
};

DROPNET_HD void gather_rows_thread(const GatherRowsArgs& a, const Grid& g, uint32_t block, uint32_t thread) {
  const int64_t n = a.rows * a.row_words;
  for (int64_t i = grid_first_item(g, block, thread); i < n; i += grid_stride(g)) {
    const int64_t r = i / a.row_words;
    const int64_t src_row = a.index ? a.index[r] : a.first + r;
    a.dst[i] = a.src[src_row * a.row_words + (i - r * a.row_words)];
  }
}

struct BatchMetricsArgs {
  const float* loss = nullptr;  // rows per-row losses
  int64_t rows = 0;
  const float* out = nullptr;  // rows × n_out outputs (kind != none)
  int64_t n_out = 0;
  const int64_t* labels = nullptr;
  const float* dense = nullptr;
  CorrectKind kind = CorrectKind::none;
  double* loss_sum = nullptr;
  int64_t* correct = nullptr;  // -1 for CorrectKind::none
};

// count: the block's kThreadsPerBlock doubles of shared memory.
template <class Block>
DROPNET_HD void batch_metrics_block(Block& blk, const BatchMetricsArgs& a, double* count) {
  blk.phase([&](uint32_t t) {
    double c = 0.0;
    if (a.kind != CorrectKind::none)
      for (int64_t r = t; r < a.rows; r += blk.threads)
        c += static_cast<double>(correct_in_row(a.kind, a.out, a.n_out, a.labels, a.dense, r));
    count[t] = c;
  });
  for (uint32_t half = blk.threads / 2; half > 0; half /= 2) blk.phase([&](uint32_t t) { tree_step(count, t, half); });
  blk.phase([&](uint32_t t) {
    if (t != 0) return;
    *a.loss_sum = sum_in_row_order(a.loss, a.rows);
    *a.correct = a.kind == CorrectKind::none ? -1 : static_cast<int64_t>(count[0]);
  });
}

}  // namespace cuda
}  // namespace dropnet
