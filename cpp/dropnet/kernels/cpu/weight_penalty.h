// Finishes a weight gradient in one pass over n contiguous floats:
//   g = (g + 2·l2·w + l1·sign(w)) · mask        (mask null: 1; the Keras penalty's gradient)
// and returns the penalty l2·Σw² + l1·Σ|w| (0 when l1 == l2 == 0).
// The sum is taken over fixed blocks of kPenaltyBlock elements (block sums in double, then added
// in block order), so it is bit-identical for any thread count. block_sums: scratch of
// penalty_blocks(n) doubles supplied by the caller (no allocation here).
#pragma once
#include <cstdint>

#include "dropnet/core/optimizer_element.h"

namespace dropnet {
namespace cpu {

using dropnet::kPenaltyBlock;   // core/optimizer_element.h: the chunks both devices sum over
using dropnet::penalty_blocks;

double weight_penalty_grad(int64_t n, const float* w, float* g, const float* mask, float l1, float l2,
                           double* block_sums);

}  // namespace cpu
}  // namespace dropnet
