// Argument checks shared by the binding files: numpy arrays in, clear errors out.
// Errors name the argument, what was expected and what came (TypeError for dtypes, ValueError for
// shapes and layouts); nothing is silently converted or broadcast.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>
#include <vector>

#include "dropnet/core/error.h"

namespace dropnet {
namespace bindings {

namespace py = pybind11;

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

// `obj` must already be a numpy array of dtype T, C-contiguous.
template <class T>
py::array_t<T, py::array::c_style> require_array(const py::handle& obj, const char* name) {
  if (!py::isinstance<py::array>(obj))
    throw TypeError(str_concat(name, ": expected a numpy array of dtype ", py::str(py::dtype::of<T>()).cast<std::string>(),
                               ", got ", py::str(py::type::of(obj)).cast<std::string>()));
  py::array a = py::reinterpret_borrow<py::array>(obj);
  if (!a.dtype().is(py::dtype::of<T>()))
    throw TypeError(str_concat(name, ": expected dtype ", py::str(py::dtype::of<T>()).cast<std::string>(), ", got ",
                               dtype_str(a)));
  if (!(a.flags() & py::array::c_style))
    throw ValueError(str_concat(name, ": expected a C-contiguous array, got strides that are not (use np.ascontiguousarray)"));
  return py::array_t<T, py::array::c_style>::ensure(a);
}

// Same, and writeable (for out= buffers).
template <class T>
py::array_t<T, py::array::c_style> require_writeable(const py::handle& obj, const char* name) {
  auto a = require_array<T>(obj, name);
  if (!a.writeable()) throw ValueError(str_concat(name, ": expected a writeable array, got a read-only one"));
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

}  // namespace bindings
}  // namespace dropnet
