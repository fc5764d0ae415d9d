// Threads, ISA dispatch and device queries.
#include <pybind11/pybind11.h>

#include <cstddef>
#include <stdexcept>
#include <string>

#include "dropnet/core/cpu_features.h"
#include "dropnet/core/threading.h"
#ifdef DROPNET_HAS_CUDA
#include "dropnet/kernels/cuda/device.h"
#endif

namespace py = pybind11;

namespace dropnet {
namespace bindings {

#ifndef DROPNET_HAS_CUDA
namespace {
constexpr const char* kBuiltWithoutCuda =
    "dropnet was built without CUDA (DROPNET_CUDA=OFF, or no CUDA toolkit when it was built)";
}  // namespace
#endif

void register_core(py::module_& m) {
  m.def("get_num_threads", &get_num_threads, "Threads the kernels use.");
  m.def("set_num_threads", &set_num_threads, py::arg("n"), "Set the threads the kernels use (n >= 1).");
  m.def("active_isa", [] { return std::string(isa_name(active_isa())); });
  m.def("max_isa", [] { return std::string(isa_name(max_supported_isa())); });
  m.def("set_isa", [](const std::string& name) { set_isa(parse_isa(name, "isa")); }, py::arg("isa"));
  m.def("cpu_flags", [] {
    const CpuFeatures& f = cpu_features();
    py::dict d;
    d["sse2"] = f.sse2; d["avx"] = f.avx; d["avx2"] = f.avx2; d["fma"] = f.fma; d["bmi2"] = f.bmi2;
    d["f16c"] = f.f16c; d["avx512f"] = f.avx512f; d["avx512bw"] = f.avx512bw; d["avx512dq"] = f.avx512dq;
    d["avx512vl"] = f.avx512vl; d["avx512vnni"] = f.avx512vnni; d["os_avx"] = f.os_avx;
    d["os_avx512"] = f.os_avx512;
    return d;
  });
#ifdef DROPNET_HAS_CUDA
  m.attr("built_with_cuda") = true;
  m.def("cuda_device_count", [] {
    py::gil_scoped_release release;  // the first call loads the driver
    return cuda::device_count();
  });
  m.def("cuda_unavailable_reason", [] {
    py::gil_scoped_release release;
    return cuda::unavailable_reason();
  }, "Empty when a CUDA device is usable, else what is missing.");
  m.def("cuda_mem_get_info", [](int device) {
    std::size_t free_bytes = 0, total_bytes = 0;
    {
      py::gil_scoped_release release;
      cuda::mem_get_info(device, &free_bytes, &total_bytes);
    }
    return py::make_tuple(free_bytes, total_bytes);
  }, py::arg("device"), "(free, total) bytes of a CUDA device; RuntimeError naming what is missing.");
#else
  m.attr("built_with_cuda") = false;
  m.def("cuda_device_count", [] { return 0; });
  m.def("cuda_unavailable_reason", [] { return std::string(kBuiltWithoutCuda); },
        "Empty when a CUDA device is usable, else what is missing.");
  m.def("cuda_mem_get_info", [](int) -> py::tuple {
    throw std::runtime_error(std::string("device: 'cuda' requested but ") + kBuiltWithoutCuda);
  }, py::arg("device"), "(free, total) bytes of a CUDA device; RuntimeError naming what is missing.");
#endif
}

}  // namespace bindings
}  // namespace dropnet
