#include "dropnet/kernels/cpu/sparse_workspace.h"

#include <cstdlib>
#include <memory>
#include <new>

namespace dropnet {
namespace cpu {

namespace {
struct FreeDeleter {
  void operator()(float* p) const { std::free(p); }
};
struct Buffer {
  std::unique_ptr<float, FreeDeleter> data;
  size_t size = 0;
};
}  // namespace

float* sparse_workspace(size_t n_floats) {
  thread_local Buffer buf;
  if (n_floats > buf.size) {
    const size_t bytes = ((n_floats * sizeof(float) + 63) / 64) * 64;
    float* p = static_cast<float*>(std::aligned_alloc(64, bytes));
    if (!p) throw std::bad_alloc();
    buf.data.reset(p);
    buf.size = n_floats;
  }
  return buf.data.get();
}

}  // namespace cpu
}  // namespace dropnet
