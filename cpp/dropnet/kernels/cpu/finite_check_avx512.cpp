// avx512 unit of the finite check (auto-vectorised shared body).
#include "dropnet/kernels/cpu/finite_check.h"
#include "dropnet/kernels/cpu/finite_check_body.h"

namespace dropnet {
namespace cpu {

bool any_non_finite_avx512(const float* x, int64_t n) { return any_non_finite_body(x, n); }

}  // namespace cpu
}  // namespace dropnet
