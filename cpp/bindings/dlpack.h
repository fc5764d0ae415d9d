// The DLPack ABI (dmlc/dlpack, v1.0: the legacy DLManagedTensor and DLManagedTensorVersioned),
// written out here because the wheel ships no dlpack header and the layout is a fixed C ABI.
// Capsule names: "dltensor" / "dltensor_versioned" before a consumer takes the tensor,
// "used_dltensor" / "used_dltensor_versioned" after.
#pragma once
#include <cstdint>

namespace dropnet {
namespace bindings {
namespace dlpack {

enum DeviceType : int32_t { kDLCPU = 1, kDLCUDA = 2, kDLCUDAHost = 3, kDLCUDAManaged = 13 };
enum TypeCode : uint8_t { kDLInt = 0, kDLUInt = 1, kDLFloat = 2, kDLBfloat = 4, kDLComplex = 5, kDLBool = 6 };
constexpr uint64_t kFlagReadOnly = uint64_t{1} << 0;

struct DLDevice {
  int32_t device_type;
  int32_t device_id;
};

struct DLDataType {
  uint8_t code;
  uint8_t bits;
  uint16_t lanes;
};

struct DLTensor {
  void* data;
  DLDevice device;
  int32_t ndim;
  DLDataType dtype;
  int64_t* shape;
  int64_t* strides;  // in elements; null means C-contiguous
  uint64_t byte_offset;
};

struct DLManagedTensor {
  DLTensor dl_tensor;
  void* manager_ctx;
  void (*deleter)(DLManagedTensor* self);
};

struct DLPackVersion {
  uint32_t major;
  uint32_t minor;
};

struct DLManagedTensorVersioned {
  DLPackVersion version;
  void* manager_ctx;
  void (*deleter)(DLManagedTensorVersioned* self);
  uint64_t flags;
  DLTensor dl_tensor;
};

}  // namespace dlpack
}  // namespace bindings
}  // namespace dropnet
