// Owned, 64-byte aligned, uninitialised array: the storage of parameters, gradients, optimizer
// state and per-batch activations. grow() reallocates only when more room is needed, so buffers
// sized for one batch are reused by every later step of the same or a smaller batch.
// alias() turns a buffer into a view of n elements of someone else's storage (the network's one
// gradient arena slices every parameter's gradient that way); a view is never freed by it.
// Storage is host memory unless the buffer is bound to a backend (kernels/backend.h), whose memory
// it then holds: a network on a device binds every buffer its step touches (Layer::bind).
#pragma once
#include <cstddef>
#include <memory>

#include "dropnet/kernels/backend.h"

namespace dropnet {
namespace nn {

// Storage of a Buffer: `backend`'s memory, or host memory (64-byte aligned) when null. Out of line
// (nn/buffer.cpp): every layer grows buffers, and one call per site keeps the module small.
void* buffer_alloc(const Backend* backend, size_t bytes);
void buffer_free(const Backend* backend, void* p) noexcept;
void buffer_zero(const Backend* backend, void* p, size_t bytes);
// A new block of `bytes` on `backend` holding the first keep_bytes of host memory `from`.
void* buffer_move(const Backend* backend, const void* from, size_t bytes, size_t keep_bytes);
// x[i] *= host_mask[i] for n floats of `backend`'s memory (host memory when null). A device takes
// the round trip through the host: masks change rarely (set_mask, set_params, loading a model).
void buffer_mask(const Backend* backend, float* x, const float* host_mask, size_t n);

template <class T>
class Buffer {
 public:
  Buffer() = default;
  explicit Buffer(size_t n) { grow(n); }
  Buffer(Buffer&&) noexcept = default;
  Buffer& operator=(Buffer&&) noexcept = default;

  // Ensures room for n elements and returns the storage; contents are lost if it reallocates.
  T* grow(size_t n) {
    if (n > capacity_) {
      const size_t bytes = ((n * sizeof(T) + 63) / 64) * 64;
      data_.reset();  // the old block goes first: a device may have room for one of the two only
      capacity_ = 0;
      data_ = std::unique_ptr<T, Free>(static_cast<T*>(buffer_alloc(backend_, bytes)), Free{true, backend_});
      capacity_ = n;
    }
    return data_.get();
  }
  // Frees the storage (a view is only dropped); the buffer stays bound to its backend.
  void release() {
    data_.reset();
    capacity_ = 0;
  }
  // From now on storage comes from `backend` (null: host memory). The first `keep` elements (host
  // memory, written by the host) move into it; the rest of the old storage is dropped.
  void bind(const Backend* backend, size_t keep = 0) {
    if (backend == backend_) return;
    backend_ = backend;
    if (!data_) return;
    const size_t bytes = ((capacity_ * sizeof(T) + 63) / 64) * 64;
    data_ = std::unique_ptr<T, Free>(static_cast<T*>(buffer_move(backend, data_.get(), bytes, keep * sizeof(T))),
                                     Free{true, backend});
  }
  const Backend* backend() const { return backend_; }
  // View of p[0, n), owned elsewhere and outliving this buffer; the old storage is freed.
  void alias(T* p, size_t n) {
    data_ = std::unique_ptr<T, Free>(p, Free{false, nullptr});
    capacity_ = n;
  }
  void zero(size_t n) {
    if (n) buffer_zero(backend_, data_.get(), n * sizeof(T));
  }
  T* data() { return data_.get(); }
  const T* data() const { return data_.get(); }
  size_t capacity() const { return capacity_; }

 private:
  struct Free {
    bool owned = true;
    const Backend* backend = nullptr;
    void operator()(T* p) const {
      if (owned) buffer_free(backend, p);
    }
  };
  std::unique_ptr<T, Free> data_;
  const Backend* backend_ = nullptr;
  size_t capacity_ = 0;
};

}  // namespace nn
}  // namespace dropnet
