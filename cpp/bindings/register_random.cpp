// Philox4x32-10 and the stream words of the dropout contract.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <stdexcept>
#include <string>

#include "array_args.h"
#include "dropnet/kernels/cpu/philox_stream.h"
#ifdef DROPNET_HAS_CUDA
#include "dropnet/kernels/cuda/device.h"
#include "dropnet/kernels/cuda/philox_stream.h"
#endif

namespace py = pybind11;

namespace dropnet {
namespace bindings {

namespace {

// Elements start .. start + n - 1 must all exist: counters past 2**64 - 1 would wrap to element 0.
void require_counter_range(uint64_t start, uint64_t n) {
  DROPNET_CHECK(n == 0 || n - 1 <= ~uint64_t{0} - start, "start: expected start + n <= 2**64, got start = ", start,
                " and n = ", n);
}

}  // namespace

void register_random(py::module_& m) {
  m.def(
      "philox4x32_10",
      [](const py::object& counter, const py::object& key) {
        auto c = require_array<uint32_t>(counter, "counter");
        auto k = require_array<uint32_t>(key, "key");
        DROPNET_CHECK(c.ndim() >= 1 && c.shape(c.ndim() - 1) == 4,
                      "counter: expected shape (..., 4), got ", shape_str(c));
        DROPNET_CHECK(k.ndim() >= 1 && k.shape(k.ndim() - 1) == 2, "key: expected shape (..., 2), got ",
                      shape_str(k));
        bool same_batch = c.ndim() == k.ndim();
        for (py::ssize_t i = 0; same_batch && i + 1 < c.ndim(); ++i) same_batch = c.shape(i) == k.shape(i);
        DROPNET_CHECK(same_batch, "key: expected batch shape matching counter ", shape_str(c),
                      " with last dimension 2, got ", shape_str(k));
        py::array_t<uint32_t> out(shape_of(c));
        const int64_t n = static_cast<int64_t>(c.size() / 4);
        const uint32_t* cp = c.data();
        const uint32_t* kp = k.data();
        uint32_t* op = out.mutable_data();
        {
          py::gil_scoped_release release;  // raw buffers only from here on
          cpu::philox4x32_10_batch(cp, kp, n, op);
        }
        return out;
      },
      py::arg("counter"), py::arg("key"));

  m.def(
      "uniform_bits",
      [](int64_t n, const py::object& seed, const py::object& stream, const py::object& start, const std::string& device) {
        DROPNET_CHECK(n >= 0, "n: expected n >= 0, got ", n);
        const uint64_t s = require_u64(seed, "seed"), st = require_u64(stream, "stream");
        const uint64_t first = require_u64(start, "start");
        require_counter_range(first, static_cast<uint64_t>(n));
        py::array_t<uint32_t> out(n);
        uint32_t* op = out.mutable_data();
        if (device == "cpu") {
          py::gil_scoped_release release;
          cpu::philox_stream(s, st, first, n, op);
        } else if (device == "cuda") {
          // No usable GPU is a RuntimeError naming what is missing (docs/design.md, "Errors").
#ifdef DROPNET_HAS_CUDA
          py::gil_scoped_release release;
          const std::string missing = cuda::unavailable_reason();
          if (!missing.empty()) throw std::runtime_error("device: 'cuda' requested but " + missing);
          cuda::philox_stream(s, st, first, n, op);
#else
          throw std::runtime_error(
              "device: 'cuda' requested but dropnet was built without CUDA (DROPNET_CUDA=OFF, or no CUDA toolkit "
              "when it was built)");
#endif
        } else {
          throw ValueError(str_concat("device: expected 'cpu' or 'cuda', got '", device, "'"));
        }
        return out;
      },
      py::arg("n"), py::arg("seed"), py::arg("stream"), py::arg("start") = 0, py::arg("device") = "cpu");

  m.def(
      "fill_uniform_bits",
      [](const py::object& out, const py::object& seed, const py::object& stream, const py::object& start) {
        auto o = require_writeable<uint32_t>(out, "out");
        const uint64_t s = require_u64(seed, "seed"), st = require_u64(stream, "stream");
        const uint64_t first = require_u64(start, "start");
        uint32_t* op = o.mutable_data();
        const int64_t n = static_cast<int64_t>(o.size());
        require_counter_range(first, static_cast<uint64_t>(n));
        py::gil_scoped_release release;
        cpu::philox_stream(s, st, first, n, op);
      },
      py::arg("out"), py::arg("seed"), py::arg("stream"), py::arg("start") = 0);
}

}  // namespace bindings
}  // namespace dropnet
