// Argument checks shared by the binding files: numpy arrays in, clear errors out.
// Errors name the argument, what was expected and what came (TypeError for dtypes, ValueError for
// shapes and layouts); nothing is silently converted or broadcast.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "dropnet/core/epilogue.h"
#include "dropnet/core/error.h"
#include "dropnet/core/philox.h"

namespace dropnet {
namespace bindings {

namespace py = pybind11;

// The fused activation an ops call names: None, '' or 'linear' / 'identity' (none) or one the
// GEMM epilogue applies (core/epilogue.h). Every binding file parses it here, with one message.
inline Activation parse_activation(const std::string& name) {
  if (name.empty() || name == "linear" || name == "identity") return Activation::identity;
  if (name == "relu") return Activation::relu;
  if (name == "leaky_relu") return Activation::leaky_relu;
  if (name == "tanh") return Activation::tanh;
  if (name == "sigmoid") return Activation::sigmoid;
  if (name == "gelu") return Activation::gelu;
  throw ValueError(str_concat("activation: expected None, 'linear', 'relu', 'leaky_relu', 'tanh', 'sigmoid' or 'gelu', "
                              "got '", name, "'"));
}
inline Activation parse_activation(const py::handle& obj) {
  if (obj.is_none()) return Activation::identity;
  DROPNET_CHECK_TYPE(py::isinstance<py::str>(obj), "activation: expected None or a str, got ",
                     py::str(py::type::of(obj)).cast<std::string>());
  return parse_activation(obj.cast<std::string>());
}

inline std::string shape_str(const py::array& a) {
  std::string s = "(";
  for (py::ssize_t i = 0; i < a.ndim(); ++i) {
    s += std::to_string(a.shape(i));
    if (i + 1 < a.ndim() || a.ndim() == 1) s += ",";
    if (i + 1 < a.ndim()) s += " ";
  }
  return s + ")";
}

inline std::string dtype_str(const py::array& a) { return py::str(a.dtype()).cast<std::string>(); }

// Whether `a` has dtype T. Equivalence, not identity: a float32 dtype that carries metadata (or
// any other equal descriptor object) is float32; a byte-swapped one is not.
template <class T>
bool is_dtype(const py::array& a) {
  const py::dtype want = py::dtype::of<T>();
  return a.dtype().is(want) || a.dtype().equal(want);
}

// Whether the data pointer is aligned for the element type (numpy's ALIGNED flag). Kernels read
// and write elements as T, which C++ allows only at aligned addresses.
inline bool is_aligned(const py::array& a) {
  return (a.flags() & py::detail::npy_api::NPY_ARRAY_ALIGNED_) != 0;
}

// `obj` must already be a numpy array of dtype T, C-contiguous. A misaligned one (a view at an odd
// byte offset of a buffer) is copied to an aligned array first: inputs only, see require_writeable.
template <class T>
py::array_t<T, py::array::c_style> require_array(const py::handle& obj, const char* name) {
  if (!py::isinstance<py::array>(obj))
    throw TypeError(str_concat(name, ": expected a numpy array of dtype ", py::str(py::dtype::of<T>()).cast<std::string>(),
                               ", got ", py::str(py::type::of(obj)).cast<std::string>()));
  py::array a = py::reinterpret_borrow<py::array>(obj);
  if (!is_dtype<T>(a))
    throw TypeError(str_concat(name, ": expected dtype ", py::str(py::dtype::of<T>()).cast<std::string>(), ", got ",
                               dtype_str(a)));
  if (!(a.flags() & py::array::c_style))
    throw ValueError(str_concat(name, ": expected a C-contiguous array, got strides that are not (use np.ascontiguousarray)"));
  if (!is_aligned(a)) {
    py::array_t<T, py::array::c_style> copy(std::vector<py::ssize_t>(a.shape(), a.shape() + a.ndim()));
    if (a.nbytes() > 0) std::memcpy(copy.mutable_data(), a.data(), static_cast<size_t>(a.nbytes()));
    return copy;
  }
  return py::array_t<T, py::array::c_style>::ensure(a);
}

// Same, and writeable (for out= buffers).
template <class T>
py::array_t<T, py::array::c_style> require_writeable(const py::handle& obj, const char* name) {
  auto a = require_array<T>(obj, name);
  if (!a.writeable()) throw ValueError(str_concat(name, ": expected a writeable array, got a read-only one"));
  if (!is_aligned(py::reinterpret_borrow<py::array>(obj))) throw ValueError(str_concat(name, ": expected an array aligned to its ", sizeof(T),
                                              "-byte elements (results are written in place), got a misaligned one"));
  return a;
}

inline std::vector<py::ssize_t> shape_of(const py::array& a) {
  return std::vector<py::ssize_t>(a.shape(), a.shape() + a.ndim());
}

inline void require_same_shape(const py::array& a, const char* a_name, const py::array& b, const char* b_name) {
  bool same = a.ndim() == b.ndim();
  for (py::ssize_t i = 0; same && i < a.ndim(); ++i) same = a.shape(i) == b.shape(i);
  if (!same)
    throw ValueError(str_concat(b_name, ": expected shape ", shape_str(a), " (the shape of ", a_name, "), got ",
                                shape_str(b)));
}

// Whether two C-contiguous arrays share a byte (each occupies exactly [data, data + nbytes)).
inline bool shares_bytes(const py::array& a, const py::array& b) {
  if (a.nbytes() == 0 || b.nbytes() == 0) return false;
  const char* a0 = static_cast<const char*>(a.data());
  const char* b0 = static_cast<const char*>(b.data());
  return a0 < b0 + b.nbytes() && b0 < a0 + a.nbytes();
}

// The one aliasing check of every op that takes an out= array (or writes several outputs): a
// kernel writes `out` while it still reads `in`, so any overlap gives a silently wrong result.
// With in_place_ok, `out` may be exactly `in` (same start and size: elementwise kernels that
// read each element before writing it); any other overlap is still refused.
inline void require_no_overlap(const py::array& out, const char* out_name, const py::array& in, const char* in_name,
                               bool in_place_ok = false) {
  if (!shares_bytes(out, in)) return;
  if (in_place_ok && out.data() == in.data() && out.nbytes() == in.nbytes()) return;
  if (in_place_ok)
    throw ValueError(str_concat(out_name, ": expected either the same buffer as ", in_name,
                                " (in place) or one that does not share memory with it, got a partial overlap"));
  throw ValueError(str_concat(out_name, ": must not share memory with ", in_name, ", got an array that overlaps it"));
}

// Seeds and streams are u64; Python ints outside [0, 2^64) are a ValueError, not a wrap-around.
// Uses the C API directly: this runs on every small op, so no Python-level arithmetic here.
inline uint64_t require_u64(const py::handle& obj, const char* name) {
  if (!PyLong_Check(obj.ptr()) || PyBool_Check(obj.ptr()))
    throw TypeError(str_concat(name, ": expected an int in [0, 2**64), got ", py::str(py::type::of(obj)).cast<std::string>()));
  int overflow = 0;
  const long long as_signed = PyLong_AsLongLongAndOverflow(obj.ptr(), &overflow);
  if (overflow == 0 && as_signed >= 0) return static_cast<uint64_t>(as_signed);
  if (overflow > 0) {
    const unsigned long long v = PyLong_AsUnsignedLongLong(obj.ptr());
    if (!(v == static_cast<unsigned long long>(-1) && PyErr_Occurred())) return v;
    PyErr_Clear();
  }
  throw ValueError(str_concat(name, ": expected an int in [0, 2**64), got ", py::str(obj).cast<std::string>()));
}

// The fused epilogue of ops.linear (bias, activation, then inverted dropout of rate p drawn from
// seed and stream), its arguments checked: for the CPU binding and the device one alike.
inline GemmEpilogue linear_epilogue(const float* bias, const std::string& activation, float negative_slope, double p,
                                    const py::object& seed, const py::object& stream) {
  GemmEpilogue ep;
  ep.bias = bias;
  ep.activation = parse_activation(activation);
  ep.leaky_slope = negative_slope;
  DROPNET_CHECK(std::isfinite(p) && p >= 0.0 && p <= 1.0, "dropout: expected a probability in [0, 1], got ", p);
  if (p > 0.0) {
    DROPNET_CHECK(!seed.is_none() && !stream.is_none(), "dropout: p > 0 needs seed= and stream= (got seed=",
                  py::str(seed).cast<std::string>(), ", stream=", py::str(stream).cast<std::string>(), ")");
    ep.dropout = true;
    ep.seed = require_u64(seed, "seed");
    ep.stream = require_u64(stream, "stream");
    ep.threshold = p >= 1.0 ? 0u : keep_threshold(p);
    ep.scale = p >= 1.0 ? 0.f : static_cast<float>(1.0 / (1.0 - p));
  }
  return ep;
}

}  // namespace bindings
}  // namespace dropnet
