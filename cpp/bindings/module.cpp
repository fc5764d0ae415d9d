// dropnet._core: creates the submodules and lets one file per area fill each. No maths here.
#include <pybind11/pybind11.h>

#include "dropnet/core/error.h"

namespace py = pybind11;

namespace dropnet {
namespace bindings {
void register_core(py::module_& m);
void register_random(py::module_& m);
void register_dropout(py::module_& m);
void register_linalg(py::module_& m);
void register_conv(py::module_& m);
void register_sparse(py::module_& m);
void register_nn(py::module_& m);
void register_augment(py::module_& m);
void register_device(py::module_& m);
void register_device_layers(py::module_& m);
}  // namespace bindings
}  // namespace dropnet

#ifndef DROPNET_VERSION
#define DROPNET_VERSION "0.0.0+dev"
#endif

PYBIND11_MODULE(_core, m) {
  m.doc() = "dropnet native core (private; use the dropnet package)";
  m.attr("__version__") = DROPNET_VERSION;
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const dropnet::TypeError& e) {
      PyErr_SetString(PyExc_TypeError, e.what());
    } catch (const dropnet::ValueError& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    }
  });
  auto core = m.def_submodule("core", "threads, ISA dispatch, devices");
  dropnet::bindings::register_core(core);
  auto random = m.def_submodule("random", "Philox4x32-10 and the stream contract");
  dropnet::bindings::register_random(random);
  auto ops = m.def_submodule("ops", "stateless kernels on numpy arrays");
  dropnet::bindings::register_dropout(ops);
  dropnet::bindings::register_linalg(ops);
  dropnet::bindings::register_conv(ops);
  dropnet::bindings::register_sparse(ops);
  dropnet::bindings::register_augment(ops);
  auto device = m.def_submodule(
      "device", "CUDA device memory, DLPack, and the dropout family and layer ops on device pointers");
  dropnet::bindings::register_device(device);
  dropnet::bindings::register_device_layers(device);
  auto nn = m.def_submodule("nn", "layers, networks, optimizers");
  dropnet::bindings::register_nn(nn);
}
