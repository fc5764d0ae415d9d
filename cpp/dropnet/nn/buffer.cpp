#include "dropnet/nn/buffer.h"

#include <cstdlib>
#include <cstring>
#include <new>
#include <vector>

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

void buffer_mask(const Backend* backend, float* x, const float* host_mask, size_t n) {
  if (!backend || backend->host_memory()) {
    for (size_t i = 0; i < n; ++i) x[i] *= host_mask[i];
    return;
  }
  std::vector<float> host(n);
  backend->to_host(host.data(), x, n * sizeof(float));
  for (size_t i = 0; i < n; ++i) host[i] *= host_mask[i];
  backend->to_device(x, host.data(), n * sizeof(float));
}

}  // namespace nn
}  // namespace dropnet
