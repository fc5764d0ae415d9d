// The CUDA twin of the kernel interface (kernels/backend.h) for one GPU: DeviceBackend
// (kernels/cuda/device_backend.h) over the cuda:: launchers, each call made with `device` current.
// Declared without the CUDA headers, so nn/ callers and the bindings compile without the toolkit;
// a build without CUDA links bindings/device_without_cuda.cpp, whose cuda_backend throws.
//
// Never run on a GPU yet (docs/design.md, "Devices: one network, two backends").
#pragma once
#include <memory>

#include "dropnet/kernels/backend.h"

namespace dropnet {
namespace cuda {

// The backend of GPU `device` (its name "cuda:<device>"). Throws std::runtime_error naming what is
// missing (no driver, no device, device out of range) before anything is allocated.
std::shared_ptr<const Backend> cuda_backend(int device);

}  // namespace cuda
}  // namespace dropnet
