// dropnet._core.device: arrays that live on a CUDA device. DLPack capsules in and out (parsed and
// made here, in every build, so the parser is tested on machines without a GPU), device memory
// owned by Python objects, host <-> device copies, and the dropout family on device pointers (the
// layer ops: register_device_layers.cpp).
// The checks a user sees (dtype, layout, devices) are made in python/dropnet/ops/_device.py;
// here the pointers are trusted. Without a CUDA build the cuda:: calls are those of
// device_without_cuda.cpp: each raises RuntimeError saying so.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "array_args.h"
#include "dlpack.h"
#include "dropnet/core/philox.h"
#include "dropnet/kernels/cpu/dropout.h"
#include "dropnet/kernels/cuda/device.h"
#include "dropnet/kernels/cuda/dropout.h"

namespace py = pybind11;

namespace dropnet {
namespace bindings {

namespace {

using namespace dlpack;

// ------------------------------------------------------------------------- DLPack import
// A consumed capsule's tensor, whichever of the two ABIs it came in.
struct ImportedTensor {
  DLTensor* tensor = nullptr;
  bool read_only = false;
  void (*release)(void*) = nullptr;  // calls the producer's deleter
  void* managed = nullptr;
};

void release_legacy(void* m) {
  auto* t = static_cast<DLManagedTensor*>(m);
  if (t->deleter) t->deleter(t);
}

void release_versioned(void* m) {
  auto* t = static_cast<DLManagedTensorVersioned*>(m);
  if (t->deleter) t->deleter(t);
}

// Takes the tensor out of a "dltensor" / "dltensor_versioned" capsule and marks the capsule used,
// as the protocol asks; the returned dict's "keepalive" calls the producer's deleter when freed.
py::dict dlpack_import(const py::object& capsule) {
  PyObject* c = capsule.ptr();
  if (!PyCapsule_CheckExact(c))
    throw TypeError("__dlpack__: expected a PyCapsule, got " + py::str(py::type::of(capsule)).cast<std::string>());
  const char* name = PyCapsule_GetName(c);
  const std::string capsule_name = name ? name : "";
  ImportedTensor imported;
  if (capsule_name == "dltensor") {
    auto* m = static_cast<DLManagedTensor*>(PyCapsule_GetPointer(c, "dltensor"));
    if (!m) throw py::error_already_set();
    imported = {&m->dl_tensor, false, release_legacy, m};
    PyCapsule_SetName(c, "used_dltensor");
  } else if (capsule_name == "dltensor_versioned") {
    auto* m = static_cast<DLManagedTensorVersioned*>(PyCapsule_GetPointer(c, "dltensor_versioned"));
    if (!m) throw py::error_already_set();
    if (m->version.major != 1) {
      throw ValueError(str_concat("__dlpack__: expected a DLPack 1.x tensor, got version ", m->version.major, ".",
                                  m->version.minor));
    }
    imported = {&m->dl_tensor, (m->flags & kFlagReadOnly) != 0, release_versioned, m};
    PyCapsule_SetName(c, "used_dltensor_versioned");
  } else {
    throw ValueError("__dlpack__: expected a capsule named 'dltensor' or 'dltensor_versioned', got '" + capsule_name +
                     "' (a capsule can be consumed once)");
  }
  // From here the tensor is ours: the keepalive releases it however this function ends.
  auto* owned = new ImportedTensor(imported);
  py::capsule keepalive(owned, [](void* p) {
    auto* t = static_cast<ImportedTensor*>(p);
    t->release(t->managed);
    delete t;
  });
  const DLTensor& t = *imported.tensor;
  if (t.ndim < 0) throw ValueError(str_concat("__dlpack__: expected ndim >= 0, got ", t.ndim));
  py::tuple shape(t.ndim);
  for (int32_t i = 0; i < t.ndim; ++i) shape[i] = t.shape[i];
  py::object strides = py::none();
  if (t.strides != nullptr && t.ndim > 0) {
    py::tuple s(t.ndim);
    for (int32_t i = 0; i < t.ndim; ++i) s[i] = t.strides[i];
    strides = s;
  }
  py::dict d;
  d["ptr"] = reinterpret_cast<std::uintptr_t>(t.data) + t.byte_offset;
  d["shape"] = shape;
  d["strides"] = strides;  // elements, or None for C-contiguous
  d["dtype"] = py::make_tuple(static_cast<int>(t.dtype.code), static_cast<int>(t.dtype.bits),
                              static_cast<int>(t.dtype.lanes));
  d["device"] = py::make_tuple(t.device.device_type, t.device.device_id);
  d["read_only"] = imported.read_only;
  d["keepalive"] = keepalive;
  return d;
}

// ------------------------------------------------------------------------- DLPack export
// What an exported tensor holds: its shape (the DLTensor points into it) and a reference to the
// Python object that owns the memory, dropped by the deleter under the GIL.
struct ExportContext {
  std::vector<int64_t> shape;
  PyObject* owner;
};

void drop_owner(ExportContext* ctx) {
  py::gil_scoped_acquire gil;
  Py_DECREF(ctx->owner);
  delete ctx;
}

void delete_legacy(DLManagedTensor* self) {
  drop_owner(static_cast<ExportContext*>(self->manager_ctx));
  delete self;
}

void delete_versioned(DLManagedTensorVersioned* self) {
  drop_owner(static_cast<ExportContext*>(self->manager_ctx));
  delete self;
}

DLTensor fill_tensor(ExportContext* ctx, std::uintptr_t ptr, DLDataType dtype, DLDevice device) {
  DLTensor t{};
  t.data = reinterpret_cast<void*>(ptr);
  t.device = device;
  t.ndim = static_cast<int32_t>(ctx->shape.size());
  t.dtype = dtype;
  t.shape = ctx->shape.empty() ? nullptr : ctx->shape.data();
  t.strides = nullptr;  // C-contiguous
  t.byte_offset = 0;
  return t;
}

// A capsule a DLPack consumer (torch.from_dlpack, cupy.from_dlpack, np.from_dlpack) takes, for the
// C-contiguous array of `shape` at `ptr`, kept alive through `owner`. An unconsumed capsule calls
// the deleter itself when it is freed.
py::capsule dlpack_export(const py::object& owner, std::uintptr_t ptr, const py::tuple& shape, int dtype_code,
                          int dtype_bits, int device_type, int device_id, bool versioned) {
  const DLDataType dt{static_cast<uint8_t>(dtype_code), static_cast<uint8_t>(dtype_bits), 1};
  const DLDevice dev{device_type, device_id};
  std::vector<int64_t> dims;
  for (const py::handle d : shape) dims.push_back(d.cast<int64_t>());
  auto* ctx = new ExportContext{std::move(dims), owner.ptr()};
  Py_INCREF(owner.ptr());
  if (versioned) {
    auto* m = new DLManagedTensorVersioned{};
    m->version = {1, 0};
    m->manager_ctx = ctx;
    m->deleter = delete_versioned;
    m->flags = 0;
    m->dl_tensor = fill_tensor(ctx, ptr, dt, dev);
    return py::capsule(m, "dltensor_versioned", [](PyObject* c) {
      if (PyCapsule_IsValid(c, "dltensor_versioned")) {
        auto* t = static_cast<DLManagedTensorVersioned*>(PyCapsule_GetPointer(c, "dltensor_versioned"));
        t->deleter(t);
      }
    });
  }
  auto* m = new DLManagedTensor{};
  m->manager_ctx = ctx;
  m->deleter = delete_legacy;
  m->dl_tensor = fill_tensor(ctx, ptr, dt, dev);
  return py::capsule(m, "dltensor", [](PyObject* c) {
    if (PyCapsule_IsValid(c, "dltensor")) {
      auto* t = static_cast<DLManagedTensor*>(PyCapsule_GetPointer(c, "dltensor"));
      t->deleter(t);
    }
  });
}

// ------------------------------------------------------------------------- device memory
// Device memory owned by a Python object; freed (stream-ordered) when the object goes.
class DeviceBuffer {
 public:
  DeviceBuffer(std::size_t nbytes, int device) : nbytes_(nbytes), device_(device) {
    py::gil_scoped_release release;
    ptr_ = cuda::device_alloc(nbytes, device);
  }
  ~DeviceBuffer() { cuda::device_free(ptr_, device_); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  std::uintptr_t ptr() const { return reinterpret_cast<std::uintptr_t>(ptr_); }
  std::size_t nbytes() const { return nbytes_; }
  int device() const { return device_; }

 private:
  void* ptr_ = nullptr;
  std::size_t nbytes_;
  int device_;
};

void* as_ptr(std::uintptr_t p) { return reinterpret_cast<void*>(p); }
float* as_floats(std::uintptr_t p) { return reinterpret_cast<float*>(p); }
uint64_t* as_words(std::uintptr_t p) { return reinterpret_cast<uint64_t*>(p); }

// Runs a launch on `device` with the GIL released.
template <class F>
void on_device(int device, F launch) {
  py::gil_scoped_release release;
  cuda::ScopedDevice on(device);
  launch();
}


}  // namespace

void register_device(py::module_& m) {
  m.def("dlpack_import", &dlpack_import, py::arg("capsule"),
        "Consume a DLPack capsule: dict of ptr, shape, strides (elements or None), dtype (code, bits, lanes), "
        "device (type, id), read_only and keepalive (holds the producer's tensor).");
  m.def("dlpack_export", &dlpack_export, py::arg("owner"), py::arg("ptr"), py::arg("shape"), py::arg("dtype_code"),
        py::arg("dtype_bits"), py::arg("device_type"), py::arg("device_id"), py::arg("versioned"),
        "A DLPack capsule of the C-contiguous array at ptr, keeping owner alive.");
  py::class_<DeviceBuffer>(m, "DeviceBuffer", "Device memory from cudaMallocAsync, freed with the object.")
      .def(py::init<std::size_t, int>(), py::arg("nbytes"), py::arg("device"))
      .def_property_readonly("ptr", &DeviceBuffer::ptr)
      .def_property_readonly("nbytes", &DeviceBuffer::nbytes)
      .def_property_readonly("device", &DeviceBuffer::device);

  m.def("pointer_device", [](std::uintptr_t ptr) {
    py::gil_scoped_release release;
    return cuda::pointer_device(reinterpret_cast<const void*>(ptr));
  }, py::arg("ptr"), "The CUDA device a pointer's memory lives on.");
  m.def("copy_to_device", [](std::uintptr_t dst, const py::array& src, int device) {
    DROPNET_CHECK(src.flags() & py::array::c_style, "src: expected a C-contiguous array");
    const auto bytes = static_cast<std::size_t>(src.nbytes());
    on_device(device, [&] { cuda::copy_to_device(as_ptr(dst), src.data(), bytes, device); });
  }, py::arg("dst"), py::arg("src"), py::arg("device"));
  m.def("copy_to_host", [](const py::array& dst, std::uintptr_t src, int device) {
    DROPNET_CHECK((dst.flags() & py::array::c_style) && dst.writeable(),
                  "dst: expected a writeable C-contiguous array");
    void* host = const_cast<void*>(dst.data());
    const auto bytes = static_cast<std::size_t>(dst.nbytes());
    on_device(device, [&] { cuda::copy_to_host(host, as_ptr(src), bytes, device); });
  }, py::arg("dst"), py::arg("src"), py::arg("device"));
  m.def("copy_device", [](std::uintptr_t dst, std::uintptr_t src, std::size_t nbytes, int device) {
    on_device(device, [&] { cuda::copy_device(as_ptr(dst), as_ptr(src), nbytes, device); });
  }, py::arg("dst"), py::arg("src"), py::arg("nbytes"), py::arg("device"));
  m.def("synchronize", [](int device, std::uintptr_t stream) {
    on_device(device, [&] { cuda::synchronize(device, stream); });
  }, py::arg("device"), py::arg("stream") = 0,
     "Wait for the legacy default stream of device, and for stream when it is not 0.");

  // The dropout family on device pointers (0 = no mask); p is in [0, 1) and the identity paths
  // (p == 0, training=False) are taken in Python, as the CPU bindings take them in C++.
  m.def("dropout_forward", [](std::uintptr_t x, std::uintptr_t y, int64_t n, double p, uint64_t seed, uint64_t stream,
                              std::uintptr_t mask, int device) {
    on_device(device, [&] {
      cuda::dropout_forward(as_floats(x), as_floats(y), n, keep_threshold(p), keep_scale(p), seed, stream, as_words(mask));
    });
  }, py::arg("x"), py::arg("y"), py::arg("n"), py::arg("p"), py::arg("seed"), py::arg("stream"), py::arg("mask"),
     py::arg("device"));
  m.def("dropout_backward", [](std::uintptr_t dy, std::uintptr_t dx, int64_t n, float scale, double p, uint64_t seed,
                               uint64_t stream, std::uintptr_t mask, int device) {
    on_device(device, [&] {
      if (mask) {
        cuda::dropout_backward_bits(as_floats(dy), as_words(mask), as_floats(dx), n, scale);
      } else {
        cuda::dropout_backward_regen(as_floats(dy), as_floats(dx), n, keep_threshold(p), scale, seed, stream);
      }
    });
  }, py::arg("dy"), py::arg("dx"), py::arg("n"), py::arg("scale"), py::arg("p"), py::arg("seed"), py::arg("stream"),
     py::arg("mask"), py::arg("device"), "dx = dy * keep * scale; keep from mask, or regenerated when mask is 0.");
  m.def("alpha_dropout_forward", [](std::uintptr_t x, std::uintptr_t y, int64_t n, double p, uint64_t seed,
                                    uint64_t stream, std::uintptr_t mask, int device) {
    const cpu::AlphaDropoutCoeffs c = cpu::alpha_dropout_coeffs(p);
    on_device(device, [&] {
      cuda::alpha_dropout_forward(as_floats(x), as_floats(y), n, keep_threshold(p), c.a, c.b, c.dropped_value, seed,
                                  stream, as_words(mask));
    });
  }, py::arg("x"), py::arg("y"), py::arg("n"), py::arg("p"), py::arg("seed"), py::arg("stream"), py::arg("mask"),
     py::arg("device"));
  m.def("spatial_dropout_forward", [](std::uintptr_t x, std::uintptr_t y, int64_t n_channels, int64_t channel_size,
                                      double p, uint64_t seed, uint64_t stream, std::uintptr_t mask, int device) {
    on_device(device, [&] {
      cuda::spatial_dropout_forward(as_floats(x), as_floats(y), n_channels, channel_size, keep_threshold(p),
                                    keep_scale(p), seed, stream, as_words(mask));
    });
  }, py::arg("x"), py::arg("y"), py::arg("n_channels"), py::arg("channel_size"), py::arg("p"), py::arg("seed"),
     py::arg("stream"), py::arg("mask"), py::arg("device"), "mask (ceil(n_channels / 64) words) is required.");
  m.def("spatial_dropout_backward", [](std::uintptr_t dy, std::uintptr_t dx, int64_t n_channels, int64_t channel_size,
                                       std::uintptr_t mask, double p, int device) {
    on_device(device, [&] {
      cuda::spatial_dropout_backward(as_floats(dy), as_floats(dx), n_channels, channel_size, as_words(mask),
                                     keep_scale(p));
    });
  }, py::arg("dy"), py::arg("dx"), py::arg("n_channels"), py::arg("channel_size"), py::arg("mask"), py::arg("p"),
     py::arg("device"));
  m.def("dropout_mask_bits", [](int64_t n, double p, uint64_t seed, uint64_t stream, std::uintptr_t mask, int device) {
    on_device(device, [&] { cuda::dropout_mask_bits(n, keep_threshold(p), seed, stream, as_words(mask)); });
  }, py::arg("n"), py::arg("p"), py::arg("seed"), py::arg("stream"), py::arg("mask"), py::arg("device"));
  m.def("mc_dropout", [](std::uintptr_t x, std::uintptr_t y, int64_t n, int64_t samples, double p, uint64_t seed,
                         uint64_t stream0, int device) {
    on_device(device, [&] {
      cuda::mc_dropout_forward(as_floats(x), as_floats(y), n, samples, keep_threshold(p), keep_scale(p), seed, stream0);
    });
  }, py::arg("x"), py::arg("y"), py::arg("n"), py::arg("samples"), py::arg("p"), py::arg("seed"), py::arg("stream0"),
     py::arg("device"));
}

}  // namespace bindings
}  // namespace dropnet
