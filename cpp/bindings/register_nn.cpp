// Layers, networks and optimizers.
#include <pybind11/pybind11.h>

namespace py = pybind11;

namespace dropnet {
namespace bindings {

void register_nn(py::module_& m) { (void)m; }

}  // namespace bindings
}  // namespace dropnet
