// Thread team of the sparse kernels. One OpenMP region per call: each part packs its share of the
// dense operands, meets the others at a barrier, then computes the output rows it owns.
#pragma once
#include <omp.h>

#include <algorithm>
#include <cstdint>

#include "dropnet/core/denormals.h"
#include "dropnet/core/threading.h"

namespace dropnet {
namespace cpu {

// Threads for a product of about `work` multiply-adds: waking a team costs microseconds, so
// small products stay on the calling thread.
inline int sparse_parts(double work) {
  const int64_t want = static_cast<int64_t>(work / double(1 << 15));
  return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(get_num_threads(), want)));
}

// Runs fn(part, parts) on `parts` threads (inline when 1), denormals flushed in each. fn may use
// `#pragma omp barrier` when parts > 1.
template <class Fn>
void sparse_run_parts(int parts, Fn&& fn) {
  if (parts <= 1) {
    DenormalsFlushed ftz;
    fn(0, 1);
    return;
  }
#pragma omp parallel num_threads(parts)
  {
    DenormalsFlushed ftz;
    fn(omp_get_thread_num(), omp_get_num_threads());
  }
}

// The barrier between packing and computing; a no-op on one thread.
inline void sparse_barrier(int parts) {
  if (parts > 1) {
#pragma omp barrier
  }
}

}  // namespace cpu
}  // namespace dropnet
