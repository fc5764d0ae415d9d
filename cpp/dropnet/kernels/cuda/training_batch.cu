// CUDA kernels around a training step's batch: each __global__ kernel is one call of its body
// (kernels/cuda/training_batch_body.h) with this thread's (blockIdx.x, threadIdx.x).
#include "dropnet/core/error.h"
#include "dropnet/kernels/cuda/launch.cuh"
#include "dropnet/kernels/cuda/training_batch.h"
#include "dropnet/kernels/cuda/training_batch_body.h"

namespace dropnet {
namespace cuda {
namespace {

__global__ void gather_rows_kernel(GatherRowsArgs a, Grid g) { gather_rows_thread(a, g, blockIdx.x, threadIdx.x); }

__global__ void batch_metrics_kernel(BatchMetricsArgs a) {
  __shared__ double count[kThreadsPerBlock];
  DeviceBlock blk;
  batch_metrics_block(blk, a, count);
}

}  // namespace

void gather_rows(const void* src, int64_t row_bytes, const int64_t* index, int64_t first, int64_t rows, void* dst,
                 Stream cuda_stream) {
  DROPNET_CHECK(row_bytes % 4 == 0, "gather_rows: expected rows of a multiple of 4 bytes, got ", row_bytes);
  if (rows <= 0 || row_bytes <= 0) return;
  const GatherRowsArgs a{static_cast<const uint32_t*>(src), static_cast<uint32_t*>(dst), index, first, rows,
                         row_bytes / 4};
  const Grid g = grid_for(rows * a.row_words);
  gather_rows_kernel<<<g.blocks, g.threads, 0, cuda_stream>>>(a, g);
  check_launch("gather_rows");
}

void batch_metrics(const float* loss, int64_t rows, const float* out, int64_t n_out, const int64_t* labels,
                   const float* dense, CorrectKind kind, double* loss_sum, int64_t* correct, Stream cuda_stream) {
  const BatchMetricsArgs a{loss, rows, out, n_out, labels, dense, kind, loss_sum, correct};
  batch_metrics_kernel<<<1, kThreadsPerBlock, 0, cuda_stream>>>(a);
  check_launch("batch_metrics");
}

}  // namespace cuda
}  // namespace dropnet
