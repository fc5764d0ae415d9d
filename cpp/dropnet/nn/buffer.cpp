#include "dropnet/nn/buffer.h"

#include <cstdlib>
#include <cstring>
#include <new>

namespace dropnet {
namespace nn {

void* buffer_alloc(const Backend* backend, size_t bytes) {
  void* p = backend ? backend->alloc(bytes) : std::aligned_alloc(64, bytes);
  if (!p) throw std::bad_alloc();
  return p;
}

void buffer_free(const Backend* backend, void* p) noexcept {
  if (backend) backend->free(p);
  else std::free(p);
}

void buffer_zero(const Backend* backend, void* p, size_t bytes) {
  if (backend) backend->zero(p, bytes);
  else std::memset(p, 0, bytes);
}

void* buffer_move(const Backend* backend, const void* from, size_t bytes, size_t keep_bytes) {
  void* p = buffer_alloc(backend, bytes);
  if (!keep_bytes) return p;
  if (backend) backend->to_device(p, from, keep_bytes);
  else std::memcpy(p, from, keep_bytes);
  return p;
}

}  // namespace nn
}  // namespace dropnet
