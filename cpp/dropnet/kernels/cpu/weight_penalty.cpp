#include "dropnet/kernels/cpu/weight_penalty.h"

#include <algorithm>
#include <cmath>

#include "dropnet/core/denormals.h"
#include "dropnet/core/optimizer_element.h"
#include "dropnet/core/parallel.h"

namespace dropnet {
namespace cpu {

namespace {
template <bool Penalised, bool Masked>
double penalty_block(const float* w, float* g, const float* mask, int64_t n, float l1, float l2) {
  const float two_l2 = 2.f * l2;
  double sq = 0.0, ab = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    const float wi = Penalised ? w[i] : 0.f;
    if (Penalised) {
      sq += static_cast<double>(wi) * wi;
      ab += std::fabs(static_cast<double>(wi));
    }
    g[i] = penalty_grad_element<Penalised, Masked>(two_l2, l1, wi, g[i], Masked ? mask[i] : 1.f);
  }
  return Penalised ? static_cast<double>(l2) * sq + static_cast<double>(l1) * ab : 0.0;
}
}  // namespace

double weight_penalty_grad(int64_t n, const float* w, float* g, const float* mask, float l1, float l2,
                           double* block_sums) {
  const bool penalised = l1 != 0.f || l2 != 0.f;
  if (!penalised && !mask) return 0.0;
  const int64_t blocks = penalty_blocks(n);
  parallel_ranges(blocks, 8, [&](int64_t b0, int64_t b1) {
    DenormalsFlushed ftz;
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t s = b * kPenaltyBlock, len = std::min(kPenaltyBlock, n - s);
      const float* m = mask ? mask + s : nullptr;
      double v;
      if (penalised) v = m ? penalty_block<true, true>(w + s, g + s, m, len, l1, l2)
                           : penalty_block<true, false>(w + s, g + s, m, len, l1, l2);
      else v = penalty_block<false, true>(w + s, g + s, m, len, l1, l2);
      block_sums[b] = v;
    }
  });
  double total = 0.0;
  for (int64_t b = 0; b < blocks; ++b) total += block_sums[b];
  return total;
}

}  // namespace cpu
}  // namespace dropnet
