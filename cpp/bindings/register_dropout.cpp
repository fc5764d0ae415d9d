// Bindings of the dropout kernels (dropnet._core.ops): argument checks, output allocation, and
// the kernels called with the GIL released. No maths here beyond turning p into the contract's
// threshold and scale (docs/design.md, "The Philox stream contract").
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cstring>
#include <functional>

#include "array_args.h"
#include "dropnet/core/parallel.h"
#include "dropnet/core/philox.h"
#include "dropnet/kernels/cpu/dropout.h"

namespace py = pybind11;

namespace dropnet {
namespace bindings {

namespace {

using FloatArray = py::array_t<float, py::array::c_style>;
using BitsArray = py::array_t<uint64_t, py::array::c_style>;

int64_t n_words(int64_t n) { return (n + 63) / 64; }

void check_p(double p) {
  DROPNET_CHECK(p >= 0.0 && p < 1.0, "p: expected a dropout probability in [0, 1), got ", p);
}

// out= or a new array of `shape`. A wrong out is a ValueError naming what was expected.
FloatArray float_out(const py::object& out, const std::vector<py::ssize_t>& shape, const std::string& expect) {
  if (out.is_none()) return FloatArray(shape);
  if (!py::isinstance<py::array>(out))
    throw TypeError(str_concat("out: expected a numpy float32 array, got ", py::str(py::type::of(out)).cast<std::string>()));
  py::array a = py::reinterpret_borrow<py::array>(out);
  DROPNET_CHECK(is_dtype<float>(a), "out: expected dtype float32, got ", dtype_str(a));
  DROPNET_CHECK(a.flags() & py::array::c_style, "out: expected a C-contiguous array, got strides that are not");
  DROPNET_CHECK(a.writeable(), "out: expected a writeable array, got a read-only one");
  DROPNET_CHECK(is_aligned(a), "out: expected an array aligned to its 4-byte elements, got a misaligned one");
  bool same = a.ndim() == static_cast<py::ssize_t>(shape.size());
  for (py::ssize_t i = 0; same && i < a.ndim(); ++i) same = a.shape(i) == shape[i];
  DROPNET_CHECK(same, "out: expected shape ", expect, ", got ", shape_str(a));
  return FloatArray::ensure(a);
}

std::string shape_text(const std::vector<py::ssize_t>& shape) {
  std::string s = "(";
  for (size_t i = 0; i < shape.size(); ++i) {
    s += std::to_string(shape[i]);
    if (i + 1 < shape.size() || shape.size() == 1) s += ",";
    if (i + 1 < shape.size()) s += " ";
  }
  return s + ")";
}

// Threaded copy for the identity paths (p == 0, training=False).
void copy_floats(const float* src, float* dst, int64_t n) {
  if (src == dst || n <= 0) return;
  parallel_ranges(n, int64_t{1} << 16, [&](int64_t b, int64_t e) {
    std::memcpy(dst + b, src + b, static_cast<size_t>(e - b) * sizeof(float));
  });
}

// Mask of the identity path: every element kept, padding bits zero.
void fill_all_kept(uint64_t* bits, int64_t n) {
  const int64_t words = n_words(n);
  std::fill(bits, bits + words, ~uint64_t{0});
  if (n % 64) bits[words - 1] = (uint64_t{1} << (n % 64)) - 1;
}

BitsArray require_bits(const py::object& obj, int64_t n_mask) {
  auto bits = require_array<uint64_t>(obj, "mask_bits");
  DROPNET_CHECK(bits.ndim() == 1 && bits.size() == n_words(n_mask), "mask_bits: expected shape (", n_words(n_mask),
                ",) (ceil(", n_mask, " / 64) uint64 words), got ", shape_str(bits));
  return bits;
}

// Kernel of one forward variant: (x, y, n, threshold, seed, stream, bits) on raw buffers.
using ForwardKernel = std::function<void(const float*, float*, int64_t, uint32_t, uint64_t, uint64_t, uint64_t*)>;

// Shared by the forward variants: checks, out=, optional mask, identity path, GIL released.
// n_mask: elements the mask covers (n for element dropout, N*C for spatial).
py::object forward_common(const FloatArray& x, double p, const py::object& seed, const py::object& stream,
                          bool training, const py::object& out, bool return_mask, int64_t n_mask,
                          const ForwardKernel& kernel) {
  check_p(p);
  const uint64_t s = require_u64(seed, "seed"), st = require_u64(stream, "stream");
  const std::vector<py::ssize_t> shape = shape_of(x);
  FloatArray y = float_out(out, shape, shape_text(shape) + " (the shape of x)");
  const int64_t n = static_cast<int64_t>(x.size());
  const float* xp = x.data();
  float* yp = y.mutable_data();
  require_no_overlap(y, "out", x, "x", /*in_place_ok=*/true);
  BitsArray mask;
  uint64_t* bits = nullptr;
  if (return_mask) {
    mask = BitsArray(n_words(n_mask));
    bits = mask.mutable_data();
  }
  const bool identity = !training || p == 0.0;
  const uint32_t threshold = keep_threshold(p);
  {
    py::gil_scoped_release release;  // raw buffers only from here on
    if (identity) {
      copy_floats(xp, yp, n);
      if (bits) fill_all_kept(bits, n_mask);
    } else {
      kernel(xp, yp, n, threshold, s, st, bits);
    }
  }
  if (return_mask) return py::make_tuple(y, mask);
  return std::move(y);
}

// Kernel of one backward variant: (dy, dx, n, bits or null, threshold, seed, stream).
using BackwardKernel =
    std::function<void(const float*, float*, int64_t, const uint64_t*, uint32_t, uint64_t, uint64_t)>;

// Shared by the backward variants: exactly one of mask_bits or (seed, stream).
py::object backward_common(const FloatArray& grad, double p, const py::object& seed, const py::object& stream,
                           const py::object& mask_bits, const py::object& out, int64_t n_mask,
                           const BackwardKernel& kernel) {
  check_p(p);
  const bool has_bits = !mask_bits.is_none(), has_seed = !seed.is_none(), has_stream = !stream.is_none();
  DROPNET_CHECK((has_bits && !has_seed && !has_stream) || (!has_bits && has_seed && has_stream),
                "mask_bits, seed, stream: expected either mask_bits or both seed and stream, got ",
                has_bits ? "mask_bits" : "no mask_bits", has_seed ? ", seed" : ", no seed",
                has_stream ? ", stream" : ", no stream");
  uint64_t s = 0, st = 0;
  BitsArray bits;
  const uint64_t* bp = nullptr;
  if (has_bits) {
    bits = require_bits(mask_bits, n_mask);
    bp = bits.data();
  } else {
    s = require_u64(seed, "seed");
    st = require_u64(stream, "stream");
  }
  const std::vector<py::ssize_t> shape = shape_of(grad);
  FloatArray dx = float_out(out, shape, shape_text(shape) + " (the shape of grad)");
  const int64_t n = static_cast<int64_t>(grad.size());
  const float* gp = grad.data();
  float* dp = dx.mutable_data();
  require_no_overlap(dx, "out", grad, "grad", /*in_place_ok=*/true);
  const uint32_t threshold = keep_threshold(p);
  {
    py::gil_scoped_release release;
    if (p == 0.0) copy_floats(gp, dp, n);
    else kernel(gp, dp, n, bp, threshold, s, st);
  }
  return std::move(dx);
}

// Spatial dropout's channel view: N*C channels of prod(shape[2:]) floats.
void channels_of(const FloatArray& x, const char* name, int64_t* n_channels, int64_t* channel_size) {
  DROPNET_CHECK(x.ndim() >= 2, name, ": expected at least 2 dimensions (N, C, ...), got shape ", shape_str(x));
  *n_channels = static_cast<int64_t>(x.shape(0) * x.shape(1));
  *channel_size = 1;
  for (py::ssize_t i = 2; i < x.ndim(); ++i) *channel_size *= static_cast<int64_t>(x.shape(i));
}

// The forward variants share one signature, and so do the backward ones.
template <class Fn>
void def_forward(py::module_& m, const char* name, Fn&& fn, const char* doc) {
  m.def(name, std::forward<Fn>(fn), py::arg("x"), py::arg("p"), py::arg("seed"), py::arg("stream"),
        py::arg("training") = true, py::arg("out") = py::none(), py::arg("return_mask") = false, doc);
}

template <class Fn>
void def_backward(py::module_& m, const char* name, Fn&& fn, const char* doc) {
  m.def(name, std::forward<Fn>(fn), py::arg("grad"), py::arg("p"), py::arg("seed") = py::none(),
        py::arg("stream") = py::none(), py::arg("mask_bits") = py::none(), py::arg("out") = py::none(), doc);
}

}  // namespace

void register_dropout(py::module_& m) {
  def_forward(
      m, "dropout_forward",
      [](const py::object& x, double p, const py::object& seed, const py::object& stream, bool training,
         const py::object& out, bool return_mask) {
        auto xa = require_array<float>(x, "x");
        const float scale = keep_scale(p);
        return forward_common(xa, p, seed, stream, training, out, return_mask, static_cast<int64_t>(xa.size()),
                              [scale](const float* xp, float* yp, int64_t n, uint32_t t, uint64_t s, uint64_t st,
                                      uint64_t* bits) { cpu::dropout_forward(xp, yp, n, t, scale, s, st, bits); });
      },
      "Inverted dropout: y = x * keep / (1 - p). Returns y or (y, mask_bits).");

  def_backward(
      m, "dropout_backward",
      [](const py::object& grad, double p, const py::object& seed, const py::object& stream,
         const py::object& mask_bits, const py::object& out) {
        auto g = require_array<float>(grad, "grad");
        const float scale = keep_scale(p);
        return backward_common(g, p, seed, stream, mask_bits, out, static_cast<int64_t>(g.size()),
                               [scale](const float* dy, float* dx, int64_t n, const uint64_t* bits, uint32_t t,
                                       uint64_t s, uint64_t st) {
                                 if (bits) cpu::dropout_backward_bits(dy, bits, dx, n, scale);
                                 else cpu::dropout_backward_regen(dy, dx, n, t, scale, s, st);
                               });
      },
      "dx = grad * keep / (1 - p), keep read from mask_bits or regenerated from (seed, stream).");

  m.def(
      "dropout_mask_bits",
      [](int64_t n, double p, const py::object& seed, const py::object& stream) {
        DROPNET_CHECK(n >= 0, "n: expected n >= 0, got ", n);
        check_p(p);
        const uint64_t s = require_u64(seed, "seed"), st = require_u64(stream, "stream");
        BitsArray bits(n_words(n));
        uint64_t* bp = bits.mutable_data();
        const uint32_t threshold = keep_threshold(p);
        {
          py::gil_scoped_release release;
          if (p == 0.0) fill_all_kept(bp, n);
          else cpu::dropout_mask_bits(n, threshold, s, st, bp);
        }
        return bits;
      },
      py::arg("n"), py::arg("p"), py::arg("seed"), py::arg("stream"), "Keep bits of n elements.");

  def_forward(
      m, "alpha_dropout_forward",
      [](const py::object& x, double p, const py::object& seed, const py::object& stream, bool training,
         const py::object& out, bool return_mask) {
        auto xa = require_array<float>(x, "x");
        check_p(p);
        const cpu::AlphaDropoutCoeffs c = cpu::alpha_dropout_coeffs(p);
        return forward_common(xa, p, seed, stream, training, out, return_mask, static_cast<int64_t>(xa.size()),
                              [c](const float* xp, float* yp, int64_t n, uint32_t t, uint64_t s, uint64_t st,
                                  uint64_t* bits) { cpu::alpha_dropout_forward(xp, yp, n, t, c, s, st, bits); });
      },
      "AlphaDropout: y = a * (keep ? x : alpha') + b.");

  def_backward(
      m, "alpha_dropout_backward",
      [](const py::object& grad, double p, const py::object& seed, const py::object& stream,
         const py::object& mask_bits, const py::object& out) {
        auto g = require_array<float>(grad, "grad");
        check_p(p);
        const float a = cpu::alpha_dropout_coeffs(p).a;
        return backward_common(g, p, seed, stream, mask_bits, out, static_cast<int64_t>(g.size()),
                               [a](const float* dy, float* dx, int64_t n, const uint64_t* bits, uint32_t t,
                                   uint64_t s, uint64_t st) {
                                 if (bits) cpu::dropout_backward_bits(dy, bits, dx, n, a);
                                 else cpu::dropout_backward_regen(dy, dx, n, t, a, s, st);
                               });
      },
      "dx = grad * keep * a.");

  m.def("alpha_dropout_coeffs",
        [](double p) {
          check_p(p);
          const cpu::AlphaDropoutCoeffs c = cpu::alpha_dropout_coeffs(p);
          return py::make_tuple(c.a, c.b, c.dropped_value);
        },
        py::arg("p"), "(a, b, dropped_value) of AlphaDropout at p, as float32 values.");

  def_forward(
      m, "spatial_dropout_forward",
      [](const py::object& x, double p, const py::object& seed, const py::object& stream, bool training,
         const py::object& out, bool return_mask) {
        auto xa = require_array<float>(x, "x");
        int64_t n_channels, channel_size;
        channels_of(xa, "x", &n_channels, &channel_size);
        const float scale = keep_scale(p);
        return forward_common(xa, p, seed, stream, training, out, return_mask, n_channels,
                              [=](const float* xp, float* yp, int64_t, uint32_t t, uint64_t s, uint64_t st,
                                  uint64_t* bits) {
                                cpu::spatial_dropout_forward(xp, yp, n_channels, channel_size, t, scale, s, st, bits);
                              });
      },
      "Spatial dropout: whole channels of (N, C, ...) kept or zeroed; channel n*C + c draws word n*C + c.");

  def_backward(
      m, "spatial_dropout_backward",
      [](const py::object& grad, double p, const py::object& seed, const py::object& stream,
         const py::object& mask_bits, const py::object& out) {
        auto g = require_array<float>(grad, "grad");
        int64_t n_channels, channel_size;
        channels_of(g, "grad", &n_channels, &channel_size);
        const float scale = keep_scale(p);
        return backward_common(g, p, seed, stream, mask_bits, out, n_channels,
                               [=](const float* dy, float* dx, int64_t, const uint64_t* bits, uint32_t t, uint64_t s,
                                   uint64_t st) {
                                 cpu::spatial_dropout_backward(dy, dx, n_channels, channel_size, bits, t, scale, s, st);
                               });
      },
      "Backward of spatial dropout.");

  m.def(
      "mc_dropout",
      [](const py::object& x, double p, const py::object& seed, const py::object& stream0, int64_t samples,
         const py::object& out) {
        auto xa = require_array<float>(x, "x");
        check_p(p);
        DROPNET_CHECK(samples >= 1, "samples: expected an int >= 1, got ", samples);
        const uint64_t s = require_u64(seed, "seed"), st0 = require_u64(stream0, "stream0");
        DROPNET_CHECK(static_cast<uint64_t>(samples - 1) <= ~uint64_t{0} - st0,
                      "stream0: expected stream0 + samples - 1 < 2**64, got stream0 = ", st0, " and samples = ",
                      samples);
        std::vector<py::ssize_t> shape = shape_of(xa);
        shape.insert(shape.begin(), static_cast<py::ssize_t>(samples));
        FloatArray y = float_out(out, shape, shape_text(shape) + " (samples, *x.shape)");
        const int64_t n = static_cast<int64_t>(xa.size());
        const float* xp = xa.data();
        float* yp = y.mutable_data();
        require_no_overlap(y, "out", xa, "x", /*in_place_ok=*/true);
        const uint32_t threshold = keep_threshold(p);
        const float scale = keep_scale(p);
        {
          py::gil_scoped_release release;
          if (p == 0.0) {
            for (int64_t k = 0; k < samples; ++k) copy_floats(xp, yp + k * n, n);
          } else {
            cpu::mc_dropout_forward(xp, yp, n, samples, threshold, scale, s, st0);
          }
        }
        return y;
      },
      py::arg("x"), py::arg("p"), py::arg("seed"), py::arg("stream0"), py::arg("samples"), py::arg("out") = py::none(),
      "Monte Carlo dropout: sample k is dropout(x) with stream stream0 + k; shape (samples, *x.shape).");
}

}  // namespace bindings
}  // namespace dropnet
