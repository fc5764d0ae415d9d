// Max-norm constraint on rows × cols weights (C order; a row is one unit's incoming weights or one
// filter): every row whose L2 norm exceeds max_norm is scaled by max_norm / norm, the norm summed
// in double in index order and the scale rounded to float once. Rows are independent; threads
// split rows, so the bits do not depend on the thread count.
#pragma once
#include <cstdint>

namespace dropnet {
namespace cpu {

void max_norm_rows(float* w, int64_t rows, int64_t cols, float max_norm);

}  // namespace cpu
}  // namespace dropnet
