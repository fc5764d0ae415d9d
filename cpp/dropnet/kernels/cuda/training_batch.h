// CUDA kernels around a training step's batch (the Backend's gather_rows and batch_metrics,
// kernels/backend.h): the batch's rows gathered from a dataset resident in device memory, and its
// loss sum and correct predictions left in device memory, so a chunk of steps crosses PCIe once
// for its statistics (nn/network.cpp: Network::train_steps). *Device* pointers; asynchronous on
// the stream (null: the default stream); std::runtime_error naming the call when a launch fails.
// Per-thread bodies and launch geometry: kernels/cuda/training_batch_body.h.
//
// Never run on a GPU yet (docs/design.md, "Device kernels").
#pragma once
#include <cstdint>

#include "dropnet/core/batch_metrics_element.h"
#include "dropnet/kernels/cuda/stream.h"

namespace dropnet {
namespace cuda {

// dst row r = src row index[r] (index: device memory), or src row first + r when index is null;
// rows of row_bytes bytes, a multiple of 4.
void gather_rows(const void* src, int64_t row_bytes, const int64_t* index, int64_t first, int64_t rows, void* dst,
                 Stream cuda_stream = nullptr);

// *loss_sum = Σ_r loss[r] in double in row order; *correct = the correct predictions of out
// (rows × n_out) against labels or dense targets as `kind` says (core/batch_metrics_element.h),
// -1 for CorrectKind::none. Both results: device memory.
void batch_metrics(const float* loss, int64_t rows, const float* out, int64_t n_out, const int64_t* labels,
                   const float* dense, CorrectKind kind, double* loss_sum, int64_t* correct,
                   Stream cuda_stream = nullptr);

}  // namespace cuda
}  // namespace dropnet
