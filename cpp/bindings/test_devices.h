// Devices that exist for the tests only: in a build with the C++ tests (DROPNET_TEST_DEVICES, see
// CMakeLists.txt) "_sim" is the simulated device of cpp/tests/sim_device.h (the CUDA kernels'
// per-thread bodies over simulated grids, memory the host cannot read outside a backend call).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "dropnet/kernels/backend.h"

namespace dropnet {
namespace bindings {

// The names test_device accepts (empty in a release build).
std::vector<std::string> test_device_names();
// A new backend for `name`, or null when it names no test device.
std::shared_ptr<const Backend> test_device(const std::string& name);

}  // namespace bindings
}  // namespace dropnet
