// Thread control. Kernels open OpenMP regions with num_threads(get_num_threads()) and split work
// over independent outputs only (docs/design.md, Determinism), so results never depend on the count.
#pragma once
#include <cstdint>

namespace dropnet {

int get_num_threads();
// n >= 1; throws ValueError otherwise.
void set_num_threads(int n);

// Half-open range [begin, end) of part `part` when `n` items are split into `parts` near-equal
// contiguous pieces. The split only decides who computes what, never what is computed.
inline void split_range(int64_t n, int parts, int part, int64_t* begin, int64_t* end) {
  const int64_t base = n / parts, rem = n % parts;
  *begin = part * base + (part < rem ? part : rem);
  *end = *begin + base + (part < rem ? 1 : 0);
}

}  // namespace dropnet
