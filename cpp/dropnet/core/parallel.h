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

// Calls start(part) once per thread, then item(part, i) for every i in [0, n), items handed out
// one at a time to whichever of the `parts` threads is free (part = the thread's number). For
// independent items whose threads need scratch (indexed by part): a thread that runs slower (on
// a shared host one vCPU was measured 5-15 % slower than the other for seconds at a time) takes
// fewer items instead of holding up the rest at the end of the region. Inline on the caller when
// parts <= 1.
template <class Start, class Item>
void for_each_item(int64_t n, int parts, Start&& start, Item&& item) {
  if (parts <= 1) {
    if (n > 0) start(0);
    for (int64_t i = 0; i < n; ++i) item(0, i);
    return;
  }
#pragma omp parallel num_threads(parts)
  {
    const int part = omp_get_thread_num();
    start(part);
#pragma omp for schedule(dynamic, 1)
    for (int64_t i = 0; i < n; ++i) item(part, i);
  }
}

// fn(part, begin, end) on near-equal pieces of [0, n), each of grain to 2·grain - 1 items, handed
// out as for_each_item does, on at most get_num_threads() and max_parts threads (part: the thread's
// number, for scratch). For loops of equal items whose threads do not run at equal speed.
template <class Fn>
void for_each_piece(int64_t n, int64_t grain, int64_t max_parts, Fn&& fn) {
  if (n <= 0) return;
  const int64_t pieces = std::min<int64_t>(INT32_MAX, std::max<int64_t>(1, n / std::max<int64_t>(1, grain)));
  const int parts = static_cast<int>(std::min<int64_t>({get_num_threads(), pieces, std::max<int64_t>(1, max_parts)}));
  for_each_item(
      pieces, parts, [](int) {},
      [&](int part, int64_t p) {
        int64_t b, e;
        split_range(n, static_cast<int>(pieces), static_cast<int>(p), &b, &e);
        fn(part, b, e);
      });
}

}  // namespace dropnet
