// Non-owning view of an n-d array: pointer, dtype, device, shape and strides (in elements).
// Kernels take raw pointers; views live at the boundary (bindings, nn/) to carry and check shapes.
#pragma once
#include <array>
#include <cstdint>
#include <string>

#include "dropnet/core/error.h"

namespace dropnet {

enum class DType : int { float32, float64, int32, int64, uint8, uint32, uint64, bool8 };
enum class Device : int { cpu, cuda };

inline const char* dtype_name(DType d) {
  switch (d) {
    case DType::float32: return "float32";
    case DType::float64: return "float64";
    case DType::int32: return "int32";
    case DType::int64: return "int64";
    case DType::uint8: return "uint8";
    case DType::uint32: return "uint32";
    case DType::uint64: return "uint64";
    case DType::bool8: return "bool";
  }
  return "?";
}

struct TensorView {
  static constexpr int kMaxDims = 8;
  void* data = nullptr;
  DType dtype = DType::float32;
  Device device = Device::cpu;
  int ndim = 0;
  std::array<int64_t, kMaxDims> shape{};
  std::array<int64_t, kMaxDims> strides{};  // in elements, not bytes

  int64_t numel() const {
    int64_t n = 1;
    for (int i = 0; i < ndim; ++i) n *= shape[i];
    return n;
  }
  int64_t dim(int i) const { return shape[i < 0 ? ndim + i : i]; }
  bool is_contiguous() const {
    int64_t expect = 1;
    for (int i = ndim - 1; i >= 0; --i) {
      if (shape[i] != 1 && strides[i] != expect) return false;
      expect *= shape[i];
    }
    return true;
  }
  template <class T>
  T* ptr() const { return static_cast<T*>(data); }

  std::string shape_str() const {
    std::string s = "(";
    for (int i = 0; i < ndim; ++i) {
      s += std::to_string(shape[i]);
      if (i + 1 < ndim || ndim == 1) s += ",";
      if (i + 1 < ndim) s += " ";
    }
    return s + ")";
  }
};

inline TensorView make_contiguous_view(void* data, DType dtype, std::initializer_list<int64_t> shape) {
  TensorView v;
  v.data = data;
  v.dtype = dtype;
  DROPNET_CHECK(shape.size() <= TensorView::kMaxDims, "tensor: at most ", TensorView::kMaxDims,
                " dimensions are supported, got ", shape.size());
  v.ndim = static_cast<int>(shape.size());
  int i = 0;
  for (int64_t s : shape) v.shape[i++] = s;
  int64_t stride = 1;
  for (int d = v.ndim - 1; d >= 0; --d) {
    v.strides[d] = stride;
    stride *= v.shape[d];
  }
  return v;
}

}  // namespace dropnet
