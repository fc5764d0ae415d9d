// What the layer kernels' .cu files share: the GPU's Block for the block programs of
// kernels/cuda/block_body.h (a phase is this thread's call, then a barrier of the block), a
// thread's register array, the checks after a launch and a runtime call, and a library's
// stream-ordered scratch. Included by .cu files only.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "dropnet/kernels/cuda/stream.h"

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

// Throws std::runtime_error naming the runtime call that failed (and clears the error).
inline void check_rt(cudaError_t e, const char* call) {
  if (e == cudaSuccess) return;
  cudaGetLastError();
  throw std::runtime_error(std::string("CUDA error in ") + call + ": " + cudaGetErrorString(e));
}

// The scratch a library call asked for (cuSPARSE's buffer, cuDNN's workspace), stream-ordered:
// allocated on the call's stream and freed there after the call, so concurrent calls on other
// streams never share it. `what` names the allocation in an error.
struct StreamBuffer {
  void* p = nullptr;
  Stream stream;
  StreamBuffer(size_t bytes, Stream s, const char* what) : stream(s) {
    if (bytes) check_rt(cudaMallocAsync(&p, bytes, s), what);
  }
  ~StreamBuffer() {
    if (p && cudaFreeAsync(p, stream) != cudaSuccess) cudaGetLastError();
  }
  StreamBuffer(const StreamBuffer&) = delete;
  StreamBuffer& operator=(const StreamBuffer&) = delete;
};

}  // namespace cuda
}  // namespace dropnet
