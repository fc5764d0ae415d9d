// CUDA twin of the Philox stream: one thread per block of 4 words, the same philox.h function
// the CPU scalar path uses, so the words agree bit for bit.
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#include "dropnet/core/philox.h"
#include "dropnet/kernels/cuda/philox_stream.h"

namespace dropnet {
namespace cuda {
namespace {

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw std::runtime_error(std::string("CUDA error in ") + what + ": " + cudaGetErrorString(e));
}

__global__ void philox_stream_kernel(uint64_t seed, uint64_t stream, uint64_t start, int64_t n, uint32_t* out) {
  // Thread t covers elements [4t - (start & 3), ...) of the output so that each thread handles
  // one whole block of the counter space.
  const uint64_t first_block = start >> 2;
  const uint64_t t = blockIdx.x * static_cast<uint64_t>(blockDim.x) + threadIdx.x;
  const uint64_t b = first_block + t;
  const int64_t base = static_cast<int64_t>(4 * b) - static_cast<int64_t>(start);
  if (base >= n) return;
  const philox::Words w = philox::stream_block(seed, stream, b);
#pragma unroll
  for (int q = 0; q < 4; ++q) {
    const int64_t j = base + q;
    if (j >= 0 && j < n) out[j] = w.v[q];
  }
}

}  // namespace

void philox_stream(uint64_t seed, uint64_t stream, uint64_t start, int64_t n, uint32_t* out) {
  if (n <= 0) return;
  uint32_t* d_out = nullptr;
  check(cudaMalloc(&d_out, static_cast<size_t>(n) * sizeof(uint32_t)), "cudaMalloc");
  const uint64_t n_blocks = ((start & 3) + static_cast<uint64_t>(n) + 3) / 4;
  const int threads = 256;
  const unsigned grid = static_cast<unsigned>((n_blocks + threads - 1) / threads);
  philox_stream_kernel<<<grid, threads>>>(seed, stream, start, n, d_out);
  cudaError_t e = cudaGetLastError();
  if (e == cudaSuccess) e = cudaMemcpy(out, d_out, static_cast<size_t>(n) * sizeof(uint32_t), cudaMemcpyDeviceToHost);
  cudaFree(d_out);
  check(e, "philox_stream");
}

}  // namespace cuda
}  // namespace dropnet
