// CUDA twins of the dropout family. Each __global__ kernel is one call of its per-thread body
// (kernels/cuda/dropout_body.h) with this thread's (blockIdx.x, threadIdx.x); the launch geometry
// is grid_for(items) from the same header, which the host-simulated tests use too. Compiled with
// --fmad=false --ftz=true (CMakeLists.txt): no contraction, as the CPU's -ffp-contract=off, and
// denormals flushed, as the CPU kernels' DenormalsFlushed.
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#include "dropnet/kernels/cuda/dropout.h"
#include "dropnet/kernels/cuda/dropout_body.h"

namespace dropnet {
namespace cuda {
namespace {

void check_launch(const char* what) {
  const cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) throw std::runtime_error(std::string("CUDA error in ") + what + ": " + cudaGetErrorString(e));
}

__global__ void dropout_pass_kernel(DropoutPass p, int64_t n, Grid g) { dropout_pass_thread(p, n, g, blockIdx.x, threadIdx.x); }

__global__ void mc_dropout_kernel(DropoutPass p, int64_t n, int64_t samples, Grid g) {
  mc_dropout_thread(p, n, samples, g, blockIdx.x, threadIdx.x);
}

__global__ void spatial_apply_kernel(const float* x, float* y, int64_t n_channels, int64_t channel_size,
                                     const uint64_t* bits, float scale, Grid g) {
  spatial_apply_thread(x, y, n_channels, channel_size, bits, scale, g, blockIdx.x, threadIdx.x);
}

__global__ void drop_connect_csr_kernel(const int64_t* indptr, const int32_t* indices, const float* values, float* out,
                                        uint8_t* keep, int64_t rows, int64_t cols, uint32_t threshold, float scale,
                                        uint64_t seed, uint64_t stream, Grid g) {
  drop_connect_csr_thread(indptr, indices, values, out, keep, rows, cols, threshold, scale, seed, stream, g,
                          blockIdx.x, threadIdx.x);
}

void run_pass(const DropoutPass& p, int64_t n, const char* what) {
  if (n <= 0) return;
  const Grid g = grid_for((n + 63) / 64);
  dropout_pass_kernel<<<g.blocks, g.threads>>>(p, n, g);
  check_launch(what);
}

}  // namespace

void dropout_forward(const float* x, float* y, int64_t n, uint32_t threshold, float scale, uint64_t seed,
                     uint64_t stream, uint64_t* mask_bits, uint64_t index_offset) {
  run_pass(forward_pass(x, y, threshold, scale, seed, stream, mask_bits, index_offset), n, "dropout_forward");
}

void dropout_backward_bits(const float* dy, const uint64_t* mask_bits, float* dx, int64_t n, float scale) {
  run_pass(backward_bits_pass(dy, mask_bits, dx, scale), n, "dropout_backward_bits");
}

void dropout_backward_regen(const float* dy, float* dx, int64_t n, uint32_t threshold, float scale, uint64_t seed,
                            uint64_t stream, uint64_t index_offset) {
  run_pass(forward_pass(dy, dx, threshold, scale, seed, stream, nullptr, index_offset), n, "dropout_backward_regen");
}

void dropout_mask_bits(int64_t n, uint32_t threshold, uint64_t seed, uint64_t stream, uint64_t* mask_bits,
                       uint64_t index_offset) {
  run_pass(forward_pass(nullptr, nullptr, threshold, 1.f, seed, stream, mask_bits, index_offset), n,
           "dropout_mask_bits");
}

void alpha_dropout_forward(const float* x, float* y, int64_t n, uint32_t threshold, float a, float b,
                           float dropped_value, uint64_t seed, uint64_t stream, uint64_t* mask_bits,
                           uint64_t index_offset) {
  run_pass(alpha_pass(x, y, threshold, a, b, dropped_value, seed, stream, mask_bits, index_offset), n,
           "alpha_dropout_forward");
}

void spatial_dropout_forward(const float* x, float* y, int64_t n_channels, int64_t channel_size, uint32_t threshold,
                             float scale, uint64_t seed, uint64_t stream, uint64_t* mask_bits,
                             uint64_t index_offset) {
  if (n_channels <= 0) return;
  dropout_mask_bits(n_channels, threshold, seed, stream, mask_bits, index_offset);
  spatial_dropout_backward(x, y, n_channels, channel_size, mask_bits, scale);  // the same apply step
}

void spatial_dropout_backward(const float* dy, float* dx, int64_t n_channels, int64_t channel_size,
                              const uint64_t* mask_bits, float scale) {
  if (n_channels <= 0 || channel_size <= 0) return;
  const Grid g = grid_for(n_channels * channel_size);
  spatial_apply_kernel<<<g.blocks, g.threads>>>(dy, dx, n_channels, channel_size, mask_bits, scale, g);
  check_launch("spatial_dropout apply");
}

void mc_dropout_forward(const float* x, float* y, int64_t n, int64_t samples, uint32_t threshold, float scale,
                        uint64_t seed, uint64_t stream0) {
  if (n <= 0 || samples <= 0) return;
  const DropoutPass p = forward_pass(x, y, threshold, scale, seed, stream0, nullptr, 0);
  const Grid g = grid_for(samples * ((n + 63) / 64));
  mc_dropout_kernel<<<g.blocks, g.threads>>>(p, n, samples, g);
  check_launch("mc_dropout_forward");
}

void drop_connect_csr(const int64_t* indptr, const int32_t* indices, const float* values, float* out, uint8_t* keep,
                      int64_t rows, int64_t cols, uint32_t threshold, float scale, uint64_t seed, uint64_t stream) {
  if (rows <= 0) return;
  const Grid g = grid_for(rows);
  drop_connect_csr_kernel<<<g.blocks, g.threads>>>(indptr, indices, values, out, keep, rows, cols, threshold, scale,
                                                   seed, stream, g);
  check_launch("drop_connect_csr");
}

}  // namespace cuda
}  // namespace dropnet
