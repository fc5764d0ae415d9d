// Dispatch entry of the finite check and its scalar twin (finite_check.h).
#include "dropnet/kernels/cpu/finite_check.h"

#include <atomic>
#include <cmath>

#include "dropnet/core/cpu_features.h"
#include "dropnet/core/parallel.h"
#include "dropnet/kernels/cpu/finite_check_body.h"

namespace dropnet {
namespace cpu {

bool any_non_finite_scalar(const float* x, int64_t n) { return any_non_finite_body(x, n); }

int64_t first_non_finite(const float* x, int64_t n) {
  auto body = any_non_finite_scalar;
  switch (active_isa()) {
    case Isa::avx512: body = any_non_finite_avx512; break;
    case Isa::avx2: body = any_non_finite_avx2; break;
    case Isa::scalar: break;
  }
  // A yes/no per piece (an OR: the split cannot change the answer); the position, wanted only
  // for the error message, comes from a plain scan.
  std::atomic<bool> found{false};
  parallel_ranges(n, 1 << 16, [&](int64_t b, int64_t e) {
    if (body(x + b, e - b)) found.store(true, std::memory_order_relaxed);
  });
  if (!found.load()) return -1;
  for (int64_t i = 0; i < n; ++i)
    if (!std::isfinite(x[i])) return i;
  return -1;
}

}  // namespace cpu
}  // namespace dropnet
