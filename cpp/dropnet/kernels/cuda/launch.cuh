// What the layer kernels' .cu files share: the GPU's Block for the block programs of
// kernels/cuda/block_body.h (a phase is this thread's call, then a barrier of the block) and the
// check after a launch. Included by .cu files only.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>
#include <stdexcept>
#include <string>

namespace dropnet {
namespace cuda {

struct DeviceBlock {
  uint32_t index, count, threads;
  __device__ DeviceBlock() : index(blockIdx.x), count(gridDim.x), threads(blockDim.x) {}
  template <class F>
  __device__ void phase(F&& f) {
    f(static_cast<uint32_t>(threadIdx.x));
    __syncthreads();
  }
};

// Throws std::runtime_error naming the call when the launch just queued failed.
inline void check_launch(const char* what) {
  const cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) throw std::runtime_error(std::string("CUDA error in ") + what + ": " + cudaGetErrorString(e));
}

}  // namespace cuda
}  // namespace dropnet
