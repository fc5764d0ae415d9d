// What the layer kernels' .cu files share: the GPU's Block for the block programs of
// kernels/cuda/block_body.h (a phase is this thread's call, then a barrier of the block), a
// thread's register array and the check after a launch. Included by .cu files only.
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

// A thread's own array of a block program (kernels/cuda/conv2d_body.h): at(t) is this thread's,
// and with constant indices after unrolling it lives in registers. The host tests keep one per
// thread (cpp/tests/cuda_sim.h).
template <class T, int N>
struct DeviceThreadArray {
  T v[N];
  __device__ T* at(uint32_t) { return v; }
};

// Throws std::runtime_error naming the call when the launch just queued failed.
inline void check_launch(const char* what) {
  const cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) throw std::runtime_error(std::string("CUDA error in ") + what + ": " + cudaGetErrorString(e));
}

}  // namespace cuda
}  // namespace dropnet
