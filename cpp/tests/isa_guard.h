// Restores the active ISA level and the thread count when a test that changes them ends.
#pragma once
#include "dropnet/core/cpu_features.h"
#include "dropnet/core/threading.h"

namespace dropnet {
namespace testing {

struct IsaGuard {
  Isa saved = active_isa();
  int threads = get_num_threads();
  ~IsaGuard() {
    set_isa(saved);
    set_num_threads(threads);
  }
};

}  // namespace testing
}  // namespace dropnet
