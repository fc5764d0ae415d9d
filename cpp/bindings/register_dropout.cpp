// Bindings of the dropout kernels (dropnet._core.ops).
#include <pybind11/pybind11.h>

namespace py = pybind11;

namespace dropnet {
namespace bindings {

void register_dropout(py::module_& m) { (void)m; }

}  // namespace bindings
}  // namespace dropnet
