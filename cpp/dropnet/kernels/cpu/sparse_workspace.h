// Scratch memory of the sparse kernels: one 64-byte aligned buffer per calling thread, grown on
// demand and reused across calls, so a training step does not fault in fresh pages every batch.
// The pointer stays valid until the same thread asks again (kernels ask once per call).
#pragma once
#include <cstddef>

namespace dropnet {
namespace cpu {

float* sparse_workspace(size_t n_floats);

}  // namespace cpu
}  // namespace dropnet
