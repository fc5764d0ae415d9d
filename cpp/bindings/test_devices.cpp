#include "test_devices.h"

#ifdef DROPNET_TEST_DEVICES
#include "sim_device.h"
#endif

namespace dropnet {
namespace bindings {

#ifdef DROPNET_TEST_DEVICES
std::vector<std::string> test_device_names() { return {"_sim"}; }
std::shared_ptr<const Backend> test_device(const std::string& name) {
  if (name != "_sim") return nullptr;
  return testing::make_sim_backend();
}
#else
std::vector<std::string> test_device_names() { return {}; }
std::shared_ptr<const Backend> test_device(const std::string&) { return nullptr; }
#endif

}  // namespace bindings
}  // namespace dropnet
