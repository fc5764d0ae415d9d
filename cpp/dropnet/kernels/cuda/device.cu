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

namespace {

// Throws std::runtime_error naming the call when a runtime call failed, and clears the error.
void check(cudaError_t e, const char* call) {
  if (e == cudaSuccess) return;
  cudaGetLastError();
  throw std::runtime_error(std::string("CUDA error in ") + call + ": " + cudaGetErrorName(e) + ", " +
                           cudaGetErrorString(e));
}

}  // namespace

ScopedDevice::ScopedDevice(int device) {
  check(cudaGetDevice(&previous_), "cudaGetDevice");
  check(cudaSetDevice(device), "cudaSetDevice");
}

ScopedDevice::~ScopedDevice() { cudaSetDevice(previous_); }

void* device_alloc(std::size_t bytes, int device) {
  if (bytes == 0) return nullptr;
  ScopedDevice on(device);
  void* ptr = nullptr;
  const cudaError_t e = cudaMallocAsync(&ptr, bytes, cudaStreamLegacy);
  if (e == cudaSuccess) return ptr;
  cudaGetLastError();
  std::size_t free_bytes = 0, total_bytes = 0;
  cudaMemGetInfo(&free_bytes, &total_bytes);
  cudaGetLastError();
  throw std::runtime_error("device memory: asked for " + std::to_string(bytes) + " bytes on cuda:" +
                           std::to_string(device) + ", " + std::to_string(free_bytes) + " of " +
                           std::to_string(total_bytes) + " bytes free (" + cudaGetErrorName(e) + ")");
}

void device_free(void* ptr, int device) noexcept {
  if (ptr == nullptr) return;
  int previous = 0;
  if (cudaGetDevice(&previous) != cudaSuccess || cudaSetDevice(device) != cudaSuccess) {
    cudaGetLastError();
    return;
  }
  if (cudaFreeAsync(ptr, cudaStreamLegacy) != cudaSuccess) cudaGetLastError();
  cudaSetDevice(previous);
}

int pointer_device(const void* ptr) {
  cudaPointerAttributes attributes{};
  check(cudaPointerGetAttributes(&attributes, ptr), "cudaPointerGetAttributes");
  if (attributes.type != cudaMemoryTypeDevice && attributes.type != cudaMemoryTypeManaged)
    throw std::runtime_error("expected a pointer to CUDA device memory, got host memory");
  return attributes.device;
}

void copy_to_device(void* dst, const void* host_src, std::size_t bytes, int device) {
  if (bytes == 0) return;
  ScopedDevice on(device);
  check(cudaMemcpy(dst, host_src, bytes, cudaMemcpyHostToDevice), "cudaMemcpy (to device)");
}

void copy_to_host(void* host_dst, const void* src, std::size_t bytes, int device) {
  if (bytes == 0) return;
  ScopedDevice on(device);
  check(cudaMemcpy(host_dst, src, bytes, cudaMemcpyDeviceToHost), "cudaMemcpy (to host)");
}

void copy_device(void* dst, const void* src, std::size_t bytes, int device) {
  if (bytes == 0 || dst == src) return;
  ScopedDevice on(device);
  check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, cudaStreamLegacy), "cudaMemcpyAsync");
}

void synchronize(int device, std::uintptr_t stream) {
  ScopedDevice on(device);
  check(cudaStreamSynchronize(cudaStreamLegacy), "cudaStreamSynchronize");
  // 1 and 2 are the interfaces' names of the legacy and per-thread default streams.
  if (stream > 2) check(cudaStreamSynchronize(reinterpret_cast<cudaStream_t>(stream)), "cudaStreamSynchronize");
  else if (stream == 2) check(cudaStreamSynchronize(cudaStreamPerThread), "cudaStreamSynchronize");
}

}  // namespace cuda
}  // namespace dropnet
