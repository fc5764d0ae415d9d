// Thread team of the sparse kernels. One OpenMP region per call: the threads pack the dense
// operands piece by piece, meet at a barrier, then compute pieces of output rows.
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

// Runs fn() on a team of `parts` threads (inline when 1), denormals flushed in each. fn shares its
// work out with sparse_for_each_piece.
template <class Fn>
void sparse_run_parts(int parts, Fn&& fn) {
  if (parts <= 1) {
    DenormalsFlushed ftz;
    fn();
    return;
  }
#pragma omp parallel num_threads(parts)
  {
    DenormalsFlushed ftz;
    fn();
  }
}

// How many pieces a team of `parts` threads cuts a phase into: several per thread, so a thread
// the OS preempts (shared machines) or one that drew heavier rows holds no one up; one alone.
inline int64_t sparse_pieces(int parts, int64_t max_pieces) {
  return parts <= 1 ? 1 : std::max<int64_t>(1, std::min<int64_t>(max_pieces, 8 * int64_t{parts}));
}

// body(i) for every piece i in [0, n), handed to the team's threads as they come free, then a
// barrier. Which thread runs a piece never changes what the piece computes, so results stay
// identical for any thread count. Outside a parallel region it is a plain loop.
template <class Fn>
void sparse_for_each_piece(int64_t n, Fn&& body) {
#pragma omp for schedule(dynamic, 1)
  for (int64_t i = 0; i < n; ++i) body(i);
}

}  // namespace cpu
}  // namespace dropnet
