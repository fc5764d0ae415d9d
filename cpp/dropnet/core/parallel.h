// Contiguous-range parallel loop. Each thread gets one piece of [0, n); pieces never overlap and
// every element is computed by a function of its index alone, so the split cannot change results.
#pragma once
#include <omp.h>

#include <algorithm>
#include <cstdint>

#include "dropnet/core/threading.h"

namespace dropnet {

// Calls fn(begin, end) on up to get_num_threads() pieces; at least `grain` items per piece so
// small inputs stay on the calling thread (waking a team costs microseconds).
template <class Fn>
void parallel_ranges(int64_t n, int64_t grain, Fn&& fn) {
  if (n <= 0) return;
  const int64_t max_parts = std::max<int64_t>(1, n / std::max<int64_t>(1, grain));
  const int parts = static_cast<int>(std::min<int64_t>(get_num_threads(), max_parts));
  if (parts <= 1) {
    fn(int64_t{0}, n);
    return;
  }
#pragma omp parallel num_threads(parts)
  {
    int64_t b, e;
    split_range(n, omp_get_num_threads(), omp_get_thread_num(), &b, &e);
    if (b < e) fn(b, e);
  }
}

// Calls fn(part, begin, end) on `parts` contiguous pieces of [0, n), one per OpenMP thread (part
// = the thread's number); inline on the caller when parts <= 1. For loops whose threads each need
// their own scratch (indexed by part).
template <class Fn>
void for_each_part(int64_t n, int parts, Fn&& fn) {
  if (parts <= 1) {
    fn(0, int64_t{0}, n);
    return;
  }
#pragma omp parallel num_threads(parts)
  {
    int64_t b, e;
    split_range(n, omp_get_num_threads(), omp_get_thread_num(), &b, &e);
    if (b < e) fn(omp_get_thread_num(), b, e);
  }
}

}  // namespace dropnet
