// Owned, 64-byte aligned, uninitialised array: the storage of parameters, gradients, optimizer
// state and per-batch activations. grow() reallocates only when more room is needed, so buffers
// sized for one batch are reused by every later step of the same or a smaller batch.
#pragma once
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>

namespace dropnet {
namespace nn {

template <class T>
class Buffer {
 public:
  Buffer() = default;
  explicit Buffer(size_t n) { grow(n); }
  Buffer(Buffer&&) noexcept = default;
  Buffer& operator=(Buffer&&) noexcept = default;

  // Ensures room for n elements; contents are lost if it reallocates.
  void grow(size_t n) {
    if (n <= capacity_) return;
    const size_t bytes = ((n * sizeof(T) + 63) / 64) * 64;
    void* p = std::aligned_alloc(64, bytes);
    if (!p) throw std::bad_alloc();
    data_.reset(static_cast<T*>(p));
    capacity_ = n;
  }
  void zero(size_t n) {
    if (n) std::memset(data_.get(), 0, n * sizeof(T));
  }
  T* data() { return data_.get(); }
  const T* data() const { return data_.get(); }
  size_t capacity() const { return capacity_; }

 private:
  struct Free {
    void operator()(T* p) const { std::free(p); }
  };
  std::unique_ptr<T, Free> data_;
  size_t capacity_ = 0;
};

}  // namespace nn
}  // namespace dropnet
