// Owned, 64-byte aligned, uninitialised array: the storage of parameters, gradients, optimizer
// state and per-batch activations. grow() reallocates only when more room is needed, so buffers
// sized for one batch are reused by every later step of the same or a smaller batch.
// alias() turns a buffer into a view of n elements of someone else's storage (the network's one
// gradient arena slices every parameter's gradient that way); a view is never freed by it.
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
    data_ = std::unique_ptr<T, Free>(static_cast<T*>(p), Free{true});
    capacity_ = n;
  }
  // View of p[0, n), owned elsewhere and outliving this buffer; the old storage is freed.
  void alias(T* p, size_t n) {
    data_ = std::unique_ptr<T, Free>(p, Free{false});
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
    bool owned = true;
    void operator()(T* p) const {
      if (owned) std::free(p);
    }
  };
  std::unique_ptr<T, Free> data_;
  size_t capacity_ = 0;
};

}  // namespace nn
}  // namespace dropnet
