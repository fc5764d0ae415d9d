// What a build without CUDA links in place of kernels/cuda/*.cu for the device bindings: every
// call that would touch a device raises std::runtime_error (RuntimeError in Python) saying the
// build has no CUDA, so register_device.cpp is the same code in both builds.
#ifndef DROPNET_HAS_CUDA
#include <stdexcept>

#include "dropnet/kernels/cuda/backend.h"
#include "dropnet/kernels/cuda/device.h"
#include "dropnet/kernels/cuda/dropout.h"

namespace dropnet {
namespace cuda {
namespace {

[[noreturn]] void no_cuda() {
  throw std::runtime_error(
      "device: a CUDA array needs dropnet built with CUDA; this build has none (DROPNET_CUDA=OFF, or no CUDA "
      "toolkit when it was built)");
}

}  // namespace

ScopedDevice::ScopedDevice(int) { no_cuda(); }
ScopedDevice::~ScopedDevice() = default;
void* device_alloc(std::size_t, int) { no_cuda(); }
void device_free(void*, int) noexcept {}
int pointer_device(const void*) { no_cuda(); }
void copy_to_device(void*, const void*, std::size_t, int) { no_cuda(); }
void copy_to_host(void*, const void*, std::size_t, int) { no_cuda(); }
void copy_device(void*, const void*, std::size_t, int) { no_cuda(); }
void synchronize(int, std::uintptr_t) { no_cuda(); }

void dropout_forward(const float*, float*, int64_t, uint32_t, float, uint64_t, uint64_t, uint64_t*, uint64_t) {
  no_cuda();
}
void dropout_backward_bits(const float*, const uint64_t*, float*, int64_t, float) { no_cuda(); }
void dropout_backward_regen(const float*, float*, int64_t, uint32_t, float, uint64_t, uint64_t, uint64_t) {
  no_cuda();
}
void dropout_mask_bits(int64_t, uint32_t, uint64_t, uint64_t, uint64_t*, uint64_t) { no_cuda(); }
void alpha_dropout_forward(const float*, float*, int64_t, uint32_t, float, float, float, uint64_t, uint64_t,
                           uint64_t*, uint64_t) {
  no_cuda();
}
void spatial_dropout_forward(const float*, float*, int64_t, int64_t, uint32_t, float, uint64_t, uint64_t, uint64_t*,
                             uint64_t) {
  no_cuda();
}
void spatial_dropout_backward(const float*, float*, int64_t, int64_t, const uint64_t*, float) { no_cuda(); }
void mc_dropout_forward(const float*, float*, int64_t, int64_t, uint32_t, float, uint64_t, uint64_t) { no_cuda(); }
std::shared_ptr<const Backend> cuda_backend(int) { no_cuda(); }

}  // namespace cuda
}  // namespace dropnet
#endif  // DROPNET_HAS_CUDA
