#include "dropnet/core/threading.h"

#include <omp.h>

#include <atomic>

#include "dropnet/core/error.h"

namespace dropnet {
namespace {
std::atomic<int>& thread_slot() {
  // Starts from OpenMP's default, which honours OMP_NUM_THREADS.
  static std::atomic<int> slot{omp_get_max_threads() > 0 ? omp_get_max_threads() : 1};
  return slot;
}
}  // namespace

int get_num_threads() { return thread_slot().load(std::memory_order_relaxed); }

void set_num_threads(int n) {
  DROPNET_CHECK(n >= 1, "set_num_threads: n must be >= 1, got ", n);
  thread_slot().store(n, std::memory_order_relaxed);
}

}  // namespace dropnet
