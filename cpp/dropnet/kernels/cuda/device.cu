// Device queries (device.h). cudaGetDeviceCount is the first runtime call: without a driver it
// fails with cudaErrorInsufficientDriver or cudaErrorNoDevice instead of crashing, and the error is
// cleared so later calls see a clean state.
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#include "dropnet/kernels/cuda/device.h"

namespace dropnet {
namespace cuda {
namespace {

// The runtime's verdict on this machine: cudaSuccess with count >= 1 when a device is usable.
cudaError_t query(int* count) {
  *count = 0;
  const cudaError_t e = cudaGetDeviceCount(count);
  if (e != cudaSuccess) {
    cudaGetLastError();  // clear the sticky error
    *count = 0;
  }
  return e;
}

std::string describe(cudaError_t e, int count) {
  const std::string detail = std::string(cudaGetErrorName(e)) + ", " + cudaGetErrorString(e);
  switch (e) {
    case cudaSuccess: return count > 0 ? std::string() : std::string("no CUDA device: the driver reports 0 devices");
    case cudaErrorInsufficientDriver:
      return "no CUDA driver (libcuda.so missing or older than this build's CUDA runtime): " + detail;
    case cudaErrorNoDevice: return "no CUDA device: " + detail;
    default: return "CUDA unusable: " + detail;
  }
}

}  // namespace

int device_count() {
  int n = 0;
  query(&n);
  return n;
}

std::string unavailable_reason() {
  int n = 0;
  const cudaError_t e = query(&n);
  return describe(e, n);
}

void mem_get_info(int device, std::size_t* free_bytes, std::size_t* total_bytes) {
  int n = 0;
  const cudaError_t e = query(&n);
  if (e != cudaSuccess || n == 0) throw std::runtime_error("device: 'cuda' requested but " + describe(e, n));
  if (device < 0 || device >= n)
    throw std::runtime_error("device: expected a CUDA device index in [0, " + std::to_string(n) + "), got " +
                             std::to_string(device));
  int previous = 0;
  cudaError_t r = cudaGetDevice(&previous);
  if (r == cudaSuccess) r = cudaSetDevice(device);
  if (r == cudaSuccess) r = cudaMemGetInfo(free_bytes, total_bytes);
  cudaSetDevice(previous);
  if (r != cudaSuccess) {
    cudaGetLastError();
    throw std::runtime_error(std::string("CUDA error in cudaMemGetInfo: ") + cudaGetErrorString(r));
  }
}

}  // namespace cuda
}  // namespace dropnet
